"""fit_encoding -> EncodingResults: baseline, statistics, files, exact merges, alignment designs."""
from __future__ import annotations

import numpy as np
import pytest

from _encoding_fixtures import _one_blas_thread, layer_walk, responses_from  # noqa: F401
from neuroenc.align import Response, make_fmri_design
from neuroenc.encoding import (
    EncodingResults,
    LayerDesigns,
    LayerSweep,
    fit_encoding,
    merge_results,
)
from neuroenc.features import FeatureSet


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
    for name in ("r", "r2", "pvalues", "qvalues", "alphas", "fold_r", "noise_ceiling"):
        np.testing.assert_array_equal(getattr(back, name), getattr(res, name))
    np.testing.assert_array_equal(back.baseline["r"], res.baseline["r"])
    assert back.targets == targets and back.settings["forms"] == res.settings["forms"]
    frame = back.to_frame()
    assert len(frame) == 32 and frame["baseline_r"].notna().all()


def test_fit_encoding_equals_layer_sweep(problem):
    layers, Y, _ = problem
    res = fit_encoding(layers, Y, n_permutations=0)
    sweep = LayerSweep(refit=False).fit(layers, Y)
    np.testing.assert_array_equal(res.r, sweep.r_)
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
    with pytest.raises(ValueError, match="target names repeat across parts"):
        merge_results([chunks[0], chunks[0]])
    with pytest.raises(ValueError, match="part 1 has different settings"):
        merge_results([chunks[0], fit_encoding(layers, Y[:, 3:], targets=names[3:], n_permutations=0)])


def test_fit_encoding_from_an_alignment_design(rng):
    """A neuroenc.align.Design goes straight in: responses, runs (LORO), names, gap from delays."""
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
    assert res.settings["gap_used"] == 5 and len(res.settings["cv_folds"]) == 3
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
