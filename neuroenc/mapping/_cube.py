"""Scores as arrays (unit × layer × target), built from a tidy table or from results objects.

The public functions take tidy tables (as the house style asks) and return tidy tables; in
between, the maths runs on these arrays, so that a results set with many voxels never needs a
row per (subject, layer, voxel).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .._validation import _preview
from ..encoding.results import EncodingResults
from .collect import check_group, subject_labels

#: Columns of the tidy table that vary with the layer, and those that only vary with the target.
LAYER_FIELDS = ("r", "r2", "p", "q", "alpha")
TARGET_FIELDS = ("baseline_r", "baseline_r2", "baseline_p", "noise_ceiling")


@dataclass
class ScoreCube:
    """Scores of several units (subjects or folds) as arrays.

    ``layer_fields[name]`` has shape (n_units, n_layers, n_targets); ``target_fields[name]`` has
    shape (n_units, n_targets). Layers are sorted by index; targets keep their given order.
    """

    unit: str
    units: list[str]
    layers: np.ndarray
    depth: np.ndarray
    targets: list[str]
    layer_fields: dict[str, np.ndarray] = field(default_factory=dict)
    target_fields: dict[str, np.ndarray] = field(default_factory=dict)
    model: str | None = None
    #: Each layer's unique contribution beyond a baseline (:mod:`neuroenc.mapping.unique`), as
    #: (n_units, n_layers, n_targets) arrays by field (``delta_r2``, ``delta_r``, and the
    #: results' own ``pvalues``, ``ci_low``, ``ci_high``, ``in_best_set``); empty without one.
    unique: dict[str, np.ndarray] = field(default_factory=dict)
    #: The names of the baseline regressors the unique contributions are beyond.
    unique_baseline: list[str] = field(default_factory=list)
    #: What the unique contributions' r² is (:data:`~neuroenc.encoding._joint.UNIQUE_SCORES`).
    unique_score: str = "squared-r"

    def values(self, score: str) -> np.ndarray:
        """The (n_units, n_layers, n_targets) array of one score."""
        if score not in self.layer_fields:
            raise ValueError(
                f"score {score!r} is not in the scores table; available: "
                f"{_preview(sorted(self.layer_fields))}."
            )
        return self.layer_fields[score]

    def baseline(self, score: str) -> np.ndarray | None:
        """The (n_units, n_targets) baseline of a score, or None."""
        return self.target_fields.get(f"baseline_{score}")


def cube_from_table(table: pd.DataFrame, *, score: str = "r", unit: str = "subject") -> ScoreCube:
    """Pivot a tidy table (one row per unit, layer, target) into a :class:`ScoreCube`."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"the scores table must be a pandas DataFrame, got {type(table).__name__}.")
    if unit not in table.columns and unit == "subject":
        table = table.assign(subject="1")
    missing = [c for c in (unit, "layer", "target", score) if c not in table.columns]
    if missing:
        raise ValueError(
            f"the scores table lacks column(s) {_preview(missing)}; it needs one row per "
            f"({unit}, layer, target) with a {score!r} column (see scores_table())."
        )
    if table.empty:
        raise ValueError("the scores table is empty.")
    units = pd.unique(table[unit].astype(str))
    layers = np.sort(pd.unique(table["layer"].astype(np.int64)))
    targets = pd.unique(table["target"].astype(str))
    u = pd.Categorical(table[unit].astype(str), categories=units).codes
    li = np.searchsorted(layers, table["layer"].to_numpy(np.int64))
    t = pd.Categorical(table["target"].astype(str), categories=targets).codes
    flat = (u.astype(np.int64) * layers.size + li) * targets.size + t
    if np.unique(flat).size != flat.size:
        raise ValueError(
            f"the scores table has several rows for the same ({unit}, layer, target); "
            f"pass one model's results, one row per {unit}, layer and target."
        )
    shape = (units.size, layers.size, targets.size)
    if "relative_depth" in table.columns:
        depth = np.full(layers.size, np.nan)
        depth[li] = table["relative_depth"].to_numpy(np.float64)
    else:
        depth = layers / max(int(layers.max()), 1)
    cube = ScoreCube(
        unit=unit,
        units=[str(x) for x in units],
        layers=layers,
        depth=depth,
        targets=[str(x) for x in targets],
        model=str(table["model"].iloc[0]) if "model" in table.columns else None,
    )
    for name in LAYER_FIELDS + ((score,) if score not in LAYER_FIELDS else ()):
        if name in table.columns:
            arr = np.full(shape, np.nan)
            arr[u, li, t] = table[name].to_numpy(np.float64)
            cube.layer_fields[name] = arr
    for name in TARGET_FIELDS:
        if name in table.columns:
            arr = np.full(shape[::2], np.nan)
            arr[u, t] = table[name].to_numpy(np.float64)
            cube.target_fields[name] = arr
    return cube


