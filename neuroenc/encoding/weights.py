"""Saved encoders: each layer's ridge weights refitted on all rows, and what prediction needs.

With ``save_weights=True`` (:func:`~neuroenc.encoding.fit_encoding`, ``encoding.save_weights``
in a run config, ``--save-weights`` on the command line), every layer is refitted on all rows
of the design with each target's penalty chosen by CV over the outer splits (the refit of
:class:`~neuroenc.encoding.LayerSweep`, :func:`~neuroenc.encoding._ridge.refit_layer`), and the
results keep, per layer and target:

- **primal weights** ``W`` (n_columns × n_targets: the design's columns, delay-major), when they
  take no more room than the dual form: ``p·t <= n·(t + p)``. With few targets (ROIs) this is
  always the case; in the kernel form (features outnumber rows) they are computed from the dual
  coefficients, ``W = Xᵀ·c``;
- else **dual coefficients** ``c`` (n_rows × n_targets) **and the training design** ``X``
  (n_rows × n_columns): prediction is ``(X_new·Xᵀ)·c``. This is smaller for many targets
  (voxels) and few rows.

What turns new stimuli into the same design is recorded with them (:attr:`EncoderWeights.info`):
the design's alignment settings (resampling, delays, HRF, trimming, TR), how features were
z-scored (stories: **per run, at prediction time**, as the pipeline does for every run; stimulus
sets: with the **training stimuli's means and scales**, stored per layer column), what the
features were (model and extraction settings, to refuse other features) and the units of the
predictions (the training responses' z-scores). Layout inside a results file::

    /weights                 attrs: format "neuroenc-weights/1", info (JSON), targets (JSON)
    /weights/layer_<L>/coef      (n_columns, n_targets) primal, or (n_rows, n_targets) dual
    /weights/layer_<L>/X_fit     (n_rows, n_columns)    dual only: the training design
    /weights/layer_<L>/alphas    (n_targets,)           the penalty of each target's refit
        attrs: kind ("primal" or "dual")
    /weights/feature_stats/layer_<L>/mean, /std   stimulus sets: training z-scoring of each column

The layers of a loaded file are read when used (a voxel set's weights can be large).
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._io import json_default
from .._validation import _preview

logger = logging.getLogger(__name__)

WEIGHTS_FORMAT = "neuroenc-weights/1"
#: What a story design's features are at prediction time.
STORY_ZSCORE = ("features z-scored per run at prediction time (each new run with its own statistics, "
                "over its kept rows), as the pipeline does for every run")
#: What a stimulus design's features are at prediction time.
STIMULI_ZSCORE = "features z-scored with the training stimuli's mean and scale of each column (feature_stats)"
#: The fix named by every error about a results file without weights.
SAVE_WEIGHTS_FIX = ("fit again with --save-weights (encoding.save_weights: true in a run config, "
                    "save_weights=True in Python)")


@dataclass
class LayerWeights:
    """One layer's fitted encoder, for every target.

    Attributes
    ----------
    kind : {"primal", "dual"}
    coef : ndarray
        ``(n_columns, n_targets)`` primal weights, or ``(n_rows, n_targets)`` dual coefficients.
    alphas : ndarray, shape (n_targets,)
        The penalty of each target's refit.
    X_fit : ndarray, shape (n_rows, n_columns) | None
        The training design (dual only).
    """

    kind: str
    coef: np.ndarray
    alphas: np.ndarray
    X_fit: np.ndarray | None = None

    @property
    def n_columns(self) -> int:
        """Columns of the design these weights take."""
        return int(self.coef.shape[0] if self.kind == "primal" else self.X_fit.shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays."""
        return int(self.coef.nbytes + self.alphas.nbytes + (0 if self.X_fit is None else self.X_fit.nbytes))

    def primal(self) -> np.ndarray:
        """The primal weights, (n_columns, n_targets) (from the dual coefficients if need be)."""
        if self.kind == "primal":
            return self.coef
        return (self.X_fit.astype(np.float64).T @ self.coef.astype(np.float64)).astype(self.coef.dtype)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """``X @ W`` (primal) or ``(X @ X_fitᵀ) @ c`` (dual), in float64."""
        X = np.asarray(X, dtype=np.float64)
        if self.kind == "primal":
            return X @ self.coef.astype(np.float64)
        return (X @ self.X_fit.astype(np.float64).T) @ self.coef.astype(np.float64)


