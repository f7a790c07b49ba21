"""The joint [baseline + layer] models of fit_encoding and the unique contribution (issue 20, items 2-3)."""
import warnings

import numpy as np
import pytest

from neuroenc.encoding import LayerSweep, _joint, _ridge, fit_encoding
from neuroenc.encoding.backend import use_backend
from neuroenc.encoding.contribution import UniqueContribution, simultaneous_intervals
from neuroenc.encoding.cv import inner_splits, make_cv
from neuroenc.encoding.merge import merge_results
from neuroenc.encoding.results import EncodingResults
from neuroenc.encoding.simulate import simulate_baseline_layers

ALPHAS = np.logspace(-1, 5, 7)


def _direct_joint(X, N, Y, train, test, alpha_layer, alpha_base):
    """The joint banded ridge solved directly: features [X / sqrt(a_L), N / sqrt(a_B)], penalty 1."""
    Z = N / np.sqrt(alpha_base) if np.isinf(alpha_layer) else np.hstack([X / np.sqrt(alpha_layer),
                                                                          N / np.sqrt(alpha_base)])
    coef = np.linalg.solve(Z[train].T @ Z[train] + np.eye(Z.shape[1]), Z[train].T @ Y[train])
    return Z[test] @ coef


def _splits(groups, n, gap=2):
    outer = make_cv("runs", groups, n, 5, gap)
    return outer, [inner_splits(tr, groups, 3, gap) for tr, _ in outer]


def _fit_joint(X, N, Y, outer, inner, ratios=(1.0,)):
    with use_backend("numpy") as B:
        base = _ridge.fit_layer_cv(B.asarray(N), B.asarray(Y), outer, inner, B.asarray(ALPHAS))
        band = _joint.JointBand(B.asarray(N), N, np.asarray(ratios), base["fold_alpha"])
        out = _ridge.fit_layer_cv(B.asarray(X), B.asarray(Y), outer, inner, B.asarray(ALPHAS), joint=band)
    return base, out


@pytest.mark.parametrize("p", [150, 12])  # kernel form (p > n_train), primal form
def test_joint_models_match_a_direct_solve(rng, p):
    n = 120
    X = rng.standard_normal((n, p))
    N = rng.standard_normal((n, 3))
    Y = 0.3 * X[:, :4] @ rng.standard_normal((4, 6)) + N @ rng.standard_normal((3, 6)) + rng.standard_normal((n, 6))
    groups = np.repeat(np.arange(4), 30)
    outer, inner = _splits(groups, n)
    base, out = _fit_joint(X, N, Y, outer, inner, ratios=(0.1, 1.0, 10.0))
    assert out["form"] == ("kernel" if p > 90 else "primal")
    # the layer's own fit is untouched by the joint models
    with use_backend("numpy") as B:
        alone = _ridge.fit_layer_cv(B.asarray(X), B.asarray(Y), outer, inner, B.asarray(ALPHAS))
    np.testing.assert_allclose(out["fold_r"], alone["fold_r"], rtol=0, atol=1e-12)
    on = np.isfinite(out["joint_fold_alpha"])
    assert on.any()  # the layer band is used somewhere
    for k, (tr, te) in enumerate(outer):
        for c in range(Y.shape[1]):
            a, b = out["joint_fold_alpha"][k, c], out["joint_fold_alpha_base"][k, c]
            pred = _direct_joint(X, N, Y[:, c], tr, te, a, b)
            r2 = 1 - ((Y[te, c] - pred) ** 2).sum() / ((Y[te, c] - Y[te, c].mean()) ** 2).sum()
            np.testing.assert_allclose(out["joint_fold_r2"][k, c], r2, rtol=0, atol=1e-8)
            # the baseline band's penalty is a multiple of the one the baseline alone chose there
            assert np.isclose(b / base["fold_alpha"][k, c], [0.1, 1.0, 10.0]).any()


