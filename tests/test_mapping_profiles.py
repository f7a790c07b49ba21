"""Layer profiles and their bootstrap intervals."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _mapping_fixtures import ROIS, make_group, make_results

from neuroenc.mapping import layer_profiles
from neuroenc.mapping.collect import fold_table, scores_table
from neuroenc.mapping.profiles import bootstrap_mean_ci


def test_bootstrap_interval_covers_the_true_mean(rng):
    """Over many simulated data sets, the 90% interval holds the true mean about 90% of the time."""
    true_mean, n_sims = 0.3, 300
    data = true_mean + 0.1 * rng.standard_normal((n_sims, 25))
    mean, low, high = bootstrap_mean_ci(data.T, n_boot=500, ci=0.9, random_state=0)
    covered = np.mean((low <= true_mean) & (true_mean <= high))
    assert 0.83 <= covered <= 0.96, covered
    np.testing.assert_allclose(mean, data.mean(1))
    # The interval's half width is close to z * standard error.
    half = (high - low) / 2
    assert np.median(half) == pytest.approx(1.645 * 0.1 / 5, rel=0.12)


def test_bootstrap_is_seeded_and_handles_nan():
    values = np.arange(20, dtype=float).reshape(10, 2)
    a = bootstrap_mean_ci(values, n_boot=200, random_state=3)
    b = bootstrap_mean_ci(values, n_boot=200, random_state=3)
    c = bootstrap_mean_ci(values, n_boot=200, random_state=4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[1], c[1])
    values[0, 0] = np.nan
    mean, low, high = bootstrap_mean_ci(values, n_boot=200, random_state=0)
    assert mean[0] == pytest.approx(np.nanmean(values[:, 0]))
    assert low[0] <= mean[0] <= high[0]
    # A column without any finite value has no mean and no interval.
    mean, low, high = bootstrap_mean_ci(np.full((4, 1), np.nan), n_boot=50, random_state=0)
    assert np.isnan(mean[0]) and np.isnan(low[0]) and np.isnan(high[0])


def test_bootstrap_one_unit_has_no_interval():
    mean, low, high = bootstrap_mean_ci(np.array([[0.2, 0.4]]), random_state=0)
    np.testing.assert_array_equal(mean, [0.2, 0.4])
    assert np.isnan(low).all() and np.isnan(high).all()


def test_bootstrap_bad_input():
    with pytest.raises(ValueError, match="'ci' must be a confidence level between 0 and 1"):
        bootstrap_mean_ci(np.ones((3, 2)), ci=95)
    with pytest.raises(TypeError, match="'n_boot' must be an integer"):
        bootstrap_mean_ci(np.ones((3, 2)), n_boot=10.5)
    with pytest.raises(ValueError, match="'n_boot' must be > 0"):
        bootstrap_mean_ci(np.ones((3, 2)), n_boot=0)
    with pytest.raises(ValueError, match="at least one unit along axis 0"):
        bootstrap_mean_ci(np.ones((0, 2)))


def test_layer_profiles_over_subjects():
    results = make_group(6)
    table = scores_table(results)
    prof = layer_profiles(table, n_boot=300, random_state=0)
    assert list(pd.unique(prof["target"])) == list(ROIS)
    assert len(prof) == 9 * len(ROIS)
    expected = table.groupby(["target", "layer"])["r"].mean()
    for _, row in prof.iterrows():
        assert row["mean"] == pytest.approx(expected[(row["target"], row["layer"])])
        assert row["ci_low"] <= row["mean"] <= row["ci_high"]
    assert (prof["n"] == 6).all() and (prof["unit"] == "subject").all()
    assert prof["relative_depth"].max() == 1.0


def test_layer_profiles_over_folds_of_one_subject():
    res = make_results(n_folds=5, noise=0.05)
    prof = layer_profiles(fold_table(res), unit="fold", n_boot=300, random_state=0)
    row = prof[(prof["target"] == "LPTL") & (prof["layer"] == 5)].iloc[0]
    j = res.targets.index("LPTL")
    assert row["mean"] == pytest.approx(res.r[5, j])
    assert row["n"] == 5 and row["unit"] == "fold"
    assert row["ci_low"] < res.r[5, j] < row["ci_high"]
    # the interval is about as wide as the spread of the folds
    sem = res.fold_r[:, 5, j].std(ddof=1) / np.sqrt(5)
    assert (row["ci_high"] - row["ci_low"]) == pytest.approx(2 * 1.96 * sem, rel=0.5)


def test_fold_table_needs_fold_scores():
    res = make_results()
    res.fold_r = None
    with pytest.raises(ValueError, match="have no fold scores.*unit='subject'"):
        fold_table(res)
