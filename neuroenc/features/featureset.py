"""The :class:`FeatureSet`: per-layer, per-word features that know their times and model."""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .._validation import _check_option


class FeatureSet:
    """Per-layer word-level features of one run/story.

    Row ``i`` of every layer belongs to word ``i``, at time ``times[i]`` (word onsets by
    default, midpoints on request), on the same clock as the run's transcript and response.

    Parameters
    ----------
    layers : mapping of int -> array-like, shape (n_words, n_features)
        Hidden states per layer index (0 = embeddings, ``n_model_layers - 1`` = last block).
        Arrays may be lazy (``h5py.Dataset``); they are read on access.
    onsets : array-like, shape (n_words,)
        Word onsets in seconds.
    offsets : array-like, shape (n_words,) | None
        Word offsets in seconds (default: the onsets).
    words : sequence of str | None
        The words, for reference.
    run : str
        The run/story name; alignment matches runs by name.
    model : str | None
        The model id (hub id, path or alias).
    n_model_layers : int | None
        How many hidden states the model has in all (embeddings + blocks), for relative depth.
        Default: ``max(layers) + 1``.
    reference : {"onset", "midpoint"}
        Which word time the rows are placed at.
    attrs : dict | None
        Provenance (context policy, pooling, hashes, versions...).
    """

    def __init__(
        self,
        layers: Mapping[int, Any],
        onsets: Sequence[float] | np.ndarray,
        offsets: Sequence[float] | np.ndarray | None = None,
        words: Sequence[str] | None = None,
        *,
        run: str = "run-1",
        model: str | None = None,
        n_model_layers: int | None = None,
        reference: str = "onset",
        attrs: dict[str, Any] | None = None,
    ) -> None:
        _check_option("reference", reference, ("onset", "midpoint"))
        if not layers:
            raise ValueError(f"FeatureSet for run {run!r} has no layers.")
        self.onsets = np.asarray(onsets, dtype=np.float64).reshape(-1)
        self.offsets = self.onsets.copy() if offsets is None else np.asarray(offsets, np.float64).reshape(-1)
        n = self.onsets.shape[0]
        if self.offsets.shape[0] != n:
            raise ValueError(f"FeatureSet for run {run!r}: {n} onsets but {self.offsets.shape[0]} offsets.")
        self._layers = {}
        for idx, arr in layers.items():
            shape = getattr(arr, "shape", None) or np.shape(arr)
            if len(shape) != 2 or shape[0] != n:
                raise ValueError(
                    f"FeatureSet for run {run!r}: layer {idx} has shape {tuple(shape)}, expected "
                    f"({n}, n_features) to match the {n} word onsets."
                )
            self._layers[int(idx)] = arr
        self.words = None if words is None else [str(w) for w in words]
        if self.words is not None and len(self.words) != n:
            raise ValueError(f"FeatureSet for run {run!r}: {n} onsets but {len(self.words)} words.")
        self.run = str(run)
        self.model = model
        self.n_model_layers = int(n_model_layers) if n_model_layers is not None else max(self._layers) + 1
        self.reference = reference
        self.attrs = dict(attrs or {})

    @property
    def layer_indices(self) -> list[int]:
        """The layer indices held, sorted."""
        return sorted(self._layers)

    @property
    def n_words(self) -> int:
        """Number of rows (words)."""
        return int(self.onsets.shape[0])

    @property
    def times(self) -> np.ndarray:
        """The time of each row: onsets, or midpoints if ``reference="midpoint"``."""
        if self.reference == "midpoint":
            return (self.onsets + self.offsets) / 2.0
        return self.onsets

    def n_features(self, layer: int | None = None) -> int:
        """Number of columns of ``layer`` (default: the first layer held)."""
        layer = self.layer_indices[0] if layer is None else layer
        return int(self._layers[self._check_layer(layer)].shape[1])

    def _check_layer(self, layer: int) -> int:
        if int(layer) not in self._layers:
            raise KeyError(
                f"FeatureSet for run {self.run!r} (model {self.model!r}) has no layer {layer}; it "
                f"has layers {self.layer_indices}."
            )
        return int(layer)

    def __getitem__(self, layer: int) -> np.ndarray:
        """The features of one layer as a float ndarray, shape (n_words, n_features)."""
        return np.asarray(self._layers[self._check_layer(layer)][()])

    def __contains__(self, layer: object) -> bool:
        return layer in self._layers

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self):
        return iter(self.layer_indices)

    def relative_depth(self, layer: int | Iterable[int] | None = None) -> np.ndarray | float:
        """Relative depth ``layer / (n_model_layers - 1)`` in [0, 1] (0 = embeddings)."""
        denom = max(self.n_model_layers - 1, 1)
        if layer is None:
            return np.asarray(self.layer_indices, dtype=float) / denom
        if np.isscalar(layer):
            return float(layer) / denom
        return np.asarray(list(layer), dtype=float) / denom

    def select(self, layers: Iterable[int]) -> "FeatureSet":
        """A FeatureSet with only the given layers (no copy of the arrays)."""
        layers = [self._check_layer(i) for i in layers]
        return self._replace(layers={i: self._layers[i] for i in layers})

    def with_reference(self, reference: str) -> "FeatureSet":
        """The same features placed at word ``"onset"`` or ``"midpoint"`` times."""
        return self._replace(reference=reference)

    def stack(self, layers: Iterable[int] | None = None) -> np.ndarray:
        """Layers stacked into one array, shape (n_layers, n_words, n_features)."""
        layers = self.layer_indices if layers is None else list(layers)
        return np.stack([self[i] for i in layers])

    def _replace(self, **changes: Any) -> "FeatureSet":
        kwargs = dict(
            layers=self._layers, onsets=self.onsets, offsets=self.offsets, words=self.words,
            run=self.run, model=self.model, n_model_layers=self.n_model_layers,
            reference=self.reference, attrs=self.attrs,
        )
        kwargs.update(changes)
        layers = kwargs.pop("layers")
        onsets = kwargs.pop("onsets")
        return FeatureSet(layers, onsets, **kwargs)

    def save(self, path: Any) -> Any:
        """Write to an HDF5 file (atomically); see :func:`neuroenc.features.save_features`."""
        from .cache import save_features

        return save_features(self, path)

    @classmethod
    def load(cls, path: Any, layers: Iterable[int] | None = None) -> "FeatureSet":
        """Read an HDF5 feature file; see :func:`neuroenc.features.load_features`."""
        from .cache import load_features

        return load_features(path, layers=layers)

    def __repr__(self) -> str:
        return (
            f"<FeatureSet {self.run!r} | model {self.model!r}, {self.n_words} words, "
            f"layers {self.layer_indices[:3]}{'...' if len(self) > 3 else ''} of "
            f"{self.n_model_layers}>"
        )


