"""MEG/EEG results as mne objects: the measurement info, scores as an ``Evoked``, TRF weights.

Results of sensor responses (:class:`~neuroenc.responses.SensorSpace` targets) keep the
``mne.Info`` of their channels (:attr:`EncodingResults.sensor_info`). It is written inside the
results file by mne's own writer (:func:`mne.io.write_info`): the bytes of the FIF file are the
``/sensors/info_fif`` dataset, read back with :func:`mne.io.read_info`, so channel positions,
coil types and the device-to-head transform survive a save and load exactly as mne keeps them.

- :func:`results_to_evoked`: r (or Δr against the baseline model) per channel as an
  :class:`mne.EvokedArray` (one "time" point per layer), ready for ``plot_topomap``.
- :func:`fit_trf` / :func:`add_trf`: the temporal response functions (channels × features ×
  lags) of each layer, from a ridge refit on all rows of the time-lagged MEG design
  (:func:`~neuroenc.align.make_meg_design`) at the penalties the results chose per channel.
"""
from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import _check_option

logger = logging.getLogger(__name__)

#: The largest side (rows or lagged columns) of the Gram matrix :func:`fit_trf` eigendecomposes.
MAX_TRF_GRAM = 20000
#: What :func:`results_to_evoked` can put on the channels.
EVOKED_KINDS = ("r", "delta_r", "r2")


# ---------------------------------------------------------------------- the Info in HDF5
def check_sensor_info(info: Any, targets: Sequence[str], where: str = "EncodingResults.sensor_info") -> Any:
    """Raise unless ``info`` is an ``mne.Info`` whose channels are ``targets``, in order."""
    import mne

    if not isinstance(info, mne.Info):
        raise TypeError(f"{where} must be an mne.Info (or None), got {type(info).__name__}.")
    names = list(info["ch_names"])
    if names != list(targets):
        diff = next((i for i, (a, b) in enumerate(zip(names, targets)) if a != b), min(len(names), len(targets)))
        raise ValueError(
            f"{where} has {len(names)} channels but the results have {len(targets)} targets, and they differ "
            f"from position {diff} ({names[diff] if diff < len(names) else None!r} vs "
            f"{list(targets)[diff] if diff < len(targets) else None!r}); pick the Info to the targets' "
            "channels with mne.pick_info(info, mne.pick_channels(info['ch_names'], targets, ordered=True))."
        )
    return info


def check_trf(weights: dict, lags: Any, n_targets: int) -> tuple[dict[int, np.ndarray], np.ndarray | None]:
    """TRF weights per layer (n_targets, n_features, n_lags) and their lags, checked together."""
    weights = {int(k): np.asarray(v, dtype=np.float64) for k, v in (weights or {}).items()}
    if not weights:
        return {}, None if lags is None else np.asarray(lags, dtype=np.float64).reshape(-1)
    if lags is None:
        raise ValueError("EncodingResults.trf_weights need their lags: set trf_lags (seconds, one per lag).")
    lags = np.asarray(lags, dtype=np.float64).reshape(-1)
    for layer, w in weights.items():
        if w.ndim != 3 or w.shape[0] != n_targets or w.shape[2] != lags.size:
            raise ValueError(
                f"the TRF weights of layer {layer} have shape {w.shape}; expected ({n_targets}, n_features, "
                f"{lags.size}) (channels x features x lags)."
            )
    return weights, lags


def info_to_bytes(info: Any) -> bytes:
    """The FIF bytes of ``info``, written by :func:`mne.io.write_info`."""
    import mne

    with tempfile.TemporaryDirectory(prefix="neuroenc-info-") as tmp:
        path = Path(tmp) / "sensors-info.fif"
        mne.io.write_info(path, info)
        return path.read_bytes()


def info_from_bytes(data: bytes) -> Any:
    """The ``mne.Info`` of FIF bytes written by :func:`info_to_bytes`."""
    import mne

    with tempfile.TemporaryDirectory(prefix="neuroenc-info-") as tmp:
        path = Path(tmp) / "sensors-info.fif"
        path.write_bytes(bytes(data))
        return mne.io.read_info(path, verbose="error")


