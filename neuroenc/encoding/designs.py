"""Per-layer designs, loaded one layer at a time.

A sweep over 30-80 layers of a LeBel-size data set cannot hold every layer's delayed design in
memory at once, so the estimators take a :class:`LayerDesigns`: layer indices plus a way to get
one layer's (n_samples, n_features) design. :func:`as_layer_designs` builds one from what users
have: a 2-D array (one layer), a 3-D array (layers first), a list or dict of 2-D arrays, a
callable ``layer -> array`` with the layer list, or a :class:`neuroenc.align.Design` (``layers``,
``X(layer)``, ``groups``).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .._validation import _check_finite
from ..align.hrf import hrf_kernel
from ..align.resample import kernel_reach

#: What the rows of a design are: ordered samples on a time grid, or exchangeable stimuli.
ROWS = ("samples", "stimuli")


class LayerDesigns:
    """Layer indices and a getter for one layer's design, shape (n_samples, n_features).

    Parameters
    ----------
    layers : sequence of int
        Layer indices (0 = embeddings).
    getter : callable
        ``getter(layer)`` returns that layer's design (array-like, 2-D). Called once per layer
        per fit; it may read from disk.
    n_samples : int | None
        Number of rows, if known without loading a layer.
    groups : array-like | None
        Run label of each row, carried along for the cross-validation.
    info : dict | None
        Provenance (model, delays, feature file hash...).
    rows : {"samples", "stimuli"} | None
        What the rows are: ordered samples on a time grid (TRs, MEG samples: contiguous or
        leave-one-run-out CV with gaps, circular-shift nulls) or exchangeable stimuli (k-fold or
        group-k-fold CV, permutation nulls within groups). None: not declared (plain arrays);
        the estimators then take samples, unless their ``cv`` names a stimulus scheme.
    """

    def __init__(self, layers: Sequence[int], getter: Callable[[int], Any], n_samples: int | None = None,
                 groups: Any = None, info: dict | None = None, rows: str | None = None) -> None:
        layers = [int(x) for x in layers]
        if not layers:
            raise ValueError("LayerDesigns needs at least one layer.")
        if len(set(layers)) != len(layers):
            raise ValueError(f"LayerDesigns has duplicate layers: {layers}.")
        self.layers = layers
        self._getter = getter
        self.n_samples = n_samples
        self.groups = None if groups is None else np.asarray(groups)
        self.info = dict(info or {})
        if rows not in (None, *ROWS):
            raise ValueError(f"Invalid value for 'rows': {rows!r}. Allowed values are {ROWS} or None.")
        self.rows = rows

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __getitem__(self, layer: int) -> np.ndarray:
        """One layer's design as a 2-D float array, checked (finite, right number of rows)."""
        if int(layer) not in self.layers:
            raise KeyError(f"No design for layer {layer}; layers are {self.layers}.")
        X = np.asarray(self._getter(int(layer)))
        if X.ndim == 1:
            X = X[:, None]
        if X.ndim != 2:
            raise ValueError(f"The design of layer {layer} has shape {X.shape}; expected (n_samples, n_features).")
        if not np.issubdtype(X.dtype, np.floating):
            X = X.astype(np.float64)
        if self.n_samples is not None and X.shape[0] != self.n_samples:
            raise ValueError(
                f"The design of layer {layer} has {X.shape[0]} rows but the responses have "
                f"{self.n_samples} samples; designs and responses must be aligned on the same grid."
            )
        _check_finite(f"The design of layer {layer}", X, fix="Check the features and the alignment.")
        return X

    def with_n_samples(self, n_samples: int) -> "LayerDesigns":
        """The same designs, checked against ``n_samples`` rows (a copy; no data is loaded)."""
        return LayerDesigns(self.layers, self._getter, n_samples, self.groups, self.info, self.rows)

    def select(self, layers: Sequence[int]) -> "LayerDesigns":
        """The same designs restricted to some layers (no data is loaded)."""
        missing = [x for x in layers if int(x) not in self.layers]
        if missing:
            raise KeyError(f"No design for layer(s) {missing}; layers are {self.layers}.")
        return LayerDesigns([int(x) for x in layers], self._getter, self.n_samples, self.groups, self.info,
                            self.rows)

    def __repr__(self) -> str:
        return f"<LayerDesigns | {len(self.layers)} layers {self.layers[:4]}{'...' if len(self) > 4 else ''}>"


