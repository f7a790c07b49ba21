"""Group summaries and the group-level test."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _mapping_fixtures import PEAKS, ROIS, make_group, make_results

from neuroenc.encoding.stats import fdr_bh
from neuroenc.mapping import map_layers
from neuroenc.mapping.collect import scores_table
from neuroenc.mapping.group import group_summary, sign_flip_test


def test_sign_flip_exact_p_values():
    # All 5 values positive: only the identity flip reaches the observed mean -> p = 1 / 2**5.
    mean, p = sign_flip_test(np.array([0.1, 0.2, 0.3, 0.4, 0.5]))
    assert mean == pytest.approx(0.3) and p == pytest.approx(1 / 32)
    # One negative value of the smallest size: flips that reach the observed mean are the
    # identity and flipping that value back -> 2 / 32.
    _, p = sign_flip_test(np.array([-0.1, 0.2, 0.3, 0.4, 0.5]))
    assert p == pytest.approx(2 / 32)
    _, p = sign_flip_test(np.array([0.1, 0.2, 0.3, 0.4, 0.5]), alternative="less")
    assert p == pytest.approx(1.0)
    _, p = sign_flip_test(np.array([0.1, 0.2, 0.3, 0.4, 0.5]), alternative="two-sided")
    assert p == pytest.approx(2 / 32)


def test_sign_flip_monte_carlo_and_null(rng):
    positive = np.abs(rng.standard_normal(30)) + 0.5
    _, p = sign_flip_test(positive, n_permutations=999, random_state=0)
    assert p == pytest.approx(1 / 1000)
    # Under the null, p-values are about uniform: ~5% below 0.05.
    null = rng.standard_normal((20, 400))
    _, p = sign_flip_test(null, n_permutations=500, random_state=1)
    assert p.shape == (400,)
    assert 0.02 <= np.mean(p < 0.05) <= 0.09
    # NaN units are left out of their column; an all-NaN column has no p-value.
    vals = np.array([[0.1, np.nan], [0.2, np.nan], [np.nan, np.nan], [0.3, np.nan]])
    mean, p = sign_flip_test(vals)
    assert mean[0] == pytest.approx(0.2) and p[0] == pytest.approx(1 / 8) and np.isnan(p[1])


def test_sign_flip_bad_input():
    with pytest.raises(ValueError, match="Invalid value for 'alternative'"):
        sign_flip_test(np.ones(3), alternative="bigger")
    with pytest.raises(ValueError, match="'n_permutations' must be > 0"):
        sign_flip_test(np.ones(3), n_permutations=0)


def test_fdr_bh_matches_hand_computation():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.5])
    # sorted 0.01, 0.03, 0.04, 0.5 (m = 4): q = min over later of p * m / rank.
    expected = np.array([0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, np.nan, 0.5])
    np.testing.assert_allclose(fdr_bh(p), expected)


def test_group_summary_known_peaks_and_means():
    results = make_group(6)
    table = scores_table(results)
    g = group_summary(table, n_permutations=2000, random_state=0).set_index("target")
    r = np.stack([res.r for res in results])
    for j, target in enumerate(ROIS):
        k = PEAKS[target]
        assert g.loc[target, "best_layer"] == k
        assert g.loc[target, "r"] == pytest.approx(r[:, k, j].mean())
        assert g.loc[target, "r_sem"] == pytest.approx(r[:, k, j].std(ddof=1) / np.sqrt(6))
        assert g.loc[target, "r_last"] == pytest.approx(r[:, -1, j].mean())
        assert g.loc[target, "baseline_r"] == pytest.approx(0.05)
        # all 6 subjects beat the baseline -> exact sign-flip p = 1 / 64
        assert g.loc[target, "p"] == pytest.approx(1 / 64)
        assert g.loc[target, "loso_effect"] == pytest.approx(r[:, k, j].mean() - 0.05)
    assert (g["n_subjects"] == 6).all()
    np.testing.assert_allclose(g["q"], 1 / 64)
    assert (g["p_t"] < 1e-6).all()
    assert g["test"].iloc[0].startswith("sign-flip permutation across 6 subjects")


def test_group_test_selects_layers_leave_one_subject_out():
    # 3 subjects, 2 layers, 1 target: subject a peaks at layer 1, b and c at layer 0.
    table = pd.DataFrame({
        "subject": ["a", "a", "b", "b", "c", "c"],
        "layer": [0, 1] * 3,
        "target": "x",
        "r": [0.10, 0.50, 0.40, 0.20, 0.30, 0.25],
        "baseline_r": [0.05, 0.05, 0.10, 0.10, 0.00, 0.00],
    })
    g = group_summary(table).iloc[0]
    # group mean profile: layer 0 = 0.2667, layer 1 = 0.3167 -> layer 1
    assert g["best_layer"] == 1 and g["r"] == pytest.approx(0.95 / 3)
    # LOSO: a -> others' best is layer 0 (0.35 vs 0.225): 0.10 - 0.05;
    #       b -> others (a, c): layer 1 (0.375 vs 0.2): 0.20 - 0.10;
    #       c -> others (a, b): layer 1 (0.35 vs 0.25): 0.25 - 0.00.
    assert g["loso_effect"] == pytest.approx((0.05 + 0.10 + 0.25) / 3)
    assert g["p"] == pytest.approx(1 / 8)


def test_group_without_baseline_tests_against_zero():
    results = make_group(4, baseline=None)
    g = group_summary(scores_table(results))
    assert "baseline_r" not in g and "gain_over_baseline" not in g
    assert g["test"].iloc[0].endswith("vs zero")
    np.testing.assert_allclose(g["loso_effect"], g["r"])


def test_group_of_one_subject_uses_the_encoding_p_values():
    res = make_results()
    g = group_summary(scores_table(res)).set_index("target")
    for j, target in enumerate(ROIS):
        k = PEAKS[target]
        assert g.loc[target, "p"] == res.pvalues[k, j]
        assert g.loc[target, "q"] == res.qvalues[k, j]
    assert "loso_effect" not in g
    assert g["test"].iloc[0] == "permutation test of the encoding model (one subject)"
    assert np.isnan(g["r_sem"]).all()


def test_group_summary_bad_input():
    table = scores_table(make_group(2))
    with pytest.raises(ValueError, match="Invalid value for 'negative'"):
        group_summary(table, negative="none")
    with pytest.raises(TypeError, match="'n_permutations' must be an integer"):
        group_summary(table, n_permutations=1.5)


def test_group_of_one_subject_uses_the_p_values_corrected_for_the_layer_choice():
    import dataclasses

    res = make_results()
    res = dataclasses.replace(res, pvalues_best=np.linspace(0.001, 0.3, len(ROIS)))
    for g in (group_summary(scores_table(res)), map_layers(res, n_boot=10).group):
        g = g.set_index("target")
        np.testing.assert_array_equal(g.loc[list(ROIS), "p"], res.pvalues_best)
        np.testing.assert_array_equal(g.loc[list(ROIS), "q"], res.qvalues_best)
        assert set(g["p_method"]) == {"max over layers"}
        assert g["test"].iloc[0] == "permutation test of the encoding model (one subject), max over 9 layers"