def compact(kind: str, coef: np.ndarray, X_fit: np.ndarray, alphas: np.ndarray) -> LayerWeights:
    """The smaller of the primal and the dual storage of a refit (see the module docstring)."""
    n, p = X_fit.shape
    t = coef.shape[1]
    if kind == "primal":
        return LayerWeights("primal", coef, alphas)
    if p * t <= n * (t + p):
        W = X_fit.astype(np.float64).T @ coef.astype(np.float64)
        return LayerWeights("primal", W.astype(coef.dtype), alphas)
    return LayerWeights("dual", coef, alphas, np.array(X_fit, dtype=coef.dtype))


class EncoderWeights:
    """Every layer's fitted encoder and what prediction needs (see the module docstring).

    Parameters
    ----------
    layers : dict of int -> LayerWeights | None
        Per layer its weights; None for a layer still in ``source`` (read when used).
    targets : list of str
    info : dict
        ``rows`` (``"samples"`` or ``"stimuli"``), ``feature_zscore`` (how features are z-scored
        at prediction time), ``delays``, ``alignment`` (the design's settings), ``features``
        (what made them), ``n_features`` (per layer, columns before delays), ``penalty``,
        ``responses`` (the units of predictions), ``dtype``.
    feature_stats : dict of int -> (mean, std) | None
        Stimulus sets: the training z-scoring of each layer's columns.
    source : path | None
        The results file the layers are read from.
    """

    def __init__(self, layers: Mapping[int, LayerWeights | None], targets: Sequence[str], info: Mapping[str, Any],
                 feature_stats: Mapping[int, tuple[np.ndarray, np.ndarray]] | None = None,
                 source: str | os.PathLike | None = None) -> None:
        self._layers = {int(k): v for k, v in layers.items()}
        self.targets = [str(t) for t in targets]
        self.info = dict(info)
        self.feature_stats = {int(k): v for k, v in (feature_stats or {}).items()}
        self.source = None if source is None else Path(source)

    @property
    def layers(self) -> list[int]:
        """The layers with weights."""
        return sorted(self._layers)

    def __contains__(self, layer: Any) -> bool:
        return int(layer) in self._layers

    def __getitem__(self, layer: int) -> LayerWeights:
        layer = int(layer)
        if layer not in self._layers:
            raise KeyError(f"the saved weights have no layer {layer}; they have layers {_preview(self.layers)}.")
        value = self._layers[layer]
        if value is None:
            import h5py

            with h5py.File(self.source, "r") as f:
                value = _read_layer(f["weights"][f"layer_{layer}"])
        return value

    def load(self) -> "EncoderWeights":
        """Every layer in memory (a copy that no longer reads the file)."""
        return EncoderWeights({k: self[k] for k in self.layers}, self.targets, self.info, self.feature_stats)

    @property
    def nbytes(self) -> int:
        """Bytes of the weights (arrays of every layer and the feature statistics)."""
        if self.source is not None and any(v is None for v in self._layers.values()):
            import h5py

            with h5py.File(self.source, "r") as f:
                return _group_nbytes(f["weights"])
        total = sum(w.nbytes for w in self._layers.values())
        return int(total + sum(m.nbytes + s.nbytes for m, s in self.feature_stats.values()))

    def kinds(self) -> dict[str, int]:
        """How many layers are stored primal and how many dual."""
        out = {"primal": 0, "dual": 0}
        for layer in self.layers:
            kind = self._layers[layer].kind if self._layers[layer] is not None else self.info["kinds"][str(layer)]
            out[kind] += 1
        return out

    def predict(self, X: Any, layer: int) -> np.ndarray:
        """Predict every target from one layer's design ``X`` (n_rows, n_columns)."""
        weights = self[layer]
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != weights.n_columns:
            raise ValueError(
                f"the design of layer {layer} has shape {X.shape}, but the saved weights of layer {layer} take "
                f"{weights.n_columns} columns ({self._columns_text(layer)}); build the design of the new "
                "stimuli with the results' alignment settings (EncodingResults.predict does it from features)."
            )
        return weights.predict(X)

    def _columns_text(self, layer: int) -> str:
        nf = (self.info.get("n_features") or {}).get(str(layer))
        delays = self.info.get("delays")
        if nf is None:
            return "columns of the training design"
        if delays:
            return f"{nf} features x {len(delays)} delays"
        return f"{nf} features"

    def __repr__(self) -> str:
        return (f"<EncoderWeights | {len(self._layers)} layer(s) x {len(self.targets)} targets, "
                f"rows {self.info.get('rows')}>")


