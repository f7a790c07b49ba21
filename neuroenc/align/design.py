"""Designs for encoding models: word features and brain responses paired by run name, aligned
on the response grid, z-scored, delayed (fMRI) or lagged (MEG/EEG), stacked over runs.

What happens to one run of an fMRI design, in order:

1. **Pairing and checks.** Features and responses are paired by run name; the response grid
   must cover every word (:func:`~neuroenc.align.check_coverage`); responses must be finite
   and non-constant over their kept rows.
2. **Resampling** of each layer onto the TR grid, extended by the longest delay (and the HRF
   length) before ``start``, so that the delays of the first rows see the stimulus that
   preceded them, and by the longest look-ahead after the end. The sparse filter matrix is
   built once per run and reused for every layer (:func:`~neuroenc.align.filter_matrix`).
3. **Z-scoring** (``zscore=True``): each feature column, per run, with the mean and standard
   deviation of that run's *kept* TRs (after trimming), before the delays; the same statistics
   are applied to the extension rows. Responses: each column per run over its kept TRs. The
   statistics are in :meth:`Design.feature_stats` and :attr:`Design.response_stats`.
4. **HRF convolution** (``hrf="glover"``/``"spm"``, optional) and **FIR delays** (``delays``,
   in TRs), computed on the extended grid, so no row is zero-filled unless the stimulus was
   silent there.
5. **Trimming**: the first/last ``trim`` TRs of the response grid are dropped from both sides.

MEG/EEG designs (:func:`make_meg_design`) differ in two steps: z-scoring of the features is
over the run's *words* (before they become impulses, so silent samples stay exactly 0), and
words become impulses (or boxcars) on the sample grid, then lags ``tmin..tmax`` seconds.

Why per-run z-scoring (the convention of Huth et al. 2016 and LeBel et al. 2023): the
statistics of a run use that run only, so nothing crosses runs in leave-one-run-out CV, and
per-run offsets and scanner drifts are removed. In CV *within* a run (blocked CV on a single
run such as Alice), the test block contributes to its run's statistics; to avoid even that,
build with ``zscore=False`` and put :class:`~neuroenc.align.ZScore` (training statistics) at
the head of the pipeline.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._validation import _check_finite, _check_option, _check_positive, _preview
from ..features.featureset import FeatureSet, check_compatible_features
from ..stimuli.transcript import Transcript
from .checks import (ON_UNCOVERED, _coverage, as_run_dict, check_response, match_runs,
                     report_uncovered)
from .delays import _check_delays, make_delayed, reshape_by_delays
from .events import EVENT_KINDS, event_matrix, lag_samples, resample_response
from .hrf import HRF_MODELS, convolve_hrf, hrf_kernel
from .resample import KERNELS, filter_matrix
from .response import Response
from .zscore import ZStats, zscore_stats

logger = logging.getLogger(__name__)


@dataclass
class _Run:
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


class Design:
    """An aligned design for encoding models, built by :func:`make_fmri_design` or
    :func:`make_meg_design` (not meant to be built directly).

    The design of one layer is built on demand by :meth:`X` (all layers at once would not fit
    in memory for large data sets); the responses, run labels and times are kept.

    Attributes
    ----------
    kind : {"fmri", "meg"}
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
        Everything that made the design (JSON-serialisable), for results provenance.
    warnings : list of str
        Warnings raised while building (uncovered words, constant feature columns).
    """

    def __init__(self, *, kind: str, runs: list[_Run], layers: list[int], delays: tuple[int, ...],
                 hrf: str | None, zscore: bool, resampling: dict[str, Any], dtype: Any,
                 settings: dict[str, Any], warnings: list[str]):
        self.kind = kind
        self._runs = runs
        self.runs = [r.name for r in runs]
        self.layers = list(layers)
        self.delays = tuple(delays)
        self.hrf = hrf
        self.zscore = bool(zscore)
        self._resampling = dict(resampling)
        self.dtype = np.dtype(dtype)
        self.settings = settings
        self.warnings = list(warnings)
        self.period = runs[0].response.period
        self.lags = np.asarray(self.delays, dtype=np.float64) * self.period
        self.run_lengths = np.array([r.n_keep for r in runs], dtype=int)
        bounds = np.concatenate([[0], np.cumsum(self.run_lengths)])
        self._slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        self.groups = np.repeat(np.array(self.runs, dtype=str), self.run_lengths)
        self.times = np.concatenate([r.response.times[r.resp_keep] for r in runs])
        self.target_names = list(runs[0].response.names)
        self._feature_stats: dict[int, dict[str, ZStats]] = {}
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
            _write_delayed(out[sl], grid, run.keep, self.delays)
        if self.zscore:
            self._feature_stats[layer] = stats
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
        return self._nuisance_responses({r: items[r] for r in self.runs}, columns, delays, hrf,
                                        zscore)

    def _nuisance_features(self, items, layer, delays, hrf, zscore) -> np.ndarray:
        first = items[self.runs[0]]
        layer = first.layer_indices[0] if layer is None else layer
        responses = {run.name: run.response for run in self._runs}
        common = dict(layers=[layer], runs=self.runs, zscore=zscore, dtype=self.dtype,
                      on_uncovered=self.settings["on_uncovered"])
        if self.kind == "fmri":
            sub = make_fmri_design(
                items, responses, **self._resampling, trim=self.settings["trim"],
                delays=self.delays if delays is None else delays,
                hrf=self.hrf if hrf == "default" else hrf, **common)
        else:
            if hrf not in ("default", None):
                raise ValueError("'hrf' is for fMRI designs; MEG/EEG designs use lags.")
            sub = _meg_design_from_delays(items, responses, self, delays, common)
        self.warnings.extend(w for w in sub.warnings if w not in self.warnings)
        return sub.X(layer)

    def _nuisance_responses(self, items, columns, delays, hrf, zscore) -> np.ndarray:
        delays = (0,) if delays is None else _check_delays(delays)
        hrf = None if hrf == "default" else hrf
        if hrf is not None:
            if self.kind != "fmri":
                raise ValueError("'hrf' is for fMRI designs; MEG/EEG designs use lags.")
            _check_option("hrf", hrf, HRF_MODELS)
        blocks = []
        names = None
        for run in self._runs:
            conf = items[run.name]
            _check_same_grid(conf, run.response)
            if columns is not None:
                conf = conf.select(list(columns))
            if names is None:
                names = conf.names
            elif conf.names != names:
                raise ValueError(
                    f"nuisance columns for run {run.name!r} are {conf.names} but for run "
                    f"{self.runs[0]!r} they are {names}; select the same columns (columns=[...])."
                )
            data = conf.data.astype(np.float64)
            _check_finite("nuisance data", data, where=f"for run {run.name!r}",
                          fix="Interpolate or drop those columns.")
            if zscore:
                st = zscore_stats(data[run.resp_keep])
                self._warn_constant(st, f"nuisance columns for run {run.name!r}", names=names)
                data = st.apply(data)
            if hrf is not None:
                data = convolve_hrf(data, self.period, hrf)
            blocks.append(make_delayed(data, delays)[run.resp_keep])
        return np.vstack(blocks).astype(self.dtype, copy=False)

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
def _on_grid(design: Design, run: _Run, F: np.ndarray, *, zscore: bool,
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


def _run_matrix(run: _Run, kind: str, **resampling: Any) -> sp.csr_matrix:
    """The sparse (extended grid × words) matrix of one run."""
    if kind == "fmri":
        grid = run.ext_start + np.arange(run.n_ext) * run.response.period
        return filter_matrix(run.times, grid, **resampling)
    event_kind = resampling["event_kind"]
    onsets = run.times if event_kind == "impulse" else run.onsets
    return event_matrix(onsets, run.n_ext, run.response.sfreq, start=run.ext_start,
                        offsets=run.offsets, kind=event_kind)


def _write_delayed(dest: np.ndarray, grid: np.ndarray, keep: slice, delays: tuple[int, ...]) -> None:
    """``dest[:, block k] = grid[keep shifted by delays[k]]`` (the extended grid covers it)."""
    nf = grid.shape[1]
    for k, d in enumerate(delays):
        dest[:, k * nf:(k + 1) * nf] = grid[keep.start - d:keep.stop - d]


def _check_same_grid(conf: Response, response: Response) -> None:
    problems = []
    if conf.kind != response.kind or not np.isclose(conf.period, response.period):
        problems.append(f"a period of {conf.period:g} s instead of {response.period:g} s")
    if not np.isclose(conf.start, response.start):
        problems.append(f"start={conf.start:g} s instead of {response.start:g} s")
    if conf.n_samples != response.n_samples:
        problems.append(f"{conf.n_samples} rows instead of {response.n_samples}")
    if problems:
        raise ValueError(
            f"nuisance regressors for run {response.run!r} are not on the grid of its response: "
            f"they have {', '.join(problems)}. Build them on the response grid (e.g. "
            "word_rate(transcript, response)) or fix their start/rows."
        )


def _check_trim(trim: Any) -> tuple[int, int]:
    if isinstance(trim, (int, np.integer)) and not isinstance(trim, bool):
        trim = (int(trim), int(trim))
    try:
        first, last = trim
    except (TypeError, ValueError):
        raise TypeError(f"'trim' must be (first, last) numbers of TRs, or one int for both; got {trim!r}.") from None
    for name, value in (("first", first), ("last", last)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"'trim' {name} must be an int >= 0 (TRs), got {value!r}.")
    return int(first), int(last)


def _check_features(features: Any, layers: Any, reference: str | None) -> tuple[dict, list[int]]:
    items = as_run_dict(features, "features", FeatureSet)
    if reference is not None:
        _check_option("reference", reference, ("onset", "midpoint"))
        items = {k: v.with_reference(reference) for k, v in items.items()}
    first_name, first = next(iter(items.items()))
    if layers is None:
        layers = first.layer_indices
    elif isinstance(layers, (int, np.integer)) and not isinstance(layers, bool):
        layers = [int(layers)]
    layers = [int(i) for i in layers]
    if not layers:
        raise ValueError("'layers' is empty; give at least one layer index.")
    for name, fs in items.items():
        missing = [i for i in layers if i not in fs]
        if missing:
            raise ValueError(
                f"features for run {name!r} have no layer(s) {missing} (they have "
                f"{fs.layer_indices}); extract them, or pass layers= that every run has."
            )
        if fs.model != first.model:
            raise ValueError(
                f"features for run {name!r} come from model {fs.model!r} but those for run "
                f"{first_name!r} from {first.model!r}; one design needs one model."
            )
        for i in layers:
            if fs.n_features(i) != first.n_features(i):
                raise ValueError(
                    f"layer {i} has {fs.n_features(i)} columns for run {name!r} but "
                    f"{first.n_features(i)} for run {first_name!r}."
                )
        if fs.n_words == 0:
            raise ValueError(f"features for run {name!r} have no words.")
        _check_finite("word times", fs.times, where=f"of the features for run {name!r}",
                      fix="Drop unaligned words before extracting features.")
    check_compatible_features(items)
    return items, layers


def _check_responses(responses: Any, kind: str, runs: list[str], trim: tuple[int, int]) -> None:
    ref = responses[runs[0]]
    for name in runs:
        resp = responses[name]
        if resp.kind != kind:
            other = "make_meg_design" if resp.kind == "meg" else "make_fmri_design"
            raise ValueError(
                f"response for run {name!r} is on a {resp.kind!r} grid ("
                f"{'TR ' + format(resp.tr, 'g') + ' s' if resp.tr else format(resp.sfreq, 'g') + ' Hz'}); "
                f"use {other} for it."
            )
        if not np.isclose(resp.period, ref.period):
            raise ValueError(
                f"response for run {name!r} has a period of {resp.period:g} s but run "
                f"{runs[0]!r} has {ref.period:g} s; delays in rows need one period (resample "
                "MEG with sfreq=, or build one design per TR)."
            )
        if resp.names != ref.names:
            raise ValueError(
                f"responses for run {name!r} have targets {_preview(resp.names)} but run "
                f"{runs[0]!r} has {_preview(ref.names)}; select the same targets in every run."
            )
        first, last = trim
        if resp.n_samples - first - last < 2:
            raise ValueError(
                f"trim=({first}, {last}) leaves {resp.n_samples - first - last} of the "
                f"{resp.n_samples} rows of run {name!r}; trim less."
            )
        check_response(resp, slice(first, resp.n_samples - last))


def _plan_runs(items: dict, responses: dict, runs: list[str], *, n_pre: int, n_post: int,
               trim: tuple[int, int], on_uncovered: str, warnings: list[str]) -> list[_Run]:
    planned = []
    for name in runs:
        fs, resp = items[name], responses[name]
        times = np.asarray(fs.times, dtype=np.float64)
        period = resp.period
        _, msg = _coverage(times, resp, n_pre * period, n_post * period, "words")
        report_uncovered(msg, on_uncovered, warnings)
        planned.append(_Run(name=name, features=fs, times=times,
                            onsets=np.asarray(fs.onsets, dtype=np.float64),
                            offsets=np.asarray(fs.offsets, dtype=np.float64), response=resp,
                            n_pre=n_pre, n_post=n_post, first=trim[0], last=trim[1]))
    return planned


def _as_responses(responses: Any) -> dict[str, Response]:
    if isinstance(responses, dict):
        converted = {}
        for key, value in responses.items():
            if not isinstance(value, Response) and _is_mne(value):
                value = Response.from_mne(value, run=str(key))
            converted[key] = value
        responses = converted
    elif _is_mne(responses):
        raise TypeError(
            "an mne object has no run name: pass {run: raw} or Response.from_mne(raw, run=...)."
        )
    return as_run_dict(responses, "responses", Response)


def _is_mne(obj: Any) -> bool:
    return type(obj).__module__.startswith("mne.")


# ---------------------------------------------------------------------- public builders
def make_fmri_design(
    features: Any,
    responses: Any,
    *,
    layers: int | Sequence[int] | None = None,
    runs: Sequence[str] | None = None,
    method: str = "lanczos",
    window: float = 3,
    cutoff_mult: float = 1.0,
    normalize: bool = False,
    trim: int | tuple[int, int] = (0, 0),
    delays: Sequence[int] | None = None,
    hrf: str | None = None,
    zscore: bool = True,
    reference: str | None = None,
    on_uncovered: str = "raise",
    dtype: Any = np.float32,
) -> Design:
    """Pair word features with fMRI responses by run and build the encoding design.

    See the module docstring for the exact order of operations (resample on a grid extended
    before ``start`` → z-score per run over the kept TRs → HRF → delays → trim).

    Parameters
    ----------
    features : FeatureSet | list of FeatureSet | dict of str -> FeatureSet
        Per run, the word features (times from ``FeatureSet.times``).
    responses : Response | list of Response | dict of str -> Response
        Per run, the TR-grid responses of one subject (row ``i`` at ``start + i·TR``).
    layers : int | sequence of int | None
        Layers :meth:`Design.X` may build; default all layers of the first run (every run must
        have them).
    runs : sequence of str | None
        Runs to use, in this order; default all, in the order of ``features``. Runs present on
        one side only are an error unless ``runs`` leaves them out.
    method : {"lanczos", "sinc", "rect", "nearest"}
        Resampling, see :func:`~neuroenc.align.resample`.
    window : float
        Lanczos/sinc lobes.
    cutoff_mult : float
        Cutoff = ``cutoff_mult / TR``.
    normalize : bool
        Weighted mean instead of the published weighted sum, see
        :func:`~neuroenc.align.resample`.
    trim : (int, int) | int
        TRs dropped at the start and end of every run, from features and responses alike
        (after delays, so the first kept rows still see the stimulus before them).
    delays : sequence of int | None
        FIR delays in TRs; default ``(1, 2, 3, 4)``, or ``(0,)`` with ``hrf``.
    hrf : {"glover", "spm"} | None
        Convolve with nilearn's canonical HRF instead of (or before) FIR delays.
    zscore : bool
        Z-score features (per layer) and responses per run over the kept TRs.
    reference : {"onset", "midpoint"} | None
        Word time to use; default each FeatureSet's own.
    on_uncovered : {"raise", "warn", "ignore"}
        What to do when a response grid does not cover every word of its run (a wrong
        ``start``, a scan shorter than the story, responses trimmed by the provider).
    dtype : numpy dtype
        Of ``X`` and ``Y`` (float32 by default; computations are float64 per run).

    Returns
    -------
    design : Design

    Examples
    --------
    >>> design = make_fmri_design(features, responses, trim=(5, 5))     # doctest: +SKIP
    >>> X, Y, groups = design.X(12), design.Y, design.groups            # doctest: +SKIP
    """
    _check_option("method", method, KERNELS)
    _check_positive("window", window)
    _check_positive("cutoff_mult", cutoff_mult)
    _check_option("on_uncovered", on_uncovered, ON_UNCOVERED)
    if hrf is not None:
        _check_option("hrf", hrf, HRF_MODELS)
    trim = _check_trim(trim)
    delays = ((0,) if hrf else (1, 2, 3, 4)) if delays is None else _check_delays(delays)
    items, layers = _check_features(features, layers, reference)
    responses = _as_responses(responses)
    run_names = match_runs(items, responses, runs)
    _check_responses(responses, "fmri", run_names, trim)
    tr = responses[run_names[0]].tr
    n_hrf = len(hrf_kernel(tr, hrf)) - 1 if hrf else 0
    n_pre = max(max(delays), 0) + n_hrf
    n_post = max(-min(delays), 0)
    warnings: list[str] = []
    planned = _plan_runs(items, responses, run_names, n_pre=n_pre, n_post=n_post, trim=trim,
                         on_uncovered=on_uncovered, warnings=warnings)
    settings = {
        "kind": "fmri", "method": method, "window": float(window), "cutoff_mult": float(cutoff_mult),
        "normalize": bool(normalize),
        "trim": list(trim), "delays": list(delays), "hrf": hrf, "zscore": bool(zscore),
        "reference": reference, "on_uncovered": on_uncovered, "tr": tr, "runs": run_names,
        "starts": {r: responses[r].start for r in run_names},
        "n_rows": {r: responses[r].n_samples for r in run_names},
    }
    resampling = {"method": method, "window": window, "cutoff_mult": cutoff_mult,
                  "normalize": bool(normalize)}
    design = Design(kind="fmri", runs=planned, layers=layers, delays=delays, hrf=hrf,
                    zscore=zscore, resampling=resampling, dtype=dtype, settings=settings,
                    warnings=warnings)
    logger.info("fMRI design: %s", design)
    return design


def make_meg_design(
    features: Any,
    responses: Any,
    *,
    layers: int | Sequence[int] | None = None,
    runs: Sequence[str] | None = None,
    tmin: float = -0.1,
    tmax: float = 0.6,
    sfreq: float | None = None,
    decim: int = 1,
    kind: str = "impulse",
    zscore: bool = True,
    reference: str | None = None,
    on_uncovered: str = "raise",
    resample_method: str = "fft",
    dtype: Any = np.float32,
) -> Design:
    """Pair word features with MEG/EEG responses by run and build a time-lagged design.

    Words become impulses at their times on the sample grid (or boxcars over their
    durations), and the design holds lags ``tmin..tmax`` seconds at the response's ``sfreq``
    (:attr:`Design.lags`, in seconds). Features are z-scored per run over the words before
    they become impulses (silent samples stay 0); responses per run over their samples.

    Parameters
    ----------
    features : FeatureSet | list of FeatureSet | dict of str -> FeatureSet
    responses : Response | list | dict of str -> Response or mne Raw/Epochs/Evoked
        sfreq-grid responses (``Response.from_mne(raw, run=...)``); mne objects in a dict are
        converted with their key as run name.
    layers, runs, zscore, reference, on_uncovered, dtype
        As in :func:`make_fmri_design`.
    tmin, tmax : float
        First and last lag in seconds (response time minus word time).
    sfreq : float | None
        Resample the responses to this rate first, with mne (anti-aliased); default: keep.
    decim : int
        Or decimate by this factor (``sfreq = response sfreq / decim``), also with mne's
        anti-aliased resampling.
    kind : {"impulse", "boxcar"}
        Words as one sample at their time, or every sample of their duration.
    resample_method : {"fft", "polyphase"}
        mne's method when ``sfreq`` is given.

    Returns
    -------
    design : Design
    """
    _check_option("kind", kind, EVENT_KINDS)
    _check_option("on_uncovered", on_uncovered, ON_UNCOVERED)
    items, layers = _check_features(features, layers, reference)
    responses = _as_responses(responses)
    run_names = match_runs(items, responses, runs)
    _check_responses(responses, "meg", run_names, (0, 0))
    if isinstance(decim, bool) or not isinstance(decim, (int, np.integer)) or decim < 1:
        raise ValueError(f"'decim' must be an int >= 1, got {decim!r}.")
    if decim > 1:
        if sfreq is not None:
            raise ValueError("Give either 'sfreq' or 'decim', not both.")
        sfreq = responses[run_names[0]].sfreq / decim
    if sfreq is not None:
        responses = {r: resample_response(responses[r], sfreq, method=resample_method)
                     for r in run_names}
    rate = responses[run_names[0]].sfreq
    delays = tuple(int(d) for d in lag_samples(tmin, tmax, rate))
    settings = {
        "kind": "meg", "event_kind": kind, "tmin": float(tmin), "tmax": float(tmax),
        "sfreq": rate, "resampled": sfreq is not None, "zscore": bool(zscore),
        "reference": reference, "on_uncovered": on_uncovered, "runs": run_names,
        "lags_s": [d / rate for d in delays], "trim": [0, 0],
        "starts": {r: responses[r].start for r in run_names},
        "n_rows": {r: responses[r].n_samples for r in run_names},
    }
    return _build_meg(items, responses, run_names, layers, delays, kind, zscore, on_uncovered,
                      dtype, settings)


def _build_meg(items, responses, run_names, layers, delays, kind, zscore, on_uncovered, dtype,
               settings) -> Design:
    warnings: list[str] = []
    n_pre, n_post = max(max(delays), 0), max(-min(delays), 0)
    planned = _plan_runs(items, responses, run_names, n_pre=n_pre, n_post=n_post, trim=(0, 0),
                         on_uncovered=on_uncovered, warnings=warnings)
    design = Design(kind="meg", runs=planned, layers=layers, delays=delays, hrf=None,
                    zscore=zscore, resampling={"event_kind": kind}, dtype=dtype, settings=settings,
                    warnings=warnings)
    logger.info("MEG/EEG design: %s", design)
    return design


def _meg_design_from_delays(items, responses, design: Design, delays, common) -> Design:
    delays = design.delays if delays is None else _check_delays(delays)
    items, layers = _check_features(items, common["layers"], None)
    settings = dict(design.settings, lags_s=[d * design.period for d in delays])
    return _build_meg(items, responses, common["runs"], layers, tuple(delays),
                      design._resampling["event_kind"], common["zscore"], common["on_uncovered"],
                      common["dtype"], settings)


def word_rate(
    transcript: Transcript,
    response: Response,
    *,
    method: str = "lanczos",
    window: float = 3,
    cutoff_mult: float = 1.0,
    hrf: str | None = None,
    kind: str = "impulse",
    reference: str = "onset",
    on_uncovered: str = "raise",
) -> Response:
    """The word rate of a run on its response grid, as a one-column :class:`Response`.

    fMRI: a 1 per word resampled onto the TR grid (about the number of words per TR with the
    default unnormalised Lanczos filter), optionally convolved with the canonical HRF (computed
    on a grid extended before ``start``, so the first TRs carry the words before them). MEG/EEG:
    word impulses (or boxcars) on the sample grid. The result is on the response's untrimmed
    grid, not z-scored: pass it to :meth:`Design.nuisance` as a separate band.

    Parameters
    ----------
    transcript : Transcript
        The run's words; its ``name`` must equal ``response.run``.
    response : Response
        Gives the grid (TR or sfreq, start, rows).
    method, window, cutoff_mult
        fMRI resampling, see :func:`~neuroenc.align.resample`.
    hrf : {"glover", "spm"} | None
        fMRI only.
    kind : {"impulse", "boxcar"}
        MEG/EEG only.
    reference : {"onset", "midpoint"}
        The word time used.
    on_uncovered : {"raise", "warn", "ignore"}
        See :func:`~neuroenc.align.check_coverage`.
    """
    if not isinstance(transcript, Transcript):
        raise TypeError(f"'transcript' must be a Transcript, got {type(transcript).__name__}.")
    if not isinstance(response, Response):
        raise TypeError(f"'response' must be a Response, got {type(response).__name__}.")
    if transcript.name != response.run:
        raise ValueError(
            f"transcript {transcript.name!r} and response run {response.run!r} differ; runs are "
            "matched by name (rename one: transcript.rename(...))."
        )
    _check_option("reference", reference, ("onset", "midpoint"))
    ones = FeatureSet({0: np.ones((len(transcript), 1))}, transcript.onsets, transcript.offsets,
                      run=transcript.name, model="word_rate", reference=reference)
    if response.kind == "fmri":
        design = make_fmri_design(ones, response.copy(data=np.arange(response.n_samples)[:, None],
                                                      names=["t"]),
                                  method=method, window=window, cutoff_mult=cutoff_mult,
                                  delays=(0,), hrf=hrf, zscore=False, on_uncovered=on_uncovered,
                                  dtype=np.float64)
    else:
        if hrf is not None:
            raise ValueError("'hrf' is for fMRI responses; this response is on an sfreq grid.")
        design = make_meg_design(ones, response.copy(data=np.arange(response.n_samples)[:, None],
                                                     names=["t"]),
                                 tmin=0.0, tmax=0.0, kind=kind, zscore=False,
                                 on_uncovered=on_uncovered, dtype=np.float64)
    return response.copy(data=design.X(0), names=["word_rate"])
