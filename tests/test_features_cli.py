"""The ``neuroenc extract`` command."""
from __future__ import annotations

import argparse
import re

import numpy as np
import pytest
from _features_helpers import one_torch_thread  # noqa: F401

from neuroenc.cli import main
from neuroenc.commands._common import parse_layers
from neuroenc.features import extract_features, load_features
from neuroenc.stimuli import read_transcript
from neuroenc.testing import TINY_TEXT, tiny_gpt2

WORDS = TINY_TEXT.split()[:12]


def _interval_tier(name, labels, step):
    lines = ['        class = "IntervalTier"', f'        name = "{name}"', "        xmin = 0",
             f"        xmax = {len(labels) * step}", f"        intervals: size = {len(labels)}"]
    for i, label in enumerate(labels):
        lines += [f"        intervals [{i + 1}]:", f"            xmin = {i * step}",
                  f"            xmax = {(i + 1) * step}", f'            text = "{label}"']
    return lines


def _textgrid(words, step=0.5):
    """A long-format TextGrid with a word tier named 'lexical' and a 'phones' tier."""
    head = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0",
            f"xmax = {len(words) * step}", "tiers? <exists>", "size = 2", "item []:"]
    body = ["    item [1]:", *_interval_tier("lexical", words, step),
            "    item [2]:", *_interval_tier("phones", [w[:1] for w in words], step)]
    return "\n".join(head + body) + "\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    tiny_gpt2(n_layer=2, path=root / "model")
    (root / "story.txt").write_text(" ".join(TINY_TEXT.split()[:40]))
    rows = ["onset\tduration\ttrial_type\ttoken"] + [
        f"{0.4 * i:.1f}\t0.3\tword\t{w}" for i, w in enumerate(WORDS)]
    (root / "events.tsv").write_text("\n".join(rows) + "\n")
    (root / "story.TextGrid").write_text(_textgrid(WORDS))
    return root