def cube_from_results(results: Sequence[EncodingResults]) -> ScoreCube:
    """Stack one group of results (one per subject) into a :class:`ScoreCube`."""
    check_group(results)
    first = results[0]
    order = np.argsort(first.layers, kind="stable")
    cube = ScoreCube(
        unit="subject",
        units=subject_labels(results),
        layers=first.layers[order],
        depth=first.relative_depth[order],
        targets=list(first.targets),
        model=first.model,
    )
    n_l, n_t = first.r.shape
    for name, attr in (("r", "r"), ("r2", "r2"), ("p", "pvalues"), ("q", "qvalues"), ("alpha", "alphas")):
        arrays = [getattr(res, attr) for res in results]
        if all(a is None for a in arrays):
            continue
        cube.layer_fields[name] = np.stack(
            [a[order] if a is not None else np.full((n_l, n_t), np.nan) for a in arrays]
        )
    for name in ("r", "r2", "pvalues"):
        arrays = [res.baseline.get(name) for res in results]
        if any(a is not None for a in arrays):
            key = "baseline_p" if name == "pvalues" else f"baseline_{name}"
            cube.target_fields[key] = np.stack([a if a is not None else np.full(n_t, np.nan) for a in arrays])
    arrays = [res.noise_ceiling for res in results]
    if any(a is not None for a in arrays):
        cube.target_fields["noise_ceiling"] = np.stack(
            [a if a is not None else np.full(n_t, np.nan) for a in arrays]
        )
    cube.unique, cube.unique_baseline = unique_arrays(results, cube.units, order, n_t)
    cube.unique_score = unique_score_of(results, cube.units)
    return cube


#: The (n_layers, n_targets) fields of ``results.unique`` that the mapping reads.
UNIQUE_FIELDS = ("delta_r2", "delta_r", "pvalues", "ci_low", "ci_high", "in_best_set")


def _field(unique: Any, name: str) -> Any:
    """A field of ``results.unique`` (an object with attributes, or a mapping)."""
    return unique.get(name) if isinstance(unique, Mapping) else getattr(unique, name, None)


def unique_score_of(results: Sequence[Any], units: Sequence[str]) -> str:
    """What the results' unique contributions' r² is (one for all; ``"squared-r"`` without any).

    Raises
    ------
    ValueError
        When the results' unique contributions have different scores.
    """
    scores = {s: str(_field(u, "score") or "squared-r") for s, u in
              zip(units, (getattr(res, "unique", None) for res in results)) if u is not None}
    if len(set(scores.values())) > 1:
        raise ValueError(f"the unique contributions were scored differently ({scores}); refit them with the "
                         "same encoding.unique_score.")
    return next(iter(scores.values()), "squared-r")


