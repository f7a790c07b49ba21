"""Split-half stability of the best layer across subjects.

The subjects are split at random into two halves, many times; in each half the best layer of
the mean profile is found. If the best layer were a stable property of the group, the two
halves would agree. Reported per target: how often each layer is the best of a half
(``share_best``), how often the two halves pick the same layer (``split_half_agreement``), and
the median distance between the halves' best layers, in layers and in relative depth.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from .._validation import _check_positive, _check_random_state
from ..encoding.best import best_index


def _half_best(values: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Best layer row of the mean over ``members`` (n_units,) bool -> (n_targets,), -1 if none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values[members], axis=0)
    return best_index(mean, axis=0)[0]


def split_half_stability(values: np.ndarray, layers: np.ndarray, depth: np.ndarray, targets: list[str], *,
                         n_splits: int = 500, random_state: Any = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How stable each target's best layer is across random halves of the subjects.

    Parameters
    ----------
    values : ndarray, shape (n_subjects, n_layers, n_targets)
        Each subject's score per layer and target.
    layers, depth : ndarray, shape (n_layers,)
        Layer indices and relative depths.
    targets : list of str
    n_splits : int
        Random splits into two halves (``n_subjects // 2`` and the rest).
    random_state : None | int | Generator

    Returns
    -------
    shares : DataFrame
        One row per (target, layer): ``share_best``, the share of the ``2 n_splits`` halves
        whose mean profile is best at that layer.
    summary : DataFrame
        One row per target: ``split_half_agreement`` (share of splits where both halves pick
        the same layer), ``split_half_distance`` (median absolute difference between the two
        halves' best layers, in layers) and ``split_half_depth`` (the same in relative depth),
        ``n_splits``. Empty when there are fewer than 4 subjects.
    """
    _check_positive("n_splits", n_splits, integer=True)
    values = np.asarray(values, dtype=np.float64)
    layers = np.asarray(layers)
    depth = np.asarray(depth, dtype=np.float64)
    n_s, n_l, n_t = values.shape
    cols_shares = ["target", "layer", "relative_depth", "share_best"]
    cols_summary = ["target", "split_half_agreement", "split_half_distance", "split_half_depth", "n_splits"]
    if n_s < 4:
        return pd.DataFrame(columns=cols_shares), pd.DataFrame(columns=cols_summary)
    rng = _check_random_state(random_state)
    counts = np.zeros((n_l, n_t))
    dist = np.full((n_splits, n_t), np.nan)
    ddist = np.full((n_splits, n_t), np.nan)
    cols = np.arange(n_t)
    for i in range(n_splits):
        members = np.zeros(n_s, dtype=bool)
        members[rng.permutation(n_s)[: n_s // 2]] = True
        a, b = _half_best(values, members), _half_best(values, ~members)
        ok = (a >= 0) & (b >= 0)
        np.add.at(counts, (a[ok], cols[ok]), 1)
        np.add.at(counts, (b[ok], cols[ok]), 1)
        dist[i, ok] = np.abs(layers[a[ok]] - layers[b[ok]])
        ddist[i, ok] = np.abs(depth[a[ok]] - depth[b[ok]])
    total = counts.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = counts / total
    shares = pd.DataFrame({
        "target": np.repeat(np.asarray(targets, dtype=object), n_l),
        "layer": np.tile(layers, n_t),
        "relative_depth": np.tile(depth, n_t),
        "share_best": share.T.ravel(),
    })
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        summary = pd.DataFrame({
            "target": list(targets),
            "split_half_agreement": np.nanmean(np.where(np.isfinite(dist), dist == 0, np.nan), 0),
            "split_half_distance": np.nanmedian(dist, 0),
            "split_half_depth": np.nanmedian(ddist, 0),
            "n_splits": n_splits,
        })
    return shares, summary