def test_inner_losses_of_every_candidate_match_a_direct_solve(rng):
    n = 90
    X = rng.standard_normal((n, 40))
    N = rng.standard_normal((n, 2))
    Y = rng.standard_normal((n, 3)) + N @ rng.standard_normal((2, 3))
    train, test = np.arange(60), np.arange(65, 90)
    base_alpha = np.array([1.0, 10.0, 100.0])
    ratios = np.array([0.5, 2.0])
    with use_backend("numpy") as B:
        gram = _ridge.LayerGram.compute(B.asarray(X), "kernel")
        split = _ridge.decompose(B, gram, train, test)
        _ridge.prepare_filters(B, split, B.asarray(ALPHAS), 3, "float64")
        _, E = _ridge.cv_losses(B, split, gram, B.asarray(Y), B.asarray(ALPHAS), return_residuals=True)
        band = _joint.JointBand(B.asarray(N), N, ratios, base_alpha[None])
        js = _joint.split_pieces(B, split, gram, band)
        losses = _joint.inner_losses(js, E, split.V.T @ Y[train], N[train].T @ Y[train], Y[test], ALPHAS, ratios,
                                     base_alpha, np.zeros(ALPHAS.size, bool))
    for c in range(3):
        for i, a in enumerate(ALPHAS):
            for m, w in enumerate(ratios):
                pred = _direct_joint(X, N, Y[:, c], train, test, a, w * base_alpha[c])
                np.testing.assert_allclose(losses[i * 2 + m, c], -((Y[test, c] - pred) ** 2).mean(), rtol=1e-9)
        pred = _direct_joint(X, N, Y[:, c], train, test, np.inf, base_alpha[c])
        np.testing.assert_allclose(losses[-1, c], -((Y[test, c] - pred) ** 2).mean(), rtol=1e-9)


def test_select_pairs_switches_the_layer_off_unless_it_helps_in_every_inner_fold():
    # 3 inner folds, candidates: 2 joint (one alpha x two ratios... flattened) + the baseline alone
    losses = np.array([[[-1.0, -1.0], [-2.0, -2.0], [-1.5, -1.2]],
                       [[-1.0, -2.0], [-2.0, -2.0], [-1.5, -1.2]],
                       [[-1.0, -0.5], [-2.0, -2.0], [-1.5, -1.2]]])  # (n_splits, n_candidates, t)
    chosen = _joint.select_pairs(losses, np.array([1.0, 10.0]), np.array([1.0]))
    # target 0: candidate 0 beats the baseline by 0.5 in every fold; target 1: better on average, not reliably
    assert chosen.tolist() == [0, 2]


def _sim(seed, driven=None, n_targets=8, layer_signal=0.6):
    return simulate_baseline_layers(n_samples=200, n_runs=4, n_features=20, n_layers=3, n_targets=n_targets,
                                    driven_layer=driven, layer_signal=layer_signal, random_state=seed)


def test_fit_encoding_stores_unique_contributions_and_keeps_the_rest(rng):
    layers, N, Y, groups = _sim(0, driven=1, layer_signal=1.0)
    kw = dict(n_permutations=60, gap=2, alphas=ALPHAS, random_state=3)
    res = fit_encoding(layers, Y, groups, nuisance={"length": N[:, :2], "frequency": N[:, 2]}, **kw)
    off = fit_encoding(layers, Y, groups, nuisance={"length": N[:, :2], "frequency": N[:, 2]}, unique=False, **kw)
    plain = fit_encoding(layers, Y, groups, **kw)
    assert off.unique is None and plain.unique is None
    for other in (off, plain):
        for name in ("r", "r2", "pvalues", "alphas", "fold_r", "pvalues_best"):
            np.testing.assert_allclose(getattr(res, name), getattr(other, name), rtol=0, atol=1e-10)
        np.testing.assert_allclose(res.comparison.pvalues, other.comparison.pvalues, rtol=0, atol=1e-10)
    for key in ("r", "r2", "pvalues"):
        np.testing.assert_allclose(res.baseline[key], off.baseline[key], rtol=0, atol=1e-10)
    u = res.unique
    assert u.baseline_names == ["length", "frequency"]
    assert u.delta_r2.shape == u.delta_r.shape == u.pvalues.shape == (3, 8)
    assert u.fold_delta_r2.shape == (4, 3, 8)
    np.testing.assert_allclose(u.delta_r2, np.nanmean(u.fold_delta_r2, 0), atol=1e-12)
    assert (u.ci_low <= u.delta_r2 + 1e-12).all() and (u.ci_high >= u.delta_r2 - 1e-12).all()
    assert ((u.pvalues > 0) & (u.pvalues <= 1)).all() and u.n_draws == 60
    assert "circularly" in u.source
    # layer 1 drives the responses beyond the baseline: the best by unique contribution, in its set
    best = u.best(res.layers, res.targets)
    assert (best["best_layer"] == 1).mean() >= 0.75
    assert u.in_best_set[1].mean() >= 0.75
    assert np.median(u.delta_r2[1]) > 0.1 and np.median(u.pvalues[1]) < 0.05
    assert set(best.columns) >= {"best_layer", "delta_r2", "ci_low", "ci_high", "p", "best_set", "at_chance"}


