"""The ``neuroenc extract`` command."""
from __future__ import annotations

import numpy as np
import pytest

from _features_helpers import one_torch_thread  # noqa: F401
from neuroenc.cli import main
from neuroenc.features import extract_features, load_features
from neuroenc.stimuli import read_transcript
from neuroenc.testing import TINY_TEXT, tiny_gpt2


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    tiny_gpt2(n_layer=2, path=root / "model")
    (root / "story.txt").write_text(" ".join(TINY_TEXT.split()[:40]))
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
