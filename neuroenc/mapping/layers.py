"""Best layer per target and the layer-preference index.

Definitions
-----------
Best layer
    The layer with the highest score (``r`` by default) for a target; ties go to the shallower
    layer; NaN scores are ignored; a target whose scores are all NaN has no best layer (NA).
    Reported as the layer index and as its relative depth (0 = embeddings, 1 = last layer).
Layer-preference index
    The score-weighted centre of mass of the layers' relative depths,
    ``PI = sum_l w_l d_l / sum_l w_l``. The weights come from the scores by one of:

    - ``negative="clip"`` (default): ``w_l = max(s_l, 0)``. A layer that predicts no better
      than chance (r <= 0) carries no weight; a target no layer predicts above zero has no
      index (NaN). A one-hot profile gives that layer's depth; a flat positive profile gives
      the mean depth of the layers.
    - ``negative="shift"``: ``w_l = s_l - min_l s_l``: the scores relative to the worst
      layer, which sharpens the index when every layer predicts about equally well; a
      perfectly flat profile has no index (NaN).

    NaN scores carry no weight.
Gains
    ``gain_over_last`` = best score - score of the last (deepest) layer scored;
    ``gain_over_baseline`` = best score - the baseline model's score (when there is one).
Selection bias
    The best score is the maximum over layers of noisy held-out scores, so the best-layer score
    and the gains are optimistically biased (more so with more layers and noisier targets); the
    group test of :func:`~neuroenc.mapping.group.group_summary` chooses each subject's layer from the
    other subjects and is not.
p-values at the best layer
    ``p`` and ``q`` are the encoding model's permutation p-value of the best layer's score and its
    FDR q-value, *corrected for choosing the best of the layers* when the results have
    ``pvalues_best`` (the maximum over layers of the permutation null, the same permutations for
    every layer); ``p_method`` is then ``"max over layers"``. Results without it (no
    permutations saved that way, or layers fitted apart and merged) fall back to the best
    layer's own p-value, which is not corrected (``p_method`` ``"best layer only"``).
    ``p_layer`` and ``q_layer`` always hold the best layer's own values.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .._validation import _check_option
from ..encoding.best import best_index, best_pvalues
from ..encoding.results import EncodingResults
from ._cube import ScoreCube, cube_from_table

NEGATIVE_POLICIES = ("clip", "shift")


def attach_best_pvalues(cube: ScoreCube, source: pd.DataFrame | Sequence[EncodingResults]) -> ScoreCube:
    """Add the p- and q-values corrected for the choice of layer to ``cube.target_fields``.

    ``source`` is the tidy table the cube was made from (columns ``p_best`` and ``q_best``, see
    :meth:`EncodingResults.to_frame`) or the results, one per unit (``pvalues_best``,
    ``qvalues_best``). Adds ``"p_best"`` and ``"q_best"`` of shape (n_units, n_targets), NaN for
    units without them; adds nothing when no unit has them. Returns the cube.
    """
    shape = (len(cube.units), len(cube.targets))
    if isinstance(source, pd.DataFrame):
        if "p_best" not in source.columns:
            return cube
        if cube.unit in source.columns:
            u = pd.Categorical(source[cube.unit].astype(str), categories=cube.units).codes
        else:
            u = np.zeros(len(source), dtype=int)
        t = pd.Categorical(source["target"].astype(str), categories=cube.targets).codes
        for name in ("p_best", "q_best"):
            if name in source.columns:
                arr = np.full(shape, np.nan)
                arr[u, t] = source[name].to_numpy(np.float64)
                cube.target_fields[name] = arr
        return cube
    results = list(source)
    if len(results) != shape[0]:
        raise ValueError(f"{len(results)} results for a cube of {shape[0]} {cube.unit}s; give one per {cube.unit}.")
    for name, attr in (("p_best", "pvalues_best"), ("q_best", "qvalues_best")):
        arrays = [getattr(res, attr) for res in results]
        if any(a is not None for a in arrays):
            cube.target_fields[name] = np.stack([a if a is not None else np.full(shape[1], np.nan) for a in arrays])
    return cube


def best_layer_pvalues(cube: ScoreCube, best: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
    """The p-values to report at each (unit, target)'s best layer, shape (n_units, n_targets) each.

    ``p``, ``q``: corrected for the choice of layer where the cube has ``p_best`` (finite),
    else the best layer's own; ``p_layer``, ``q_layer``: the best layer's own; ``p_method``:
    :data:`P_MAX_OVER_LAYERS` or :data:`P_BEST_LAYER_ONLY`. Empty without any p-values.
    """
    if "p" not in cube.layer_fields and "p_best" not in cube.target_fields:
        return {}
    nan = np.full(best.shape, np.nan)
    p_layer = _take_layer(cube.layer_fields["p"], best, valid) if "p" in cube.layer_fields else nan
    q_layer = _take_layer(cube.layer_fields["q"], best, valid) if "q" in cube.layer_fields else nan
    reported = best_pvalues(valid, cube.target_fields.get("p_best", nan), cube.target_fields.get("q_best", nan),
                            p_layer, q_layer)
    return {k: reported[k] for k in ("p", "q", "p_layer", "q_layer", "p_method")}


def preference_index(
    scores: np.ndarray,
    depth: np.ndarray,
    *,
    axis: int = 0,
    negative: str = "clip",
) -> np.ndarray:
    """The layer-preference index: the score-weighted centre of mass of relative depths.

    Parameters
    ----------
    scores : ndarray
        Scores with layers along ``axis`` (e.g. shape (n_layers, n_targets)).
    depth : ndarray, shape (n_layers,)
        Relative depth of each layer (0-1).
    axis : int
        The layer axis of ``scores``.
    negative : "clip" | "shift"
        How scores become weights: ``"clip"`` uses ``max(score, 0)``; ``"shift"`` uses
        ``score - min(score)`` over layers. See the module docstring.

    Returns
    -------
    index : ndarray
        ``scores`` without the layer axis; NaN where all weights are zero (or NaN).
    """
    _check_option("negative", negative, NEGATIVE_POLICIES)
    scores = np.asarray(scores, dtype=np.float64)
    depth = np.asarray(depth, dtype=np.float64).reshape(-1)
    moved = np.moveaxis(scores, axis, -1)
    if moved.shape[-1] != depth.size:
        raise ValueError(
            f"scores have {moved.shape[-1]} layers along axis {axis} but depth has {depth.size} "
            "values; pass one relative depth per layer."
        )
    if negative == "clip":
        weights = np.clip(moved, 0.0, None)
    else:
        with np.errstate(invalid="ignore"):
            lowest = np.nanmin(np.where(np.isnan(moved), np.inf, moved), axis=-1, keepdims=True)
        weights = moved - lowest
    weights = np.nan_to_num(weights, nan=0.0, posinf=0.0, neginf=0.0)
    total = weights.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        index = (weights @ depth) / total
    return np.where(total > 0, index, np.nan)


def _take_layer(arr: np.ndarray, best: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``arr[u, best[u, t], t]`` with NaN where ``valid`` is False. arr: (U, L, T); best: (U, T)."""
    picked = np.take_along_axis(arr, np.clip(best, 0, None)[:, None, :], axis=1)[:, 0, :]
    return np.where(valid, picked, np.nan)