def write_sensor_h5(f: Any, info: Any, trf_weights: dict[int, np.ndarray], trf_lags: np.ndarray | None) -> None:
    """Write the Info and TRF weights into an open results file (``/sensors``, ``/trf``)."""
    import mne

    if info is not None:
        ds = f.create_dataset("sensors/info_fif", data=np.frombuffer(info_to_bytes(info), dtype=np.uint8))
        ds.attrs["writer"] = "mne.io.write_info"
        ds.attrs["mne_version"] = mne.__version__
    if trf_weights:
        for layer, w in trf_weights.items():
            f.create_dataset(f"trf/weights/{int(layer)}", data=w)
        f.create_dataset("trf/lags", data=np.asarray(trf_lags, dtype=np.float64))
        f["trf"].attrs["axes"] = "channels x features x lags (seconds: /trf/lags)"


def read_sensor_h5(f: Any) -> tuple[Any, dict[int, np.ndarray], np.ndarray | None]:
    """The Info, TRF weights and lags of an open results file (None, {}, None when absent)."""
    info = info_from_bytes(f["sensors/info_fif"][()].tobytes()) if "sensors/info_fif" in f else None
    weights, lags = {}, None
    if "trf" in f:
        weights = {int(k): v[()] for k, v in f["trf/weights"].items()}
        lags = f["trf/lags"][()]
    return info, weights, lags


def info_of_design(designs: Any) -> Any:
    """The ``mne.Info`` of a design's sensor targets, or None (not sensors, or not read with mne)."""
    space = getattr(designs, "space", None)
    return getattr(space, "info", None) if getattr(space, "kind", None) == "sensor" else None


# ---------------------------------------------------------------------- Evoked
def _require_info(results: Any, info: Any, what: str) -> Any:
    if info is not None:
        return check_sensor_info(info, results.targets, where="info")
    if results.sensor_info is not None:
        return results.sensor_info
    kind = (results.provenance.get("target_space") or {}).get("kind")
    if kind != "sensor":
        raise ValueError(
            f"{what} needs sensor results (MEG/EEG channels with their mne Info), but these results' targets "
            f"are {kind or 'of unknown kind'!r} ({results.n_targets} targets: "
            f"{', '.join(results.targets[:3])}{'...' if results.n_targets > 3 else ''}); use to_frame() or brain "
            "maps for voxels, vertices and ROIs."
        )
    raise ValueError(
        f"{what}: these sensor results carry no mne Info (fitted from responses not read with mne, or "
        "written before results kept it); pass info= (the mne.Info of the recording, picked to the "
        "results' channels) or refit from Response.from_mne(...) responses."
    )


def _layer_rows(results: Any, layer: Any) -> np.ndarray:
    layers = [int(x) for x in results.layers]
    if layer is None:
        return np.arange(len(layers))
    wanted = [layer] if np.ndim(layer) == 0 else list(layer)
    rows = []
    for x in wanted:
        if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or int(x) not in layers:
            raise ValueError(f"Invalid layer {x!r}: these results have layers {layers}; pass one of them, "
                             "a list of them, or None for all.")
        rows.append(layers.index(int(x)))
    return np.asarray(rows, dtype=int)


def results_to_evoked(results: Any, layer: Any = None, *, kind: str = "r", info: Any = None) -> Any:
    """Scores per channel as an :class:`mne.EvokedArray`, one time point per layer.

    Parameters
    ----------
    results : EncodingResults
        Results of sensor responses.
    layer : int | sequence of int | None
        The layer(s) to put on the time axis; None: every layer.
    kind : {"r", "delta_r", "r2"}
        Held-out r, r minus the baseline model's r (needs a baseline), or R².
    info : mne.Info | None
        The channels' Info when the results carry none.

    Returns
    -------
    evoked : mne.EvokedArray
        ``data`` (n_channels, n_layers chosen); ``times`` are the layer indices (``sfreq`` 1 Hz
        when they are consecutive, else 0, 1, 2... in the order given: the comment names them),
        ``nave`` 1 and ``comment`` says what was put there.
    """
    import mne

    _check_option("kind", kind, EVOKED_KINDS, "of results_to_evoked")
    info = _require_info(results, info, "to_evoked")
    rows = _layer_rows(results, layer)
    if kind == "delta_r":
        if "r" not in results.baseline:
            raise ValueError("kind='delta_r' needs a baseline model's r (results.baseline['r']); these results "
                             "have none: fit with a baseline (nuisance=...) or use kind='r'.")
        data = results.r[rows] - results.baseline["r"][None, :]
    else:
        data = getattr(results, kind)[rows]
    layers = results.layers[rows]
    info = info.copy()
    with info._unlock():  # scores have no sampling rate: one "sample" per layer
        info["sfreq"] = 1.0
    consecutive = layers.size == 1 or bool(np.all(np.diff(layers) == 1))
    tmin = float(layers[0]) if consecutive else 0.0
    what = {"r": "held-out r", "delta_r": "r - baseline r", "r2": "held-out R2"}[kind]
    comment = f"{what}; times = layers {layers.tolist()}" + ("" if consecutive else " (in order)")
    return mne.EvokedArray(data.T.astype(np.float64), info, tmin=tmin, comment=comment, nave=1,
                           verbose="error")


