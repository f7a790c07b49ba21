"""LayerSweep: the generating layer wins, scikit-learn conventions, predictions, bad input."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from _encoding_fixtures import _one_blas_thread, layer_walk, responses_from  # noqa: F401
from himalaya.ridge import RidgeCV
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from neuroenc.encoding import LayerSweep
from neuroenc.encoding.designs import LayerDesigns


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
    LayerSweep(cv=3, gap=0, inner_cv=2, refit=False, n_permutations=0).fit(LayerDesigns([0, 1, 2], getter), Y)
    assert calls == [0, 1, 2]
    # with permutations (the default), the layer comparisons' residual draws refit every layer
    # once more, after the main fit
    calls.clear()
    LayerSweep(cv=3, gap=0, inner_cv=2, refit=False, n_permutations=20).fit(LayerDesigns([0, 1, 2], getter), Y)
    assert calls == [0, 1, 2, 0, 1, 2]


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
    with pytest.raises(ValueError, match=r"alphas must be None or a list of positive numbers; got \(0.0, 1.0\)"):
        LayerSweep(alphas=(0.0, 1.0)).fit([X], Y)
    with pytest.raises(ValueError, match=r"alphas must be .*; got \[1.0, inf\]"):
        LayerSweep(alphas=[1.0, np.inf]).fit([X], Y)
    sweep = LayerSweep(cv=2, gap=0, refit=False).fit([X], Y)
    with pytest.raises(ValueError, match="fitted with refit=False and keeps only scores"):
        sweep.predict([X])


# ---------------------------------------------------------------- p-values of the best layer
def test_best_layer_pvalues_are_the_max_statistic_over_layers(rng):
    """pvalues_best_ = permutation_test_best on the held-out predictions of every layer, with the
    same draws for every layer; never below the best layer's own p-value."""
    from neuroenc.encoding import _ridge
    from neuroenc.encoding.backend import use_backend
    from neuroenc.encoding.cv import inner_splits
    from neuroenc.encoding.stats import permutation_test_best

    layers = layer_walk(rng, n_samples=150, n_features=6, n_layers=5, step=0.4)
    Y = rng.standard_normal((150, 40))
    Y[:, :5] += layers[2] @ rng.standard_normal((6, 5)) * 0.6  # a few targets with signal
    alphas = np.logspace(0, 4, 5)
    sweep = LayerSweep(alphas=alphas, cv=3, gap=3, inner_cv=2, n_permutations=300, refit=False,
                       permutation="circular", random_state=5, dtype="float64", backend="numpy").fit(layers, Y)
    assert sweep.block_sizes_ == [3, 3, 3]  # the gap, for every layer
    outer = sweep.cv_splits_
    inner = [inner_splits(tr, None, 2, 3) for tr, _ in outer]
    with use_backend("numpy") as B:
        preds = [_ridge.fit_layer_cv(B.asarray(X), B.asarray(Y), outer, inner, B.asarray(alphas),
                                     return_predictions=True)["predictions"] for X in layers]
    p, p_best = permutation_test_best(Y, preds, [te for _, te in outer], observed=sweep.r_,
                                      n_permutations=300, block_size=[3, 3, 3], random_state=5)
    np.testing.assert_array_equal(sweep.pvalues_, p)
    np.testing.assert_array_equal(sweep.pvalues_best_, p_best)
    best = np.argmax(sweep.r_, 0)
    assert np.all(sweep.pvalues_best_ >= sweep.pvalues_[best, np.arange(40)])
    assert np.all(sweep.pvalues_best_[:5] < 0.01)  # real signal survives the correction
    res = sweep.to_results()
    np.testing.assert_array_equal(res.pvalues_best, sweep.pvalues_best_)
    assert res.qvalues_best.shape == (40,) and np.all(res.qvalues_best >= res.pvalues_best)
    # the same layer twice: identical nulls, so the maximum changes nothing
    twice = LayerSweep(alphas=alphas, cv=3, gap=3, inner_cv=2, n_permutations=300, refit=False,
                       permutation="circular", random_state=5).fit([layers[2], layers[2]], Y)
    np.testing.assert_array_equal(twice.pvalues_best_, twice.pvalues_[0])


