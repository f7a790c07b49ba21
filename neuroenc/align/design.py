"""The :class:`Design`: word features and brain responses of several runs, aligned on the
response grid, ready for encoding models. Built by :func:`~neuroenc.align.make_fmri_design`
(:mod:`neuroenc.align.fmri`) or :func:`~neuroenc.align.make_meg_design`
(:mod:`neuroenc.align.meg`); nuisance bands on the same rows come from :meth:`Design.nuisance`
(:mod:`neuroenc.align.nuisance`).

The design of one layer is built on demand (:meth:`Design.X`), one run at a time: each run's
words are put on its extended response grid (one sparse matrix per run, reused for every
layer), z-scored, HRF-convolved and delayed, then the kept rows are stacked.

Why per-run z-scoring (the convention of Huth et al. 2016 and LeBel et al. 2023): the
statistics of a run use that run only, so nothing crosses runs in leave-one-run-out CV, and
per-run offsets and scanner drifts are removed. In CV *within* a run (blocked CV on a single
run such as Alice), the test block contributes to its run's statistics; to avoid even that,
build with ``zscore=False`` and put :class:`~neuroenc.align.zscore.ZScore` (training statistics) at
the head of the pipeline.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._validation import _check_finite, _preview
from ..features.featureset import FeatureSet, extraction_provenance
from ..responses import Response
from .checks import as_run_dict
from .delays import reshape_by_delays, write_delayed
from .events import event_matrix
from .hrf import convolve_hrf, hrf_kernel
from .nuisance import response_band
from .resample import filter_matrix, kernel_reach
from .shared_designs import keep_layer, kept_layer
from .zscore import ZStats, zscore_stats

logger = logging.getLogger(__name__)

#: ``rebuild(design, features, responses, delays, hrf, common)``: a design of other features
#: (a nuisance band) on the same runs, grids and settings, made by the builder of ``design``.
Rebuild = Callable[..., "Design"]


@dataclass
class RunPlan:
    """One run's plan: its words, its response grid, and how they line up."""

    name: str
    features: FeatureSet | None
    times: np.ndarray
    onsets: np.ndarray
    offsets: np.ndarray
    response: Response
    n_pre: int
    n_post: int
    first: int
    last: int
    matrix: sp.csr_matrix | None = field(default=None, repr=False)

    @property
    def n_ext(self) -> int:
        return self.n_pre + self.response.n_samples + self.n_post

    @property
    def keep(self) -> slice:
        """The kept rows, in the extended grid."""
        return slice(self.n_pre + self.first, self.n_pre + self.response.n_samples - self.last)

    @property
    def resp_keep(self) -> slice:
        """The kept rows, in the response."""
        return slice(self.first, self.response.n_samples - self.last)

    @property
    def n_keep(self) -> int:
        return self.response.n_samples - self.first - self.last

    @property
    def ext_start(self) -> float:
        return self.response.start - self.n_pre * self.response.period



def _check_reach(kind: str, delays: tuple[int, ...], runs: list[RunPlan], period: float) -> None:
    """Raise if the longest delay/lag reaches past a whole run: every row would see only stimulus
    from before its run (``--delays 500``: delays are counted in TRs, not seconds or ms)."""
    longest = max((abs(int(d)) for d in delays), default=0)
    short = [r for r in runs if longest > r.n_keep]
    if not short:
        return
    run = min(short, key=lambda r: r.n_keep)
    unit = "TRs" if kind == "fmri" else "samples"
    if kind == "fmri":
        fix = (f"delays are counted in TRs (of {period:g} s here), not in seconds or milliseconds: give a "
               f"few, e.g. delays={','.join(str(d) for d in (1, 2, 3, 4))} for {period:g}-{4 * period:g} s.")
    else:
        fix = "shorten the lags (tmin=, tmax=: seconds around each word)."
    given = f"delays={','.join(str(int(d)) for d in delays)}" if kind == "fmri" else "the lags"
    raise ValueError(
        f"{given} reach {longest} {unit} ({longest * period:g} s), past the whole of run {run.name!r} "
        f"({run.n_keep} kept {unit}, {run.n_keep * period:g} s): its rows would see no stimulus of their own "
        f"run. {fix[0].upper()}{fix[1:]}"
    )