# ---------------------------------------------------------------------- TRF weights
def _solve_ridge(X: np.ndarray, Y: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Ridge weights (n_features, n_targets) without intercept, one penalty per target."""
    n, p = X.shape
    if min(n, p) > MAX_TRF_GRAM:
        raise ValueError(
            f"the TRF refit would eigendecompose a {min(n, p)} x {min(n, p)} Gram matrix ({n} rows, {p} lagged "
            f"features; the limit is {MAX_TRF_GRAM}); decimate the responses (decim=), shorten the lags "
            "(tmin=, tmax=) or reduce the features (e.g. PCA) first."
        )
    if p <= n:
        lam, V = np.linalg.eigh(X.T @ X)
        C = V.T @ (X.T @ Y)
        return V @ (C / (np.maximum(lam, 0.0)[:, None] + alphas[None, :]))
    lam, U = np.linalg.eigh(X @ X.T)
    C = U.T @ Y
    return X.T @ (U @ (C / (np.maximum(lam, 0.0)[:, None] + alphas[None, :])))


def fit_trf(design: Any, alphas: Any, *, layers: Sequence[int] | None = None, Y: Any = None) -> dict[int, np.ndarray]:
    """TRF weights of each layer: a ridge refit on all rows of a time-lagged MEG/EEG design.

    Parameters
    ----------
    design : Design
        From :func:`~neuroenc.align.make_meg_design` (lags on the sample grid).
    alphas : float | array-like, shape (n_targets,) | dict of int -> array-like
        The ridge penalty of each channel (per layer when a dict, e.g. the results' ``alphas``).
    layers : sequence of int | None
        Default: every layer of ``alphas`` when a dict, else of the design.
    Y : array-like, shape (n_samples, n_targets) | None
        Default: the design's ``Y``.

    Returns
    -------
    weights : dict of int -> ndarray, shape (n_channels, n_features, n_lags)
        The lags are ``design.lags`` (seconds); ``weights[l][c, f, k]`` is the response of channel
        ``c`` at lag ``k`` to a unit of (z-scored) feature ``f``.
    """
    if getattr(design, "kind", None) != "meg" or not callable(getattr(design, "X", None)):
        raise ValueError(
            "fit_trf needs a time-lagged MEG/EEG design from neuroenc.align.make_meg_design, got "
            f"{type(design).__name__} (kind {getattr(design, 'kind', None)!r}); fMRI delays are not a TRF."
        )
    Y = np.asarray(design.Y if Y is None else Y, dtype=np.float64)
    if Y.ndim != 2 or Y.shape[0] != design.n_samples:
        raise ValueError(f"Y has shape {Y.shape}; the design has {design.n_samples} rows (n_samples, n_targets).")
    if layers is None:
        layers = sorted(alphas) if isinstance(alphas, dict) else design.layers
    out = {}
    for layer in layers:
        a = alphas[int(layer)] if isinstance(alphas, dict) else alphas
        a = np.broadcast_to(np.asarray(a, dtype=np.float64).reshape(-1), (Y.shape[1],)).copy()
        if not np.all(np.isfinite(a)) or np.any(a < 0):
            raise ValueError(f"the ridge penalties of layer {layer} must be finite and >= 0; got {a[:5]}...")
        a = np.maximum(a, 1e-12)
        X = design.X(int(layer), dtype=np.float64)
        W = _solve_ridge(X, Y, a)  # (n_lags * n_features, n_targets), lag-major
        out[int(layer)] = np.ascontiguousarray(np.transpose(design.reshape_by_delays(W, axis=0), (2, 1, 0)))
        logger.info("TRF of layer %d: %d channels x %d features x %d lags", int(layer), *out[int(layer)].shape)
    return out


def add_trf(results: Any, design: Any, *, layers: Sequence[int] | None = None, Y: Any = None) -> Any:
    """Fit the TRF weights of ``layers`` at the penalties of ``results`` and store them there.

    The penalties are the results' ``alphas`` (each channel's, per layer); the design must be
    the one the results were fitted on (same channels and lags). Saved with the results
    (``/trf``) and read back by :meth:`EncodingResults.trf`.

    Returns
    -------
    results : EncodingResults
        The same object, with ``trf_weights`` and ``trf_lags`` set.
    """
    if results.alphas is None:
        raise ValueError("these results have no ridge penalties (alphas); refit them, or call fit_trf(design, "
                         "alphas=...) with penalties of your own.")
    if list(design.target_names) != list(results.targets):
        raise ValueError(
            f"the design's {len(design.target_names)} channels are not the results' {results.n_targets} targets; "
            "pass the design the results were fitted on."
        )
    rows = _layer_rows(results, layers)
    alphas = {int(results.layers[i]): results.alphas[i] for i in rows}
    weights = fit_trf(design, alphas, Y=Y)
    lags = np.asarray(design.lags, dtype=np.float64)
    if results.trf_lags is not None and not np.allclose(results.trf_lags, lags):
        raise ValueError("these results already hold TRFs on other lags; fit the TRFs of every layer with one design.")
    results.trf_weights.update(weights)
    results.trf_lags = lags
    return results


def info_for_targets(info: Any, targets: Sequence[str]) -> Any:
    """``info`` picked to ``targets`` (in their order), or None when some target is not a channel."""
    import mne

    if info is None or not set(targets) <= set(info["ch_names"]):
        return None
    return mne.pick_info(info, [info["ch_names"].index(t) for t in targets], verbose="error")


def merge_sensor_parts(parts: Sequence[Any], axis: str) -> dict[str, Any]:
    """The ``sensor_info``, ``trf_weights`` and ``trf_lags`` of merged results parts.

    Along ``"layers"`` the parts share their channels (the first part's Info) and their TRFs
    are joined by layer; along ``"targets"`` the parts' Infos are joined channel-wise (mne's
    ``add_channels``) and the TRFs of each layer concatenated over channels.
    """
    import mne

    infos = [p.sensor_info for p in parts]
    with_trf = [bool(p.trf_weights) for p in parts]
    if any(with_trf) and not all(with_trf):
        raise ValueError("Cannot merge results: TRF weights are in some parts only; add them to every part "
                         "(neuroenc.encoding.sensors.add_trf) or to none.")
    lags = next((p.trf_lags for p in parts if p.trf_weights), None)
    if lags is not None and any(not np.allclose(p.trf_lags, lags) for p in parts):
        raise ValueError("Cannot merge results: the parts' TRF weights are on different lags.")
    if axis == "layers":
        weights = {k: v for p in parts for k, v in p.trf_weights.items()}
        return {"sensor_info": infos[0], "trf_weights": weights, "trf_lags": lags}
    info = None
    if all(i is not None for i in infos):
        evokeds = [mne.EvokedArray(np.zeros((len(i["ch_names"]), 1)), i, verbose="error") for i in infos]
        info = evokeds[0].add_channels(evokeds[1:], force_update_info=True).info if len(evokeds) > 1 else infos[0]
    weights = {}
    if lags is not None:
        layers = set(parts[0].trf_weights)
        if any(set(p.trf_weights) != layers for p in parts):
            raise ValueError("Cannot merge results: the target chunks hold TRF weights of different layers.")
        weights = {k: np.concatenate([p.trf_weights[k] for p in parts], axis=0) for k in sorted(layers)}
    return {"sensor_info": info, "trf_weights": weights, "trf_lags": lags}