def test_auto_block_sizes_depend_on_the_gap_and_folds_only(rng):
    """"auto": the gap clipped to [2, n_test // 4], the same for layers of any autocorrelation."""
    white = rng.standard_normal((120, 4))
    smooth = np.cumsum(rng.standard_normal((120, 4)), 0)  # very autocorrelated
    Y = rng.standard_normal((120, 3))
    kw = dict(alphas=(1.0, 10.0), inner_cv=2, n_permutations=20, refit=False, random_state=0,
              permutation="circular")
    assert LayerSweep(cv=3, gap=0, **kw).fit([white, smooth], Y).block_sizes_ == [2, 2, 2]
    assert LayerSweep(cv=3, gap=7, **kw).fit([white, smooth], Y).block_sizes_ == [7, 7, 7]
    big = rng.standard_normal((400, 2))
    assert LayerSweep(cv=2, gap=60, **kw).fit([big], big[:, ::-1]).block_sizes_ == [50, 50]  # 200 // 4
    sweep = LayerSweep(cv=3, gap=7, block_size=4, **kw).fit([white], Y)
    assert sweep.block_sizes_ == 4 and sweep.fitted_settings()["block_sizes_used"] == 4
    # the p-values of a layer do not depend on the other layers fitted with it
    both = LayerSweep(cv=3, gap=7, **kw).fit([white, smooth], Y)
    alone = LayerSweep(cv=3, gap=7, **kw).fit([smooth], Y)
    np.testing.assert_array_equal(both.pvalues_[1], alone.pvalues_[0])
    with pytest.raises(ValueError, match="block_size must be 'auto', an int >= 1 or a list of ints >= 1; got 'acf'"):
        LayerSweep(cv=3, gap=7, block_size="acf", **kw).fit([white], Y)


def _smooth_noise(rng, n, t, width=6):
    x = rng.standard_normal((n + width, t))
    return np.stack([x[i:i + width].mean(0) for i in range(n)])


@pytest.mark.parametrize("groups", [None, np.repeat([0, 1, 2], 40)])
@pytest.mark.parametrize("form", ["primal", "kernel"])
def test_refit_null_equals_explicit_refits(rng, groups, form):
    """The refit null: each run's response rolled, ridge refitted per outer fold with each target's
    chosen penalty, fold-mean held-out r, the same draws for every layer."""
    from neuroenc.encoding.stats import run_indices, run_shifts

    n, t = 120, 4
    X = _smooth_noise(rng, n, 5 if form == "primal" else 300)
    Y = _smooth_noise(rng, n, t)
    Y[:, 0] += X[:, :3].sum(1)
    sweep = LayerSweep(alphas=np.logspace(-1, 3, 5), cv=3, gap=2, inner_cv=2, n_permutations=25,
                       permutation="refit", refit=False, random_state=7, form=form,
                       dtype="float64", backend="numpy").fit([X, X[:, ::-1] * 2.0], Y, groups=groups)
    assert sweep.permutation_ == "refit" and sweep.fitted_settings()["permutation_used"] == "refit"
    assert sweep.block_sizes_ is None
    runs = run_indices(np.zeros(n) if groups is None else groups)
    seed = int(np.random.default_rng(7).integers(2**62))
    shifts = run_shifts(runs, 25, seed)
    null = np.zeros((25, t))
    for k, (train, test) in enumerate(sweep.cv_splits_):
        alpha = sweep.fold_alphas_[k, 0]
        for d in range(25):
            Yp = Y.copy()
            for i, run in enumerate(runs):
                Yp[run] = np.roll(Y[run], -shifts[d, i], axis=0)
            Xtr = X[train]
            for j in range(t):
                w = np.linalg.solve(Xtr.T @ Xtr + alpha[j] * np.eye(X.shape[1]), Xtr.T @ Yp[train, j])
                null[d, j] += np.corrcoef(X[test] @ w, Yp[test, j])[0, 1] / len(sweep.cv_splits_)
    observed = sweep.r_[0]
    expected = (1 + (null >= observed).sum(0)) / 26
    np.testing.assert_allclose(sweep.pvalues_[0], expected)
    if form == "primal":
        assert sweep.pvalues_[0, 0] == 1 / 26  # the target with signal
    best = np.argmax(sweep.r_, 0)
    assert np.all(sweep.pvalues_best_ >= sweep.pvalues_[best, np.arange(t)])


def test_refit_null_is_calibrated_where_fixed_predictions_are_not(rng):
    """Independent, autocorrelated features and responses, one run in contiguous folds: about 5 %
    of refit p-values below 0.05 (the best layer's, corrected, too); a shift of each test fold
    against fixed cross-validated predictions gives far more."""
    n, t = 240, 300
    layers = [_smooth_noise(rng, n, 30) for _ in range(2)]
    Y = _smooth_noise(rng, n, t)
    kw = dict(alphas=np.logspace(-1, 4, 6), n_permutations=300, refit=False, random_state=0)
    refit = LayerSweep(permutation="refit", **kw).fit(layers, Y)
    fixed = LayerSweep(permutation="circular", **kw).fit(layers, Y)
    np.testing.assert_allclose(refit.r_, fixed.r_, rtol=1e-10, atol=1e-12)
    rate = np.mean(refit.pvalues_ < 0.05)
    assert 0.025 < rate < 0.08
    assert 0.02 < np.mean(refit.pvalues_best_ < 0.05) < 0.09
    assert np.mean(fixed.pvalues_ < 0.05) > 1.6 * rate


