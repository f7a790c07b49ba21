"""The unique contribution of each layer beyond the baseline, mapped across subjects."""
from __future__ import annotations

import numpy as np
import pytest
from _mapping_fixtures import make_group, make_results, make_unique_group, with_unique

from neuroenc.mapping import map_layers
from neuroenc.mapping.summary import group_best_table

TARGETS = ("adds", "nothing")
N_LAYERS = 9


def test_unique_across_subjects_known_answer():
    group = make_unique_group()
    mapping = map_layers(group, n_boot=20, n_permutations=1000, random_state=0)
    g = mapping.group.set_index("target")
    values = np.stack([res.unique.delta_r2 for res in group])
    # per layer: the mean over subjects, as given
    u = mapping.unique
    assert list(u.columns[:4]) == ["target", "layer", "relative_depth", "n_subjects"]
    np.testing.assert_allclose(u[u.target == "adds"]["delta_r2"], values[:, :, 0].mean(0))
    np.testing.assert_allclose(u[u.target == "nothing"]["delta_r2"], 0.0, atol=1e-12)
    # "adds": the best layer by unique contribution is 3, not the raw best (6); exact sign flips of
    # 8 subjects, all positive: p = 1/256
    assert g.loc["adds", "best_layer"] == 6
    assert g.loc["adds", "unique_best_layer"] == 3
    assert bool(g.loc["adds", "unique_differs"]) and not bool(g.loc["adds", "unique_raw_best_in_set"])
    np.testing.assert_allclose(g.loc["adds", "unique_p"], 1 / 256)
    np.testing.assert_allclose(g.loc["adds", "unique_delta_r2"], values[:, 3, 0].mean())
    assert 0 < g.loc["adds", "unique_delta_r2_low"] < g.loc["adds", "unique_delta_r2"] < g.loc["adds",
                                                                                              "unique_delta_r2_high"]
    best_set = g.loc["adds", "unique_best_set"]
    assert "3" in best_set and "0" not in best_set and "8" not in best_set
    np.testing.assert_allclose(g.loc["adds", "unique_loso_p"], 1 / 256)
    assert g.loc["adds", "unique_baseline"] == "length, position"
    # "nothing": mean 0 at every layer, so no layer adds anything: p >= 1/2, every interval covers 0
    rows = u[u.target == "nothing"]
    assert (rows["p"] >= 0.5).all()
    assert ((rows["delta_r2_low"] <= 0) & (rows["delta_r2_high"] >= 0)).all()
    # the raw mapping is unchanged by the unique contributions
    plain = map_layers(make_group(8, targets=TARGETS, peaks={"adds": 6, "nothing": 2}), n_boot=20,
                       n_permutations=1000, random_state=0)
    assert plain.unique is None and not any(c.startswith("unique_") for c in plain.group.columns)
    shared = list(plain.group.columns)
    assert mapping.group[shared].equals(plain.group[shared])


def test_unique_in_the_summary():
    mapping = map_layers(make_unique_group(), n_boot=20, n_permutations=1000, random_state=0)
    g = mapping.group.set_index("target")
    text = mapping.summary()
    x, lo, hi = (g.loc["adds", f"unique_delta_r2{s}"] for s in ("", "_low", "_high"))
    assert (f"layer 3 adds Δr² = {x:+.4f} [{lo:+.4f}, {hi:+.4f}] beyond the baseline (length, position) "
            f"(p = 0.0039)") in text
    assert "the best layer by unique contribution differs from the raw best (6, which is not in its set)" in text
    assert ("Unique contributions: held-out Δr² = r²(baseline + layer) − r²(baseline), r² = r·|r| of the "
            "held-out predictions") in text
    # "nothing": its best layer by unique contribution is noise (p >= 1/2), and the line says so
    y, ylo, yhi, yp = (g.loc["nothing", f"unique_{c}"] for c in ("delta_r2", "delta_r2_low", "delta_r2_high", "p"))
    line = next(x for x in text.splitlines() if x.startswith("- nothing:"))
    assert line.endswith(f"; no layer adds detectably beyond the baseline (length, position): the most, layer "
                         f"{g.loc['nothing', 'unique_best_layer']}, Δr² = {y:+.4f} [{ylo:+.4f}, {yhi:+.4f}] "
                         f"(p = {yp:.2g}).")
    assert "differs from the raw best" not in line
    assert "The margins compare held-out r, which can be negative." in text
    assert "adds Δr²" not in map_layers(make_group(3), n_boot=20, n_permutations=100).summary()