def test_unique_contributions_round_trip_and_merge_exactly(rng, tmp_path):
    layers, N, Y, groups = _sim(1, driven=0, n_targets=6)
    kw = dict(nuisance=N, n_permutations=30, gap=2, alphas=ALPHAS, random_state=0)
    whole = fit_encoding(layers, Y, groups, **kw)
    parts = [fit_encoding(layers, Y[:, cols], groups, targets=[str(c) for c in cols], **kw)
             for cols in (np.arange(4), np.arange(4, 6))]
    merged = merge_results(parts)
    loaded = EncodingResults.load(whole.save(tmp_path / "r.h5"))
    for name in ("delta_r2", "delta_r", "pvalues", "ci_low", "ci_high", "fold_delta_r2", "fold_delta_r",
                 "pvalues_best"):
        np.testing.assert_allclose(getattr(merged.unique, name), getattr(whole.unique, name), rtol=0, atol=1e-12)
        np.testing.assert_array_equal(getattr(loaded.unique, name), getattr(whole.unique, name))
    np.testing.assert_array_equal(merged.unique.in_best_set, whole.unique.in_best_set)
    np.testing.assert_array_equal(loaded.unique.in_best_set, whole.unique.in_best_set)
    assert loaded.unique.attrs() == whole.unique.attrs()
    import h5py

    with h5py.File(tmp_path / "r.h5") as f:
        assert {"delta_r2", "delta_r", "pvalues", "ci_low", "ci_high", "in_best_set"} <= set(f["unique"])
        assert f["unique/delta_r2"].shape == (3, 6)
    # along layers: per-layer values kept, the set (which needs every layer) dropped
    by_layer = merge_results([fit_encoding({0: layers[0]}, Y, groups, **kw),
                               fit_encoding({1: layers[1], 2: layers[2]}, Y, groups, **kw)],
                             axis="layers")
    assert by_layer.unique.in_best_set is None and by_layer.unique.pvalues_best is None
    np.testing.assert_allclose(by_layer.unique.delta_r2[0], whole.unique.delta_r2[0], atol=1e-12)


def test_layer_switched_off_gives_an_exact_zero(rng):
    layers, N, Y, groups = _sim(2, n_targets=8)
    res = fit_encoding(layers, Y, groups, nuisance=N, n_permutations=30, gap=2, alphas=ALPHAS)
    zero = res.unique.fold_delta_r2 == 0
    assert zero.mean() > 0.3  # the baseline alone, where no layer adds anything
    np.testing.assert_array_equal(res.unique.fold_delta_r[zero], 0.0)