#: Provenance fields that must agree between the runs of one design: (attribute, its value
#: when a file predates the field, or ``_REQUIRED``: compared only when both runs record it).
_REQUIRED = object()
_COMPATIBLE_FIELDS = (
    ("model_identity", _REQUIRED),
    ("dtype", _REQUIRED),
    ("policy", _REQUIRED),
    ("context_tokens", _REQUIRED),
    ("stride", _REQUIRED),
    ("right_context", _REQUIRED),
    ("pooling", _REQUIRED),
    ("prefix_ids", _REQUIRED),
    ("last_layer", "normed"),
    ("intervention", _REQUIRED),
)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def check_compatible_features(featuresets: Mapping[str, FeatureSet] | Sequence[FeatureSet]) -> None:
    """Raise if feature sets of several runs were not made by the same model and settings.

    Features fitted together must be comparable: runs extracted from different weights or
    tokenizers, or with a different context, pooling, BOS, last layer, intervention or dtype,
    would be fitted as if they were one feature space. Compared: the model name and
    identity, and each provenance field in ``attrs`` (``model_identity``, else for older
    files ``model_sha256``; ``dtype``, ``policy``, ``context_tokens``, ``stride``, ``right_context``,
    ``pooling``, ``prefix_ids`` (set by ``prepend_bos``), ``last_layer``, ``intervention``)
    that both runs record, and the word time ``reference``. Feature sets built by hand,
    without provenance, are only compared by model name.

    Parameters
    ----------
    featuresets : dict of str -> FeatureSet | sequence of FeatureSet
        The runs' features (keyed by run name, or in a list named by their ``run``).

    Raises
    ------
    ValueError
        Naming the first field that differs, the two runs and their two values.
    """
    items = list(featuresets.items()) if isinstance(featuresets, Mapping) else \
        [(fs.run, fs) for fs in featuresets]
    if len(items) < 2:
        return
    first_name, first = items[0]
    for name, fs in items[1:]:
        pairs = [("model", fs.model, first.model), ("reference", fs.reference, first.reference)]
        if "model_identity" not in fs.attrs or "model_identity" not in first.attrs:
            # files written before model_identity was recorded: their weights' sha256
            if fs.attrs.get("model_sha256") and first.attrs.get("model_sha256"):
                pairs.append(("model_sha256", fs.attrs["model_sha256"], first.attrs["model_sha256"]))
        for field, default in _COMPATIBLE_FIELDS:
            mine = fs.attrs.get(field, default)
            theirs = first.attrs.get(field, default)
            if mine is not _REQUIRED and theirs is not _REQUIRED:
                pairs.append((field, mine, theirs))
        for field, mine, theirs in pairs:
            if _canonical(mine) != _canonical(theirs):
                hint = " (set by prepend_bos)" if field == "prefix_ids" else ""
                raise ValueError(
                    f"features for run {name!r} were made with {field}{hint}={mine!r} but those for "
                    f"run {first_name!r} with {field}={theirs!r}; one design needs every run's "
                    "features from the same model and extraction settings. Extract them again with "
                    "one setting (the feature cache keeps each setting apart)."
                )
