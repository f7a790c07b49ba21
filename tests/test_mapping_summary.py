"""map_layers: every mapping table of one group, consistent with the single functions."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _mapping_fixtures import PEAKS, ROIS, make_group, make_results

from neuroenc.mapping import LayerMapping, best_layers, layer_profiles, map_layers
from neuroenc.mapping.collect import scores_table
from neuroenc.mapping.group import group_summary


def test_map_layers_matches_the_table_functions():
    results = make_group(5)
    mapping = map_layers(results, n_boot=200, n_permutations=500, random_state=0)
    assert isinstance(mapping, LayerMapping)
    assert mapping.subjects == ["s01", "s02", "s03", "s04", "s05"] and mapping.targets == list(ROIS)
    table = scores_table(results)
    pd.testing.assert_frame_equal(mapping.best, best_layers(table))
    expected_group = group_summary(table, n_permutations=500, random_state=1)
    # the same table, plus the split-half stability of the best layer (4+ subjects)
    assert set(mapping.group.columns) - set(expected_group.columns) == {
        "split_half_agreement", "split_half_distance", "split_half_depth"}
    pd.testing.assert_frame_equal(mapping.group[expected_group.columns].drop(columns=["p", "q"]),
                                  expected_group.drop(columns=["p", "q"]))
    expected_prof = layer_profiles(table, n_boot=200, random_state=2)
    np.testing.assert_allclose(mapping.profiles["mean"], expected_prof["mean"])
    assert list(mapping.group["best_layer"]) == [PEAKS[t] for t in ROIS]
    assert mapping.params["profile_unit"] == "subject"
    pd.testing.assert_frame_equal(mapping.scores(), table)


def test_map_layers_is_reproducible_with_a_seed():
    results = make_group(4)
    a = map_layers(results, n_boot=100, random_state=7)
    b = map_layers(results, n_boot=100, random_state=7)
    pd.testing.assert_frame_equal(a.profiles, b.profiles)
    pd.testing.assert_frame_equal(a.group, b.group)


def test_map_layers_one_subject_bootstraps_folds():
    res = make_results(n_folds=5)
    mapping = map_layers(res, n_boot=200)
    assert mapping.params["profile_unit"] == "fold"
    assert (mapping.profiles["unit"] == "fold").all() and (mapping.profiles["n"] == 5).all()
    assert mapping.profiles["ci_low"].notna().all()
    res.fold_r = None
    mapping = map_layers(res, n_boot=200)
    assert mapping.params["profile_unit"] == "subject" and mapping.profiles["ci_low"].isna().all()


def test_map_layers_many_targets_profile_the_mean():
    targets = [f"v{i}" for i in range(30)]
    results = make_group(3, targets=targets, peaks={t: 4 for t in targets})
    mapping = map_layers(results, n_boot=100, max_profile_targets=20)
    assert list(mapping.profiles["target"].unique()) == ["mean of 30 targets"]
    r = np.stack([res.r for res in results])
    np.testing.assert_allclose(mapping.profiles["mean"], r.mean(axis=(0, 2)))
    assert len(mapping.group) == 30


def test_summary_text():
    mapping = map_layers(make_group(3), n_boot=50, n_permutations=100)
    text = mapping.summary()
    # 3 subjects: 8 sign flips, so no layer can be reliably worse (p >= 1/8), and the text says so
    assert text.startswith("tiny-model (9 layers) on 3 subjects and 6 targets:\n- LATL: the data cannot single "
                           "out a best layer: layers 0–8 are indistinguishable from the best (layer 2)")
    assert len(text.splitlines()) == 1 + 6 + 2  # one line per target, then what the p-values test
    g = mapping.group.set_index("target")
    assert (f"r = {g.loc['LPTL', 'r']:.3f} at layer 5 vs baseline 0.050 (p = 0.12, vs baseline, across "
            "subjects)") in text
    assert "0 of 6 targets have q < 0.05" in text
    short = mapping.summary(max_targets=2)
    assert "(4 more targets)" in short


def test_map_layers_bad_input():
    with pytest.raises(ValueError, match="Invalid value for 'score'"):
        map_layers(make_results(), score="auc")
    with pytest.raises(ValueError, match="Invalid value for 'profile_unit'"):
        map_layers(make_results(), profile_unit="voxel")
    with pytest.raises(ValueError, match="resamples the CV folds of one subject, but 2 subjects"):
        map_layers(make_group(2), profile_unit="fold")
    res = make_results()
    res.fold_r2 = None
    with pytest.raises(ValueError, match="score 'r2' is not in the scores table"):
        map_layers(res, score="r2", profile_unit="fold")