def design_reach(designs: Any) -> int | None:
    """How many rows away from a row its design row reaches into the stimulus, or None if unknown.

    A :class:`LayerDesigns` made from a :class:`neuroenc.align.Design` carries the design's own
    :attr:`~neuroenc.align.Design.reach` in ``info["reach"]`` (the longest delay/lag + the HRF
    kernel after lag 0 + the half-width of the resampling kernel). Other designs (a
    ``LayerDesigns`` or a dict of that form with ``"delays"`` and the alignment settings under
    ``"design"``) have it computed with the same align functions: the longest delay, plus
    ``len(hrf_kernel(tr, hrf)) - 1`` rows with an HRF, plus
    :func:`~neuroenc.align.resample.kernel_reach` of the resampling method (0 for MEG/EEG impulses).
    """
    info = designs.info if hasattr(designs, "info") else dict(designs or {})
    if info.get("reach") is not None:
        return int(info["reach"])
    delays = info.get("delays")
    settings = info.get("design") or {}
    if not delays and not settings:
        return None
    reach = max((abs(int(d)) for d in delays), default=0) if delays else 0
    model = settings.get("hrf") or info.get("hrf")
    if model:
        tr = settings.get("tr") or info.get("period")
        if tr is None:
            raise ValueError(
                f"The design is convolved with the {model!r} HRF but its TR is unknown; give gap= "
                "(samples dropped around a test block) explicitly."
            )
        reach += len(hrf_kernel(float(tr), str(model))) - 1
    if settings.get("method") is not None:  # fMRI: words resampled onto the TR grid
        reach += kernel_reach(settings["method"], float(settings.get("window", 3)),
                              float(settings.get("cutoff_mult") or 1.0))
    return int(reach)


def gap_for(designs: Any, default: int) -> int:
    """Samples to drop around a test block: :func:`design_reach` + 1 when known, else ``default``.

    Training rows closer than this to a test row would share stimulus (through the delays, the
    HRF or the resampling window) with it. E.g. FIR delays 1-4 with Lanczos resampling (3
    lobes): 4 + 3 + 1 = 8; ``hrf="glover"`` at TR 2 s (a 16-tap kernel), delay 0, Lanczos: 0
    + 15 + 3 + 1 = 19.
    """
    reach = design_reach(designs)
    return int(default) if reach is None else reach + 1


def as_layer_designs(X: Any, n_samples: int | None = None) -> LayerDesigns:
    """Wrap what the user gave as a :class:`LayerDesigns` (see the module docstring)."""
    if isinstance(X, LayerDesigns):
        return X if n_samples is None else X.with_n_samples(n_samples)
    if hasattr(X, "layers") and callable(getattr(X, "X", None)):
        # neuroenc.align.Design: ``.layers``, ``.X(layer)``, ``.groups``, ``.delays``, ``.settings``,
        # ``.reach``, ``.space`` (where the targets are; written to the results' provenance), ``.rows``
        # (what the rows are) and ``.provenance`` (more entries for the results)
        info = {"design": dict(getattr(X, "settings", {}) or {})}
        if getattr(X, "delays", None) is not None:
            info["delays"] = [int(d) for d in X.delays]
        for key in ("kind", "period", "hrf", "reach"):
            if getattr(X, key, None) is not None:
                info[key] = getattr(X, key)
        if getattr(X, "space", None) is not None:
            info["target_space"] = X.space.to_dict()
        info.update(getattr(X, "provenance", None) or {})
        return LayerDesigns(list(X.layers), X.X, n_samples or getattr(X, "n_samples", None),
                            getattr(X, "groups", None), info, getattr(X, "rows", "samples"))
    if isinstance(X, Mapping):
        data = dict(X)
        return LayerDesigns(sorted(int(k) for k in data), lambda layer: data[layer], n_samples)
    if isinstance(X, np.ndarray) or hasattr(X, "__array__") and not isinstance(X, (list, tuple)):
        arr = np.asarray(X)
        if arr.ndim == 3:
            return LayerDesigns(range(arr.shape[0]), lambda layer: arr[layer], n_samples)
        if arr.ndim in (1, 2):
            return LayerDesigns([0], lambda layer: arr, n_samples)
        raise ValueError(f"X has shape {arr.shape}; give one 2-D design or a 3-D array "
                         "(n_layers, n_samples, n_features).")
    if isinstance(X, (list, tuple)):
        if not X:
            raise ValueError("X is an empty list; give one design per layer.")
        if all(np.ndim(x) == 2 for x in X):
            items = list(X)
            return LayerDesigns(range(len(items)), lambda layer: items[layer], n_samples)
        arr = np.asarray(X)
        return LayerDesigns([0], lambda layer: arr, n_samples)
    raise TypeError(
        f"Cannot use {type(X).__name__} as layer designs: give a 2-D array, a 3-D array, a list "
        "or dict of 2-D arrays, or a LayerDesigns(layers, getter)."
    )