class Design:
    """An aligned design for encoding models, built by :func:`make_fmri_design` or
    :func:`make_meg_design` (not meant to be built directly).

    The design of one layer is built on demand by :meth:`X` (all layers at once would not fit
    in memory for large data sets); the responses, run labels and times are kept.

    Attributes
    ----------
    kind : {"fmri", "meg"}
    rows : "samples"
        What the rows are: ordered samples on the response grid (see
        :class:`~neuroenc.encoding.designs.LayerDesigns`; :class:`~neuroenc.align.stimuli.StimulusDesign`'s
        are stimuli).
    runs : list of str
        The runs, in the order their rows are stacked.
    layers : list of int
        The layers available to :meth:`X`.
    Y : ndarray, shape (n_samples, n_targets)
        The stacked responses (kept rows, z-scored per run if ``zscore``).
    groups : ndarray of str, shape (n_samples,)
        The run of each row: the groups for leave-one-run-out CV.
    times : ndarray, shape (n_samples,)
        The stimulus time of each row, on its run's clock.
    run_lengths : ndarray of int
        Rows per run, in the order of ``runs``.
    target_names : list of str
    space : TargetSpace
        Where the targets are (voxels, vertices, parcels, ROIs, sensors), the same in every run.
    delays : tuple of int
        The delays/lags in rows (TRs or samples), in the order of the column blocks.
    lags : ndarray of float
        The same in seconds (``delays × period``): a column block with lag ``L`` s pairs the
        response at ``t`` with the stimulus at ``t − L``.
    period : float
        Seconds per row (TR or 1 / sfreq).
    response_stats : dict of str -> ZStats | None
        Per run, the z-scoring statistics of the responses (None without z-scoring).
    settings : dict
        Everything that made the design (JSON-serialisable), for results provenance;
        ``settings["features"]``: what made the features
        (:func:`~neuroenc.features.featureset.extraction_provenance` of the first run).
    warnings : list of str
        Warnings raised while building (uncovered words, constant feature columns).
    """

    rows = "samples"

    def __init__(self, *, kind: str, runs: list[RunPlan], layers: list[int], delays: tuple[int, ...],
                 hrf: str | None, zscore: bool, resampling: dict[str, Any], dtype: Any,
                 settings: dict[str, Any], warnings: list[str], rebuild: Rebuild):
        self.kind = kind
        self._rebuild = rebuild
        self._runs = runs
        self.runs = [r.name for r in runs]
        self.layers = list(layers)
        self.delays = tuple(delays)
        self.hrf = hrf
        self.zscore = bool(zscore)
        self._resampling = dict(resampling)
        self.dtype = np.dtype(dtype)
        if runs and runs[0].features is not None:
            # what made the features (model, context, pooling...): results keep it, so that
            # results of different features are never pooled (neuroenc.mapping.check_group)
            settings.setdefault("features", extraction_provenance(runs[0].features))
        self.settings = settings
        self.warnings = list(warnings)
        self.period = runs[0].response.period
        _check_reach(kind, self.delays, runs, self.period)
        self.lags = np.asarray(self.delays, dtype=np.float64) * self.period
        self.run_lengths = np.array([r.n_keep for r in runs], dtype=int)
        bounds = np.concatenate([[0], np.cumsum(self.run_lengths)])
        self._slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        self.groups = np.repeat(np.array(self.runs, dtype=str), self.run_lengths)
        self.times = np.concatenate([r.response.times[r.resp_keep] for r in runs])
        self.target_names = list(runs[0].response.names)
        self.space = runs[0].response.space
        self._feature_stats: dict[int, dict[str, ZStats]] = {}
        self._shared: tuple[Any, bytes] | None = None  # (store, content key): shared_designs.share_layers
        self.response_stats: dict[str, ZStats | None] = {}
        Y = np.empty((self.n_samples, len(self.target_names)), dtype=self.dtype)
        for run, sl in zip(runs, self._slices):
            data = run.response.data[run.resp_keep].astype(np.float64)
            if self.zscore:
                stats = zscore_stats(data)
                self.response_stats[run.name] = stats
                data = stats.apply(data)
            else:
                self.response_stats[run.name] = None
            Y[sl] = data
        self.Y = Y

    # ------------------------------------------------------------------ sizes
    @property
    def n_samples(self) -> int:
        """Rows of the stacked design."""
        return int(self.run_lengths.sum())

    @property
    def n_targets(self) -> int:
        """Columns of ``Y``."""
        return len(self.target_names)

    @property
    def n_delays(self) -> int:
        """Number of delays/lags (column blocks)."""
        return len(self.delays)

    @property
    def resampling(self) -> dict[str, Any]:
        """How words were put on the grid: ``method``, ``window``, ``cutoff_mult``, ``normalize``
        (fMRI) or ``event_kind`` (MEG/EEG)."""
        return dict(self._resampling)

    @property
    def reach(self) -> int:
        """Rows of the response grid that one design row reaches into the stimulus, back or forward.

        The longest delay/lag (in rows), plus the HRF kernel after lag 0 (``len(hrf_kernel(TR,
        hrf)) - 1`` rows, when convolved), plus the half-width of the kernel that resampled the
        words onto the grid (:func:`~neuroenc.align.resample.kernel_reach`; 0 for MEG/EEG impulses). Two
        rows further apart than this share no stimulus: a CV gap of ``reach + 1`` rows keeps
        training rows from seeing the stimulus of a test row.
        """
        reach = max((abs(int(d)) for d in self.delays), default=0)
        if self.hrf is not None:
            reach += len(hrf_kernel(self.period, self.hrf)) - 1
        if self.kind == "fmri":
            reach += kernel_reach(self._resampling["method"], self._resampling["window"],
                                  self._resampling["cutoff_mult"])
        return int(reach)

    def n_features(self, layer: int) -> int:
        """Columns of one layer before delays (``X(layer)`` has ``n_delays`` times more)."""
        layer = self._check_layer(layer)
        return self._runs[0].features.n_features(layer)

    @property
    def run_slices(self) -> dict[str, slice]:
        """The rows of each run in the stacked design."""
        return dict(zip(self.runs, self._slices))

    def _check_layer(self, layer: int) -> int:
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
            raise TypeError(f"'layer' must be an int (one of {self.layers}), got {layer!r}.")
        if int(layer) not in self.layers:
            raise KeyError(f"this design has no layer {layer}; it has layers {self.layers}.")
        return int(layer)

    # ------------------------------------------------------------------ the design
    def X(self, layer: int, dtype: Any = None) -> np.ndarray:
        """The design of one layer, shape (n_samples, n_delays · n_features), delay-major.

        Parameters
        ----------
        layer : int
            One of :attr:`layers`.
        dtype : numpy dtype | None
            Default: the design's ``dtype``. Computations are in float64 per run.
        """
        layer = self._check_layer(layer)
        nf = self.n_features(layer)
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        kept = kept_layer(self, layer, dtype)
        if kept is not None:  # made for an earlier design of the same content
            return kept
        n_bytes = self.n_samples * nf * self.n_delays * dtype.itemsize
        if n_bytes > 4e9:
            logger.warning(
                "the design of layer %d needs %.1f GB (%d rows × %d features × %d delays); "
                "use fewer delays/lags, decimate (decim=) or reduce the features first.",
                layer, n_bytes / 1e9, self.n_samples, nf, self.n_delays)
        out = np.empty((self.n_samples, nf * self.n_delays), dtype=dtype)
        stats: dict[str, ZStats] = {}
        for run, sl in zip(self._runs, self._slices):
            F = np.asarray(run.features[layer], dtype=np.float64)
            _check_finite(f"layer {layer} of the features", F, where=f"for run {run.name!r}",
                          fix="Rows are words; re-extract those words or drop them.")
            grid, st = _on_grid(self, run, F, zscore=self.zscore, hrf=self.hrf)
            if st is not None:
                stats[run.name] = st
                self._warn_constant(st, f"layer {layer} of the features for run {run.name!r}")
            write_delayed(out[sl], grid, run.keep, self.delays)
        if self.zscore:
            self._feature_stats[layer] = stats
        keep_layer(self, layer, dtype, out, stats)
        return out

    def feature_stats(self, layer: int) -> dict[str, ZStats]:
        """Per run, the z-scoring statistics of one layer (computed by :meth:`X` if needed).

        fMRI: over the run's kept TRs after resampling (one value per feature column, before
        delays). MEG/EEG: over the run's words.
        """
        layer = self._check_layer(layer)
        if not self.zscore:
            raise ValueError("this design was built with zscore=False; it has no feature statistics.")
        if layer not in self._feature_stats:
            for run in self._runs:
                F = np.asarray(run.features[layer], dtype=np.float64)
                _, st = _on_grid(self, run, F, zscore=True, hrf=None)
                self._feature_stats.setdefault(layer, {})[run.name] = st
        return dict(self._feature_stats[layer])

    def reshape_by_delays(self, array: np.ndarray, axis: int = 0) -> np.ndarray:
        """Split a delay-major axis (e.g. coefficients) into (n_delays, n_features, ...)."""
        return reshape_by_delays(array, self.n_delays, axis=axis)

    def split(self, array: np.ndarray) -> dict[str, np.ndarray]:
        """Rows of a stacked array (``Y``, a prediction...) per run."""
        array = np.asarray(array)
        if array.shape[0] != self.n_samples:
            raise ValueError(f"array has {array.shape[0]} rows but the design has {self.n_samples}.")
        return {name: array[sl] for name, sl in zip(self.runs, self._slices)}

    # ------------------------------------------------------------------ nuisance bands
    def nuisance(
        self,
        source: Any,
        *,
        layer: int | None = None,
        columns: Sequence[str] | None = None,
        delays: Sequence[int] | None = None,
        hrf: str | None = "default",
        zscore: bool | None = None,
    ) -> np.ndarray:
        """A nuisance band on the same rows: word rate, sound power, motion...

        Parameters
        ----------
        source : dict of str -> Response | FeatureSet, or a list of them
            Per run, either a :class:`Response` on the *same grid* as that run's response
            (same period, ``start`` and number of rows, before trimming; e.g. Alice's
            ``dataset.confounds[subject]``, or :func:`word_rate`), or a :class:`FeatureSet`
            (aligned exactly as the main features). Paired by run name; every run of the
            design is needed.
        layer : int | None
            For FeatureSets: the layer (default: the first one).
        columns : sequence of str | None
            For Responses: the columns to keep, by name (default all).
        delays : sequence of int | None
            Default: the design's delays for FeatureSets; ``(0,)`` (as given) for Responses,
            which are usually already HRF-convolved or instantaneous (motion). Delays of a
            Response are zero-filled at the start of its (untrimmed) grid.
        hrf : {"glover", "spm"} | None
            Default: the design's ``hrf`` for FeatureSets, none for Responses.
        zscore : bool | None
            Default: as the design. Per run, over the kept rows; constant columns become 0.

        Returns
        -------
        X_nuisance : ndarray, shape (n_samples, n_delays · n_columns)
            Delay-major, like :meth:`X`.
        """
        zscore = self.zscore if zscore is None else bool(zscore)
        items = as_run_dict(source, "nuisance source", (Response, FeatureSet))
        missing = [r for r in self.runs if r not in items]
        if missing:
            raise ValueError(
                f"the nuisance source has no run(s) {missing}; it has {list(items)}. Give one "
                "item per run of the design (runs are matched by name)."
            )
        kinds = {type(items[r]) for r in self.runs}
        if len(kinds) > 1:
            raise TypeError("the nuisance source mixes Responses and FeatureSets; use one kind.")
        if isinstance(items[self.runs[0]], FeatureSet):
            if columns is not None:
                raise ValueError("'columns' selects Response columns; for FeatureSets pass layer=.")
            return self._nuisance_features({r: items[r] for r in self.runs}, layer, delays, hrf,
                                           zscore)
        if layer is not None:
            raise ValueError("'layer' selects a FeatureSet layer; for Responses pass columns=.")
        return response_band([(r.name, r.response, r.resp_keep) for r in self._runs],
                             {r: items[r] for r in self.runs}, columns=columns, delays=delays,
                             hrf=hrf, zscore=zscore, kind=self.kind, period=self.period,
                             dtype=self.dtype, warn_constant=self._warn_constant)

    def _nuisance_features(self, items, layer, delays, hrf, zscore) -> np.ndarray:
        first = items[self.runs[0]]
        layer = first.layer_indices[0] if layer is None else layer
        responses = {run.name: run.response for run in self._runs}
        common = dict(layers=[layer], runs=self.runs, zscore=zscore, dtype=self.dtype,
                      on_uncovered=self.settings["on_uncovered"])
        sub = self._rebuild(self, items, responses, delays, hrf, common)
        self.warnings.extend(w for w in sub.warnings if w not in self.warnings)
        return sub.X(layer)

    def _warn_constant(self, stats: ZStats, what: str, names: Sequence[str] | None = None) -> None:
        if stats.constant.size:
            which = _preview(stats.constant if names is None else [names[i] for i in stats.constant])
            msg = (f"{what}: {stats.constant.size} constant column(s) {which} over the kept rows; "
                   "they are set to 0.")
            if msg not in self.warnings:
                self.warnings.append(msg)
                logger.warning(msg)

    def __repr__(self) -> str:
        lag = (f"delays {list(self.delays)} TR" if self.kind == "fmri"
               else f"lags {self.lags[0]:g}…{self.lags[-1]:g} s")
        return (f"<Design {self.kind} | {len(self.runs)} run(s), {self.n_samples} rows × "
                f"{self.n_targets} targets, {len(self.layers)} layer(s), {lag}"
                f"{', HRF ' + self.hrf if self.hrf else ''}, zscore={self.zscore}>")



