"""Layer designs shared between subjects who heard the same story.

Subjects who heard the same runs get designs of the same words, features, response grid and
settings, so every layer's design matrix is the same array. :func:`design_key` names that content
(settings, each run's grid, word times, trimming and a content hash of its features), and
:func:`share_layers` keeps each layer's matrix, read-only, in a
:class:`~neuroenc.encoding.spectra.SpectrumStore` under that key, so the next subject's design
takes it instead of building it again.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np


def design_key(design: Any, features_keys: dict[str, str]) -> bytes | None:
    """The content key of a design's layers, or None when a run has no features key.

    Parameters
    ----------
    design : Design
    features_keys : dict of str -> str
        A content hash of each run's features (e.g. its file's sha256), by run name.
    """
    runs = design._runs
    if any(run.name not in features_keys for run in runs):
        return None
    h = hashlib.sha256()
    h.update(json.dumps({"kind": design.kind, "delays": [int(d) for d in design.delays], "hrf": design.hrf,
                         "zscore": design.zscore, "resampling": design._resampling},
                        sort_keys=True, default=str).encode())
    for run in runs:
        resp = run.response
        h.update(json.dumps([run.name, str(features_keys[run.name]), run.n_pre, run.n_post, run.first,
                             run.last, resp.n_samples, repr(float(resp.start)), repr(float(resp.period))]
                            ).encode())
        for a in (run.times, run.onsets, run.offsets):
            a = np.ascontiguousarray(a, dtype="<f8")
            h.update(b"%d|" % a.size)
            h.update(a.tobytes())
    return b"design|" + h.digest()


def share_layers(design: Any, store: Any, features_keys: dict[str, str]) -> bool:
    """Keep the layers' matrices of ``design`` (:meth:`~neuroenc.align.Design.X`) in ``store``
    for later designs of the same content: made once per store, returned read-only.

    Parameters
    ----------
    design : Design
    store : SpectrumStore
    features_keys : dict of str -> str
        A content hash of each run's features (e.g. its file's sha256), by run name.

    Returns
    -------
    shared : bool
        False (nothing shared) when a run has no features key.
    """
    key = design_key(design, features_keys)
    if key is not None:
        design._shared = (store, key)
    return key is not None


def _part(layer: int, dtype: np.dtype) -> bytes:
    return b"design-X|%d|%s" % (layer, np.dtype(dtype).str.encode())


def kept_layer(design: Any, layer: int, dtype: np.dtype) -> np.ndarray | None:
    """A layer's matrix kept by an earlier design of the same content, or None.

    The design does the same bookkeeping as when it builds the matrix: the warnings about
    constant feature columns, and the z-scoring statistics of the layer.
    """
    if design._shared is None:
        return None
    kept = design._shared[0].get(design._shared[1], _part(layer, dtype))
    if kept is None:
        return None
    out, stats = kept
    for name, st in stats.items():
        design._warn_constant(st, f"layer {layer} of the features for run {name!r}")
    if design.zscore:
        design._feature_stats[layer] = dict(stats)
    return out


def keep_layer(design: Any, layer: int, dtype: np.dtype, out: np.ndarray, stats: dict) -> None:
    """Keep a layer's matrix (made read-only) for later designs of the same content."""
    if design._shared is None:
        return
    out.setflags(write=False)  # shared with later designs: never changed
    design._shared[0].put(design._shared[1], _part(layer, dtype), (out, dict(stats)), nbytes=out.nbytes)


__all__ = ["design_key", "keep_layer", "kept_layer", "share_layers"]
