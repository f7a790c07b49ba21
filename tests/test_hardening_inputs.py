"""Issue 13, items 9 and 10: transcript decoding (UTF-8, UTF-16 by BOM, else an error naming the
file, the byte and ``encoding=``; ``encoding=`` in the API, the CLI and a run config) and
TextGrid details (negative times, overlapping words, a lone phone tier)."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from neuroenc.cli import main as cli_main
from neuroenc.stimuli import TranscriptError, read_events_tsv, read_gentle, read_text, read_textgrid, read_transcript
from neuroenc.stimuli.decode import default_encoding


def _textgrid(words, step=0.5, tier="word", xmin_first=0.0) -> str:
    """A long-format TextGrid of one interval tier holding ``words``."""
    n = len(words)
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", f"xmin = {xmin_first}",
             f"xmax = {n * step}", "tiers? <exists>", "size = 1", "item []:", "    item [1]:",
             '        class = "IntervalTier"', f'        name = "{tier}"', f"        xmin = {xmin_first}",
             f"        xmax = {n * step}", f"        intervals: size = {n}"]
    for i, w in enumerate(words):
        a = xmin_first if i == 0 else i * step
        lines += [f"        intervals [{i + 1}]:", f"            xmin = {a}",
                  f"            xmax = {(i + 1) * step}", f'            text = "{w}"']
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- item 9
def test_cp1252_textgrid_is_an_error_naming_the_byte_not_latin1(tmp_path):
    path = tmp_path / "cp.TextGrid"
    path.write_bytes(_textgrid(["I", "don’t", "know"]).encode("cp1252"))
    offset = path.read_bytes().index(b"\x92")
    with pytest.raises(TranscriptError, match=(
            rf"TextGrid '.*cp\.TextGrid': it is not UTF-8 text \(byte {offset} \(0x92, line \d+, .*"
            r"Save it as UTF-8, or give its encoding with encoding= \(--encoding on the command line, "
            r"dataset\.transcript_encoding in a run config\), e\.g\. encoding='cp1252'")):
        read_textgrid(path)
    assert read_textgrid(path, encoding="cp1252").words == ("I", "don’t", "know")


def test_one_stray_byte_does_not_turn_utf8_into_mojibake(tmp_path):
    path = tmp_path / "stray.TextGrid"
    raw = _textgrid(["café", "noir"]).encode("utf-8")
    raw = raw.replace(b"noir", b"no\xffir")
    path.write_bytes(raw)
    offset = raw.index(b"\xff")
    with pytest.raises(TranscriptError, match=rf"byte {offset} \(0xff"):
        read_textgrid(path)  # before: read as latin-1, 'café' became 'cafÃ©'


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le-bom", "utf-16-be-bom"])
def test_utf8_and_utf16_with_their_bom_are_read(tmp_path, encoding):
    text = _textgrid(["naïve", "café"])
    if encoding == "utf-16-le-bom":
        raw = b"\xff\xfe" + text.encode("utf-16-le")
    elif encoding == "utf-16-be-bom":
        raw = b"\xfe\xff" + text.encode("utf-16-be")
    else:
        raw = text.encode(encoding)
    path = tmp_path / "b.TextGrid"
    path.write_bytes(raw)
    assert read_textgrid(path).words == ("naïve", "café")


def test_utf16_without_bom_and_unknown_encoding(tmp_path):
    path = tmp_path / "nobom.TextGrid"
    path.write_bytes(_textgrid(["a", "b"]).encode("utf-16-le"))
    with pytest.raises(TranscriptError, match=r"looks like UTF-16 without a byte-order mark.*encoding='utf-16-le'"):
        read_textgrid(path)
    assert read_textgrid(path, encoding="utf-16-le").words == ("a", "b")
    with pytest.raises(TranscriptError, match=r"Unknown encoding 'klingon'"):
        read_textgrid(path, encoding="klingon")


def test_every_reader_takes_encoding(tmp_path):
    events = tmp_path / "s_events.tsv"
    events.write_bytes("onset\tduration\tword\n1.0\t0.3\tdon’t\n".encode("cp1252"))
    gentle = tmp_path / "align.json"
    gentle.write_bytes(json.dumps({"transcript": "don’t", "words": [
        {"word": "don’t", "case": "success", "start": 1.0, "end": 1.3, "startOffset": 0,
         "endOffset": 5}]}, ensure_ascii=False).encode("cp1252"))
    text = tmp_path / "story.txt"
    text.write_bytes("I don’t".encode("cp1252"))
    for reader, path in ((read_events_tsv, events), (read_gentle, gentle), (read_text, text)):
        with pytest.raises(TranscriptError, match=r"is not UTF-8 text \(byte \d+ \(0x92.*encoding="):
            reader(path)
        assert "don’t" in reader(path, encoding="cp1252").words
        assert "don’t" in read_transcript(path, encoding="cp1252").words
        with default_encoding("cp1252"):  # what a run config's dataset.transcript_encoding sets
            assert "don’t" in reader(path).words


def test_cli_extract_encoding(tmp_path, capsys):
    pytest.importorskip("transformers")
    from neuroenc.testing import tiny_gpt2

    model = tmp_path / "model"
    tiny_gpt2(n_layer=1, n_embd=16, n_positions=64, path=model)
    path = tmp_path / "cp.TextGrid"
    path.write_bytes(_textgrid(["I", "don’t", "know", "why"]).encode("cp1252"))
    argv = ["-q", "extract", "--model", str(model), "--transcript", str(path), "--context-tokens", "8",
            "--stride", "4", "--device", "cpu", "--out", str(tmp_path / "f.h5")]
    assert cli_main(argv) == 1
    err = capsys.readouterr().err
    assert "not UTF-8 text" in err and "--encoding" in err and "encoding=" not in err
    assert cli_main(argv + ["--encoding", "cp1252"]) == 0
    from neuroenc.features import load_features

    assert list(load_features(tmp_path / "f.h5").words) == ["I", "don’t", "know", "why"]


def test_run_config_transcript_encoding(tmp_path, data_dir):
    """dataset.transcript_encoding reaches the TextGrid a data-set loader reads."""
    from _hardening_fixtures import copy_alice

    from neuroenc.datasets.alice import ALICE_TEXTGRID
    from neuroenc.pipeline import ConfigError, load_dataset
    from neuroenc.pipeline.config import config_from_dict

    dst = copy_alice(data_dir, tmp_path, ["s18"])
    raw = (dst / ALICE_TEXTGRID).read_bytes().replace(b'"Alice"', '"Alicé"'.encode("cp1252"), 1)
    (dst / ALICE_TEXTGRID).write_bytes(raw)
    values = {"dataset": {"loader": "alice", "subjects": ["s18"],
                          "args": {"data_dir": str(tmp_path), "download": False}}}
    with pytest.raises(TranscriptError, match=r"DownTheRabbitHole.*not UTF-8 text \(byte \d+ \(0xe9"):
        load_dataset(config_from_dict(values).dataset)
    values["dataset"]["transcript_encoding"] = "cp1252"
    dataset = load_dataset(config_from_dict(values).dataset)
    assert "Alicé" in dataset.transcripts["alice"].words
    values["dataset"]["transcript_encoding"] = "nope"
    with pytest.raises(ConfigError, match=r"dataset.transcript_encoding is 'nope', not an encoding"):
        config_from_dict(values)


# ----------------------------------------------------------------------------- item 10
NEGATIVE_SHORT = '''File type = "ooTextFile"
Object class = "TextGrid"

-0.5
2
<exists>
1
"IntervalTier"
"word"
-0.5
2
2
-0.5
1
"hello"
1
2
"world"
'''

NEGATIVE_CHRONO = '''"Praat chronological TextGrid text file"
0 2   ! Time domain.
1   ! Number of tiers.
"IntervalTier" "word" 0 2
1 -0.25 1
"hello"
1 1 2
"world"
'''


@pytest.mark.parametrize("text, line", [
    (_textgrid(["hello", "world"], xmin_first=-0.5), 4),
    (NEGATIVE_SHORT, 4),
    (NEGATIVE_CHRONO, 5),
])
def test_negative_times_say_so(tmp_path, text, line):
    path = tmp_path / "neg.TextGrid"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TranscriptError, match=(
            rf"neg\.TextGrid' has a negative time, -0\.(5|25) s, on line {line} .*Times must be seconds >= 0 "
            r"from the start of the audio")):
        read_textgrid(path)


def test_negative_numbers_inside_labels_are_words(tmp_path):
    path = tmp_path / "label.TextGrid"
    path.write_text(_textgrid(["-5", "degrees"]), encoding="utf-8")
    assert read_textgrid(path).words == ("-5", "degrees")


def test_interval_overlapping_later_words_warns_naming_it(tmp_path, caplog):
    text = _textgrid(["the", "cat", "sat", "down"]).replace(
        "            xmin = 0.5\n            xmax = 1.0", "            xmin = 0.5\n            xmax = 1.7")
    path = tmp_path / "ov.TextGrid"
    path.write_text(text, encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        t = read_textgrid(path)
    assert t.words == ("the", "cat", "sat", "down")
    assert ("tier 'word': 1 word interval(s) overlap later words: interval 2 'cat' (0.500-1.700 s) "
            "overlaps the 2 words from 'sat' (onset 1.000 s)") in caplog.text
    caplog.clear()
    ok = tmp_path / "ok.TextGrid"
    ok.write_text(_textgrid(["a", "b"]), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        read_textgrid(ok)
    assert "overlap" not in caplog.text


@pytest.mark.parametrize("name", ["phones", "phone", "Phonemes"])
def test_lone_phone_tier_is_not_taken_for_words(tmp_path, name):
    path = tmp_path / "ph.TextGrid"
    path.write_text(_textgrid(["HH", "AH0", "L"], tier=name), encoding="utf-8")
    with pytest.raises(TranscriptError, match=(
            rf"ph\.TextGrid' has a single tier, '{name}', which holds phones, not words; .*"
            rf"pass tier='{name}'")):
        read_textgrid(path)
    assert read_textgrid(path, tier=name).words == ("HH", "AH0", "L")
    np.testing.assert_allclose(read_textgrid(path, tier=name).onsets, [0.0, 0.5, 1.0])
