"""MEG/EEG designs: word features and sfreq-grid responses paired by run name, words as
impulses (or boxcars) on the sample grid, lagged, stacked over runs (:func:`make_meg_design`).

They differ from fMRI designs (:mod:`neuroenc.align.fmri`) in two steps: z-scoring of the
features is over the run's *words* (before they become impulses, so silent samples stay exactly
0), and words become impulses (or boxcars) on the sample grid, then lags ``tmin..tmax`` seconds.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

from .._settings import Choices, Interval, declare
from .checks import match_runs
from .delays import check_delays
from .design import Design
from .events import EVENT_KINDS, lag_samples, resample_response
from .fmri import COMMON_CONSTRAINTS
from .runs import as_responses, check_features, check_responses, features_reference, plan_runs

logger = logging.getLogger(__name__)


@declare({
    "tmin": [Interval(Real, None, None, closed="neither")],
    "tmax": [Interval(Real, None, None, closed="neither")],
    "sfreq": [None, Interval(Real, 0, None, closed="neither")],
    "decim": [Interval(Integral, 1, None, closed="left")],
    "kind": [Choices(EVENT_KINDS)],
    "resample_method": [Choices("fft", "polyphase")],
    **COMMON_CONSTRAINTS,
})
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
    items, layers = check_features(features, layers, reference)
    responses = as_responses(responses)
    run_names = match_runs(items, responses, runs)
    check_responses(responses, "meg", run_names, (0, 0))
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
        "reference": features_reference(items), "on_uncovered": on_uncovered, "runs": run_names,
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
    planned = plan_runs(items, responses, run_names, n_pre=n_pre, n_post=n_post, trim=(0, 0),
                        on_uncovered=on_uncovered, warnings=warnings)
    design = Design(kind="meg", runs=planned, layers=layers, delays=delays, hrf=None,
                    zscore=zscore, resampling={"event_kind": kind}, dtype=dtype, settings=settings,
                    warnings=warnings, rebuild=_rebuild)
    logger.info("MEG/EEG design: %s", design)
    return design


def _rebuild(design: Design, items: dict, responses: dict, delays: Sequence[int] | None,
             hrf: str | None, common: dict[str, Any]) -> Design:
    """A design of other word features on the runs, grids, lags and event kind of ``design``."""
    if hrf not in ("default", None):
        raise ValueError("'hrf' is for fMRI designs; MEG/EEG designs use lags.")
    return _meg_design_from_delays(items, responses, design, delays, common)


def _meg_design_from_delays(items, responses, design: Design, delays, common) -> Design:
    delays = design.delays if delays is None else check_delays(delays)
    items, layers = check_features(items, common["layers"], None)
    settings = dict(design.settings, lags_s=[d * design.period for d in delays])
    return _build_meg(items, responses, common["runs"], layers, tuple(delays),
                      design.resampling["event_kind"], common["zscore"], common["on_uncovered"],
                      common["dtype"], settings)
