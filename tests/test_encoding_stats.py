"""Permutation nulls that keep autocorrelation, FDR, noise ceilings (simulated and Alice)."""
from __future__ import annotations

import numpy as np
import pytest
from _encoding_fixtures import _one_blas_thread  # noqa: F401

from neuroenc.encoding import fdr_bh, noise_ceiling_repeats, noise_ceiling_split_half, permutation_test
from neuroenc.encoding.stats import (
    autocorrelation_length,
    noise_ceiling_intersubject,
    permutation_null,
    permutation_test_best,
    spearman_brown,
    split_half_reliability,
)


def _smooth(rng, n, t, width=6):
    """Autocorrelated noise: white noise smoothed by a boxcar of `width` samples."""
    x = rng.standard_normal((n + width, t))
    return np.stack([x[i:i + width].mean(0) for i in range(n)])


def test_fdr_bh_known_answer():
    q = fdr_bh(np.array([0.01, 0.04, 0.03, 0.5, np.nan]))
    np.testing.assert_allclose(q[:4], [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    assert np.isnan(q[4])
    # per row of a (layers, targets) array
    q2 = fdr_bh(np.array([[0.01, 0.02], [0.5, 0.01]]), axis=-1)
    np.testing.assert_allclose(q2, [[0.02, 0.02], [0.5, 0.02]])


def test_circular_null_equals_explicit_shifts(rng):
    """The FFT path gives the correlation of the prediction with the rolled response."""
    Y, P = rng.standard_normal((40, 3)), rng.standard_normal((40, 3))
    folds = [np.arange(40)]
    null = permutation_null(Y, P, folds, n_permutations=20, method="circular", block_size=4, random_state=1)
    shifts = np.random.default_rng(1).integers(4, 37, size=20)
    explicit = np.array([[np.corrcoef(P[:, j], np.roll(Y[:, j], -s))[0, 1] for j in range(3)] for s in shifts])
    np.testing.assert_allclose(null, explicit, atol=1e-12)


@pytest.mark.parametrize("method", ["circular", "block"])
def test_permutation_p_values_calibrated_under_autocorrelation(rng, method):
    """Independent but autocorrelated signals: about 5 % of p-values below 0.05."""
    n, t = 240, 300
    Y, P = _smooth(rng, n, t), _smooth(rng, n, t)
    folds = np.array_split(np.arange(n), 4)
    p = permutation_test(Y, P, folds, n_permutations=1000, method=method, random_state=0)
    assert 0.02 < np.mean(p < 0.05) < 0.09
    # a shuffle that ignores autocorrelation (block of 1) is anti-conservative on the same data
    p_naive = permutation_test(Y, P, folds, n_permutations=1000, method="block", block_size=1, random_state=0)
    assert np.mean(p_naive < 0.05) > 2 * np.mean(p < 0.05)


def test_permutation_detects_signal_and_handles_nan(rng):
    n = 200
    S = _smooth(rng, n, 4)
    Y = S + 0.3 * _smooth(rng, n, 4)
    Y[:, 3] = 1.0  # constant target
    folds = np.array_split(np.arange(n), 4)
    p = permutation_test(Y, S, folds, n_permutations=1000, random_state=0)
    np.testing.assert_allclose(p[:3], 1 / 1001)
    assert np.isnan(p[3])


def test_permutation_is_the_same_for_target_chunks(rng):
    Y, P = _smooth(rng, 120, 10), _smooth(rng, 120, 10)
    folds = np.array_split(np.arange(120), 3)
    full = permutation_test(Y, P, folds, n_permutations=200, block_size=[5, 6, 7], random_state=3)
    part = permutation_test(Y[:, 4:], P[:, 4:], folds, n_permutations=200, block_size=[5, 6, 7], random_state=3)
    np.testing.assert_array_equal(full[4:], part)
    with pytest.raises(ValueError, match="block_size has 2 values for 3 folds"):
        permutation_null(Y, P, folds, block_size=[5, 6])
    with pytest.raises(ValueError, match="Invalid value for 'method'"):
        permutation_null(Y, P, folds, method="shuffle")


def test_autocorrelation_length(rng):
    assert autocorrelation_length(rng.standard_normal((400, 20))) == 2  # white: the floor
    lag = autocorrelation_length(_smooth(rng, 400, 20, width=8))
    assert 6 <= lag <= 9  # a boxcar of 8 decorrelates after ~8 samples


def test_noise_ceiling_repeats_known_signal(rng):
    n, t, reps = 3000, 3, 4
    signal = rng.standard_normal((n, t))
    noise_sd = np.array([0.5, 1.0, 2.0])
    data = signal[None] + noise_sd * rng.standard_normal((reps, n, t))
    expected = np.sqrt(1.0 / (1.0 + noise_sd**2 / reps))  # corr(signal, mean of repeats)
    np.testing.assert_allclose(noise_ceiling_repeats(data), expected, atol=0.02)
    np.testing.assert_allclose(noise_ceiling_split_half(data, 50, 0), expected, atol=0.03)


def test_noise_ceiling_intersubject_known_signal(rng):
    n, t, subjects = 2000, 2, 12
    signal = rng.standard_normal((n, t))
    sd = np.array([1.0, 3.0])
    data = signal[None] + sd * rng.standard_normal((subjects, n, t))
    rho1 = 1.0 / (1.0 + sd**2)
    np.testing.assert_allclose(noise_ceiling_intersubject(data).mean(0), np.sqrt(rho1), atol=0.03)
    np.testing.assert_allclose(noise_ceiling_intersubject(data, "group"),
                               np.sqrt(spearman_brown(rho1, subjects)), atol=0.03)
    with pytest.raises(ValueError, match="need at least 3 subjects, got 2"):
        noise_ceiling_intersubject(data[:2])
    with pytest.raises(ValueError, match="contain NaN or inf"):
        noise_ceiling_repeats(np.full((2, 5, 1), np.nan))


def test_alice_group_reliability_matches_published(data_dir):
    """Split-half reliability of the Alice group mean, as listed in the data README."""
    from neuroenc.datasets import load_alice

    ds = load_alice(data_dir)
    data = np.stack([ds.responses[s]["alice"].data for s in sorted(ds.responses)])
    rel = dict(zip(ds.info["rois"], split_half_reliability(data, 200, 0)))
    isc = dict(zip(ds.info["rois"], noise_ceiling_intersubject(data, "group") ** 2))
    for roi in ("LPTL", "LATL", "LIPL", "LPreM", "LIFG"):
        assert abs(rel[roi] - ds.info["reliability"][roi]) < 0.06, roi
        assert abs(isc[roi] - ds.info["reliability"][roi]) < 0.06, roi
    assert max(rel, key=rel.get) == "LPTL"


@pytest.mark.parametrize("method", ["circular", "block"])
def test_target_constant_in_one_fold_leaves_that_fold_out(rng, method):
    """A target constant in a test fold gets the p-value of its other folds (its r there is NaN,
    and nanmean leaves it out), not the smallest p-value (a NaN null is never >= observed)."""
    n = 180
    Y, P = _smooth(rng, n, 3), _smooth(rng, n, 3)  # pure noise: no signal
    folds = np.array_split(np.arange(n), 3)
    Y[folds[0], 1] = 2.5  # target 1 is constant in fold 0
    kw = dict(n_permutations=400, method=method, block_size=5)
    p = permutation_test(Y, P, folds, random_state=np.random.default_rng(11), **kw)
    # the same draws for folds 1 and 2: fold 0's are drawn first, then the rest
    rng2 = np.random.default_rng(11)
    permutation_null(Y[:, 1:2], P[:, 1:2], folds[:1], random_state=rng2, **kw)
    p_rest = permutation_test(Y[:, 1:2], P[:, 1:2], folds[1:], random_state=rng2, **kw)
    assert p[1] == p_rest[0]
    assert p[1] > 10 / 401  # the old null (NaN in fold 0) gave the smallest p, 1 / 401
    # the null itself: the mean over the folds where the target varies; NaN if it never varies
    null = permutation_null(Y, P, folds, random_state=0, **kw)
    assert np.isfinite(null).all()
    Y[:, 2] = 1.0
    assert np.isnan(permutation_null(Y, P, folds, random_state=0, **kw)[:, 2]).all()
    assert np.isnan(permutation_test(Y, P, folds, random_state=0, **kw)[2])


def test_noise_ceiling_intersubject_is_nan_without_shared_signal(rng):
    """Pure noise: where the mean inter-subject r is <= 0 there is no ceiling (NaN), not 1.0."""
    data = rng.standard_normal((6, 300, 400))
    n = data.shape[0]
    total = data.sum(0)
    z = lambda a: (a - a.mean(0)) / a.std(0)  # noqa: E731
    mean_r = np.mean([np.mean(z(data[s]) * z((total - data[s]) / (n - 1)), 0) for s in range(n)], 0)
    assert 100 < np.sum(mean_r <= 0) < 300  # about half the targets
    individual = noise_ceiling_intersubject(data)
    group = noise_ceiling_intersubject(data, "group")
    assert np.isnan(individual[:, mean_r <= 0]).all() and np.isnan(group[mean_r <= 0]).all()
    assert np.isfinite(group[mean_r > 0]).all() and np.nanmax(group) < 0.5
    # (the old result there: rho_1 = 0, so r_s / sqrt(0) = inf, clipped to a ceiling of 1)


def test_best_layer_p_values_corrected_by_the_max_over_layers(rng):
    """The reviewer's simulation: many correlated layers of pure noise. The best layer's own
    p-value is below 0.05 for about a third of the targets; the max-statistic p-value for ~5 %."""
    n, t, n_layers = 200, 600, 20
    preds = [_smooth(rng, n, t, 4)]
    for _ in range(n_layers - 1):  # adjacent layers correlate 0.9
        preds.append(0.9 * preds[-1] + np.sqrt(1 - 0.81) * _smooth(rng, n, t, 4))
    Y = _smooth(rng, n, t, 4)  # independent of every layer
    folds = np.array_split(np.arange(n), 4)
    p, p_best = permutation_test_best(Y, preds, folds, n_permutations=500, random_state=0)
    observed = np.stack([np.mean([np.mean(_z(Y[f]) * _z(q[f]), 0) for f in folds], 0) for q in preds])
    best = np.argmax(observed, 0)
    p_at_best = p[best, np.arange(t)]
    assert np.mean(p_at_best < 0.05) > 0.2
    assert 0.02 < np.mean(p_best < 0.05) < 0.1
    # never below the best layer's own p-value (the same draws for every layer); each layer's
    # p-values are those of permutation_test
    assert np.all(p_best >= p_at_best)
    np.testing.assert_array_equal(
        p[3], permutation_test(Y, preds[3], folds, n_permutations=500,
                               random_state=int(np.random.default_rng(0).integers(2**62))))
    # one layer: nothing to correct
    p1, p1_best = permutation_test_best(Y, preds[:1], folds, n_permutations=200, random_state=1)
    np.testing.assert_array_equal(p1[0], p1_best)
    with pytest.raises(ValueError, match=r"observed has shape \(2, 600\); expected \(20, 600\)"):
        permutation_test_best(Y, preds, folds, observed=observed[:2], n_permutations=10)
    with pytest.raises(ValueError, match="at least one layer"):
        permutation_test_best(Y, [], folds)


def _z(a):
    return (a - a.mean(0)) / a.std(0)


def test_describe_null_and_shifted_indices():
    from neuroenc.encoding.stats import describe_null, run_indices, run_shifts, shifted_indices

    assert "refitted" in describe_null({"permutation_used": "refit"})
    assert "too small" in describe_null({"permutation_used": "circular"})
    assert describe_null({}) == ""
    groups = np.array(["b", "b", "a", "a", "a", "b"])  # runs in order of first appearance
    runs = run_indices(groups)
    np.testing.assert_array_equal(runs[0], [0, 1, 5])
    np.testing.assert_array_equal(runs[1], [2, 3, 4])
    idx = shifted_indices(runs, np.array([[1, 2]]), 6)
    np.testing.assert_array_equal(idx, [[1, 5, 4, 2, 3, 0]])
    shifts = run_shifts(runs + [np.array([9])], 200, 0)
    assert shifts.shape == (200, 3) and np.all(shifts[:, 2] == 0)  # a run of one is not shifted
    assert shifts[:, :2].min() >= 1 and shifts[:, :2].max() <= 2
