"""fit_encoding -> EncodingResults: baseline, statistics, files, exact merges, alignment designs."""
from __future__ import annotations

import numpy as np
import pytest
from _encoding_fixtures import _one_blas_thread, layer_walk, responses_from  # noqa: F401

from neuroenc.align import make_fmri_design
from neuroenc.encoding import EncodingResults, LayerSweep, fit_encoding
from neuroenc.encoding.designs import LayerDesigns, as_layer_designs
from neuroenc.encoding.merge import LAYER_MERGE_WARNING, merge_results
from neuroenc.features import FeatureSet
from neuroenc.responses import Response


@pytest.fixture
def problem(rng):
    layers = layer_walk(rng, n_samples=240, n_features=12, n_layers=4)
    Y = responses_from(rng, layers[2], n_targets=8, snr=1.0)
    rate = layers[0][:, :1] + 0.1 * rng.standard_normal((240, 1))  # a weak nuisance
    return layers, Y, {"word_rate": rate[:, 0], "sound_power": rng.standard_normal(240)}


def test_fit_encoding_results(problem, tmp_path):
    layers, Y, nuisance = problem
    targets = [f"roi{i}" for i in range(8)]
    res = fit_encoding(layers, Y, targets=targets, nuisance=nuisance, noise_ceiling=np.full(8, 0.9),
                       n_permutations=300, provenance={"subject": "s1", "model": "toy"})
    assert res.r.shape == (4, 8) and res.layers.tolist() == [0, 1, 2, 3]
    assert np.all(np.argmax(res.r, 0) == 2)
    assert np.all(res.qvalues[2] <= 0.01) and np.all(res.qvalues >= res.pvalues - 1e-12)
    assert set(res.baseline) == {"r", "r2", "alphas", "pvalues", "qvalues"}
    assert np.all(res.r[2] > res.baseline["r"])
    assert res.settings["baseline_regressors"] == ["word_rate", "sound_power"]
    assert res.settings["n_permutations"] == 300 and res.settings["gap_used"] == 5
    assert res.provenance["subject"] == "s1" and "himalaya" in res.provenance["versions"]
    assert res.fold_r.shape == (5, 4, 8)
    path = res.save(tmp_path / "results.h5")
    back = EncodingResults.load(path)
    for name in ("r", "r2", "pvalues", "qvalues", "alphas", "fold_r", "noise_ceiling", "pvalues_best",
                 "qvalues_best"):
        np.testing.assert_array_equal(getattr(back, name), getattr(res, name))
    np.testing.assert_array_equal(back.baseline["r"], res.baseline["r"])
    assert back.targets == targets and back.settings["forms"] == res.settings["forms"]
    frame = back.to_frame()
    assert len(frame) == 32 and frame["baseline_r"].notna().all()
    # the best layer's p-value corrected for the choice among 4 layers: the same on every row of
    # a target, never below the best layer's own
    np.testing.assert_array_equal(frame.loc[frame.layer == 3, "p_best"], res.pvalues_best)
    assert np.all(res.pvalues_best >= res.pvalues[2]) and np.all(res.qvalues_best <= 0.01)


def test_fit_encoding_equals_layer_sweep(problem):
    layers, Y, _ = problem
    res = fit_encoding(layers, Y, n_permutations=0)
    sweep = LayerSweep(refit=False).fit(layers, Y)
    np.testing.assert_allclose(res.r, sweep.r_, rtol=1e-10, atol=1e-12)
    assert res.pvalues is None and res.qvalues is None