# ---------------------------------------------------------------------- helpers
def _on_grid(design: Design, run: RunPlan, F: np.ndarray, *, zscore: bool,
             hrf: str | None) -> tuple[np.ndarray, ZStats | None]:
    """Word features of one run on its extended grid (resampled, z-scored, HRF-convolved)."""
    if run.matrix is None:
        run.matrix = _run_matrix(run, design.kind, **design._resampling)
    stats = None
    if design.kind == "fmri":
        grid = np.asarray(run.matrix @ F)
        if zscore:
            stats = zscore_stats(grid[run.keep])
            grid = stats.apply(grid)
        if hrf is not None:
            grid = convolve_hrf(grid, run.response.period, hrf)
    else:
        if zscore:
            stats = zscore_stats(F)
            F = stats.apply(F)
        grid = np.asarray(run.matrix @ F)
    return grid, stats


def _run_matrix(run: RunPlan, kind: str, **resampling: Any) -> sp.csr_matrix:
    """The sparse (extended grid × words) matrix of one run."""
    if kind == "fmri":
        grid = run.ext_start + np.arange(run.n_ext) * run.response.period
        return filter_matrix(run.times, grid, **resampling)
    event_kind = resampling["event_kind"]
    onsets = run.times if event_kind == "impulse" else run.onsets
    return event_matrix(onsets, run.n_ext, run.response.sfreq, start=run.ext_start,
                        offsets=run.offsets, kind=event_kind)
