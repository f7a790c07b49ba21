"""The report's unique contributions: the profile beyond the baseline drawn beside the raw profile."""
from __future__ import annotations

import numpy as np
import pytest
from _mapping_fixtures import make_group, make_results, make_unique_group, with_unique
from test_report_html import _parse

from neuroenc.mapping import map_layers
from neuroenc.report import make_report
from neuroenc.report.figures import plot_unique_profiles
from neuroenc.report.sections import group_mean_section


@pytest.fixture(scope="module")
def mapping():
    return map_layers(make_unique_group(), n_boot=50, n_permutations=1000, random_state=0)


def test_unique_profile_beside_the_raw_profile(mapping):
    fig = plot_unique_profiles(mapping.profiles, mapping.unique, mapping.group)
    assert [ax.get_title() for ax in fig.axes] == ["adds: raw", "adds: unique", "nothing: raw", "nothing: unique"]
    raw_ax, unique_ax = fig.axes[:2]
    u = mapping.unique[mapping.unique["target"] == "adds"]
    np.testing.assert_allclose(unique_ax.lines[0].get_ydata(), u["delta_r2"])
    np.testing.assert_allclose(raw_ax.lines[0].get_ydata(),
                               mapping.profiles[mapping.profiles["target"] == "adds"]["mean"])
    assert unique_ax.lines[1].get_xdata()[0] == pytest.approx(3 / 8)  # dashed: the unique best layer, 3
    assert raw_ax.lines[1].get_xdata()[0] == pytest.approx(6 / 8)  # the raw best layer, 6
    # the unique set is shaded: its spans cover layer 3 and not layers 0 or 8
    spans = [(p.get_x(), p.get_x() + p.get_width()) for p in unique_ax.patches]
    assert spans and any(a < 3 / 8 < b for a, b in spans)
    assert not any(a < 0 < b or a < 1 < b for a, b in spans)


def test_unique_figure_bad_input(mapping):
    with pytest.raises(ValueError, match="the unique-contribution table lacks column"):
        plot_unique_profiles(mapping.profiles, mapping.unique.drop(columns="delta_r2_low"))
    with pytest.raises(ValueError, match="no target in common"):
        plot_unique_profiles(mapping.profiles, mapping.unique.assign(target="other"))


def test_report_has_the_unique_section_only_with_unique_results(mapping, tmp_path):
    out = make_report(mapping, tmp_path / "unique.html")
    html = out.read_text(encoding="utf-8")
    page = _parse(out)
    assert "Beyond the baseline" in html and "Δr² = r²(baseline + layer) − r²(baseline), r² = r·|r|" in html
    rows = {row["target"][0]: row for row in page.tables["unique"]}
    assert rows["adds"]["unique_best_layer"][0] == "3" and rows["adds"]["best_layer"][0] == "6"
    g = mapping.group.set_index("target")
    assert float(rows["adds"]["unique_delta_r2"][1]) == g.loc["adds", "unique_delta_r2"]
    assert len(page.tables["unique-layers"]) == 2 * 9
    assert "layer 3 adds Δr²" in html  # the summary line
    assert html.count("The margins compare held-out r, which can be negative") >= 2
    plain = make_report(map_layers(make_group(4), n_boot=50, n_permutations=100), tmp_path / "plain.html")
    text = plain.read_text(encoding="utf-8")
    assert "Beyond the baseline" not in text and "unique" not in _parse(plain).tables
    assert "The margins compare held-out r, which can be negative" in text


def test_group_mean_section_draws_the_unique_profile():
    res = make_results("group", targets=("adds", "nothing"), peaks={"adds": 6, "nothing": 2},
                       provenance={"group_members": ["s01", "s02"]})
    plain = group_mean_section(res)
    assert len(plain.figures) == 1 and "Beyond the baseline" not in plain.text
    delta = np.zeros((9, 2))
    delta[4, 0] = 0.03
    in_set = np.zeros((9, 2), dtype=bool)
    in_set[4, 0] = in_set[:, 1] = True
    with_unique(res, delta, baseline=["word_rate", "sound_power"], pvalues=np.full((9, 2), 0.5),
                ci_low=delta - 0.01, ci_high=delta + 0.01, in_best_set=in_set)
    section = group_mean_section(res)
    assert len(section.figures) == 2 and "Beyond the baseline (word_rate, sound_power)" in section.text
    table = section.tables[0][1].set_index("target")
    assert table.loc["adds", "unique_best_layer"] == 4 and table.loc["adds", "unique_best_set"] == "4"