def test_auto_permutation_falls_back_to_fixed_predictions_when_costly(rng, monkeypatch):
    from neuroenc.encoding import fit_encoding, stats
    from neuroenc.encoding import sweep as sweep_mod

    layers = [_smooth_noise(rng, 90, 4) for _ in range(2)]
    Y = _smooth_noise(rng, 90, 3)
    res = fit_encoding(layers, Y, alphas=(1.0, 10.0), n_permutations=20, inner_cv=2, cv=3)
    assert res.settings["permutation_used"] == "refit"
    assert not any("too costly" in w for w in res.warnings)
    monkeypatch.setattr(sweep_mod, "REFIT_NULL_BUDGET", 0.0)
    with pytest.warns(UserWarning, match="refit permutation null would cost"):
        res = fit_encoding(layers, Y, alphas=(1.0, 10.0), n_permutations=20, inner_cv=2, cv=3)
    assert res.settings["permutation_used"] == "circular"
    assert any("too costly to refit" in w for w in res.warnings)
    assert stats.REFIT_NULL_BUDGET > 0  # the module constant itself is untouched


@pytest.mark.parametrize("p", [6, 200])  # primal and kernel forms
def test_refit_null_orders_agree(rng, p):
    """The "hat" and "project" orders of the refit null are the same products, reordered."""
    from neuroenc.encoding import _ridge
    from neuroenc.encoding.backend import use_backend
    from neuroenc.encoding.stats import ShiftedDraws, run_indices, run_shifts

    n, t = 90, 5
    X, Y = rng.standard_normal((n, p)), rng.standard_normal((n, t))
    groups = np.repeat([0, 1], 45)
    runs = run_indices(groups)
    draws = ShiftedDraws(runs, run_shifts(runs, 30, 0), n, cache_bytes=0)  # computed per batch
    cached = ShiftedDraws(runs, draws.shifts, n)
    assert cached._all is not None and np.array_equal(cached.indices(3, 9), draws.indices(3, 9))
    alphas = np.array([0.1, 10.0, 1000.0])
    best = np.array([0, 2, 2, 1, 0])
    with use_backend("numpy") as B:
        gram = _ridge.LayerGram.compute(X, _ridge.choose_form(60, p))
        split = _ridge.decompose(B, gram, np.arange(60), np.arange(70, 90))
        hat = _ridge.refit_null(B, split, gram, Y, alphas, best, draws, order="hat", batch_bytes=10_000)
        proj = _ridge.refit_null(B, split, gram, Y, alphas, best, cached, order="project")
    np.testing.assert_allclose(hat, proj, atol=1e-10)
    assert np.all(np.abs(hat) <= 1)


@pytest.mark.parametrize("p, t", [(300, 8), (300, 200), (10, 50)])
def test_refit_null_flops_estimate_follows_the_cheaper_order(rng, p, t):
    """The estimate that decides permutation="auto" is within 2x of the flops counted by
    refit_null, which picks the cheaper of its orders (hat for few targets)."""
    from neuroenc.encoding import _ridge, make_cv
    from neuroenc.encoding.backend import use_backend
    from neuroenc.encoding.stats import ShiftedDraws, run_indices, run_shifts

    n, n_draws, n_folds = 200, 50, 5
    X, Y = rng.standard_normal((n, p)), rng.standard_normal((n, t))
    runs = run_indices(np.zeros(n))
    draws = ShiftedDraws(runs, run_shifts(runs, n_draws, 0), n)
    alphas = np.logspace(0, 3, 4)
    best = rng.integers(0, 4, t)
    counter = {"flops": 0.0}
    with use_backend("numpy") as B:
        for train, test in make_cv("blocks", None, n, n_blocks=n_folds, gap=0):
            gram = _ridge.LayerGram.compute(X, _ridge.choose_form(train.size, p))
            split = _ridge.decompose(B, gram, train, test)
            _ridge.refit_null(B, split, gram, Y, alphas, best, draws, counter=counter)
    estimate = _ridge.refit_null_flops(n, p, t, n_draws, n_folds, n_alphas=4)
    assert 0.5 < estimate / counter["flops"] < 2.0
