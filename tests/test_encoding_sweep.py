"""LayerSweep: the generating layer wins, scikit-learn conventions, predictions, bad input."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from himalaya.ridge import RidgeCV
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from _encoding_fixtures import _one_blas_thread, layer_walk, responses_from  # noqa: F401
from neuroenc.encoding import LayerDesigns, LayerSweep


def test_sweep_recovers_the_generating_layer(rng):
    layers = layer_walk(rng, n_samples=300, n_layers=6)
    k = 3
    Y = responses_from(rng, layers[k], n_targets=24, snr=0.5)
    groups = np.repeat(["r1", "r2", "r3"], 100)
    sweep = LayerSweep(n_permutations=200, random_state=0).fit(layers, Y, groups=groups)
    assert np.mean(sweep.best_layer_ == k) >= 0.8
    assert np.argmax(np.nanmean(sweep.r_, 1)) == k
    assert sweep.r_.shape == (6, 24) and sweep.fold_r_.shape == (3, 6, 24)
    # layer k predicts well, every target significant at its best layer
    assert np.nanmean(sweep.r_[k]) > 0.4
    assert np.all(sweep.pvalues_[k] < 0.01)
    np.testing.assert_allclose(sweep.r_, sweep.fold_r_.mean(0))


def test_sweep_blocked_single_run(rng):
    layers = layer_walk(rng, n_samples=240, n_layers=4)
    Y = responses_from(rng, layers[1], n_targets=10, snr=1.0)
    sweep = LayerSweep(cv="auto", n_blocks=4, gap=3, inner_cv=3, refit=False).fit(layers, Y)
    assert len(sweep.cv_splits_) == 4 and sweep.gap_ == 3
    for train, test in sweep.cv_splits_:
        assert np.abs(train[:, None] - test[None, :]).min() == 4
    assert np.mean(sweep.best_layer_ == 1) >= 0.8


def test_sweep_predict_equals_himalaya_refit(rng):
    X = layer_walk(rng, n_samples=150, n_features=12, n_layers=1)[0]
    Y = responses_from(rng, X, n_targets=5)
    sweep = LayerSweep(alphas=np.logspace(-1, 3, 9), cv=3, gap=0, inner_cv=2, dtype="float64").fit(X, Y)
    ref = RidgeCV(alphas=np.logspace(-1, 3, 9), cv=sweep.cv_splits_).fit(X, Y)
    np.testing.assert_allclose(sweep.refit_alphas_, ref.best_alphas_)
    np.testing.assert_allclose(sweep.predict(X), ref.predict(X), atol=1e-10)
    assert sweep.n_features_in_ == 12


def test_sweep_keeps_dual_coefficients_when_features_outnumber_samples(rng):
    layers = [rng.standard_normal((80, 200)) for _ in range(2)]
    Y = responses_from(rng, layers[1], n_targets=4, snr=4.0)
    sweep = LayerSweep(cv=2, gap=0, inner_cv=2).fit(layers, Y)
    assert set(sweep.forms_.values()) == {"kernel"}
    item = sweep.coefs_[1]
    assert item["kind"] == "dual" and item["coef"].shape == (80, item["targets"].size)
    pred = sweep.predict(layers)
    np.testing.assert_allclose(pred[:, item["targets"]],
                               layers[1] @ (layers[1].T @ item["coef"]), atol=1e-8)


def test_sweep_loads_each_layer_once(rng):
    layers = layer_walk(rng, n_samples=120, n_layers=3)
    calls = []

    def getter(layer):
        calls.append(layer)
        return layers[layer]

    Y = responses_from(rng, layers[2], n_targets=3)
    LayerSweep(cv=3, gap=0, inner_cv=2, refit=False).fit(LayerDesigns([0, 1, 2], getter), Y)
    assert calls == [0, 1, 2]


def test_sweep_clone_and_params():
    sweep = LayerSweep(alphas=(1.0, 10.0), cv=3)
    assert clone(sweep).get_params()["alphas"] == (1.0, 10.0)


@parametrize_with_checks([LayerSweep(alphas=(0.1, 1.0, 10.0), cv=2, inner_cv=2, gap=0)])
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        check(estimator)


# ---------------------------------------------------------------------------- bad input
def test_constant_target_is_reported_and_scored_nan(rng):
    layers = layer_walk(rng, n_samples=120, n_layers=2)
    Y = responses_from(rng, layers[0], n_targets=3)
    Y[:, 1] = 2.0
    with pytest.warns(UserWarning, match=r"1 target\(s\) \[1\] are constant; their scores are NaN"):
        sweep = LayerSweep(cv=3, gap=0, inner_cv=2, n_permutations=50).fit(layers, Y)
    assert np.isnan(sweep.r_[:, 1]).all() and np.isnan(sweep.pvalues_[:, 1]).all()
    assert np.isfinite(sweep.r_[:, [0, 2]]).all()
    np.testing.assert_array_equal(sweep.constant_targets_, [1])


def test_nan_in_responses_raises(rng):
    X = rng.standard_normal((50, 4))
    Y = rng.standard_normal((50, 3))
    Y[7, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf in 1 target\(s\) \[2\] \(rows \[7\]\)"):
        LayerSweep(cv=2, gap=0).fit([X], Y)


def test_fewer_samples_than_folds_raises(rng):
    with pytest.raises(ValueError, match="Cannot cut n_samples=8 into 5 contiguous blocks"):
        LayerSweep(gap=0).fit([rng.standard_normal((8, 2))], rng.standard_normal((8, 2)))
    with pytest.raises(ValueError, match="n_samples=1"):
        LayerSweep().fit(np.ones((1, 2)), np.ones(1))


def test_mismatched_runs_and_rows_raise(rng):
    X = rng.standard_normal((100, 3))
    Y = rng.standard_normal((100, 2))
    with pytest.raises(ValueError, match=r"groups \(run labels\) has shape \(90,\) but there are 100 samples"):
        LayerSweep().fit([X], Y, groups=np.repeat([0, 1, 2], 30))
    with pytest.raises(ValueError, match="The design of layer 1 has 90 rows but the responses have 100 samples"):
        LayerSweep(cv=2, gap=0).fit([X, X[:90]], Y)
    bad = X.copy()
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="The design of layer 0 has 1 non-finite values"):
        LayerSweep(cv=2, gap=0).fit([bad], Y)


def test_bad_parameters_and_refit_false(rng):
    X, Y = rng.standard_normal((60, 3)), rng.standard_normal((60, 2))
    with pytest.raises(ValueError, match="Invalid value for 'form'"):
        LayerSweep(form="dual").fit([X], Y)
    with pytest.raises(ValueError, match="alphas must be positive finite numbers"):
        LayerSweep(alphas=(0.0, 1.0)).fit([X], Y)
    sweep = LayerSweep(cv=2, gap=0, refit=False).fit([X], Y)
    with pytest.raises(ValueError, match="fitted with refit=False and keeps only scores"):
        sweep.predict([X])
