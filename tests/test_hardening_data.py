"""Issue 13, items 4 and 7: results are reused only for the same responses and confounds; a
TR grid much longer than its transcript is warned about, then refused."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from _hardening_fixtures import copy_alice

from neuroenc.align import make_fmri_design
from neuroenc.encoding import EncodingResults
from neuroenc.features import FeatureSet
from neuroenc.pipeline import run_pipeline
from neuroenc.responses import Response

ANALYSES = Path(__file__).resolve().parents[1] / "analyses"


# ----------------------------------------------------------------------------- item 4
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from neuroenc.testing import tiny_gpt2

    path = tmp_path_factory.mktemp("tiny-gpt2")
    tiny_gpt2(n_layer=2, n_embd=16, n_positions=64, path=path)
    return path


def test_replaced_response_or_confound_file_is_refitted(tiny_model, tmp_path, data_dir):
    """Replacing s18's time courses refits s18 and the group mean (not s22); replacing s22's
    sound power refits s22 and the group; an untouched rerun reuses everything."""
    root = copy_alice(data_dir, tmp_path / "data", ["s18", "s22"])
    overrides = {
        "dataset.args": {"data_dir": str(tmp_path / "data"), "download": False},
        "dataset.subjects": ["s18", "s22"], "dataset.group_mean": True,
        "model.name": str(tiny_model), "model.context_tokens": 16, "model.stride": 8,
        "model.device": "cpu", "model.dtype": "float32", "model.layers": [0, 2],
        "encoding.alphas": {"logspace": [0, 4, 3]}, "encoding.n_permutations": 20,
        "output.dir": str(tmp_path / "out"), "output.report": None,
    }

    def run():
        out = run_pipeline(ANALYSES / "alice_layers.yaml", overrides=overrides, verbose=False)
        return out, {s: p.stat().st_mtime_ns for s, p in out.results.items()}

    first, t1 = run()
    r18 = EncodingResults.load(first.results["s18"]).r
    _, t2 = run()
    assert t2 == t1  # same data: every subject reused
    timecourses = root / "fmri" / "10mm" / "s18-timecourses.txt"
    data = np.loadtxt(timecourses)
    np.savetxt(timecourses, data[::-1].copy())  # another subject's worth of signal, same shape
    third, t3 = run()
    assert t3["s18"] != t1["s18"] and t3["group"] != t1["group"]
    assert t3["s22"] == t1["s22"]
    assert not np.allclose(EncodingResults.load(third.results["s18"]).r, r18)
    sndpwr = root / "fmri" / "s22-sndpwr.txt"
    np.savetxt(sndpwr, np.loadtxt(sndpwr)[::-1].copy())
    _, t4 = run()
    assert t4["s22"] != t3["s22"] and t4["group"] != t3["group"] and t4["s18"] == t3["s18"]


def test_subject_data_hash_covers_values_names_and_grid():
    from neuroenc.datasets import EncodingDataset
    from neuroenc.pipeline.tasks import subject_data_hash

    rng = np.random.default_rng(0)
    data = rng.standard_normal((10, 2))
    conf = rng.standard_normal((10, 1))

    def dataset(data=data, conf=conf, names=("a", "b"), start=0.0):
        resp = Response(data, tr=2.0, start=start, names=list(names), run="r", subject="s")
        c = Response(conf, tr=2.0, start=start, names=["word_rate"], run="r", subject="s")
        return EncodingDataset("d", {}, {"s": {"r": resp}}, {"s": {"r": c}})

    base = subject_data_hash(dataset(), "s")
    assert subject_data_hash(dataset(data=data.copy()), "s") == base  # same values
    changed = data.copy()
    changed[3, 1] += 1e-9
    assert subject_data_hash(dataset(data=changed), "s") != base
    assert subject_data_hash(dataset(conf=conf * 2), "s") != base
    assert subject_data_hash(dataset(names=("a", "c")), "s") != base
    assert subject_data_hash(dataset(start=2.0), "s") != base


# ----------------------------------------------------------------------------- item 7
def _story(n_words=360, rate=0.5, first=20.0):
    """Features of a story: one word every 2 s from ``first`` (about 720 s of words)."""
    times = first + np.arange(n_words) / rate
    rng = np.random.default_rng(0)
    return FeatureSet({0: rng.standard_normal((n_words, 3))}, times, times + 0.3, run="alice")


def _response(n=362, tr=2.0, start=20.0):
    return Response(np.random.default_rng(1).standard_normal((n, 2)), tr=tr, start=start, run="alice")


def test_tr_grid_far_longer_than_the_story_is_refused():
    """``--tr 20`` on Alice: 7,240 s of grid for a 720 s story."""
    with pytest.raises(ValueError, match=(
            r"run 'alice': 89% of the response grid lies outside the transcript: 362 kept TRs of 20 s "
            r"from 20 s to 7260 s \(start=20\), 7240 s, for words from 20\.0 s to 738\.0 s \(718 s\); "
            r"\d+ TRs see no word\. Check tr=20 \(the 362 rows would span the story with a TR of about "
            r"2 s\) and start=20 .*drop the extra rows with trim=\(first, last\)\. Over 50% is refused")):
        make_fmri_design(_story(), _response(tr=20.0))
    # responses much longer than the story (e.g. two stories' scan): same check
    with pytest.raises(ValueError, match=r"62% of the response grid lies outside the transcript"):
        make_fmri_design(_story(), _response(n=950))


def test_grid_partly_outside_the_story_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        design = make_fmri_design(_story(), _response(n=500))  # 1000 s of grid, 720 s of words
    assert any("27% of the response grid lies outside the transcript" in w for w in design.warnings)
    assert "27% of the response grid lies outside the transcript" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        design = make_fmri_design(_story(), _response())  # Alice's real grid: fine
        trimmed = make_fmri_design(_story(), _response(n=500), trim=(0, 138))  # the fix it names
    assert not design.warnings and not trimmed.warnings and "outside the transcript" not in caplog.text


def test_cli_fit_names_tr_and_start(tmp_path, data_dir, tiny_model, capsys):
    from neuroenc.cli import main as cli_main

    textgrid = data_dir / "alice-brennan2016" / "stimuli" / "DownTheRabbitHoleFinal_exp120_pad_1.TextGrid"
    responses = data_dir / "alice-brennan2016" / "fmri" / "10mm" / "s18-timecourses.txt"
    features = tmp_path / "alice.h5"
    assert cli_main(["-q", "extract", "--model", str(tiny_model), "--transcript", str(textgrid),
                     "--name", "alice", "--context-tokens", "16", "--stride", "8", "--device", "cpu",
                     "--out", str(features)]) == 0
    capsys.readouterr()
    assert cli_main(["-q", "fit", "--features", str(features), "--responses", str(responses), "--tr", "20",
                     "--start", "20", "--n-permutations", "0", "--out", str(tmp_path / "r.h5")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "89% of the response grid lies outside the transcript" in err
    assert "Check --tr 20 (the 362 rows would span the story with a TR of about 2 s) and --start 20" in err
    assert "tr=" not in err and "start=" not in err
    assert not (tmp_path / "r.h5").exists()
