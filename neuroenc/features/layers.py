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
