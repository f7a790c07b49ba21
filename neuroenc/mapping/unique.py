"""What each layer adds beyond a baseline, mapped: :func:`unique_layers` and :func:`unique_columns`.

The fits store, per layer and target, the held-out unique contribution of the layer beyond the
baseline regressors (``results.unique``: ``delta_r2 = R²(baseline + layer) − R²(baseline)`` on
the same folds, and its ``delta_r``; see :func:`~neuroenc.encoding.fit_encoding`). This module
maps them (stacked by :func:`~neuroenc.mapping._cube.unique_arrays`) as the raw scores are mapped:

Several subjects
    Per layer and target, the mean Δr² over subjects, its one-sided sign-flip p-value (H1: the
    layer adds variance, mean Δr² > 0; :func:`~neuroenc.mapping.group.sign_flip_test`, as the
    group test of the raw scores) and its sign-flip interval
    (:func:`~neuroenc.encoding.compare.sign_flip_interval`). The best layer by unique
    contribution is that of the mean Δr² profile (:func:`~neuroenc.encoding.best.best_index`)
    and its set holds the layers not reliably worse than it, tested against the other layers by
    the same sign flips (:func:`~neuroenc.encoding.compare.compare_layers_across_units`, as for
    the raw best-layer sets). The best layer is chosen on the same data, so its Δr² and p are
    optimistic; ``unique_loso_effect`` and ``unique_loso_p`` choose each subject's layer
    leave-one-subject-out (the best of the other subjects' mean Δr² profile) and are not.
One response (one subject, or the group-mean fit)
    The fit's own p-values, intervals and best-layer set of the unique contribution (residual
    draws, as the layer comparisons).

Without unique contributions (no baseline fitted) nothing is added.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..encoding.best import P_BEST_LAYER_ONLY, best_index, best_pvalues
from ..encoding.compare import (
    DEFAULT_ALPHA,
    compare_layers_across_units,
    format_layer_set,
    sign_flip_interval,
    sign_flips,
)
from .group import loso_best, sign_flip_test


def unique_layers(cube: Any, *, n_permutations: int = 10000, ci: float = 0.95,
                  compare_alpha: float = DEFAULT_ALPHA, random_state: Any = None
                  ) -> tuple[pd.DataFrame, dict[str, np.ndarray]] | tuple[None, None]:
    """Per layer and target, the unique contribution beyond the baseline (see the module docstring).

    Parameters
    ----------
    cube : ScoreCube
        With ``cube.unique`` (from :func:`~neuroenc.mapping._cube.cube_from_results`).
    n_permutations : int
        Sign flips of the per-layer tests (several subjects).
    ci : float
        Level of the intervals (several subjects; one: the fit's own).
    compare_alpha : float
        Level of the best-layer set (several subjects; one: the fit's own).
    random_state : None | int | numpy Generator

    Returns
    -------
    table : DataFrame | None
        One row per (target, layer): ``target``, ``layer``, ``relative_depth``, ``n_subjects``,
        ``delta_r2`` (mean over subjects), ``delta_r2_low``/``_high`` (interval), ``p`` (one-sided,
        Δr² > 0), ``delta_r`` (mean), ``in_best_set`` (the set of best layers by unique
        contribution); None without unique contributions.
    arrays : dict of str -> ndarray (n_layers, n_targets) | None
        The same as arrays, with ``best`` (n_targets,): the best layer's row (-1 where none).
    """
    if not cube.unique or "delta_r2" not in cube.unique:
        return None, None
    values = cube.unique["delta_r2"]
    n_s, n_l, n_t = values.shape
    if n_s >= 2:
        mean, p = sign_flip_test(values, n_permutations=n_permutations, alternative="greater",
                                 random_state=random_state)
        signs = sign_flips(n_s, min(n_permutations, 2000), random_state)
        _, low, high = sign_flip_interval(values.reshape(n_s, -1), signs[0], ci)
        low, high = low.reshape(n_l, n_t), high.reshape(n_l, n_t)
        comparison = compare_layers_across_units(values, alpha=compare_alpha, ci=ci, signs=signs)
        in_set, best = comparison.in_best_set, comparison.best
    else:
        mean = values[0]
        best = best_index(mean, axis=0)[0]
        nan = np.full((n_l, n_t), np.nan)
        p = cube.unique["pvalues"][0] if "pvalues" in cube.unique else nan
        low = cube.unique["ci_low"][0] if "ci_low" in cube.unique else nan
        high = cube.unique["ci_high"][0] if "ci_high" in cube.unique else nan
        if "in_best_set" in cube.unique:
            in_set = cube.unique["in_best_set"][0]
        else:  # no draws: the set is the best layer alone
            in_set = np.zeros((n_l, n_t), dtype=bool)
            in_set[np.clip(best, 0, None)[best >= 0], np.flatnonzero(best >= 0)] = True
    delta_r = cube.unique["delta_r"].mean(0) if "delta_r" in cube.unique else np.full((n_l, n_t), np.nan)
    arrays = {"delta_r2": mean, "delta_r2_low": low, "delta_r2_high": high, "p": p, "delta_r": delta_r,
              "in_best_set": in_set, "best": best}
    ti, li = np.meshgrid(np.arange(n_t), np.arange(n_l), indexing="ij")  # target-major rows
    table = pd.DataFrame({
        "target": np.asarray(cube.targets, dtype=object)[ti.ravel()],
        "layer": cube.layers[li.ravel()],
        "relative_depth": cube.depth[li.ravel()],
        "n_subjects": n_s,
        **{name: np.asarray(arrays[name]).T.ravel() for name in ("delta_r2", "delta_r2_low", "delta_r2_high", "p",
                                                                  "delta_r", "in_best_set")},
    })
    return table, arrays


def unique_columns(cube: Any, arrays: dict[str, np.ndarray], raw_best_layer: Any,
                   n_permutations: int = 10000, random_state: Any = None) -> dict[str, np.ndarray]:
    """Per target: the best layer by unique contribution, its Δr² with interval and p, its set,
    and whether it differs from the raw best layer (columns of the group table).

    Returns a dict of (n_targets,) arrays: ``unique_best_layer``, ``unique_delta_r2``,
    ``unique_delta_r2_low``/``_high``, ``unique_p`` (its p at that layer; for one response
    corrected for choosing the layer where the fit has ``pvalues_best``) and ``unique_p_method``
    (which, as ``p_method``), ``unique_best_set`` (text, e.g.
    ``"12–14"``), ``unique_n_in_set``, ``unique_differs`` (the best layer by unique
    contribution is not the raw best layer), ``unique_raw_best_in_set`` (the raw best layer is
    in the unique set), ``unique_baseline`` (the baseline's names); with several subjects also
    ``unique_loso_effect`` and ``unique_loso_p`` (leave-one-subject-out choice of the layer).
    """
    best = arrays["best"]
    ok = best >= 0
    n_t = best.size
    cols = np.arange(n_t)
    safe = np.clip(best, 0, None)
    layers = cube.layers
    in_set = arrays["in_best_set"]
    raw = pd.array(raw_best_layer, dtype="Int64")
    raw_ok = ~pd.isna(raw)
    raw_vals = np.where(raw_ok, raw.to_numpy(dtype=np.float64, na_value=np.nan), np.nan)
    best_layer = np.where(ok, layers[safe], np.nan)
    out: dict[str, Any] = {
        "unique_best_layer": pd.array(best_layer, dtype="Int64"),
        **{f"unique_{name}": np.where(ok, np.asarray(arrays[name])[safe, cols], np.nan)
           for name in ("delta_r2", "delta_r2_low", "delta_r2_high")},
        "unique_p": np.where(ok, np.asarray(arrays["p"], dtype=np.float64)[safe, cols], np.nan),
        "unique_p_method": np.full(n_t, P_BEST_LAYER_ONLY, dtype=object),
        "unique_best_set": np.array([format_layer_set(layers[in_set[:, j]]) if ok[j] else "" for j in cols],
                                    dtype=object),
        "unique_n_in_set": np.where(ok, in_set.sum(0), 0),
        "unique_differs": ok & raw_ok & (best_layer != raw_vals),
        "unique_raw_best_in_set": np.array([bool(raw_ok[j] and ok[j] and int(raw_vals[j]) in set(layers[in_set[:, j]]))
                                            for j in cols]),
        "unique_baseline": np.full(n_t, ", ".join(cube.unique_baseline), dtype=object),
        "unique_score": np.full(n_t, cube.unique_score, dtype=object),
    }
    values = cube.unique["delta_r2"]
    n_s = values.shape[0]
    if n_s == 1 and "pvalues_best" in cube.unique:  # the fit's p corrected for the choice, where it has one
        picked = best_pvalues(ok, cube.unique["pvalues_best"][0], np.full(n_t, np.nan), out["unique_p"],
                              np.full(n_t, np.nan))
        out["unique_p"], out["unique_p_method"] = picked["p"], picked["p_method"]
    if n_s >= 2:
        loso, valid = loso_best(values)
        picked = np.where(valid, values[np.arange(n_s)[:, None], np.clip(loso, 0, None), cols[None, :]], np.nan)
        out["unique_loso_effect"], out["unique_loso_p"] = sign_flip_test(
            picked, n_permutations=n_permutations, alternative="greater", random_state=random_state)
    return out


def describe_unique(row: Any, alpha: float = DEFAULT_ALPHA) -> str | None:
    """The unique-contribution clause of a target's summary line, or None without one:
    "layer L adds Δr² = x [low, high] beyond the baseline (names)", its p and set, and whether
    the best layer by unique contribution differs from the raw best.

    Where even the best layer's Δr² is not reliably above 0 (its p above ``alpha``, or without
    a p its interval includes 0), it says that no layer adds detectably beyond the baseline and
    does not compare that best layer, chosen from noise, with the raw best.
    """
    layer = row.get("unique_best_layer") if hasattr(row, "get") else None
    if layer is None or pd.isna(layer):
        return None
    x, lo, hi = (float(row.get(f"unique_delta_r2{s}", np.nan)) for s in ("", "_low", "_high"))
    interval = f" [{lo:+.4f}, {hi:+.4f}]" if np.isfinite(lo) and np.isfinite(hi) else ""
    names = row.get("unique_baseline") or "its regressors"
    p = float(row.get("unique_p", np.nan))
    p_text = f" (p = {p:.2g})" if np.isfinite(p) else ""
    reliable = p <= alpha if np.isfinite(p) else (not interval or lo > 0)
    if not reliable:
        return (f"no layer adds detectably beyond the baseline ({names}): the most, layer {int(layer)}, "
                f"Δr² = {x:+.4f}{interval}{p_text}")
    text = f"layer {int(layer)} adds Δr² = {x:+.4f}{interval} beyond the baseline ({names}){p_text}"
    best_set = row.get("unique_best_set")
    if isinstance(best_set, str) and best_set and best_set != str(int(layer)):
        text += f", set of best layers by unique contribution {best_set}"
    raw = row.get("best_layer")
    if raw is not None and not pd.isna(raw):
        if int(raw) == int(layer):
            text += "; it is also the raw best layer"
        else:
            inside = bool(row.get("unique_raw_best_in_set", False))
            text += (f"; the best layer by unique contribution differs from the raw best ({int(raw)}"
                     + (", which is in its set)" if inside else ", which is not in its set)"))
    return text


__all__ = ["describe_unique", "unique_columns", "unique_layers"]
