"""Per-layer representation metrics of a feature set, and their HDF5 file.

:func:`layer_metrics` runs the metrics of :mod:`neuroenc.features.metrics` on every layer of a
:class:`~neuroenc.features.FeatureSet` (or a features HDF5 file, or token states), with a
progress bar, and returns a :class:`LayerMetrics`: one value per (layer, metric), which
:meth:`LayerMetrics.save` writes atomically. File layout::

    /layers              (n_layers,) int64     layer indices (0 = embeddings)
    /relative_depth      (n_layers,) float64   layer / (n_model_layers - 1)
    /metrics/<name>      (n_layers,) float64   one dataset per metric
    attrs: "format" = "neuroenc-metrics/1", "metric_names" (JSON list, in order),
           "settings" (JSON), "provenance" (JSON)

What each metric sees, for word-level features (rows = words, in story order):

- ``prompt_entropy`` and ``curvature``: windows of ``window`` consecutive words (every
  ``step`` words), averaged over windows: the words of a passage stand for a prompt's tokens;
- ``dataset_entropy``, ``intrinsic_dimension``, ``effective_rank``: all words as items.

For token states, shape (n_windows, n_tokens, dim) per layer, prompt entropy and curvature use
each window's tokens and the item metrics use each window's mean token (Skean et al. 2025
mean-pool prompts for dataset entropy).

The default and ``preset="skean2025"``
--------------------------------------
The default follows the paper's definitions on the states as given (``center=True`` subtracts
the mean). ``preset="skean2025"`` reproduces the authors' code
(github.com/OFSkean/information_flow) instead, and differs in exactly these ways:

- every prompt (window) is normalised first: its mean token is subtracted and every row
  scaled to unit L2 norm (:func:`~neuroenc.features.metrics.normalize_prompts`, their
  ``normalize``);
- ``prompt_entropy``: the Gram matrix of the normalised prompt, negative entries clamped to 0;
- ``dataset_entropy``: items are each prompt's mean *normalised* token (for word features too:
  one item per window, not per word), Gram clamped at 0;
- ``curvature``: on the normalised prompts, with ``curvature="abs-angles"`` (their later
  code) unless another variant is named;
- ``intrinsic_dimension`` and ``effective_rank`` are the same in both (on the default items).

``center`` cannot be combined with the preset (its normalisation already centres).

The first token
---------------
Without a BOS, the first position of a forward pass is an attention sink: its state has a far
larger norm than the others' and dominates Gram-based metrics. ``first_token="drop"`` leaves
out the first position of every prompt (token states: position 0 of each window; word
features: the first word of the run, the first position of its pass). A warning says when a
features file records no BOS (``prefix_ids`` empty) and the first token is kept.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import __version__
from .._io import atomic_path, json_default
from .._logging import show_progress
from .._validation import _check_option, _check_path_exists, _sha256_file
from .featureset import FeatureSet
from .layers import resolve_stored_layers
from .metrics import (
    CURVATURE_METHODS,
    curvature,
    dataset_entropy,
    effective_rank,
    intrinsic_dimension,
    normalize_prompts,
    prompt_entropy,
    sliding_windows,
)

logger = logging.getLogger(__name__)

METRICS_FORMAT = "neuroenc-metrics/1"
#: The metric presets: the paper's definitions, or the authors' code.
PRESETS = ("default", "skean2025")
#: Curvature variants (see :func:`~neuroenc.features.metrics.curvature`).
CURVATURES = CURVATURE_METHODS
#: What to do with the first position of each prompt (the attention sink).
FIRST_TOKEN = ("keep", "drop")


def _skean(s: dict) -> bool:
    return s["preset"] == "skean2025"


def _prompt_entropy(seqs: np.ndarray, items: np.ndarray, s: dict) -> float:
    if _skean(s):
        return float(np.mean(prompt_entropy(normalize_prompts(seqs), s["alpha"], clamp=True)))
    return float(np.mean(prompt_entropy(seqs, s["alpha"], center=s["center"])))


def _curvature(seqs: np.ndarray, items: np.ndarray, s: dict) -> float:
    states = normalize_prompts(seqs) if _skean(s) else seqs
    return float(np.nanmean(curvature(states, s["curvature"])))


def _dataset_entropy(seqs: np.ndarray, items: np.ndarray, s: dict) -> float:
    if _skean(s):
        return dataset_entropy(normalize_prompts(seqs).mean(axis=1), s["alpha"], clamp=True)
    return dataset_entropy(items, s["alpha"], center=s["center"])


def _intrinsic_dimension(seqs: np.ndarray, items: np.ndarray, s: dict) -> float:
    return intrinsic_dimension(items, method=s["id_method"], discard_fraction=s["discard_fraction"])


def _effective_rank(seqs: np.ndarray, items: np.ndarray, s: dict) -> float:
    return effective_rank(items, center=s["center"])


#: The per-layer metrics by name: ``f(sequences, items, settings) -> float``.
METRICS: dict[str, Callable[[np.ndarray, np.ndarray, dict], float]] = {
    "prompt_entropy": _prompt_entropy,
    "dataset_entropy": _dataset_entropy,
    "curvature": _curvature,
    "intrinsic_dimension": _intrinsic_dimension,
    "effective_rank": _effective_rank,
}


@dataclass
class LayerMetrics:
    """Representation metrics per layer of one feature set.

    Parameters
    ----------
    layers : ndarray of int, shape (n_layers,)
        Layer indices (0 = embeddings).
    values : dict of str -> ndarray, shape (n_layers,)
        One array per metric name.
    relative_depth : ndarray, shape (n_layers,) | None
        Relative depth of each layer (default ``layers / max(layers)``).
    settings : dict
        The parameters that made the values (window, step, alpha...).
    provenance : dict
        Model, run, features file and its hash, intervention, neuroenc version.
    """

    layers: np.ndarray
    values: dict[str, np.ndarray]
    relative_depth: np.ndarray | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.layers = np.asarray(self.layers, dtype=np.int64).reshape(-1)
        n = self.layers.size
        values = {}
        for name, value in self.values.items():
            value = np.asarray(value, dtype=np.float64).reshape(-1)
            if value.size != n:
                raise ValueError(f"LayerMetrics: metric {name!r} has {value.size} values for {n} layers.")
            values[str(name)] = value
        self.values = values
        if self.relative_depth is None:
            self.relative_depth = self.layers / max(int(self.layers.max(initial=0)), 1)
        self.relative_depth = np.asarray(self.relative_depth, dtype=np.float64).reshape(-1)
        if self.relative_depth.size != n:
            raise ValueError(f"LayerMetrics: {self.relative_depth.size} relative depths for {n} layers.")

    @property
    def metric_names(self) -> list[str]:
        """The metrics held."""
        return list(self.values)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.values:
            raise KeyError(f"LayerMetrics has no metric {name!r}; it has {self.metric_names}.")
        return self.values[name]

    def to_frame(self) -> pd.DataFrame:
        """A tidy table: one row per (layer, metric) with value, depth, model, run, intervention."""
        frames = [
            pd.DataFrame(
                {
                    "layer": self.layers,
                    "relative_depth": self.relative_depth,
                    "metric": name,
                    "value": value,
                }
            )
            for name, value in self.values.items()
        ]
        df = pd.concat(frames, ignore_index=True)
        for key in ("model", "run", "intervention"):
            df[key] = self.provenance.get(key)
        return df

    def save(self, path: str | os.PathLike) -> Path:
        """Write an HDF5 file, atomically (temp file in the same folder + ``os.replace``)."""
        import h5py

        path = Path(path)
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.attrs["format"] = METRICS_FORMAT
            f.create_dataset("layers", data=self.layers)
            f.create_dataset("relative_depth", data=self.relative_depth)
            for name, value in self.values.items():
                f.create_dataset(f"metrics/{name}", data=value)
            f.attrs["metric_names"] = json.dumps(self.metric_names)
            f.attrs["settings"] = json.dumps(self.settings, default=json_default)
            f.attrs["provenance"] = json.dumps(self.provenance, default=json_default)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LayerMetrics":
        """Read a file written by :meth:`save`."""
        import h5py

        path = _check_path_exists(path, "metrics file")
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != METRICS_FORMAT:
                raise ValueError(
                    f"{str(path)!r} is not a neuroenc metrics file (format attribute "
                    f"{f.attrs.get('format')!r}, expected {METRICS_FORMAT!r})."
                )
            order = json.loads(f.attrs.get("metric_names", "[]")) or sorted(f["metrics"])
            return cls(
                layers=f["layers"][()],
                values={name: f["metrics"][name][()] for name in order},
                relative_depth=f["relative_depth"][()],
                settings=json.loads(f.attrs.get("settings", "{}")),
                provenance=json.loads(f.attrs.get("provenance", "{}")),
            )


# ---------------------------------------------------------------------- sources
class _Source:
    """Uniform access to the layers of a FeatureSet, a features file or token states."""

    def __init__(self, features: Any, layers: Any) -> None:
        self.provenance: dict[str, Any] = {}
        self.n_model_layers: int | None = None
        #: Whether the features record a prefix token (None: unknown).
        self.has_bos: bool | None = None
        if isinstance(features, (str, os.PathLike)):
            from .featureset import load_features

            path = _check_path_exists(features, "features file", "Run `neuroenc extract` first.")
            fs = load_features(path, layers)
            self.provenance.update(features_file=str(path), features_sha256=_sha256_file(path))
            features = fs
        if isinstance(features, FeatureSet):
            self._get = features.__getitem__
            self.layers = features.layer_indices
            self.n_model_layers = features.n_model_layers
            self.provenance.update(
                model=features.model, run=features.run,
                intervention=features.attrs.get("intervention"),
            )
            if "prefix_ids" in features.attrs:
                self.has_bos = len(features.attrs["prefix_ids"] or []) > 0
        elif isinstance(features, Mapping):
            if not features:
                raise ValueError("layer_metrics got an empty mapping of layers.")
            arrays = {int(k): v for k, v in features.items()}
            self._get = lambda i: np.asarray(arrays[i])
            self.layers = sorted(arrays)
        else:
            raise TypeError(
                "layer_metrics needs a FeatureSet, a path to a features HDF5 file or a mapping "
                f"{{layer: array}}, got {type(features).__name__}."
            )

    def __getitem__(self, layer: int) -> np.ndarray:
        return np.asarray(self._get(layer), dtype=np.float64)


def layer_metrics(
    features: FeatureSet | str | os.PathLike | Mapping[int, np.ndarray],
    metrics: str | Sequence[str] = "all",
    *,
    layers: Any = None,
    window: int = 32,
    step: int | None = None,
    alpha: float = 1.0,
    center: bool = False,
    preset: str = "default",
    curvature: str | None = None,
    first_token: str = "keep",
    id_method: str = "fit",
    discard_fraction: float = 0.1,
    verbose: bool | str | int | None = None,
) -> LayerMetrics:
    """Representation metrics (Skean et al. 2025) of every layer of a feature set.

    Parameters
    ----------
    features : FeatureSet | path | mapping of int -> array
        Word-level features (a FeatureSet or a features HDF5 file written by
        ``neuroenc extract``: per layer ``(n_words, dim)``, rows in story order), or token
        states per layer, ``(n_windows, n_tokens, dim)``.
    metrics : "all" | sequence of str
        Names among :data:`METRICS`: ``prompt_entropy``, ``dataset_entropy``, ``curvature``,
        ``intrinsic_dimension``, ``effective_rank``.
    layers : None | "all" | int | float | iterable of int or float
        Layers to measure (default: all held): indices, negative indices (``-1`` = last
        block) or relative depths in [0, 1] (see
        :func:`~neuroenc.features.layers.resolve_stored_layers`).
    window, step : int
        For word-level features, the windows of consecutive words that prompt entropy and
        curvature see (default: non-overlapping windows of 32 words).
    alpha : float
        Order of the matrix-based Rényi entropies (1 = Shannon).
    center : bool
        Centre states before the entropies and the effective rank (default preset only).
    preset : {"default", "skean2025"}
        ``"default"``: the paper's definitions on the states as given. ``"skean2025"``: the
        authors' code: each prompt centred and its rows L2-normalised, negative Gram entries
        clamped to 0, dataset entropy over the prompts' mean normalised tokens, curvature on
        the normalised prompts (see the module docstring for every difference).
    curvature : {"paper", "angles", "abs-angles"} | None
        The curvature variant (see :func:`~neuroenc.features.metrics.curvature`); default
        ``"paper"``, or ``"abs-angles"`` (the authors' later code) with ``preset="skean2025"``.
    first_token : {"keep", "drop"}
        Keep or leave out the first position of every prompt, the attention sink of a model
        read without a BOS (see the module docstring).
    id_method : {"fit", "mle"}
        TwoNN estimator (see :func:`~neuroenc.features.metrics.intrinsic_dimension`).
    discard_fraction : float
        Fraction of the largest TwoNN ratios left out of the fit.
    verbose : bool | str | int | None
        Show a progress bar over layers when ``True`` / ``"info"``.

    Returns
    -------
    metrics : LayerMetrics
    """
    names = list(METRICS) if metrics == "all" else [metrics] if isinstance(metrics, str) else list(metrics)
    if not names:
        raise ValueError("layer_metrics got an empty list of metrics; pass 'all' or names from "
                         f"{list(METRICS)}.")
    for name in names:
        _check_option("metric", name, list(METRICS))
    _check_option("id_method", id_method, ("fit", "mle"))
    _check_option("preset", preset, PRESETS)
    _check_option("first_token", first_token, FIRST_TOKEN)
    if curvature is None:
        curvature = "abs-angles" if preset == "skean2025" else "paper"
    _check_option("curvature", curvature, CURVATURES)
    if preset == "skean2025" and center:
        raise ValueError("center=True cannot be combined with preset='skean2025', whose normalisation already "
                         "centres each prompt; drop center.")
    settings = dict(metrics=names, window=window, step=window if step is None else step, alpha=alpha,
                    center=bool(center), preset=preset, curvature=curvature, first_token=first_token,
                    id_method=id_method, discard_fraction=discard_fraction)
    source = _Source(features, layers)
    if first_token == "keep" and source.has_bos is False:
        logger.warning(
            "layer_metrics: the features record no BOS before each sequence (prefix_ids is empty), so the "
            "first position of a forward pass is an attention sink that dominates the metrics; pass "
            "first_token='drop' or extract with prepend_bos=True."
        )
    chosen = resolve_stored_layers(layers, source.layers, source.n_model_layers)
    missing = [i for i in chosen if i not in source.layers]
    if missing:
        raise KeyError(f"layer_metrics: no layer(s) {missing} in the features; they have {source.layers}.")
    values = {name: np.full(len(chosen), np.nan) for name in names}
    for row, layer in enumerate(tqdm(chosen, desc="layer metrics", unit="layer", disable=not show_progress(verbose))):
        states = source[layer]
        if first_token == "drop":
            states = states[:, 1:] if states.ndim == 3 else states[1:]
        seqs, items = _views(states, layer, window, step)
        for name in names:
            values[name][row] = METRICS[name](seqs, items, settings)
    provenance = dict(source.provenance, neuroenc_version=__version__)
    top = (source.n_model_layers or (max(source.layers) + 1)) - 1
    return LayerMetrics(
        layers=np.asarray(chosen),
        values=values,
        relative_depth=np.asarray(chosen, dtype=float) / max(top, 1),
        settings=settings,
        provenance=provenance,
    )


def _views(states: np.ndarray, layer: int, window: int, step: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(sequences, items) of one layer's states."""
    if states.ndim == 2:
        try:
            seqs = sliding_windows(states, window, step)
        except ValueError as err:
            raise ValueError(f"layer {layer}: {err}") from err
        return seqs, states
    if states.ndim == 3:
        return states, states.mean(axis=1)
    raise ValueError(
        f"layer {layer} has shape {states.shape}; expected word features (n_words, dim) or token "
        "states (n_windows, n_tokens, dim)."
    )
