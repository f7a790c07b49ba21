"""Paired layer comparisons: the confidence set of best layers, margins, their intervals."""
import numpy as np
import pytest

from neuroenc.encoding import EncodingResults, LayerSweep, fit_encoding
from neuroenc.encoding.compare import (
    compare_layers,
    compare_layers_across_units,
    describe_best_set,
    format_layer_set,
    sign_flip_draws,
    sign_flip_interval,
    sign_flips,
)
from neuroenc.encoding.merge import LAYER_MERGE_WARNING, merge_results
from neuroenc.encoding.simulate import simulate_layers


def _draws(rng, n_draws=2000, n_layers=3, n_targets=4, common=0.05, own=0.03):
    """Paired null draws: a part shared by all layers and a part of each layer."""
    return rng.standard_normal((n_draws, 1, n_targets)) * common + rng.standard_normal(
        (n_draws, n_layers, n_targets)) * own


def test_compare_layers_known_answer(rng):
    observed = np.array([[0.30] * 4, [0.29] * 4, [0.10] * 4])
    c = compare_layers(observed, _draws(rng))
    np.testing.assert_array_equal(c.best, [0, 0, 0, 0])
    np.testing.assert_allclose(c.delta_r[1], -0.01)
    np.testing.assert_allclose(c.delta_r[0], 0.0)
    assert np.isnan(c.pvalues[0]).all()  # the best layer's own entry
    # layer 1 is 0.01 below with a difference sd of ~0.042: not reliably worse
    assert (c.pvalues[1] > 0.3).all() and c.in_best_set[1].all()
    # layer 2 is 0.2 below (~4.7 sd): reliably worse, at the smallest p the draws allow
    np.testing.assert_allclose(c.pvalues[2], 1 / 2001)
    assert not c.in_best_set[2].any()
    assert c.in_best_set[0].all()
    # intervals of delta: delta minus quantiles of the paired draw differences (sd ~0.042)
    assert np.all((c.ci_low[1] < -0.01) & (c.ci_high[1] > -0.01) & (c.ci_high[1] - c.ci_low[1] > 0.12))
    assert np.all(c.ci_high[2] < 0)
    np.testing.assert_array_equal(c.ci_low[0], 0.0)


def test_compare_layers_studentizes_each_pair(rng):
    # layers 0 and 1 are nearly identical (their draws differ little), layer 2 is noisy:
    # a small margin between the near-identical pair is reliable, the same margin to layer 2 is not
    base = rng.standard_normal((2000, 1, 1)) * 0.05
    draws = np.concatenate([base, base + rng.standard_normal((2000, 1, 1)) * 0.002,
                            base + rng.standard_normal((2000, 1, 1)) * 0.05], axis=1)
    c = compare_layers(np.array([[0.30], [0.29], [0.29]]), draws)
    assert c.pvalues[1, 0] < 0.01 and not c.in_best_set[1, 0]
    assert c.pvalues[2, 0] > 0.3 and c.in_best_set[2, 0]


def test_compare_layers_nan_and_bad_input(rng):
    observed = np.array([[0.3, np.nan], [0.1, np.nan]])
    draws = rng.standard_normal((50, 2, 2)) * 0.01
    draws[:, :, 1] = np.nan
    c = compare_layers(observed, draws)
    assert c.best.tolist() == [0, -1]
    assert np.isnan(c.pvalues[:, 1]).all() and not c.in_best_set[:, 1].any()
    with pytest.raises(ValueError, match=r"draws have shape \(50, 2, 2\); expected \(n_draws,\) \+ \(3, 2\)"):
        compare_layers(np.zeros((3, 2)), draws)
    with pytest.raises(ValueError, match="alpha must lie in"):
        compare_layers(observed, draws, alpha=1.5)
    with pytest.raises(ValueError, match="at least 2 draws"):
        compare_layers(observed, draws[:1])


def test_sign_flips_exact_and_random():
    signs, exact = sign_flips(3, 100)
    assert exact and signs.shape == (8, 3) and {tuple(s) for s in signs.tolist()} == {
        (a, b, c) for a in (1.0, -1.0) for b in (1.0, -1.0) for c in (1.0, -1.0)}
    signs, exact = sign_flips(12, 100, random_state=0)
    assert not exact and signs.shape == (100, 12) and set(np.unique(signs)) == {-1.0, 1.0}
    with pytest.raises(ValueError, match="at least 2 units"):
        sign_flips(1)


