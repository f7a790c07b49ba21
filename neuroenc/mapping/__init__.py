"""Which layers predict which targets: best layer, layer-preference index, profiles, brain maps.

Start from one model's results (one file per subject): :func:`map_layers` computes every
table at once; the functions below compute one each from the tidy scores table
(:func:`scores_table`).
"""
from .brainmaps import volume_image
from .collect import load_results
from .layers import best_layers, preference_index
from .profiles import layer_profiles
from .sensors import sensor_cluster_test
from .summary import LayerMapping, map_layers

__all__ = [
    "map_layers",
    "LayerMapping",
    "load_results",
    "best_layers",
    "layer_profiles",
    "preference_index",
    "volume_image",
    "sensor_cluster_test",
]

