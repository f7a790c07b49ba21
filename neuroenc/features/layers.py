"""Layer selection: ``"all"``, indices, negative indices and relative depths."""
from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np


def layer_at_depth(depth: float, n_layers: int) -> int:
    """The layer index at a relative depth in [0, 1] (0 = embeddings, 1 = last block).

    Parameters
    ----------
    depth : float
        Relative depth; ``0.5`` is the middle block.
    n_layers : int
        Number of hidden states of the model (embeddings + blocks).

    Returns
    -------
    layer : int
        ``round(depth * (n_layers - 1))`` (halves round to even, as :func:`round` does).

    Examples
    --------
    >>> layer_at_depth(0.5, 31)  # smollm2-135m: 30 blocks
    15
    >>> layer_at_depth(1.0, 7)  # minilm-l6: 6 blocks
    6
    """
    depth = float(depth)
    if not np.isfinite(depth) or not 0.0 <= depth <= 1.0:
        raise ValueError(
            f"Relative depth must be in [0, 1] (0 = embeddings, 1 = last block), got {depth!r}."
        )
    return int(round(depth * (int(n_layers) - 1)))


def _layer_items(layers: Any) -> list[Any]:
    """A non-string ``layers`` argument as a non-empty list of items (one number -> [number])."""
    items: Iterable[Any] = [layers] if isinstance(layers, (numbers.Number, np.number)) else layers
    try:
        items = list(items)
    except TypeError:
        raise TypeError(
            f"'layers' must be 'all', an int, a float or a list of them, got {type(layers).__name__}."
        ) from None
    if not items:
        raise ValueError("'layers' is empty; pass 'all' or at least one layer index.")
    return items


def resolve_layers(layers: Any, n_layers: int, model: str = "the model") -> list[int]:
    """Layer indices, sorted and unique, from a user's selection.

    Parameters
    ----------
    layers : "all" | int | float | iterable of int or float
        ``"all"``: every hidden state, 0 (embeddings) to ``n_layers - 1`` (last block).
        An int is a layer index (negative counts from the end: ``-1`` is the last block).
        A float in [0, 1] is a relative depth (:func:`layer_at_depth`): ``0.5`` is the middle
        block. Note that ``1`` (int) is the first block but ``1.0`` (float) the last.
    n_layers : int
        Number of hidden states of the model.
    model : str
        The model's name, for messages.

    Returns
    -------
    layers : list of int
    """
    if isinstance(layers, str):
        if layers != "all":
            raise ValueError(
                f"Invalid value for 'layers': {layers!r}. Use 'all', a layer index, a relative "
                "depth in [0, 1] (float) or a list of them."
            )
        return list(range(int(n_layers)))
    items = _layer_items(layers)
    out = []
    for item in items:
        if isinstance(item, (bool, np.bool_)):
            raise TypeError(f"'layers' must hold ints or floats, got {item!r}.")
        if isinstance(item, (numbers.Integral, np.integer)):
            idx = int(item)
            if not -int(n_layers) <= idx < int(n_layers):
                raise ValueError(
                    f"Layer {idx} is out of range for {model}, which has {n_layers} hidden states "
                    f"(0 = embeddings .. {n_layers - 1} = last block; negative indices count from "
                    "the end)."
                )
            out.append(idx % int(n_layers))
        elif isinstance(item, (numbers.Real, np.floating)):
            out.append(layer_at_depth(float(item), n_layers))
        else:
            raise TypeError(f"'layers' must hold ints or floats, got {item!r} ({type(item).__name__}).")
    return sorted(set(out))