def test_target_chunks_and_layer_subsets_merge_exactly(problem):
    layers, Y, nuisance = problem
    names = [f"t{i}" for i in range(8)]
    kw = dict(nuisance=nuisance, n_permutations=200, random_state=7)  # block_size="auto"
    full = fit_encoding(layers, Y, targets=names, **kw)
    chunks = [fit_encoding(layers, Y[:, s], targets=names[s], **kw) for s in (slice(0, 3), slice(3, 8))]
    merged = merge_results(chunks)
    subsets = [fit_encoding(LayerDesigns(ls, lambda i: layers[i]), Y, targets=names, **kw) for ls in ([2, 3], [0, 1])]
    by_layer = merge_results(subsets, axis="layers")
    for m in (merged, by_layer):
        assert m.targets == names and m.layers.tolist() == [0, 1, 2, 3]
        for name in ("r", "r2", "pvalues", "qvalues", "alphas", "fold_r"):
            np.testing.assert_allclose(getattr(m, name), getattr(full, name), atol=1e-12, err_msg=name)
        np.testing.assert_allclose(m.baseline["qvalues"], full.baseline["qvalues"], atol=1e-12)
    # the corrected best-layer p-values: exact over target chunks (q-values recomputed across all
    # targets); not computable from layer subsets, so dropped there, with a warning
    np.testing.assert_array_equal(merged.pvalues_best, full.pvalues_best)
    np.testing.assert_allclose(merged.qvalues_best, full.qvalues_best, atol=1e-12)
    assert by_layer.pvalues_best is None and by_layer.qvalues_best is None
    assert by_layer.warnings == [LAYER_MERGE_WARNING]
    again = merge_results([merge_results(subsets[:1], axis="layers"), merge_results(subsets[1:], axis="layers")],
                          axis="layers")
    assert again.warnings == [LAYER_MERGE_WARNING]
    with pytest.raises(ValueError, match="target names repeat across parts"):
        merge_results([chunks[0], chunks[0]])
    with pytest.raises(ValueError, match="part 1 has different settings"):
        merge_results([chunks[0], fit_encoding(layers, Y[:, 3:], targets=names[3:], n_permutations=0)])


def test_fit_encoding_from_an_alignment_design(rng):
    """A neuroenc.align.Design goes straight in: responses, runs (LORO), names, gap from the design."""
    runs, n_tr = ("s1", "s2", "s3"), 90
    features, responses = {}, {}
    k = 1
    for run in runs:
        onsets = np.sort(rng.uniform(0, n_tr * 2.0 - 4, 400))
        layers = layer_walk(rng, n_samples=400, n_features=6, n_layers=3, smooth=1)
        features[run] = FeatureSet(dict(enumerate(layers)), onsets, onsets + 0.25, run=run, model="toy")
        responses[run] = Response(rng.standard_normal((n_tr, 4)), tr=2.0, start=0.0, run=run,
                                  names=["LATL", "LPTL", "LIFG", "LIPL"])
    design = make_fmri_design(features, responses)
    Y = responses_from(rng, design.X(k), n_targets=4, snr=1.0)
    res = fit_encoding(design, Y, n_permutations=0)
    assert res.targets == ["LATL", "LPTL", "LIFG", "LIPL"]
    # the gap: longest delay (4) + Lanczos half-window (3 lobes at cutoff 1/TR) + 1
    assert res.settings["gap_used"] == 8 and len(res.settings["cv_folds"]) == 3
    assert res.provenance["delays"] == [1, 2, 3, 4]
    assert np.all(np.argmax(res.r, 0) == k)
    # without Y, the design's own responses are used
    res_own = fit_encoding(design, n_permutations=0)
    np.testing.assert_allclose(res_own.r, LayerSweep(refit=False).fit(design, design.Y).r_)


def test_fit_encoding_bad_input(problem):
    layers, Y, _ = problem
    with pytest.raises(ValueError, match="3 target names for 8 targets"):
        fit_encoding(layers, Y, targets=["a", "b", "c"], n_permutations=0)
    with pytest.raises(ValueError, match=r"nuisance has shape \(10, 1\); expected \(240, n_regressors\)"):
        fit_encoding(layers, Y, nuisance=np.ones(10), n_permutations=0)
    with pytest.raises(ValueError, match="noise_ceiling has 2 values for 8 targets"):
        fit_encoding(layers, Y, noise_ceiling=[0.5, 0.5], n_permutations=0)
    with pytest.raises(ValueError, match="Give the responses Y"):
        fit_encoding(layers)
    Yc = Y.copy()
    Yc[:, 4] = 0.0
    res = fit_encoding(layers, Yc, n_permutations=10)
    assert res.warnings == ["1 constant target(s) ['4']: their scores are NaN."]
    assert np.isnan(res.r[:, 4]).all() and np.isnan(res.qvalues[:, 4]).all()