def test_extract_command_writes_the_features(files, capsys):
    out = files / "features.h5"
    rc = main(["-q", "extract", "--model", str(files / "model"), "--transcript", str(files / "story.txt"),
               "--layers", "0,-1,0.5", "--context-tokens", "8", "--stride", "4", "--pooling", "mean",
               "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "40 words x 3 layers x 64 features" in printed and str(out) in printed
    fs = load_features(out)
    assert fs.layer_indices == [0, 1, 2] and fs.run == "story"
    assert fs.attrs["pooling"] == "mean" and fs.attrs["context_tokens"] == 8
    ref = extract_features(read_transcript(files / "story.txt"), str(files / "model"), context_tokens=8,
                           stride=4, pooling="mean")
    np.testing.assert_allclose(fs[2], ref[2], rtol=1e-6, atol=1e-6)


def test_extract_command_uses_the_cache(files, capsys):
    args = ["extract", "--model", str(files / "model"), "--transcript", str(files / "story.txt"),
            "--name", "s1", "--context-tokens", "6", "--cache-dir", str(files / "cache")]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first
    assert len(list((files / "cache").glob("*_s1_*.h5"))) == 1


def test_extract_command_bad_input(files, capsys):
    base = ["extract", "--model", str(files / "model"), "--transcript", str(files / "story.txt")]
    assert main(base) == 1
    assert "give --out FILE.h5 (or --cache-dir DIR)" in capsys.readouterr().err
    assert main(base + ["--layers", "0,9", "--out", str(files / "x.h5")]) == 1
    assert "Layer 9 is out of range" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(base + ["--layers", "middle", "--out", str(files / "x.h5")])
    assert "invalid layer 'middle'" in capsys.readouterr().err


def test_extract_command_reader_options(files, capsys):
    base = ["-q", "extract", "--model", str(files / "model"), "--context-tokens", "4"]
    # Plain text: the speech rate gives the word times.
    out = files / "rate.h5"
    assert main(base + ["--transcript", str(files / "story.txt"), "--words-per-second", "4",
                        "--out", str(out)]) == 0
    np.testing.assert_allclose(load_features(out).onsets, np.arange(40) * 0.25)
    # Events: the words come from the named column.
    out = files / "events.h5"
    assert main(base + ["--transcript", str(files / "events.tsv"), "--word-column", "token",
                        "--out", str(out)]) == 0
    fs = load_features(out)
    assert fs.words == WORDS and fs.run == "events"
    np.testing.assert_allclose(fs.onsets, np.arange(12) * 0.4)
    # TextGrid: the words come from the named tier.
    out = files / "tg.h5"
    assert main(base + ["--transcript", str(files / "story.TextGrid"), "--tier", "lexical",
                        "--layers", "1-2", "--out", str(out)]) == 0
    fs = load_features(out)
    assert fs.words == WORDS and fs.layer_indices == [1, 2]
    np.testing.assert_allclose(fs.offsets, np.arange(1, 13) * 0.5)
    capsys.readouterr()


@pytest.mark.parametrize("extra, transcript, message", [
    (["--tier", "words"], "story.txt",
     "--tier applies to TextGrid transcripts only, but --transcript '.*story.txt' is a .txt file; drop --tier"),
    (["--word-column", "token"], "story.TextGrid",
     "--word-column applies to events .tsv transcripts only, but --transcript '.*story.TextGrid' is a "
     ".textgrid file; drop --word-column"),
    (["--words-per-second", "3"], "events.tsv",
     "--words-per-second applies to plain text .txt transcripts only, but --transcript '.*events.tsv' is "
     "a .tsv file"),
    (["--stride", "4", "--policy", "window"], "story.txt",
     "--stride applies to --policy strided only; --policy window runs one forward pass per word"),
])
def test_extract_command_rejects_ignored_options(files, capsys, extra, transcript, message):
    args = ["extract", "--model", str(files / "model"), "--transcript", str(files / transcript),
            "--out", str(files / "never.h5")] + extra
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("neuroenc extract: error: ")
    assert re.search(message, err), err
    assert not (files / "never.h5").exists()


def test_extract_command_bad_option_values(files, capsys):
    base = ["extract", "--model", str(files / "model"), "--transcript", str(files / "story.txt"),
            "--out", str(files / "never.h5")]
    for extra, message in ((["--words-per-second", "0"],
                            "argument --words-per-second: must be a positive number, got '0'"),
                           (["--words-per-second", "fast"], "must be a positive number, got 'fast'"),
                           (["--batch-size", "big"],
                            "argument --batch-size: invalid value 'big': must be an int >= 1 or 'auto'"),
                           (["--layers", "3-1"], "invalid layer range '3-1': it ends before it starts; write 1-3"),
                           (["--layers", ","], "no layers in ',': use 'all'")):
        with pytest.raises(SystemExit):
            main(base + extra)
        assert message in capsys.readouterr().err
    # Without --tier, a TextGrid without a word(s) tier is an error naming its tiers.
    assert main(["extract", "--model", str(files / "model"), "--transcript", str(files / "story.TextGrid"),
                 "--out", str(files / "never.h5")]) == 1
    assert "lexical" in capsys.readouterr().err


def test_parse_layers_grammar():
    assert parse_layers("all") == parse_layers(" ALL ") == "all"
    assert parse_layers("0,-1,0.5") == [0, -1, 0.5]
    assert parse_layers("4-6, 10") == [4, 5, 6, 10]
    assert parse_layers("1.0,1,.25") == [1.0, 1, 0.25]
    assert isinstance(parse_layers("1.0")[0], float) and isinstance(parse_layers("1")[0], int)
    for bad, message in (("middle", "invalid layer 'middle'"), ("1e3", "invalid layer '1e3'"),
                         ("-2-3", "invalid layer '-2-3'"), ("5-2", "invalid layer range '5-2'"),
                         ("", "no layers in ''")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            parse_layers(bad)


def test_extract_strip_codes_reaches_the_textgrid_reader(data_dir, tmp_path):
    """``--strip-codes`` / ``--keep-codes`` are read_textgrid's ``strip_codes``; the reader's
    hint names the command's option; and the option refuses another format."""
    from neuroenc.cli import build_parser, command_hints
    from neuroenc.commands.extract import _reader_options

    grid = data_dir / "naturalstories" / "audio" / "1_aligned.TextGrid"
    parser = build_parser()
    args = parser.parse_args(["extract", "--model", "m", "--transcript", str(grid), "--strip-codes"])
    kwargs = _reader_options(args)
    assert kwargs["strip_codes"] is True
    words = read_transcript(grid, **kwargs).words
    assert len(words) > 900 and not any("/" in w for w in words)
    args = parser.parse_args(["extract", "--model", "m", "--transcript", str(grid), "--keep-codes"])
    assert _reader_options(args)["strip_codes"] is False
    assert any(" / " in w for w in read_transcript(grid, **_reader_options(args)).words)
    assert "--strip-codes" in command_hints("Pass strip_codes=True to keep the words only", "extract")
    text = tmp_path / "story.txt"
    text.write_text("Alice was beginning to get very tired.")
    args = parser.parse_args(["extract", "--model", "m", "--transcript", str(text), "--strip-codes"])
    with pytest.raises(ValueError, match="applies to TextGrid transcripts only"):
        _reader_options(args)
    with pytest.raises(SystemExit):
        parser.parse_args(["extract", "--model", "m", "--transcript", str(grid), "--strip-codes",
                           "--keep-codes"])