def resolve_stored_layers(
    layers: Any,
    stored: Iterable[int],
    n_layers: int | None = None,
    model: str = "the features",
) -> list[int]:
    """Layer indices of a selection among the layers a feature set or file holds.

    Parameters
    ----------
    layers : None | "all" | int | float | iterable of int or float
        ``None`` or ``"all"``: every stored layer. A non-negative int is a layer index, taken
        as is (the caller reports it if it is not stored); a negative int (``-1`` = last
        block) or a float (a relative depth in [0, 1]) is resolved as in
        :func:`resolve_layers` against the model's ``n_layers`` hidden states.
    stored : iterable of int
        The layers held.
    n_layers : int | None
        The model's number of hidden states (default: the highest stored layer + 1).
    model : str
        The model's name, for messages.

    Returns
    -------
    layers : list of int
        Sorted and unique.

    Examples
    --------
    >>> resolve_stored_layers("all", [0, 15, 30], 31)
    [0, 15, 30]
    >>> resolve_stored_layers([0.5, -1, 3], [0, 3, 15, 30], 31)
    [3, 15, 30]
    """
    stored = sorted(int(i) for i in stored)
    if layers is None or isinstance(layers, str):
        if layers not in (None, "all"):
            resolve_layers(layers, 1)  # raises: "all" is the only string
        return stored
    if n_layers is None:
        n_layers = (max(stored) + 1) if stored else 1
    items = _layer_items(layers)
    out = set()
    for item in items:
        if isinstance(item, (numbers.Integral, np.integer)) and not isinstance(item, (bool, np.bool_)) \
                and item >= 0:
            out.add(int(item))
        else:
            out.update(resolve_layers([item], n_layers, model))
    return sorted(out)





def layers_key(layers: Any) -> Any:
    """A canonical, JSON-able form of a layer selection (checked, but not resolved: resolving
    relative depths and negative indices needs the model's depth)."""
    if isinstance(layers, str):
        resolve_layers(layers, 1)  # only "all" is a valid string
        return layers
    resolve_layers(layers, 1 << 30)  # type checks that need no model
    items = [layers] if isinstance(layers, (numbers.Number, np.number)) else list(layers)
    canon = {(float(x), isinstance(x, (numbers.Integral, np.integer))) for x in items}
    return [int(v) if is_int else v for v, is_int in sorted(canon)]


class LayerArrays:
    """Per-layer 2-D arrays whose rows are the same items (words, stimuli): the part that
    :class:`~neuroenc.features.FeatureSet` and :class:`~neuroenc.features.StimulusFeatures`
    share.

    A subclass sets ``_layers`` (layer index -> array or lazy ``h5py.Dataset``, with
    :meth:`_store_layers`), ``model`` and ``n_model_layers``, and says what it is in messages
    with :meth:`_label`.
    """

    _layers: dict[int, Any]
    model: str | None
    n_model_layers: int

    def _label(self) -> str:
        """How messages name this object, e.g. ``"FeatureSet for run 'alice'"``."""
        return type(self).__name__

    def _store_layers(self, layers: Any, n: int, rows: str) -> None:
        """Keep ``layers``, each of shape (n, n_features) (``rows`` says what the n rows are, for
        the message of a wrong shape)."""
        self._layers = {}
        for idx, arr in layers.items():
            shape = getattr(arr, "shape", None) or np.shape(arr)
            if len(shape) != 2 or shape[0] != n:
                raise ValueError(f"{self._label()}: layer {idx} has shape {tuple(shape)}, expected "
                                 f"({n}, n_features) {rows}.")
            self._layers[int(idx)] = arr

    @property
    def layer_indices(self) -> list[int]:
        """The layer indices held, sorted."""
        return sorted(self._layers)

    def n_features(self, layer: int | None = None) -> int:
        """Number of columns of ``layer`` (default: the first layer held)."""
        layer = self.layer_indices[0] if layer is None else layer
        return int(self._layers[self._check_layer(layer)].shape[1])

    def _check_layer(self, layer: int) -> int:
        if int(layer) not in self._layers:
            raise KeyError(
                f"{self._label()} (model {self.model!r}) has no layer {layer}; it "
                f"has layers {self.layer_indices}."
            )
        return int(layer)

    def __getitem__(self, layer: int) -> np.ndarray:
        """The features of one layer as a float ndarray, shape (n_rows, n_features)."""
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
