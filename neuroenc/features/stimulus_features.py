"""The :class:`StimulusFeatures` container and its HDF5 file (one row per stimulus and layer).

Written by :class:`~neuroenc.features.stimuli.StimulusExtractor` into the feature cache
(:mod:`neuroenc.features.cache`'s format, ``attrs["kind"] = "stimuli"``).
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._owned import check_replace
from ..stimuli.stimulus_set import StimulusSet
from .cache import (
    CONTEXT_ARRAYS,
    FEATURES_FORMAT,
    STIMULI_KIND,
    check_feature_file,
    data_nbytes,
    open_feature_file,
    read_layers_and_provenance,
    read_strings,
    write_layers,
    write_strings,
)
from .layers import LayerArrays


class StimulusFeatures(LayerArrays):
    """Per-layer features of a stimulus set: row ``i`` of every layer is stimulus ``ids[i]``.

    Parameters
    ----------
    layers : mapping of int -> array-like, shape (n_stimuli, n_features)
        Hidden states per layer index (0 = embeddings); arrays may be lazy.
    ids, texts : sequence of str
        The stimuli's ids and texts.
    groups : sequence of str | None
        Their groups.
    name : str
        The stimulus set's name.
    model : str | None
    n_model_layers : int | None
        Hidden states of the model in all (default ``max(layers) + 1``).
    attrs : dict | None
        Provenance (model identity, context, pooling, ``context_start``/``context_len``/
        ``context_text``...).
    """

    def __init__(self, layers: Mapping[int, Any], ids: Sequence[str], texts: Sequence[str],
                 groups: Sequence[str] | None = None, *, name: str = "stimuli", model: str | None = None,
                 n_model_layers: int | None = None, attrs: dict[str, Any] | None = None) -> None:
        if not layers:
            raise ValueError(f"StimulusFeatures {name!r} has no layers.")
        self.ids = [str(i) for i in ids]
        self.texts = [str(t) for t in texts]
        self.groups = None if groups is None else [str(g) for g in groups]
        n = len(self.ids)
        if len(self.texts) != n or (self.groups is not None and len(self.groups) != n):
            raise ValueError(f"StimulusFeatures {name!r}: {n} ids, {len(self.texts)} texts"
                             + (f", {len(self.groups)} groups" if self.groups is not None else "") + ".")
        self.name = str(name)
        self._store_layers(layers, n, f"for the {n} stimuli")
        self.model = model
        self.n_model_layers = int(n_model_layers) if n_model_layers is not None else max(self._layers) + 1
        self.attrs = dict(attrs or {})

    def _label(self) -> str:
        return f"StimulusFeatures {self.name!r}"

    @property
    def n_stimuli(self) -> int:
        """Number of rows (stimuli)."""
        return len(self.ids)

    def stimuli(self) -> StimulusSet:
        """The stimuli as a :class:`~neuroenc.stimuli.StimulusSet`."""
        return StimulusSet(self.ids, self.texts, self.groups, name=self.name)

    def select(self, layers: Iterable[int]) -> "StimulusFeatures":
        """The same features with only some layers (no copy)."""
        keep = {self._check_layer(i): self._layers[int(i)] for i in layers}
        return StimulusFeatures(keep, self.ids, self.texts, self.groups, name=self.name, model=self.model,
                                n_model_layers=self.n_model_layers, attrs=self.attrs)

    def save(self, path: str | os.PathLike) -> Path:
        """Write to an HDF5 file (atomically); see :func:`save_stimulus_features`."""
        return save_stimulus_features(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, layers: Any = None) -> "StimulusFeatures":
        """Read a file written by :meth:`save`; see :func:`load_stimulus_features`."""
        return load_stimulus_features(path, layers=layers)

    def __repr__(self) -> str:
        return (f"<StimulusFeatures {self.name!r} | model {self.model!r}, {self.n_stimuli} stimuli, "
                f"layers {self.layer_indices[:3]}{'...' if len(self) > 3 else ''} of {self.n_model_layers}>")


# ---------------------------------------------------------------------- HDF5
def save_stimulus_features(features: StimulusFeatures, path: str | os.PathLike) -> Path:
    """Write :class:`StimulusFeatures` to an HDF5 feature file, atomically.

    Layout (the features format of :mod:`neuroenc.features.cache`, ``attrs["kind"] =
    "stimuli"``)::

        /stimulus_ids   (n,) utf-8      (each string dataset: the sha256 of its strings in
        /texts          (n,) utf-8       its ``sha256`` attribute)
        /groups         (n,) utf-8      when the stimuli have groups
        /context_text   (n,) utf-8      the text each stimulus was read after
        /context_start, /context_len   (n,) int64   its context in tokens of its group's text
        /surprisal      (n,) float64    with ``surprisal=True``: bits, summed over its tokens
        /layers/<i>     (n, hidden) float32, Fletcher-32 checksums
        attrs: format, kind = "stimuli", provenance (JSON), each entry on its own, complete
    """
    path = Path(path)
    attrs = dict(features.attrs)
    arrays = {k: np.asarray(attrs.pop(k), dtype=np.int64) for k in CONTEXT_ARRAYS if k in attrs}
    context_text = attrs.pop("context_text", None)
    surprisal = attrs.pop("surprisal", None)
    provenance = {**attrs, "run": features.name, "model": features.model,
                  "n_model_layers": features.n_model_layers, "kind": STIMULI_KIND}
    check_replace(path, "features file")  # never over a file neuroenc did not write
    strings = [features.ids, features.texts, features.groups or [], [] if context_text is None else context_text]
    extra = [] if surprisal is None else [np.asarray(surprisal, dtype=np.float64)]
    with open_feature_file(path, data_nbytes(features, [*arrays.values(), *extra], strings)) as f:
        f.attrs["format"] = FEATURES_FORMAT
        f.attrs["kind"] = STIMULI_KIND
        f.attrs["complete"] = False
        write_strings(f, "stimulus_ids", features.ids)
        write_strings(f, "texts", features.texts)
        if features.groups is not None:
            write_strings(f, "groups", features.groups)
        if context_text is not None:
            write_strings(f, "context_text", context_text)
        for name, arr in arrays.items():
            f.create_dataset(name, data=arr, fletcher32=True)
        if surprisal is not None:
            f.create_dataset("surprisal", data=np.asarray(surprisal, dtype=np.float64), fletcher32=True)
        write_layers(f, features, provenance)
    return path


def is_stimulus_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a feature file of stimulus-level features (without reading them)."""
    import h5py

    try:
        with h5py.File(Path(path), "r") as f:
            return f.attrs.get("kind") == STIMULI_KIND
    except OSError:
        return False