def test_sign_flip_draws_are_paired_differences():
    values = np.array([[[0.3], [0.1]], [[0.5], [0.2]], [[0.4], [0.4]]])  # 3 subjects x 2 layers x 1
    signs, _ = sign_flips(3, 100)
    draws = sign_flip_draws(values, signs)
    d = values[:, 0, 0] - values[:, 1, 0]
    np.testing.assert_allclose(draws[:, 0, 0] - draws[:, 1, 0], signs @ d / 3)
    # the all-positive flip is the observed mean: p >= 1 / 2**n, so 3 subjects exclude nothing
    c = compare_layers_across_units(values)
    assert c.n_draws == 8 and c.pvalues[1, 0] >= 1 / 8 and c.in_best_set[:, 0].all()
    mean, low, high = sign_flip_interval(d[:, None], signs)
    assert mean[0] == pytest.approx(d.mean()) and low[0] <= 0 <= high[0]


def test_compare_layers_across_subjects_recovers_a_clear_order(rng):
    # 20 subjects: layer 2 best by 0.1, layer 1 within noise of it, layer 0 far below
    truth = np.array([0.2, 0.29, 0.3])
    values = truth[None, :, None] + rng.standard_normal((20, 3, 30)) * 0.05
    c = compare_layers_across_units(values, n_draws=2000, random_state=0)
    assert (c.best == 2).mean() >= 0.6
    assert c.in_best_set[0].mean() < 0.05  # 0.1 below, 0.016 sem: always out
    assert c.in_best_set[1].mean() > 0.6


def test_format_layer_set_and_words():
    assert format_layer_set([30, 3, 12, 13, 14]) == "3, 12–14, 30"
    assert format_layer_set([]) == ""
    text = describe_best_set(30, "12–30", 0.6, 30, (0.0, 0.0, 0.0), 13, (0.03, -0.02, 0.08))
    assert text.startswith("the data cannot single out a best layer: layers 12–30 are indistinguishable")
    assert "the best is the last layer" in text
    assert "vs the best intermediate layer (13) Δr = +0.030 [-0.020, +0.080]" in text
    text = describe_best_set(12, "12", 0.0, 30, (0.1, 0.05, 0.15), 12, (0.0, 0.0, 0.0))
    assert text.startswith("layer 12 is reliably best") and "vs the last layer Δr = +0.100 [+0.050, +0.150]" in text
    text = describe_best_set(20, "18–22", 0.13, 30, (0.02, -0.01, 0.05), 15, (0.04, 0.01, 0.07))
    assert "it does not reliably beat the last layer (Δr = +0.020 [-0.010, +0.050], 95% interval includes 0)" in text


@pytest.mark.slow
def test_simulation_equal_layers_together_and_a_worse_layer_out():
    """Acceptance: two layers that generate the response equally well appear together in the best
    set >= 90 % of the time; a layer with no signal (true r 0 vs ~0.55) is excluded >= 80 %."""
    together, excluded = [], []
    for seed in range(2):
        layers, Y = simulate_layers(n_samples=400, n_targets=120, noise=(1.0, 1.0, np.inf), signal=1.0,
                                    random_state=seed)
        sweep = LayerSweep(alphas=np.logspace(-1, 4, 8), permutation="refit", refit=False, n_permutations=200,
                           random_state=seed).fit(layers, Y)
        c = sweep.comparison_
        assert c.source == "residual" and c.n_draws == 200
        together.append(np.mean(c.in_best_set[0] & c.in_best_set[1]))
        excluded.append(np.mean(~c.in_best_set[2]))
    assert np.mean(together) >= 0.90
    assert np.mean(excluded) >= 0.80


@pytest.mark.slow
def test_simulation_null_rate_of_calling_a_layer_worse():
    """Acceptance: on null data every layer is (one of) the best; the rate of calling one reliably
    worse stays at alpha or below, within two standard errors."""
    rates = []
    for seed in range(2):
        layers, Y = simulate_layers(n_samples=400, n_targets=120, noise=(1.0, 1.0, 1.0), signal=0.0,
                                    random_state=10 + seed)
        sweep = LayerSweep(alphas=np.logspace(-1, 4, 8), permutation="refit", refit=False, n_permutations=200,
                           random_state=seed).fit(layers, Y)
        rates.append(np.mean(~sweep.comparison_.in_best_set))
    n = 2 * 3 * 120
    assert np.mean(rates) <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / n)