# ---------------------------------------------------------------------- fitting
def fit_weights(sweep: Any, designs: Any, Y: np.ndarray, source: Any = None,
                targets: Sequence[str] | None = None) -> EncoderWeights:
    """Refit every layer of a fitted :class:`~neuroenc.encoding.LayerSweep` on all rows.

    Each target's penalty is chosen by CV over the sweep's outer splits on all rows and the
    model refitted on all rows (:func:`~neuroenc.encoding._ridge.refit_layer`, as the sweep's
    own ``refit``), on the sweep's backend and precision.

    Parameters
    ----------
    sweep : LayerSweep
        Fitted (``cv_splits_``, ``backend_``, ``dtype_``).
    designs : LayerDesigns
        The designs it was fitted on.
    Y : ndarray, shape (n_rows, n_targets)
    source : Design | StimulusDesign | None
        The design object the designs came from: its settings say how to rebuild the design.
    targets : sequence of str | None
    """
    from . import _ridge
    from .backend import to_numpy, use_backend

    alphas = sweep._alphas()
    dtype = sweep.dtype_
    layers: dict[int, LayerWeights] = {}
    with use_backend(sweep.backend_) as B:
        ab = B.asarray(alphas, dtype=dtype)
        Yb = B.asarray(Y, dtype=dtype)
        for layer in designs.layers:
            X = np.asarray(designs[layer], dtype=dtype)
            kind, coef, best = _ridge.refit_layer(B.asarray(X, dtype=dtype), Yb, sweep.cv_splits_, ab,
                                                  form=sweep.form, n_targets_batch=sweep.n_targets_batch)
            layers[int(layer)] = compact(kind, np.asarray(to_numpy(coef)), X, np.asarray(best, dtype=np.float64))
    rows = designs.rows or sweep.rows_
    info: dict[str, Any] = {
        "rows": rows,
        "penalty": "each target's penalty chosen by CV over the outer splits on all rows; refitted on all rows",
        "responses": ("predictions are in the units of the training responses (z-scored per run)" if rows == "samples"
                      else "predictions are in the units of the training responses (z-scored over stimuli)"),
        "dtype": dtype,
        "kinds": {str(k): v.kind for k, v in layers.items()},
        "n_columns": {str(k): v.n_columns for k, v in layers.items()},
    }
    feature_stats: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    settings = dict(getattr(source, "settings", None) or designs.info.get("design") or {})
    if rows == "stimuli" and source is not None and hasattr(source, "feature_stats"):
        info["feature_zscore"] = STIMULI_ZSCORE
        for layer in designs.layers:
            stats = source.feature_stats(int(layer))
            feature_stats[int(layer)] = (stats.mean, stats.std)
    elif rows == "samples" and settings:
        info["feature_zscore"] = STORY_ZSCORE if settings.get("zscore", True) else "features not z-scored"
    else:
        info["feature_zscore"] = "as the design given (no statistics recorded)"
    delays = getattr(source, "delays", None)
    info["delays"] = None if delays is None else [int(d) for d in delays]
    info["alignment"] = {k: v for k, v in settings.items() if k != "features"}
    info["features"] = settings.get("features")
    if source is not None and hasattr(source, "n_features"):
        info["n_features"] = {str(k): int(source.n_features(int(k))) for k in designs.layers}
    n_t = Y.shape[1]
    targets = [str(i) for i in range(n_t)] if targets is None else list(targets)
    return EncoderWeights(layers, targets, json.loads(json.dumps(info, default=json_default)), feature_stats)


