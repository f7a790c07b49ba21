"""Best layer and layer-preference index: known answers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _mapping_fixtures import PEAKS, ROIS, make_group, make_results

from neuroenc.mapping import best_layers, map_layers, preference_index
from neuroenc.mapping.collect import scores_table


@pytest.mark.parametrize("layer", [0, 3, 7])
def test_preference_index_of_one_hot_profile_is_that_layers_depth(layer):
    depth = np.linspace(0, 1, 8)
    scores = np.zeros(8)
    scores[layer] = 0.4
    assert preference_index(scores, depth) == pytest.approx(depth[layer])
    assert preference_index(scores, depth, negative="shift") == pytest.approx(depth[layer])


def test_preference_index_flat_profile_is_mean_depth_and_weighted_mean():
    depth = np.array([0.0, 0.25, 0.5, 1.0])
    assert preference_index(np.full(4, 0.2), depth) == pytest.approx(depth.mean())
    # Weighted centre of mass by hand: (1*0 + 3*0.5) / 4.
    assert preference_index(np.array([0.1, 0.0, 0.3, 0.0]), depth) == pytest.approx(0.375)
    # "shift" has no index for a flat profile: every weight is zero.
    assert np.isnan(preference_index(np.full(4, 0.2), depth, negative="shift"))


def test_preference_index_negative_scores():
    depth = np.array([0.0, 0.5, 1.0])
    scores = np.array([-0.3, 0.2, -0.1])
    # clip: negative layers carry no weight -> all weight on the middle layer.
    assert preference_index(scores, depth, negative="clip") == pytest.approx(0.5)
    # shift: weights s - min = [0, 0.5, 0.2] -> (0.25 + 0.2) / 0.7.
    assert preference_index(scores, depth, negative="shift") == pytest.approx(0.45 / 0.7)
    # no layer above zero -> no index; NaN scores carry no weight.
    assert np.isnan(preference_index(np.array([-0.1, -0.2, 0.0]), depth))
    assert preference_index(np.array([np.nan, 0.2, np.nan]), depth) == pytest.approx(0.5)
    assert preference_index(np.array([np.nan, -0.1, 0.3]), depth, negative="shift") == pytest.approx(1.0)


def test_preference_index_axis_and_shape():
    depth = np.linspace(0, 1, 5)
    scores = np.zeros((5, 3))
    scores[[0, 2, 4], [0, 1, 2]] = 1.0
    np.testing.assert_allclose(preference_index(scores, depth, axis=0), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(preference_index(scores.T, depth, axis=1), [0.0, 0.5, 1.0])


def test_preference_index_bad_input():
    with pytest.raises(ValueError, match="Invalid value for 'negative'.*'clip', 'shift'.*'abs'"):
        preference_index(np.ones(3), np.linspace(0, 1, 3), negative="abs")
    with pytest.raises(ValueError, match="scores have 3 layers along axis 0 but depth has 4"):
        preference_index(np.ones(3), np.linspace(0, 1, 4))


def test_best_layers_finds_the_simulated_peaks():
    results = make_group(3)
    best = best_layers(scores_table(results))
    assert len(best) == 3 * len(ROIS)
    for _, row in best.iterrows():
        assert row["best_layer"] == PEAKS[row["target"]]
        assert row["best_depth"] == pytest.approx(PEAKS[row["target"]] / 8)
    # The scores at the best layer are the results' own numbers.
    res = results[1]
    rows = best[best["subject"] == "s02"].set_index("target")
    for j, target in enumerate(res.targets):
        k = PEAKS[target]
        assert rows.loc[target, "r"] == res.r[k, j]
        assert rows.loc[target, "p"] == res.pvalues[k, j]
        assert rows.loc[target, "r_last"] == res.r[-1, j]
        assert rows.loc[target, "gain_over_last"] == pytest.approx(res.r[k, j] - res.r[-1, j])
        assert rows.loc[target, "gain_over_baseline"] == pytest.approx(res.r[k, j] - res.baseline["r"][j])
        assert rows.loc[target, "ceiling_fraction"] == pytest.approx(res.r[k, j] / res.noise_ceiling[j])
    # The peaked profiles put the preference index near the peak (within one layer).
    assert np.all(np.abs(best["preference_index"] - best["best_depth"]) < 1 / 8 + 0.1)


def test_best_layers_ties_nan_and_order():
    table = pd.DataFrame({
        "subject": "a",
        "layer": [2, 0, 1, 0, 1, 2],          # unsorted layers
        "target": ["x", "x", "x", "y", "y", "y"],
        "r": [0.3, 0.1, 0.3, np.nan, np.nan, np.nan],
    })
    best = best_layers(table).set_index("target")
    assert best.loc["x", "best_layer"] == 1   # tie between layers 1 and 2 -> the shallower one
    assert best.loc["x", "best_depth"] == pytest.approx(0.5)
    assert pd.isna(best.loc["y", "best_layer"]) and np.isnan(best.loc["y", "r"])
    assert list(best.index) == ["x", "y"]


def test_best_layers_on_r2_and_without_optional_columns():
    res = make_results(baseline=None, noise_ceiling=False)
    best = best_layers(scores_table(res), score="r2")
    assert "gain_over_baseline" not in best and "noise_ceiling" not in best
    assert list(best["best_layer"]) == [PEAKS[t] for t in ROIS]


def test_best_layers_bad_table():
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['r'\]"):
        best_layers(pd.DataFrame({"subject": ["a"], "layer": [0], "target": ["x"]}))
    dup = pd.DataFrame({"subject": "a", "layer": [0, 0], "target": ["x", "x"], "r": [0.1, 0.2]})
    with pytest.raises(ValueError, match="several rows for the same"):
        best_layers(dup)
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        best_layers(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['r2'\]; it needs one row per"):
        best_layers(pd.DataFrame({"subject": "a", "layer": [0], "target": ["x"], "r": [0.1]}), score="r2")


def _with_best_p(res, seed):
    """The results with p-values of the best layer corrected for the choice of layer."""
    import dataclasses

    p_best = np.random.default_rng(seed).uniform(0.01, 0.2, res.n_targets)
    return dataclasses.replace(res, pvalues_best=p_best)


def test_best_layers_report_the_p_value_corrected_for_the_layer_choice():
    """With pvalues_best, p/q at the best layer are the max-over-layers ones; the best layer's own
    stay in p_layer/q_layer; results without them fall back (p_method says which)."""
    from neuroenc.encoding.stats import fdr_bh

    corrected = _with_best_p(make_results("s01", seed=0), 1)
    np.testing.assert_allclose(corrected.qvalues_best, fdr_bh(corrected.pvalues_best))
    plain = make_results("s02", seed=1)
    for best in (best_layers(scores_table([corrected, plain])),
                 map_layers([corrected, plain], n_boot=10, n_permutations=10).best):
        one = best[best.subject == "s01"].set_index("target")
        two = best[best.subject == "s02"].set_index("target")
        for j, target in enumerate(ROIS):
            k = PEAKS[target]
            assert one.loc[target, "p"] == corrected.pvalues_best[j]
            assert one.loc[target, "q"] == corrected.qvalues_best[j]
            assert one.loc[target, "p_layer"] == corrected.pvalues[k, j]
            assert one.loc[target, "q_layer"] == corrected.qvalues[k, j]
            assert two.loc[target, "p"] == two.loc[target, "p_layer"] == plain.pvalues[k, j]
            assert two.loc[target, "q"] == plain.qvalues[k, j]
        assert set(one["p_method"]) == {"max over layers"} and set(two["p_method"]) == {"best layer only"}


def test_one_best_layer_function_everywhere():
    """The best layer and the p-value reported at it come from one function each
    (neuroenc.encoding.best), which the results, the mapping cube and the sweep share."""
    import neuroenc.encoding.results as results_module
    import neuroenc.mapping.layers as layers_module
    from neuroenc.encoding import best

    values = np.array([[0.1, np.nan, 0.2], [0.3, np.nan, 0.2], [0.2, np.nan, np.nan]])
    index, valid = best.best_index(values)
    assert index.tolist() == [1, -1, 0] and valid.tolist() == [True, False, True]
    out = best.best_pvalues(valid, np.array([0.01, np.nan, np.nan]), np.array([0.02, np.nan, np.nan]),
                            np.array([0.001, 0.5, 0.04]), np.array([0.003, 0.6, 0.05]))
    np.testing.assert_array_equal(out["p"], [0.01, 0.5, 0.04])
    np.testing.assert_array_equal(out["q"], [0.02, 0.6, 0.05])
    assert out["p_method"].tolist() == [best.P_MAX_OVER_LAYERS, best.P_BEST_LAYER_ONLY, best.P_BEST_LAYER_ONLY]
    assert results_module.best_index is best.best_index and layers_module.best_index is best.best_index
    assert layers_module.best_pvalues is best.best_pvalues and results_module.best_pvalues is best.best_pvalues