def load_stimulus_features(path: str | os.PathLike, layers: Any = None) -> StimulusFeatures:
    """Read a stimulus-level feature file (:func:`save_stimulus_features`).

    Parameters
    ----------
    path : path-like
    layers : None | "all" | int | float | iterable
        Layers to read (as :func:`~neuroenc.features.load_features`).

    Raises
    ------
    FeatureFileError
        If the file is incomplete or fails its checksums.
    ValueError
        If it holds word-level features, or lacks a requested layer.
    """
    import h5py

    path = check_feature_file(path)
    with h5py.File(path, "r") as f:
        if f.attrs.get("kind") != STIMULI_KIND:
            raise ValueError(
                f"Feature file {str(path)!r} holds word-level features of a story (with word times), not "
                "stimulus-level features; read it with neuroenc.features.load_features, and fit it with "
                "`neuroenc fit --features FILE --responses R --tr TR`."
            )
        data, provenance = read_layers_and_provenance(f, path, layers, extra=("surprisal",))
        ids = read_strings(f, "stimulus_ids", path)
        texts = read_strings(f, "texts", path)
        groups = read_strings(f, "groups", path) if "groups" in f else None
        if "context_text" in f:
            provenance["context_text"] = read_strings(f, "context_text", path)
    name = provenance.pop("run", "stimuli")
    model = provenance.pop("model", None)
    n_layers = provenance.pop("n_model_layers", None)
    provenance["path"] = str(path)
    return StimulusFeatures(data, ids, texts, groups, name=name, model=model, n_model_layers=n_layers,
                            attrs=provenance)