def _one_run_design(rng, n_tr=160, **kwargs):
    onsets = np.sort(rng.uniform(0, n_tr * 2.0 - 4, 600))
    layers = layer_walk(rng, n_samples=600, n_features=5, n_layers=2, smooth=1)
    features = FeatureSet(dict(enumerate(layers)), onsets, onsets + 0.25, run="story", model="toy")
    response = Response(rng.standard_normal((n_tr, 3)), tr=2.0, start=0.0, run="story", names=["a", "b", "c"])
    return make_fmri_design(features, response, **kwargs)


def test_gap_covers_delays_hrf_and_resampling_window(rng):
    """gap = longest delay + HRF kernel after lag 0 + resampling half-window + 1 (not just the delays)."""
    from neuroenc.align.hrf import hrf_kernel
    from neuroenc.encoding.designs import design_reach, gap_for

    assert len(hrf_kernel(2.0, "glover")) == 16  # 32 s at TR 2: lags 0..15
    cases = [
        (dict(hrf="glover"), 0 + 15 + 3 + 1),  # delays (0,): the old rule gave 1
        (dict(), 4 + 0 + 3 + 1),  # FIR delays 1-4, Lanczos with 3 lobes
        (dict(method="rect"), 4 + 1 + 1),
        (dict(method="sinc", window=2, cutoff_mult=0.5), 4 + 4 + 1),  # lobes of 2 TRs at cutoff 1 / (2 TR)
        (dict(hrf="spm", delays=(0, 1, 2)), 2 + 15 + 3 + 1),
    ]
    for kwargs, expected in cases:
        design = _one_run_design(rng, n_tr=60, **kwargs)
        assert gap_for(as_layer_designs(design), 5) == expected, kwargs
        assert design_reach(as_layer_designs(design)) == expected - 1
    # a LayerDesigns that only knows its delays: the longest delay + 1; nothing known: the default
    assert gap_for(LayerDesigns([0], lambda i: np.zeros((4, 1)), info={"delays": [1, 2]}), 5) == 3
    assert gap_for(LayerDesigns([0], lambda i: np.zeros((4, 1))), 5) == 5
    with pytest.raises(ValueError, match="convolved with the 'glover' HRF but its TR is unknown"):
        gap_for({"delays": [0], "design": {"hrf": "glover"}}, 5)


def test_baseline_is_fitted_with_the_main_gap(rng):
    """The nuisance baseline uses the main fit's gap (here 8 from the design), not the default 5."""
    design = _one_run_design(rng)
    Y = responses_from(rng, design.X(1), n_targets=3, snr=1.0)
    nuisance = design.X(0)[:, :3] + rng.standard_normal((design.n_samples, 3))
    res = fit_encoding(design, Y, nuisance=nuisance, n_permutations=50, random_state=0)
    assert res.settings["gap_used"] == 8
    kw = dict(n_permutations=50, random_state=0, refit=False)
    same = LayerSweep(gap=8, **kw).fit(nuisance, Y)
    np.testing.assert_allclose(res.baseline["r"], same.r_[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(res.baseline["pvalues"], same.pvalues_[0])
    default = LayerSweep(gap=None, **kw).fit(nuisance, Y)  # a plain array: the default gap, 5
    assert default.gap_ == 5 and not np.allclose(default.r_[0], res.baseline["r"])


def test_results_check_best_layer_p_values():
    r = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"EncodingResults.pvalues_best has shape \(3,\); expected \(4,\)"):
        EncodingResults(r=r, r2=r, layers=[0, 1, 2], targets=list("abcd"), pvalues_best=np.ones(3))
    res = EncodingResults(r=r, r2=r, layers=[0, 1, 2], targets=list("abcd"),
                          pvalues_best=np.array([0.01, 0.04, 0.03, np.nan]))
    # q-values recomputed when not given: BH over the finite p-values
    np.testing.assert_allclose(res.qvalues_best[:3], [0.03, 0.04, 0.04])
    assert np.isnan(res.qvalues_best[3])