def unique_arrays(results: Sequence[Any], units: Sequence[str], order: np.ndarray, n_targets: int
                  ) -> tuple[dict[str, np.ndarray], list[str]]:
    """The unique contributions of a group of results as (n_units, n_layers, n_targets) arrays,
    layers in ``order``, and the baseline's names; ``({}, [])`` when no result has them.

    Raises
    ------
    ValueError
        When some results have unique contributions and others do not, or when their baselines
        differ (their Δr² would not be beyond the same thing).
    """
    uniques = [getattr(res, "unique", None) for res in results]
    if all(u is None for u in uniques):
        return {}, []
    lacking = [s for s, u in zip(units, uniques) if u is None]
    if lacking:
        having = [s for s, u in zip(units, uniques) if u is not None]
        raise ValueError(f"subject(s) {lacking} have no unique contributions (no baseline fitted) but "
                         f"{having} have; refit them all with the same encoding.baseline, or none.")
    names = [list(_field(u, "baseline_names") or _field(u, "baseline") or []) for u in uniques]
    for s, n in zip(units, names):
        if n != names[0]:
            raise ValueError(f"the unique contributions of subject {s!r} are beyond the baseline {n} but those "
                             f"of subject {units[0]!r} beyond {names[0]}; refit them with the same baseline.")
    out: dict[str, np.ndarray] = {}
    for name in UNIQUE_FIELDS:
        arrays = [_field(u, name) for u in uniques]
        for s, a in zip(units, arrays):
            if a is not None and np.shape(a) != (order.size, n_targets):
                raise ValueError(f"results.unique.{name} of subject {s!r} has shape {np.shape(a)}; expected "
                                 f"(n_layers, n_targets) = {(order.size, n_targets)}, as its scores.")
        if any(a is None for a in arrays):
            continue
        stacked = np.stack([np.asarray(a)[order] for a in arrays])
        out[name] = stacked.astype(bool) if name == "in_best_set" else stacked.astype(np.float64)
    best = [_field(u, "pvalues_best") for u in uniques]  # one response: p corrected for the choice
    if all(b is not None for b in best):
        for s, b in zip(units, best):
            if np.shape(b) != (n_targets,):
                raise ValueError(f"results.unique.pvalues_best of subject {s!r} has shape {np.shape(b)}; expected "
                                 f"(n_targets,) = ({n_targets},).")
        out["pvalues_best"] = np.stack([np.asarray(b, dtype=np.float64) for b in best])
    return out, [str(x) for x in names[0]]


def cube_from_folds(results: EncodingResults, subject: str | None = None) -> ScoreCube:
    """The outer-CV folds of one subject's results as units of a :class:`ScoreCube`."""
    label = subject if subject is not None else (str(results.subject) if results.subject else "1")
    if results.fold_r is None:
        raise ValueError(
            f"results of subject {label!r} have no fold scores (/fold_scores/r); "
            "bootstrap over subjects instead (unit='subject')."
        )
    order = np.argsort(results.layers, kind="stable")
    cube = ScoreCube(
        unit="fold",
        units=[str(i) for i in range(results.fold_r.shape[0])],
        layers=results.layers[order],
        depth=results.relative_depth[order],
        targets=list(results.targets),
        model=results.model,
    )
    cube.layer_fields["r"] = results.fold_r[:, order]
    if results.fold_r2 is not None:
        cube.layer_fields["r2"] = results.fold_r2[:, order]
    return cube


def unit_columns(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Values of units (axis 0: subjects, folds...) as columns, for statistics across units.

    Returns ``(flat, finite, data, count)``: the values as float64, shape (n_units, n_columns);
    which are finite; the values with 0 in place of NaN/inf (so that sums skip them); and each
    column's number of finite values.

    Raises
    ------
    ValueError
        If there is no unit along axis 0.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim < 1 or values.shape[0] == 0:
        raise ValueError(f"'values' must have at least one unit along axis 0, got shape {values.shape}.")
    flat = values.reshape(values.shape[0], -1)
    finite = np.isfinite(flat)
    return flat, finite, np.where(finite, flat, 0.0), finite.sum(0)
