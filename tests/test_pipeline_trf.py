"""encoding.trf / --trf: ``neuroenc run`` and ``fit_encoding`` keep the MEG/EEG TRF weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _bids_fixtures import layouts, mini_megmasc  # noqa: F401

from neuroenc.align import make_meg_design
from neuroenc.datasets import load_megmasc
from neuroenc.encoding import EncodingResults, fit_encoding
from neuroenc.encoding.sensors import add_trf
from neuroenc.features import FeatureSet
from neuroenc.pipeline import ConfigError, run_pipeline
from neuroenc.pipeline.config import make_section
from neuroenc.testing import tiny_gpt2

ANALYSES = Path(__file__).resolve().parents[1] / "analyses"


def _design(root):
    ds = load_megmasc(root, subject="01", tasks=[0], responses=True, resample=100.0, raw=False)
    runs = ds.responses["01"]
    rng = np.random.default_rng(0)
    feats = {run: FeatureSet({0: np.ones((len(t.onsets), 1)), 1: rng.standard_normal((len(t.onsets), 2))},
                             t.onsets, t.offsets, run=run, model="impulses")
             for run, t in ds.transcripts.items() if run in runs}
    return make_meg_design(feats, runs, tmin=-0.1, tmax=0.3, zscore=False)


def test_fit_encoding_trf_equals_add_trf(mini_megmasc):
    design = _design(mini_megmasc)
    with_trf = fit_encoding(design, n_permutations=0, alphas=[1.0, 100.0], trf=True)
    plain = fit_encoding(design, n_permutations=0, alphas=[1.0, 100.0])
    assert not plain.trf_weights
    add_trf(plain, design)
    assert sorted(with_trf.trf_weights) == [0, 1]
    for layer in (0, 1):
        np.testing.assert_allclose(with_trf.trf(layer), plain.trf(layer), rtol=1e-10, atol=1e-12)
    assert with_trf.trf(1).shape == (4, 2, 41)  # channels x features x lags (-0.1..0.3 s at 100 Hz)
    np.testing.assert_allclose(with_trf.trf_lags, design.lags)


def test_trf_needs_a_meg_design_and_is_a_story_option():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"trf=True \(encoding.trf, --trf\) needs a time-lagged MEG/EEG design"):
        fit_encoding([rng.standard_normal((40, 3))], rng.standard_normal((40, 2)), trf=True, n_permutations=0)
    assert make_section("encoding", {"trf": True}, kind="story").trf is True
    with pytest.raises(ConfigError, match=r"unknown key encoding.trf.*applies to story data sets"):
        make_section("encoding", {"trf": True}, kind="stimuli")
    from neuroenc.commands.fit import encoding_settings

    assert "trf" in encoding_settings("story") and "scoring" in encoding_settings("stimuli")


def test_neuroenc_run_saves_trfs_on_the_megmasc_miniature(mini_megmasc, tmp_path):
    model = tmp_path / "tiny-gpt2"
    tiny_gpt2(n_layer=2, n_embd=16, n_positions=128, path=model)
    args = {"root": str(mini_megmasc), "subject": ["01"], "tasks": [0], "responses": True, "picks": "meg",
            "l_freq": 0.5, "h_freq": 30.0, "resample": 100.0}
    overrides = {"model.name": str(model), "model.context_tokens": 16, "model.stride": 8, "model.device": "cpu",
                 "model.dtype": "float32", "dataset.args": args, "alignment.tmin": 0.0, "alignment.tmax": 0.1,
                 "alignment.decim": 1, "encoding.alphas": {"logspace": [0, 4, 3]}, "encoding.n_permutations": 0,
                 "encoding.trf": True, "output.dir": str(tmp_path / "out")}
    output = run_pipeline(ANALYSES / "megmasc_layers.yaml", overrides=overrides, verbose=False)
    res = EncodingResults.load(output.results["01"])
    assert sorted(res.trf_weights) == res.layers.tolist() == [0, 1, 2]
    lags = res.trf_lags
    assert lags[0] == pytest.approx(0.0) and lags[-1] == pytest.approx(0.1) and lags.size == 11
    assert res.trf(2).shape == (res.n_targets, 16, 11)  # channels x the model's 16 features x lags
    assert np.isfinite(res.trf(2)).all() and np.abs(res.trf(2)).max() > 0
    assert res.provenance["config"]["encoding"]["trf"] is True