def test_unique_of_one_response_uses_its_own_tests():
    res = make_results(targets=TARGETS, peaks={"adds": 6, "nothing": 2})
    delta = np.zeros((N_LAYERS, 2))
    delta[5, 0], delta[4, 0] = 0.03, 0.025
    p = np.full((N_LAYERS, 2), 0.6)
    p[5, 0], p[4, 0] = 0.001, 0.004
    in_set = np.zeros((N_LAYERS, 2), dtype=bool)
    in_set[[4, 5], 0] = True
    in_set[:, 1] = True
    with_unique(res, delta, baseline=["word_rate"], pvalues=p, ci_low=delta - 0.01, ci_high=delta + 0.01,
                in_best_set=in_set)
    table = group_best_table(res).set_index("target")
    assert table.loc["adds", "unique_best_layer"] == 5
    np.testing.assert_allclose(table.loc["adds", ["unique_delta_r2", "unique_delta_r2_low", "unique_delta_r2_high",
                                                  "unique_p"]].astype(float), [0.03, 0.02, 0.04, 0.001])
    assert table.loc["adds", "unique_best_set"] == "4–5"
    assert table.loc["nothing", "unique_best_set"] == "0–8"
    assert "unique_loso_p" not in table.columns and set(table["unique_p_method"]) == {"best layer only"}
    # with the fit's p corrected for choosing the layer (max over layers), that one is reported
    res.unique.pvalues_best = np.array([0.004, np.nan])
    table = group_best_table(res).set_index("target")
    np.testing.assert_allclose(table["unique_p"].astype(float), [0.004, 0.6])
    assert list(table["unique_p_method"]) == ["max over layers", "best layer only"]
    mapping = map_layers(res, n_boot=20, n_permutations=100)
    np.testing.assert_allclose(mapping.unique.set_index(["target", "layer"]).loc[("adds", 5), "p"], 0.001)
    # without unique contributions, the table is as before
    assert not any(c.startswith("unique_") for c in group_best_table(make_results()).columns)


def test_unique_bad_input():
    group = make_unique_group(4)
    group[2].unique = None
    with pytest.raises(ValueError, match=r"subject\(s\) \['s03'\] have no unique contributions"):
        map_layers(group, n_boot=10, n_permutations=10)
    group = make_unique_group(4)
    group[1].unique.baseline_names = ["length"]
    with pytest.raises(ValueError, match="beyond the baseline \\['length'\\] but those of subject 's01'"):
        map_layers(group, n_boot=10, n_permutations=10)
    group = make_unique_group(4)
    group[0].unique.pvalues = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"results.unique.pvalues of subject 's01' has shape \(3, 2\)"):
        map_layers(group, n_boot=10, n_permutations=10)


def test_unique_tables_are_written(tmp_path):
    import pandas as pd

    from neuroenc.pipeline.output import RunOutput, write_tables

    mapping = map_layers(make_unique_group(), n_boot=20, n_permutations=1000, random_state=0)
    written = write_tables(tmp_path / "tables", mapping, None)
    assert sorted(written) == ["best_layer_stability", "best_layers", "best_layers_per_subject", "unique_layers"]
    layers = pd.read_csv(written["unique_layers"])
    assert len(layers) == 2 * N_LAYERS
    np.testing.assert_allclose(layers["delta_r2"], mapping.unique["delta_r2"])
    best = pd.read_csv(written["best_layers"]).set_index("target")
    assert best.loc["adds", "unique_best_layer"] == 3 and best.loc["adds", "best_layer"] == 6
    plain = map_layers(make_group(4), n_boot=10, n_permutations=10)
    assert "unique_layers" not in write_tables(tmp_path / "plain", plain, None)
    # the group-mean fit's lines say what its margins compare
    res = make_results(targets=TARGETS, peaks={"adds": 6, "nothing": 2})
    table = group_best_table(res)
    out = RunOutput(config=None, features={}, results={}, report=None, group_table=table)
    assert "The margins compare held-out r" not in out.summary()  # no comparison, no margins
    table["delta_last"] = 0.1
    out = RunOutput(config=None, features={}, results={}, report=None, group_table=table)
    assert out.summary().endswith("The margins compare held-out r, which can be negative.")


def test_unique_of_many_targets_profiles_their_mean():
    targets = [f"v{i}" for i in range(30)]
    group = make_group(4, targets=targets)
    rng = np.random.default_rng(2)
    for res in group:
        with_unique(res, rng.normal(0.01, 0.005, (N_LAYERS, 30)))
    mapping = map_layers(group, n_boot=10, n_permutations=100, max_profile_targets=24)
    mean = ["mean of 30 targets"]
    assert list(mapping.unique["target"].unique()) == mean == list(mapping.profiles["target"].unique())
    values = np.stack([res.unique.delta_r2 for res in group])
    np.testing.assert_allclose(mapping.unique["delta_r2"], values.mean(axis=(0, 2)))
    assert len(mapping.group) == 30 and mapping.group["unique_best_layer"].notna().all()
    best = np.argmax(values.mean(0), axis=0)
    np.testing.assert_array_equal(mapping.group["unique_best_layer"], best)


def test_unique_score_is_said_and_must_be_one_for_all_subjects():
    group = make_unique_group()
    for res in group:
        res.unique.score = "R2"
    text = map_layers(group, n_boot=20, n_permutations=200, random_state=0).summary()
    assert "Unique contributions: held-out Δr² = R²(baseline + layer) − R²(baseline), fitted" in text
    group[0].unique.score = "squared-r"
    with pytest.raises(ValueError, match="scored differently.*same encoding.unique_score"):
        map_layers(group, n_boot=20, n_permutations=200, random_state=0)
