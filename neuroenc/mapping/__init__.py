"""Which layers predict which targets: best layer, layer-preference index, profiles, brain maps.

Start from one model's results (one file per subject): :func:`map_layers` computes every
table at once; the functions below compute one each from the tidy scores table
(:func:`scores_table`).
"""
from .brainmaps import load_mesh, mapping_maps, surface_values, target_space, volume_image
from .collect import fold_table, load_results, scores_table
from .group import group_summary, sign_flip_test
from .layers import best_layers, preference_index
from .profiles import bootstrap_mean_ci, layer_profiles
from .summary import LayerMapping, group_best_table, map_layers

__all__ = [
    "LayerMapping",
    "best_layers",
    "bootstrap_mean_ci",
    "fold_table",
    "group_best_table",
    "group_summary",
    "layer_profiles",
    "load_mesh",
    "load_results",
    "map_layers",
    "mapping_maps",
    "preference_index",
    "scores_table",
    "sign_flip_test",
    "surface_values",
    "target_space",
    "volume_image",
]
