"""Group statistics of MEG/EEG results: cluster permutation tests over sensors × lags (mne.stats).

Subjects' TRF weights (:meth:`~neuroenc.encoding.EncodingResults.trf`) or score maps (r per
channel and layer) are tested against 0 across subjects with mne's spatio-temporal cluster
test (:func:`mne.stats.spatio_temporal_cluster_1samp_test`): neighbouring channels (the
adjacency of the channels' ``mne.Info``, :func:`mne.channels.find_ch_adjacency`) and
neighbouring lags (or layers) that pass a t threshold form clusters, and each cluster's summed t
is compared with the largest cluster of sign-flipped data. The family-wise error is controlled
over all sensors × lags at once.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._validation import _check_option, _check_positive

logger = logging.getLogger(__name__)


@dataclass
class SensorClusters:
    """The clusters of a sensor × lag cluster permutation test.

    Attributes
    ----------
    t_obs : ndarray, shape (n_channels, n_times)
        The one-sample t of each channel and lag (or layer) across subjects.
    clusters : list of ndarray of bool, shape (n_channels, n_times)
        Each cluster's channels × lags.
    pvalues : ndarray, shape (n_clusters,)
        Each cluster's permutation p-value (family-wise over channels × lags).
    ch_names : list of str
        The channels, in the order of the rows.
    times : ndarray, shape (n_times,)
        The lags (s) or layers of the columns.
    threshold : float
        The t threshold that formed the clusters.
    n_permutations : int
    """

    t_obs: np.ndarray
    clusters: list[np.ndarray]
    pvalues: np.ndarray
    ch_names: list[str]
    times: np.ndarray
    threshold: float
    n_permutations: int

    def significant(self, alpha: float = 0.05) -> np.ndarray:
        """Channels × lags inside a cluster with p < ``alpha``, shape (n_channels, n_times)."""
        mask = np.zeros(self.t_obs.shape, dtype=bool)
        for cluster, p in zip(self.clusters, self.pvalues):
            if p < alpha:
                mask |= cluster
        return mask

    def to_frame(self) -> pd.DataFrame:
        """One row per cluster, most significant first: ``p``, ``t_sum``, ``n_channels``,
        ``channels``, ``tmin``, ``tmax`` (the cluster's extent in lags or layers)."""
        rows = []
        for cluster, p in zip(self.clusters, self.pvalues):
            chans, cols = np.nonzero(cluster)
            rows.append({"p": float(p), "t_sum": float(self.t_obs[cluster].sum()),
                         "n_channels": int(np.unique(chans).size),
                         "channels": ", ".join(self.ch_names[i] for i in np.unique(chans)),
                         "tmin": float(self.times[cols.min()]), "tmax": float(self.times[cols.max()])})
        columns = ["p", "t_sum", "n_channels", "channels", "tmin", "tmax"]
        return pd.DataFrame(rows, columns=columns).sort_values("p", kind="stable").reset_index(drop=True)


def sensor_adjacency(info: Any, ch_type: str | None = None) -> tuple[Any, list[str]]:
    """The channel adjacency (sparse, n × n) of one channel type of ``info``, and its channels.

    mne's templates where it has one for the system, else a Delaunay triangulation of the
    channel positions (:func:`mne.channels.find_ch_adjacency`).
    """
    import mne

    types = sorted(set(info.get_channel_types()))
    if ch_type is None:
        if len(types) > 1:
            raise ValueError(f"the Info has channels of several types {types}; pass ch_type= (one of them): "
                             "clusters are formed among channels of one type.")
        ch_type = types[0]
    _check_option("ch_type", ch_type, types, "of the Info's channels")
    pos = np.array([ch["loc"][:3] for ch in info["chs"]])
    if not np.all(np.isfinite(pos)) or np.allclose(pos, 0.0):
        raise ValueError("the Info has no channel positions (all zero or NaN), so channels have no neighbours; "
                         "set a montage (info.set_montage) or use the recording's own Info.")
    with mne.utils.use_log_level("error"):
        adjacency, names = mne.channels.find_ch_adjacency(info, ch_type)
    chans = [n for n, t in zip(info["ch_names"], info.get_channel_types()) if t == ch_type]
    if list(names) != chans:  # a template of another system (e.g. Neuromag's for any "mag" channels)
        logger.info("mne's adjacency template has other channels than the Info's %d %s channels; using a "
                    "Delaunay triangulation of their positions", len(chans), ch_type)
        adjacency, names = _delaunay_adjacency(pos[[info["ch_names"].index(c) for c in chans]]), chans
    return adjacency, list(names)


def _delaunay_adjacency(pos: np.ndarray) -> Any:
    """Channel adjacency from a Delaunay triangulation of positions projected on a plane (an
    azimuthal equidistant projection around their mean direction, as a topomap draws them)."""
    from scipy import sparse
    from scipy.spatial import Delaunay

    centred = pos - pos.mean(axis=0)
    if len(pos) < 4:
        raise ValueError(f"a channel adjacency needs at least 4 channels with positions, got {len(pos)}.")
    unit = pos / np.linalg.norm(pos, axis=1, keepdims=True)
    axis = unit.mean(axis=0)
    axis /= np.linalg.norm(axis)
    e1 = np.cross(axis, [1.0, 0.0, 0.0] if abs(axis[0]) < 0.9 else [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(axis, e1)
    angle = np.arccos(np.clip(unit @ axis, -1.0, 1.0))
    direction = np.column_stack([centred @ e1, centred @ e2])
    norms = np.linalg.norm(direction, axis=1, keepdims=True)
    xy = angle[:, None] * np.divide(direction, norms, out=np.zeros_like(direction), where=norms > 0)
    n = len(pos)
    adjacency = sparse.lil_matrix((n, n), dtype=bool)
    for tri in Delaunay(xy).simplices:
        for a in tri:
            adjacency[a, tri] = True
    return adjacency.tocsr()


def sensor_cluster_test(
    data: Any,
    info: Any,
    *,
    times: Any = None,
    ch_type: str | None = None,
    threshold: float | None = None,
    tail: int = 0,
    n_permutations: int = 1024,
    random_state: int = 0,
) -> SensorClusters:
    """Cluster permutation test over sensors × lags of subjects' maps against 0 (``mne.stats``).

    Parameters
    ----------
    data : array-like, shape (n_subjects, n_channels, n_times) or (n_subjects, n_channels)
        One map per subject: TRF weights of one feature over lags (:func:`group_trf`), or scores
        per channel and layer (e.g. r minus the baseline's r). Channels in the order of ``info``.
    info : mne.Info
        The channels (with positions), e.g. ``results.sensor_info``.
    times : array-like, shape (n_times,) | None
        The lags (s) or layers of the last axis; default 0, 1, 2...
    ch_type : str | None
        The channel type to test when ``info`` has several.
    threshold : float | None
        The t that forms clusters; default the two-sided (or one-sided, with ``tail``) t at
        p = 0.05 for ``n_subjects - 1`` degrees of freedom (mne's default).
    tail : {0, 1, -1}
        Two-sided, or positive/negative effects only.
    n_permutations : int
        Sign flips (all of them when there are fewer than this: an exact test).
    random_state : int
        Seed of the sign flips.

    Returns
    -------
    clusters : SensorClusters
    """
    import mne

    data = np.asarray(data, dtype=np.float64)
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3:
        raise ValueError(f"data has shape {data.shape}; expected (n_subjects, n_channels[, n_times]).")
    n_sub, n_ch, n_t = data.shape
    if n_sub < 2:
        raise ValueError(f"a cluster test across subjects needs at least 2 subjects' maps, got {n_sub}.")
    if n_ch != len(info["ch_names"]):
        raise ValueError(f"data has {n_ch} channels but the Info has {len(info['ch_names'])}; give the maps of the "
                         "Info's channels, in its order.")
    if not np.all(np.isfinite(data)):
        raise ValueError("data has NaN or infinite values; drop those channels from the maps and the Info.")
    _check_option("tail", tail, (0, 1, -1))
    _check_positive("n_permutations", n_permutations, integer=True)
    times = np.arange(n_t, dtype=np.float64) if times is None else np.asarray(times, dtype=np.float64).reshape(-1)
    if times.size != n_t:
        raise ValueError(f"times has {times.size} values for {n_t} columns of data.")
    adjacency, names = sensor_adjacency(info, ch_type)
    rows = [info["ch_names"].index(n) for n in names]
    X = np.transpose(data[:, rows, :], (0, 2, 1))  # (n_obs, n_times, n_channels), as mne wants
    if threshold is None:
        from scipy import stats

        threshold = float(stats.t.ppf(1 - 0.05 / (2 if tail == 0 else 1), n_sub - 1))
    import inspect

    test = mne.stats.spatio_temporal_cluster_1samp_test
    seeding = "rng" if "rng" in inspect.signature(test).parameters else "seed"  # mne >= 1.12: rng=
    t_obs, clusters, pvalues, _ = test(
        X, threshold=threshold, n_permutations=int(n_permutations), tail=tail, adjacency=adjacency,
        out_type="mask", verbose="error", **{seeding: int(random_state)})
    logger.info("cluster test: %d subjects, %d channels x %d lags, %d clusters (min p %.3g)", n_sub, len(names),
                n_t, len(clusters), float(np.min(pvalues)) if len(pvalues) else np.nan)
    return SensorClusters(t_obs=t_obs.T, clusters=[np.asarray(c).T for c in clusters],
                          pvalues=np.asarray(pvalues, dtype=np.float64), ch_names=names, times=times,
                          threshold=float(threshold), n_permutations=int(n_permutations))


def group_trf(results: Sequence[Any], layer: int, feature: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Subjects' TRF weights of one layer, stacked for :func:`sensor_cluster_test`.

    Parameters
    ----------
    results : sequence of EncodingResults
        One per subject, with TRF weights of ``layer`` on the same channels and lags.
    layer : int
    feature : int | None
        One feature's TRF; None: all features, shape (n_subjects, n_channels, n_features, n_lags).

    Returns
    -------
    weights : ndarray, shape (n_subjects, n_channels, n_lags)
    lags : ndarray, shape (n_lags,)
    """
    results = list(results)
    if not results:
        raise ValueError("group_trf needs the results of at least one subject.")
    first = results[0]
    for res in results:
        if res.targets != first.targets:
            raise ValueError(f"subject {res.subject!r} has other channels than subject {first.subject!r}; "
                             "give results on the same channels (pick the common ones first).")
        if res.trf_lags is None or first.trf_lags is None or not np.allclose(res.trf_lags, first.trf_lags):
            raise ValueError(f"subject {res.subject!r} has no TRF weights, or on other lags than subject "
                             f"{first.subject!r}; add them with neuroenc.encoding.sensors.add_trf on one design setup.")
    stack = np.stack([res.trf(layer) for res in results])  # (n_sub, n_ch, n_feat, n_lags)
    if feature is None:
        return stack, first.trf_lags
    if not 0 <= int(feature) < stack.shape[2]:
        raise ValueError(f"Invalid feature {feature!r}: the TRFs of layer {layer} have {stack.shape[2]} features "
                         f"(0..{stack.shape[2] - 1}).")
    return stack[:, :, int(feature)], first.trf_lags
