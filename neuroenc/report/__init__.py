"""The self-contained HTML report and its figures.

:func:`make_report` maps one model's results (:func:`neuroenc.mapping.map_layers`) and writes
one HTML file with everything embedded; :class:`ReportSection` lets other analyses add their
own sections (:func:`layer_science_section` for the layer-science tables).
"""
from .figures import (
    plot_best_layer_stability,
    plot_best_layers,
    plot_brain_map,
    plot_depth_histogram,
    plot_intervention_profiles,
    plot_layer_profiles,
    plot_metric_profiles,
    plot_score_matrix,
    plot_subject_best_layers,
    plot_surface_map,
)
from .html import format_number, make_report, render_report
from .sections import (
    ReportSection,
    group_mean_section,
    intervention_effects,
    layer_science_section,
    metric_brain_correlations,
)

__all__ = [
    "ReportSection",
    "format_number",
    "group_mean_section",
    "intervention_effects",
    "layer_science_section",
    "make_report",
    "metric_brain_correlations",
    "plot_best_layer_stability",
    "plot_best_layers",
    "plot_brain_map",
    "plot_depth_histogram",
    "plot_intervention_profiles",
    "plot_layer_profiles",
    "plot_metric_profiles",
    "plot_score_matrix",
    "plot_subject_best_layers",
    "plot_surface_map",
    "render_report",
]