def test_unique_on_stimulus_rows_permutes_within_groups(rng):
    n = 120
    X = rng.standard_normal((n, 30))
    N = rng.standard_normal((n, 2))
    Y = N @ rng.standard_normal((2, 3)) + X[:, :2] @ rng.standard_normal((2, 3)) + rng.standard_normal((n, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit_encoding([X], Y, np.repeat(np.arange(6), 20), nuisance=N, cv="group-kfold:3",
                           n_permutations=20, alphas=ALPHAS)
    assert "permuted within groups" in res.unique.source
    assert (res.unique.delta_r2[0] > 0).all()


def test_simultaneous_intervals_hold_every_layer():
    rng = np.random.default_rng(0)
    draws = rng.standard_normal((2000, 3, 1)) * np.array([1.0, 2.0, 0.0])[None, :, None] - 0.5
    observed = np.array([[0.0], [1.0], [0.0]])
    low, high = simultaneous_intervals(observed, draws, 0.95)
    # three layers, two that vary: the critical value is above the single-layer 1.96
    half = (high - low)[:2, 0] / 2 / np.array([1.0, 2.0])
    assert 2.0 < half[0] < 2.6 and np.isclose(half[0], half[1], rtol=0.1)
    np.testing.assert_allclose((low + high)[:, 0] / 2, observed[:, 0] + 0.5, atol=0.25)  # tails of 2000 draws
    assert low[2, 0] == high[2, 0]  # a layer switched off everywhere: no spread


def test_bad_input(rng):
    layers, N, Y, groups = _sim(0, n_targets=2)
    with pytest.raises(ValueError, match=r"nuisance has shape \(199, 3\); expected \(200, n_regressors\)"):
        LayerSweep(n_permutations=0, refit=False).fit(layers, Y, groups, nuisance=N[:-1])
    bad = N.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"nuisance has NaN or inf in column\(s\) \[1\]"):
        LayerSweep(n_permutations=0, refit=False).fit(layers, Y, groups, nuisance=bad)
    with pytest.raises(ValueError, match="unique_ratios"):
        fit_encoding(layers, Y, groups, nuisance=N, unique_ratios=[0.0, 1.0], n_permutations=0)
    with pytest.raises(ValueError, match="unique"):
        fit_encoding(layers, Y, groups, nuisance=N, unique="yes", n_permutations=0)
    with pytest.raises(ValueError, match=r"UniqueContribution.pvalues has shape \(2, 2\); expected \(3, 2\)"):
        UniqueContribution(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((4, 3, 2)), np.zeros((4, 3, 2)),
                           pvalues=np.zeros((2, 2)))


def test_acceptance_simulations_small():
    """A small count of issue 20's acceptance simulations (the full count: benchmarks/unique_calibration.py)."""
    covered, in_set = [], []
    for seed in range(2):
        layers, N, Y, groups = _sim(10 + seed, n_targets=10)
        res = fit_encoding(layers, Y, groups, nuisance=N, n_permutations=100, gap=2, alphas=ALPHAS, random_state=seed)
        assert np.median(res.r) > 0.4  # the raw profile is high: every layer carries the baseline
        u = res.unique
        covered.append(((u.ci_low <= 0) & (u.ci_high >= 0)).all(0))
        layers, N, Y, groups = _sim(20 + seed, driven=2, n_targets=10)
        res = fit_encoding(layers, Y, groups, nuisance=N, n_permutations=100, gap=2, alphas=ALPHAS, random_state=seed)
        in_set.append(res.unique.in_best_set[2])
    assert np.mean(covered) >= 0.9
    assert np.mean(in_set) >= 0.9


def test_a_subject_among_several_keeps_fold_values_without_its_own_draws(rng):
    """compare="null" (a subject of a multi-subject run, tested across subjects by sign flips):
    the unique contributions' fold values are those of the full fit, and no residual draws are run."""
    layers, N, Y, groups = _sim(1, driven=1, layer_signal=1.0)
    kw = dict(n_permutations=30, gap=2, alphas=ALPHAS, random_state=3,
              nuisance={"length": N[:, :2], "frequency": N[:, 2]})
    full = fit_encoding(layers, Y, groups, compare="auto", **kw)
    among = fit_encoding(layers, Y, groups, compare="null", **kw)
    np.testing.assert_allclose(among.unique.fold_delta_r2, full.unique.fold_delta_r2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(among.unique.delta_r2, full.unique.delta_r2, rtol=0, atol=1e-12)
    assert full.unique.pvalues is not None and among.unique.pvalues is None


def test_unique_score_is_the_signed_squared_correlation_by_default(rng):
    layers, N, Y, groups = _sim(4, driven=1, n_targets=5)
    kw = dict(n_permutations=0, gap=2, alphas=ALPHAS)
    res = fit_encoding(layers, Y, groups, nuisance=N, **kw)
    assert res.unique.score == "squared-r"
    # the baseline alone, fitted as a layer on the same folds: its fold r
    rb = fit_encoding([N], Y, groups, **kw).fold_r[:, 0]  # (n_folds, t)
    rj = rb[:, None, :] + res.unique.fold_delta_r
    expected = rj * np.abs(rj) - (rb * np.abs(rb))[:, None, :]
    np.testing.assert_allclose(res.unique.fold_delta_r2, expected, rtol=0, atol=1e-10)
    other = fit_encoding(layers, Y, groups, nuisance=N, unique_score="R2", **kw)
    assert other.unique.score == "R2"
    np.testing.assert_allclose(other.unique.fold_delta_r, res.unique.fold_delta_r, rtol=0, atol=1e-12)
    assert np.abs(other.unique.fold_delta_r2 - res.unique.fold_delta_r2).max() > 1e-4
    with pytest.raises(ValueError, match="unique_score"):
        fit_encoding(layers, Y, groups, nuisance=N, unique_score="r", **kw)


def test_unique_draws_apply_the_inner_rule_again_so_p_is_not_piled_at_one():
    # the baseline drives every response: no layer adds anything
    layers, N, Y, groups = simulate_baseline_layers(n_samples=200, n_runs=4, n_features=20, n_layers=3,
                                                    n_targets=60, random_state=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = fit_encoding(layers, Y, groups, nuisance=N, n_permutations=99, gap=2, alphas=ALPHAS).unique
    off = (u.fold_delta_r2 == 0).all(0)
    assert off.mean() > 0.3  # most layers switched off in every fold: delta exactly 0 ...
    # ... and compared with draws that are off (0), on and worse, or on and better: p spreads over
    # (0, 1] instead of sitting at 1 (where, with the data's selection fixed, every draw tied at 0)
    assert (u.pvalues[off] == 1).mean() < 0.5
    assert (u.pvalues[off] < 0.5).any()


def test_unique_draws_agree_between_the_kernel_and_primal_forms():
    layers, N, Y, groups = _sim(5, driven=1, n_targets=4)
    kw = dict(nuisance=N, n_permutations=40, gap=2, alphas=ALPHAS, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kernel = fit_encoding(layers, Y, groups, form="kernel", **kw).unique
        primal = fit_encoding(layers, Y, groups, form="primal", **kw).unique
    for name in ("delta_r2", "pvalues", "ci_low", "ci_high", "pvalues_best"):
        np.testing.assert_allclose(getattr(primal, name), getattr(kernel, name), rtol=0, atol=1e-8)


def test_simultaneous_intervals_are_asymmetric_where_the_draws_are_skewed():
    rng = np.random.default_rng(1)
    # held-out deltas under the null: a long tail of "on and worse" below a bounded top
    draws = -rng.exponential(0.1, (1000, 4, 2))
    observed = np.full((4, 2), 0.3)
    low, high = simultaneous_intervals(observed, draws, 0.95)
    centre = observed - draws.mean(0)
    assert ((high - centre) > 2 * (centre - low)).all()
    assert (low > 0).all()  # well above what the draws reach: the interval excludes 0, as p would
    # simultaneous: 95 % of the draws' own pivots lie inside every layer's band at once
    e = draws - draws.mean(0)
    inside = ((-e >= (low - centre)[None] - 1e-12) & (-e <= (high - centre)[None] + 1e-12)).all(1)
    assert 0.94 <= inside.mean(0).min() and inside.mean(0).max() <= 0.97
