"""Margins at chance: a target whose best layer is not above chance gets no margins as evidence."""
import numpy as np
import pytest

from neuroenc.encoding import fit_encoding
from neuroenc.encoding.compare import chance_mask, describe_at_chance, verdicts
from neuroenc.encoding.simulate import simulate_layers
from neuroenc.mapping import map_layers
from neuroenc.mapping.summary import describe_target
from neuroenc.report.html import _with_ci_text

TARGETS = ["strong0", "strong1", "noise0", "noise1"]


def _columns(n):
    """margin_columns-shaped columns with the margins of the issue's pure-noise target."""
    return {"best_set": np.array(["0–2"] * n, dtype=object), "set_span": np.full(n, 1.0),
            "last_layer": np.full(n, 2), "mid_layer": np.full(n, 1),
            "delta_last": np.full(n, 0.235), "delta_last_low": np.full(n, 0.020),
            "delta_last_high": np.full(n, 0.467), "delta_mid": np.full(n, 0.1),
            "delta_mid_low": np.full(n, -0.05), "delta_mid_high": np.full(n, 0.2)}


def test_verdicts_at_chance_give_no_margin():
    cols = _columns(3)
    out = verdicts([0, 0, 0], cols, np.array([True, True, False]), p_chance=[0.84, 0.001, 0.84])
    assert out[0] == describe_at_chance(0, 0.84)
    assert out[0].startswith("at chance: even the best layer (0) does not predict above chance (p = 0.84")
    assert "Δr" not in out[0] and "+0.235" not in out[0]
    # above chance: the margins as before (identical to the call without p-values)
    assert out[1] == verdicts([0], _columns(1), np.array([True]))[0]
    assert "vs the last layer Δr = +0.235 [+0.020, +0.467]" in out[1]
    assert out[2] == "no finite score"
    # NaN p (not tested): nothing is known, the margins stay; alpha moves the line
    assert "Δr" in verdicts([0], _columns(1), np.array([True]), p_chance=[np.nan])[0]
    assert "Δr" in verdicts([0], _columns(1), np.array([True]), p_chance=[0.84], alpha=0.9)[0]
    np.testing.assert_array_equal(chance_mask([0.84, 0.05, 0.01, np.nan]), [True, False, False, False])


def _fit():
    layers, Y = simulate_layers(n_samples=240, n_targets=2, noise=(0.5, 1.0, np.inf), signal=1.5, random_state=3)
    noise = np.random.default_rng(11).standard_normal((Y.shape[0], 2))
    return fit_encoding(layers, np.column_stack([Y, noise]), n_permutations=60, targets=TARGETS)


def test_pure_noise_target_reads_at_chance_and_a_strong_one_is_unchanged():
    res = _fit()
    table = res.best().set_index("target")
    assert (table.loc[["noise0", "noise1"], "p"] > 0.05).all()
    assert (table.loc[["strong0", "strong1"], "p"] < 0.05).all()
    np.testing.assert_array_equal(table["at_chance"].to_numpy(bool), [False, False, True, True])
    for t in ("noise0", "noise1"):
        assert table.loc[t, "verdict"].startswith("at chance: even the best layer")
        assert "Δr" not in table.loc[t, "verdict"]
        # the margins stay in the table as numbers (data), but not as words
        assert np.isfinite(table.loc[t, "delta_last"])
    # strong targets: the same verdict as without the chance check
    from neuroenc.encoding.compare import margin_columns
    from neuroenc.encoding.results import best_index

    best, valid = best_index(res.r)
    margins = margin_columns(res.comparison, res.r, res.layers, res.relative_depth)
    plain = verdicts(res.layers[best], margins, valid, res.comparison.ci)
    assert list(table.loc[["strong0", "strong1"], "verdict"]) == plain[:2]
    assert all("Δr" in v or "the best is the last layer" in v for v in plain[:2])
    # the summary line of a noise target prints no margin; a strong one does
    lines = {line.split(":")[0][2:]: line for line in map_layers(res, n_boot=50).summary().splitlines()
             if line.startswith("- ")}
    assert "at chance" in lines["noise0"] and "Δr" not in lines["noise0"] and "[+" not in lines["noise0"]
    assert "vs chance" in lines["noise0"]
    assert "at chance" not in lines["strong0"] and "Δr" in lines["strong0"]
    # the report's interval column says so too
    shown = _with_ci_text(table.reset_index()).set_index("target")
    assert shown.loc["noise0", "delta_last_ci"] == "at chance"
    assert shown.loc["strong0", "delta_last_ci"].startswith("[")


def test_describe_target_takes_the_verdict_as_is():
    row = {"target": "x", "best_layer": 2, "verdict": describe_at_chance(2, 0.84), "r": -0.01, "p": 0.84}
    text = describe_target(row)
    assert text.startswith("x: at chance:") and "Δr" not in text and "(p = 0.84, vs chance)" in text


@pytest.mark.parametrize("p", [[0.84, 0.1], [0.5]])
def test_verdicts_p_chance_length_must_match(p):
    with pytest.raises(ValueError, match="p_chance has"):
        verdicts([0, 0, 0], _columns(3), np.ones(3, bool), p_chance=p)


def test_fit_command_lines_print_no_margin_at_chance():
    from neuroenc.commands.fit import best_lines

    lines = {line.split()[0]: line for line in best_lines(_fit()).splitlines() if line.strip().split()[0] in TARGETS}
    assert "at chance" in lines["noise0"] and "vs last" not in lines["noise0"]
    assert "at chance" not in lines["strong0"]
