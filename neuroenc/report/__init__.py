"""The self-contained HTML report and its figures.

:func:`make_report` maps one model's results (:func:`neuroenc.mapping.map_layers`) and writes
one HTML file with everything embedded; :class:`ReportSection` lets other analyses add their
own sections (:func:`layer_science_section` for the layer-science tables).
"""
from .figures import plot_best_layers, plot_brain_map, plot_layer_profiles
from .html import make_report
from .sections import ReportSection
from .sensors import plot_sensor_topomaps

__all__ = [
    "make_report",
    "ReportSection",
    "plot_layer_profiles",
    "plot_brain_map",
    "plot_best_layers",
    "plot_sensor_topomaps",
]

