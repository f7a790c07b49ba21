"""Nuisance bands on the rows of a design: regressors given on each run's response grid (word
rate, sound power, motion...), z-scored per run over the kept rows, optionally HRF-convolved and
delayed like the features. A band of word features (another model, a control feature set) is
built by the design's own builder instead (:meth:`~neuroenc.align.Design.nuisance`); the word
rate of a run comes from :func:`~neuroenc.align.word_rate`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .._validation import _check_finite, _check_option
from ..responses import Response
from .delays import check_delays, make_delayed
from .hrf import HRF_MODELS, convolve_hrf
from .zscore import ZStats, zscore_stats


def response_band(
    runs: Sequence[tuple[str, Response, slice]],
    items: Mapping[str, Response],
    *,
    columns: Sequence[str] | None,
    delays: Sequence[int] | None,
    hrf: str | None,
    zscore: bool,
    kind: str,
    period: float,
    dtype: Any,
    warn_constant: Callable[..., None],
) -> np.ndarray:
    """Nuisance regressors given per run on its response grid, as rows of a design.

    Parameters
    ----------
    runs : sequence of (run name, response, kept rows)
        The design's runs, in the order of its rows.
    items : mapping of run -> Response
        The regressors of each run, on the grid of its response (period, start and rows).
    columns : sequence of str | None
        The columns to keep, by name (default all); the same in every run.
    delays : sequence of int | None
        Delays in rows (default ``(0,)``); zero-filled at the start of the untrimmed grid.
    hrf : {"glover", "spm"} | "default" | None
        fMRI only; ``"default"`` is none.
    zscore : bool
        Per run, over the kept rows; constant columns become 0 (reported by ``warn_constant``).
    kind : {"fmri", "meg"}
    period : float
        Seconds per row.
    dtype : numpy dtype
        Of the result.
    warn_constant : callable
        ``warn_constant(stats, what, names=...)``, called with each run's z-scoring statistics.

    Returns
    -------
    X_nuisance : ndarray, shape (n_rows, n_delays · n_columns)
    """
    delays = (0,) if delays is None else check_delays(delays)
    hrf = None if hrf == "default" else hrf
    if hrf is not None:
        if kind != "fmri":
            raise ValueError("'hrf' is for fMRI designs; MEG/EEG designs use lags.")
        _check_option("hrf", hrf, HRF_MODELS)
    blocks = []
    names = None
    first_run = runs[0][0]
    for name, response, keep in runs:
        conf = items[name]
        check_same_grid(conf, response)
        if columns is not None:
            conf = conf.select(list(columns))
        if names is None:
            names = conf.names
        elif conf.names != names:
            raise ValueError(
                f"nuisance columns for run {name!r} are {conf.names} but for run "
                f"{first_run!r} they are {names}; select the same columns (columns=[...])."
            )
        data = conf.data.astype(np.float64)
        _check_finite("nuisance data", data, where=f"for run {name!r}",
                      fix="Interpolate or drop those columns.")
        if zscore:
            st: ZStats = zscore_stats(data[keep])
            warn_constant(st, f"nuisance columns for run {name!r}", names=names)
            data = st.apply(data)
        if hrf is not None:
            data = convolve_hrf(data, period, hrf)
        blocks.append(make_delayed(data, delays)[keep])
    return np.vstack(blocks).astype(dtype, copy=False)


def check_same_grid(conf: Response, response: Response) -> None:
    """Raise unless ``conf`` is on the grid of ``response`` (period, start, rows), saying how not."""
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

