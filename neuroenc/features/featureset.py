"""The :class:`FeatureSet`: per-layer, per-word features that know their times and model, and
its HDF5 file (:func:`save_features`, :func:`load_features`; the format is
:mod:`neuroenc.features.cache`'s)."""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._owned import check_replace
from .._validation import _check_option
from .cache import (
    CONTEXT_ARRAYS,
    FEATURES_FORMAT,
    STIMULI_KIND,
    check_feature_file,
    data_nbytes,
    open_feature_file,
    read_dataset,
    read_layers_and_provenance,
    read_strings,
    write_layers,
    write_strings,
)
from .layers import LayerArrays


class FeatureSet(LayerArrays):
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
        self.run = str(run)
        self._store_layers(layers, n, f"to match the {n} word onsets")
        self.words = None if words is None else [str(w) for w in words]
        if self.words is not None and len(self.words) != n:
            raise ValueError(f"FeatureSet for run {run!r}: {n} onsets but {len(self.words)} words.")
        self.model = model
        self.n_model_layers = int(n_model_layers) if n_model_layers is not None else max(self._layers) + 1
        self.reference = reference
        self.attrs = dict(attrs or {})

    def _label(self) -> str:
        return f"FeatureSet for run {self.run!r}"

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

    def save(self, path: str | os.PathLike) -> Path:
        """Write to an HDF5 file (atomically); see :func:`save_features`."""
        return save_features(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, layers: Any = None) -> "FeatureSet":
        """Read an HDF5 feature file; see :func:`load_features`."""
        return load_features(path, layers=layers)

    def __repr__(self) -> str:
        return (
            f"<FeatureSet {self.run!r} | model {self.model!r}, {self.n_words} words, "
            f"layers {self.layer_indices[:3]}{'...' if len(self) > 3 else ''} of "
            f"{self.n_model_layers}>"
        )


# ---------------------------------------------------------------------- HDF5
def save_features(features: FeatureSet, path: str | os.PathLike) -> Path:
    """Write a :class:`FeatureSet` to an HDF5 file, atomically (temp file + ``os.replace``).

    Parameters
    ----------
    features : FeatureSet
        The features; ``features.attrs`` holds the provenance (JSON-able values), and
        optionally ``context_start`` / ``context_len`` arrays and the per-word ``surprisal``
        (bits; written as ``/surprisal``, float64).
    path : path-like
        Where to write. Its folder is created.

    Returns
    -------
    path : Path
    """
    path = Path(path)
    attrs = dict(features.attrs)
    arrays = {k: np.asarray(attrs.pop(k), dtype=np.int64) for k in CONTEXT_ARRAYS if k in attrs}
    surprisal = attrs.pop("surprisal", None)
    if surprisal is not None:
        arrays["surprisal"] = np.asarray(surprisal, dtype=np.float64).reshape(-1)
        if arrays["surprisal"].size != features.n_words:
            raise ValueError(f"FeatureSet for run {features.run!r}: attrs['surprisal'] has "
                             f"{arrays['surprisal'].size} values but there are {features.n_words} words.")
    provenance = {
        **attrs,
        "run": features.run,
        "model": features.model,
        "n_model_layers": features.n_model_layers,
        "reference": features.reference,
    }
    check_replace(path, "features file")  # never over a file neuroenc did not write
    words = features.words if features.words is not None else [""] * features.n_words
    nbytes = data_nbytes(features, [features.onsets, features.offsets, *arrays.values()], [words])
    with open_feature_file(path, nbytes) as f:
        f.attrs["format"] = FEATURES_FORMAT
        f.attrs["complete"] = False
        write_strings(f, "words", words)
        f.create_dataset("onsets", data=features.onsets, fletcher32=True)
        f.create_dataset("offsets", data=features.offsets, fletcher32=True)
        for name, arr in arrays.items():
            f.create_dataset(name, data=arr, fletcher32=True)
        write_layers(f, features, provenance)
    return path