def best_layers_from_cube(cube: ScoreCube, *, score: str = "r", negative: str = "clip") -> pd.DataFrame:
    """Best layer per (unit, target) from a :class:`ScoreCube` (see :func:`best_layers`)."""
    _check_option("negative", negative, NEGATIVE_POLICIES)
    values = cube.values(score)
    n_u, n_l, n_t = values.shape
    best, valid = best_index(values, axis=1)
    out = {
        cube.unit: np.repeat(np.asarray(cube.units, dtype=object), n_t),
        "target": np.tile(np.asarray(cube.targets, dtype=object), n_u),
        "best_layer": pd.array(
            np.where(valid, cube.layers[np.clip(best, 0, None)], np.nan).ravel(), dtype="Int64"
        ),
        "best_depth": np.where(valid, cube.depth[np.clip(best, 0, None)], np.nan).ravel(),
    }
    for name in ("r", "r2"):
        if name in cube.layer_fields:
            out[name] = _take_layer(cube.layer_fields[name], best, valid).ravel()
    for name, value in best_layer_pvalues(cube, best, valid).items():
        out[name] = value.ravel()
    if "alpha" in cube.layer_fields:
        out["alpha"] = _take_layer(cube.layer_fields["alpha"], best, valid).ravel()
    best_score = _take_layer(values, best, valid)
    last = values[:, -1, :]
    out["last_layer"] = np.full(n_u * n_t, int(cube.layers[-1]))
    out[f"{score}_last"] = last.ravel()
    out["gain_over_last"] = (best_score - last).ravel()
    base = cube.baseline(score)
    if base is not None:
        out[f"baseline_{score}"] = base.ravel()
        out["gain_over_baseline"] = (best_score - base).ravel()
    if "noise_ceiling" in cube.target_fields:
        ceiling = cube.target_fields["noise_ceiling"]
        out["noise_ceiling"] = ceiling.ravel()
        if score == "r":
            with np.errstate(invalid="ignore", divide="ignore"):
                out["ceiling_fraction"] = np.where(ceiling > 0, best_score / ceiling, np.nan).ravel()
    out["preference_index"] = preference_index(values, cube.depth, axis=1, negative=negative).ravel()
    return pd.DataFrame(out)


def best_layers(table: pd.DataFrame, *, score: str = "r", negative: str = "clip") -> pd.DataFrame:
    """Best layer, gains and preference index per (subject, target).

    Parameters
    ----------
    table : DataFrame
        The tidy scores table (:func:`~neuroenc.mapping.collect.scores_table`): one row per
        (subject, layer, target) with at least ``layer``, ``target`` and the ``score`` column.
    score : str
        The score to maximise (``"r"`` or ``"r2"``).
    negative : "clip" | "shift"
        How the preference index treats negative scores (see :func:`preference_index`).

    Returns
    -------
    best : DataFrame
        One row per (subject, target): ``best_layer`` (index), ``best_depth`` (0-1), the
        scores at the best layer (``r``, ``r2``, ``alpha`` when present), ``p`` and ``q`` (with
        ``p_method``, ``p_layer``, ``q_layer``; see the module docstring: corrected for the
        choice of layer when the results allow),
        ``last_layer``, ``<score>_last``, ``gain_over_last``, ``baseline_<score>`` and
        ``gain_over_baseline`` (with a baseline), ``noise_ceiling`` and ``ceiling_fraction``
        (best r / ceiling, with a ceiling) and ``preference_index``.
    """
    cube = attach_best_pvalues(cube_from_table(table, score=score), table)
    return best_layers_from_cube(cube, score=score, negative=negative)
