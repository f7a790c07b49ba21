"""Figures: each draws the table it is given."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _mapping_fixtures import PEAKS, ROIS, make_group
from matplotlib.figure import Figure

from neuroenc.mapping import map_layers
from neuroenc.mapping.brainmaps import surface_values
from neuroenc.report import plot_best_layers, plot_layer_profiles
from neuroenc.report.figures import (
    plot_depth_histogram,
    plot_intervention_profiles,
    plot_metric_profiles,
    plot_score_matrix,
    plot_subject_best_layers,
    plot_surface_map,
)


@pytest.fixture(scope="module")
def mapping():
    return map_layers(make_group(4), n_boot=100, n_permutations=100)


def test_plot_layer_profiles_draws_each_targets_profile(mapping):
    fig = plot_layer_profiles(mapping.profiles, mapping.group)
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == list(ROIS)
    for ax, target in zip(axes, ROIS):
        prof = mapping.profiles[mapping.profiles["target"] == target]
        line = ax.lines[0]
        np.testing.assert_allclose(line.get_ydata(), prof["mean"])
        np.testing.assert_allclose(line.get_xdata(), prof["relative_depth"])
        best_line = ax.lines[1]  # the dashed best-layer line
        assert best_line.get_xdata()[0] == pytest.approx(PEAKS[target] / 8)
    assert len(fig.axes) == 6  # 2 rows x 3 columns, all used


def test_plot_best_layers_is_labelled_with_target_names(mapping):
    fig = plot_best_layers(mapping.group)
    ax1, ax2 = fig.axes[:2]
    assert [t.get_text() for t in ax1.get_yticklabels()] == list(ROIS)
    widths = [p.get_width() for p in ax1.patches]
    np.testing.assert_allclose(widths, mapping.group["r"])
    depths = [p.get_width() for p in ax2.patches]
    np.testing.assert_allclose(depths, [PEAKS[t] / 8 for t in ROIS])


def test_plot_score_matrix_and_histograms(mapping):
    fig = plot_score_matrix(mapping.profiles)
    image = fig.axes[0].images[0].get_array()
    expected = mapping.profiles.pivot_table(index="layer", columns="target", values="mean")[list(ROIS)]
    np.testing.assert_allclose(np.asarray(image), expected.to_numpy())
    fig = plot_depth_histogram(mapping.group)
    counts = [p.get_height() for p in fig.axes[0].patches]
    assert sum(counts) == len(ROIS)
    fig = plot_subject_best_layers(mapping.best)
    assert len(fig.axes[0].collections) == len(ROIS)


def test_layer_science_figures():
    metrics = pd.DataFrame({"metric": ["a"] * 3 + ["b"] * 3, "layer": [0, 1, 2] * 2, "value": [1, 2, 3, 3, 2, 1.0]})
    fig = plot_metric_profiles(metrics)
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["a", "b"]
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), [3, 2, 1])
    np.testing.assert_allclose(fig.axes[1].lines[0].get_xdata(), [0, 0.5, 1])
    inter = pd.DataFrame({"intervention": ["intact"] * 2 + ["skip"] * 2, "target": "x", "layer": [0, 1, 0, 1],
                          "r": [0.1, 0.2, 0.0, 0.1]})
    fig = plot_intervention_profiles(inter)
    assert [line.get_label() for line in fig.axes[0].lines[:2]] == ["intact", "skip"]


def test_plot_surface_map():
    values = surface_values(np.linspace(0, 1, 20484))
    fig = plot_surface_map(values, title="depth", vmin=0, vmax=1)
    assert sum(ax.name == "3d" for ax in fig.axes) == 2


def test_figure_bad_input(mapping):
    with pytest.raises(ValueError, match=r"the profiles table lacks column\(s\) \['ci_low', 'ci_high'\]"):
        plot_layer_profiles(mapping.profiles.drop(columns=["ci_low", "ci_high"]))
    with pytest.raises(ValueError, match="the group table is empty"):
        plot_best_layers(mapping.group.iloc[:0])
    with pytest.raises(TypeError, match="must be a pandas DataFrame, got dict"):
        plot_score_matrix({"a": 1})
    with pytest.raises(ValueError, match="values must have a 'left' and/or a 'right' hemisphere"):
        plot_surface_map({"top": np.zeros(3)})
    from neuroenc.report import plot_brain_map

    with pytest.raises(ValueError, match="Invalid value for 'kind'"):
        plot_brain_map(None, kind="mosaic")