# ---------------------------------------------------------------------- HDF5
def write_weights(f: Any, weights: EncoderWeights) -> int:
    """Write ``weights`` into the open HDF5 file ``f`` (group ``/weights``); returns the bytes
    of its arrays."""
    group = f.create_group("weights")
    group.attrs["format"] = WEIGHTS_FORMAT
    info = dict(weights.info)
    info["kinds"] = {str(k): weights[k].kind for k in weights.layers} if weights.layers else {}
    group.attrs["info"] = json.dumps(info, default=json_default)
    group.attrs["targets"] = json.dumps(weights.targets)
    for layer in weights.layers:
        w = weights[layer]
        sub = group.create_group(f"layer_{layer}")
        sub.attrs["kind"] = w.kind
        sub.create_dataset("coef", data=w.coef)
        sub.create_dataset("alphas", data=w.alphas)
        if w.X_fit is not None:
            sub.create_dataset("X_fit", data=w.X_fit)
    for layer, (mean, std) in weights.feature_stats.items():
        sub = group.create_group(f"feature_stats/layer_{layer}")
        sub.create_dataset("mean", data=mean)
        sub.create_dataset("std", data=std)
    return _group_nbytes(group)


def read_weights(f: Any, path: str | os.PathLike) -> EncoderWeights:
    """The weights of the open results file ``f`` (from ``path``); layers are read when used."""
    group = f["weights"]
    if group.attrs.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"the weights in {str(path)!r} have format {group.attrs.get('format')!r}; this neuroenc "
                         f"reads {WEIGHTS_FORMAT!r}. {SAVE_WEIGHTS_FIX[0].upper()}{SAVE_WEIGHTS_FIX[1:]}.")
    layers = {int(name.split("_", 1)[1]): None for name in group if name.startswith("layer_")}
    stats = {}
    if "feature_stats" in group:
        for name, sub in group["feature_stats"].items():
            stats[int(name.split("_", 1)[1])] = (sub["mean"][()], sub["std"][()])
    return EncoderWeights(layers, json.loads(group.attrs["targets"]), json.loads(group.attrs["info"]), stats,
                          source=path)


def _read_layer(sub: Any) -> LayerWeights:
    return LayerWeights(str(sub.attrs["kind"]), sub["coef"][()], sub["alphas"][()],
                        sub["X_fit"][()] if "X_fit" in sub else None)


def _group_nbytes(group: Any) -> int:
    import h5py

    total = 0

    def visit(_name, obj):
        nonlocal total
        if isinstance(obj, h5py.Dataset):
            total += int(obj.size * obj.dtype.itemsize)

    group.visititems(visit)
    return total


def format_bytes(n: int) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover


# ---------------------------------------------------------------------- merging
def merge_weights(parts: Sequence[EncoderWeights | None], axis: str) -> EncoderWeights | None:
    """The weights of results merged along ``"targets"`` (chunks) or ``"layers"`` (subsets):
    None when no part has weights; an error when some parts only have them."""
    if all(p is None for p in parts):
        return None
    if any(p is None for p in parts):
        raise ValueError("Cannot merge results: the saved weights are missing from some parts only; "
                         f"{SAVE_WEIGHTS_FIX}.")
    parts = [p.load() for p in parts]
    first = parts[0]
    if axis == "layers":
        layers = {k: p[k] for p in parts for k in p.layers}
        stats = {k: v for p in parts for k, v in p.feature_stats.items()}
        info = dict(first.info)
        for key in ("kinds", "n_columns", "n_features"):
            if key in info:
                info[key] = {k: v for p in parts for k, v in (p.info.get(key) or {}).items()}
        return EncoderWeights(layers, first.targets, info, stats)
    layers = {}
    for layer in first.layers:
        items = [p[layer] for p in parts]
        alphas = np.concatenate([w.alphas for w in items])
        if all(w.kind == "dual" for w in items) and all(np.array_equal(w.X_fit, items[0].X_fit) for w in items):
            layers[layer] = LayerWeights("dual", np.hstack([w.coef for w in items]), alphas, items[0].X_fit)
        else:
            layers[layer] = LayerWeights("primal", np.hstack([w.primal() for w in items]), alphas)
    info = dict(first.info)
    info["kinds"] = {str(k): v.kind for k, v in layers.items()}
    return EncoderWeights(layers, [t for p in parts for t in p.targets], info, first.feature_stats)