def load_features(path: str | os.PathLike, layers: Any = None) -> FeatureSet:
    """Read a feature file written by :func:`save_features` (or by the extractor's cache).

    Parameters
    ----------
    path : path-like
        The HDF5 file.
    layers : None | "all" | int | float | iterable of int or float
        The layers to read (default: all stored layers). Non-negative ints are layer
        indices; negative ints (``-1`` = last block) and floats (relative depths in [0, 1])
        are resolved against the model's number of hidden states (see
        :func:`~neuroenc.features.layers.resolve_stored_layers`).

    Returns
    -------
    features : FeatureSet
        With the file's provenance in ``attrs`` (and the ``context_start`` /
        ``context_len`` arrays and the per-word ``surprisal`` when stored).

    Raises
    ------
    FeatureFileError
        If the file is incomplete or corrupt: truncated, interrupted, or data that fail their
        checksums (a subclass of ValueError).
    ValueError
        If the file lacks a requested layer.
    """
    import h5py

    path = check_feature_file(path)
    with h5py.File(path, "r") as f:
        if f.attrs.get("kind") == STIMULI_KIND:
            raise ValueError(
                f"Feature file {str(path)!r} holds stimulus-level features (one row per stimulus, no "
                "word times): read it with neuroenc.features.load_stimulus_features, and fit it with "
                "`neuroenc fit --features FILE --responses R.csv --id-column id` (no --tr)."
            )
        data, provenance = read_layers_and_provenance(f, path, layers, extra=("surprisal",))
        words = read_strings(f, "words", path)
        onsets = read_dataset(f, "onsets", path)
        offsets = read_dataset(f, "offsets", path)
    run = provenance.pop("run", "run-1")
    model = provenance.pop("model", None)
    n_model_layers = provenance.pop("n_model_layers", None)
    reference = provenance.pop("reference", "onset")
    provenance["path"] = str(path)
    return FeatureSet(data, onsets, offsets, words, run=run, model=model,
                      n_model_layers=n_model_layers, reference=reference, attrs=provenance)


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
    ("context", _REQUIRED),  # stimulus-level features: the context each stimulus was read in
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
    theirs = extraction_provenance(first)
    for name, fs in items[1:]:
        differ = provenance_difference(extraction_provenance(fs), theirs)
        if differ is not None:
            field, mine, other = differ
            hint = " (set by prepend_bos)" if field == "prefix_ids" else ""
            raise ValueError(
                f"features for run {name!r} were made with {field}{hint}={mine!r} but those for "
                f"run {first_name!r} with {field}={other!r}; one design needs every run's "
                "features from the same model and extraction settings. Extract them again with "
                "one setting (the feature cache keeps each setting apart)."
            )


def extraction_provenance(features: Any) -> dict[str, Any]:
    """What made a feature set, as far as features must agree to be fitted or pooled together:
    the model name, the word time ``reference`` (word-level features), the model's identity
    (``model_identity``, else for older files ``model_sha256``) and each extraction setting its
    ``attrs`` record (``dtype``, ``policy``, ``context_tokens``, ``stride``, ``right_context``,
    ``pooling``, ``prefix_ids``, ``last_layer``, ``intervention``, the stimulus ``context``).
    JSON-able; compare two with :func:`provenance_difference` (results files keep it, so that
    ``neuroenc report`` pools only results of the same features)."""
    attrs = dict(getattr(features, "attrs", {}) or {})
    out: dict[str, Any] = {"model": getattr(features, "model", None)}
    if getattr(features, "reference", None) is not None:
        out["reference"] = features.reference
    if "model_identity" not in attrs and attrs.get("model_sha256"):
        out["model_sha256"] = attrs["model_sha256"]  # files written before model_identity
    for field, default in _COMPATIBLE_FIELDS:
        value = attrs.get(field, default)
        if value is not _REQUIRED:
            out[field] = value
    return json.loads(json.dumps(out, sort_keys=True, default=_plain))


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as Python values, anything else as its text (for JSON)."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def provenance_difference(mine: Mapping[str, Any], theirs: Mapping[str, Any]) -> tuple[str, Any, Any] | None:
    """The first field of two :func:`extraction_provenance` that both record and that differ, as
    ``(field, mine, theirs)``; None when they agree. A field one side does not record (older
    files, features built by hand) is not compared; ``model_sha256`` only where one side has no
    ``model_identity``."""
    for field, value in mine.items():
        if field == "model_sha256" and "model_identity" in mine and "model_identity" in theirs:
            continue
        if field in theirs and _canonical(value) != _canonical(theirs[field]):
            return field, value, theirs[field]
    return None
