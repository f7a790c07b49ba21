"""The best layer of each target, and the p-value reported at it: one function each.

Used wherever a best layer is chosen or reported: the sweep (``best_layer_``, ``pvalues_best``),
the statistics, the layer comparisons, :meth:`~neuroenc.encoding.EncodingResults.best`, the
mapping cube, the split-half stability and the figures.
"""
from __future__ import annotations

from typing import Any

import numpy as np

#: ``p_method`` of a best-layer p-value corrected for choosing the best layer (max over layers).
P_MAX_OVER_LAYERS = "max over layers"
#: ``p_method`` of the best layer's own p-value (no correction for the choice).
P_BEST_LAYER_ONLY = "best layer only"


def best_index(values: Any, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The index of the highest finite value along ``axis`` (``nanargmax`` that tolerates
    all-NaN slices: index -1 there), and whether each slice has one.

    Examples
    --------
    >>> best, valid = best_index(np.array([[0.1, np.nan], [0.3, np.nan]]))
    >>> best.tolist(), valid.tolist()
    ([1, -1], [True, False])
    """
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    valid = finite.any(axis=axis)
    best = np.argmax(np.where(finite, values, -np.inf), axis=axis)
    return np.where(valid, best, -1), valid


def best_pvalues(valid: Any, p_best: Any, q_best: Any, p_layer: Any, q_layer: Any) -> dict[str, np.ndarray]:
    """The p- and q-values to report at the best layer.

    ``p``, ``q``: corrected for the choice of layer (``p_best``, ``q_best``: the max over layers
    of the permutation null) where that is finite, else the best layer's own (``p_layer``,
    ``q_layer``); ``p_method`` says which (:data:`P_MAX_OVER_LAYERS` or
    :data:`P_BEST_LAYER_ONLY`). Arrays of any one shape (broadcast).
    """
    corrected = np.asarray(valid, dtype=bool) & np.isfinite(p_best)
    return {
        "p": np.where(corrected, p_best, p_layer),
        "q": np.where(corrected, q_best, q_layer),
        "p_method": np.where(corrected, P_MAX_OVER_LAYERS, P_BEST_LAYER_ONLY).astype(object),
        "p_layer": np.asarray(p_layer),
        "q_layer": np.asarray(q_layer),
    }