def test_fit_encoding_results_carry_the_comparison(tmp_path):
    layers, Y = simulate_layers(n_samples=240, n_targets=6, noise=(1.0, 1.0, np.inf), signal=1.5, random_state=3)
    res = fit_encoding(layers, Y, n_permutations=60, targets=[f"t{i}" for i in range(6)])
    c = res.comparison
    assert c is not None and c.delta_r.shape == (3, 6) and c.attrs()["source"] == "residual"
    assert np.all(res.r - res.r.max(0) == pytest.approx(c.delta_r))
    # round trip through HDF5: /compare/delta_r, /compare/pvalues, /compare/in_best_set
    path = res.save(tmp_path / "res.h5")
    import h5py

    with h5py.File(path) as f:
        assert f["compare/delta_r"].shape == (3, 6) and f["compare/in_best_set"].dtype == bool
        assert f["compare"].attrs["alpha"] == 0.05 and "against the other" in f["compare"].attrs["description"]
    back = EncodingResults.load(path)
    for name in ("delta_r", "pvalues", "in_best_set", "ci_low", "ci_high", "best"):
        np.testing.assert_array_equal(getattr(back.comparison, name), getattr(c, name))
    table = back.best()
    assert list(table.columns[:4]) == ["target", "best_layer", "best_depth", "r"]
    assert (table["last_layer"] == 2).all() and table["best_set"].str.len().gt(0).all()
    # the no-signal last layer is far below: margins over it are positive, mostly reliably so
    assert ((table["delta_last_low"] < table["delta_last"]) & (table["delta_last"] < table["delta_last_high"])).all()
    assert (table["delta_last"] > 0).all() and (table["delta_last_low"] > 0).mean() >= 0.8
    # layers 0 and 1 are equally good and span half the depth: the words say so, with the margins
    assert table["verdict"].str.startswith("the data cannot single out a best layer: layers 0–").all()
    assert table["verdict"].str.contains(r"the last layer \(Δr = |the last layer Δr = ").all()
    # chunks of targets merge to the same comparison; layer subsets cannot carry it
    parts = [fit_encoding(layers, Y[:, cols], n_permutations=60, targets=[f"t{i}" for i in range(6)][cols])
             for cols in (slice(0, 2), slice(2, 6))]
    merged = merge_results(parts)
    for name in ("delta_r", "pvalues", "in_best_set", "ci_low", "ci_high"):
        np.testing.assert_allclose(getattr(merged.comparison, name), getattr(c, name), equal_nan=True)
    by_layer = merge_results([fit_encoding([layers[0]], Y, n_permutations=60),
                              fit_encoding({1: layers[1]}, Y, n_permutations=60)], axis="layers")
    assert by_layer.comparison is None and LAYER_MERGE_WARNING in by_layer.warnings
    assert "verdict" not in by_layer.best()


def test_penalties_at_the_edge_of_the_grid_are_warned():
    layers, Y = simulate_layers(n_samples=200, n_targets=5, noise=(1.0,), signal=1.0, random_state=0)
    res = fit_encoding(layers, Y, alphas=[1e-3, 1e-2], n_permutations=0)
    assert any(w.startswith("In layer(s) 0, more than 10% of the chosen ridge penalties sit at the largest "
                            "value of the grid (0.01; up to 100%, layer 0)") and "extend the alphas higher" in w
               for w in res.warnings)
    assert res.settings["alpha_edge_shares"] == {"low": [0.0], "high": [1.0]}
    res = fit_encoding(layers, Y, alphas=np.logspace(-2, 8, 11), n_permutations=0)
    assert not any("of the grid" in w for w in res.warnings)


def test_compare_modes(rng):
    layers, Y = simulate_layers(n_samples=200, n_targets=4, noise=(1.0, np.inf), signal=1.5, random_state=1)
    kw = dict(alphas=np.logspace(-1, 4, 6), refit=False, n_permutations=40, random_state=0)
    null = LayerSweep(compare="null", permutation="refit", **kw).fit(layers, Y).comparison_
    assert null.source == "refit" and null.n_draws == 40
    fixed = LayerSweep(compare="auto", permutation="circular", **kw).fit(layers, Y).comparison_
    assert fixed.source == "circular"  # nothing is refitted: the fixed-prediction null's draws
    assert LayerSweep(compare=False, permutation="refit", **kw).fit(layers, Y).comparison_ is None
    with pytest.raises(ValueError, match="compare='residual' refits every layer on resampled responses"):
        LayerSweep(compare="residual", permutation="circular", **kw).fit(layers, Y)
    with pytest.raises(ValueError, match="compare must be True, False, 'auto', 'residual' or 'null'; got"):
        LayerSweep(compare="bootstrap", **kw).fit(layers, Y)
    # the residual draws keep the signal: their spread of r differences is narrower than the null's
    res = LayerSweep(compare="residual", permutation="refit", **kw).fit(layers, Y).comparison_
    assert np.all((res.ci_high - res.ci_low)[1] < (null.ci_high - null.ci_low)[1])
