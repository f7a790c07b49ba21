"""fMRI designs: word features and TR-grid responses paired by run name, aligned on the TR
grid, z-scored, HRF-convolved and/or delayed, stacked over runs (:func:`make_fmri_design`).

What happens to one run of an fMRI design, in order:

1. **Pairing and checks.** Features and responses are paired by run name; the response grid
   must cover every word (:func:`~neuroenc.align.checks.check_coverage`); responses must be finite
   and non-constant over their kept rows.
2. **Resampling** of each layer onto the TR grid, extended by the longest delay (and the HRF
   length) before ``start``, so that the delays of the first rows see the stimulus that
   preceded them, and by the longest look-ahead after the end. The sparse filter matrix is
   built once per run and reused for every layer (:func:`~neuroenc.align.resample.filter_matrix`).
3. **Z-scoring** (``zscore=True``): each feature column, per run, with the mean and standard
   deviation of that run's *kept* TRs (after trimming), before the delays; the same statistics
   are applied to the extension rows. Responses: each column per run over its kept TRs. The
   statistics are in :meth:`Design.feature_stats` and :attr:`Design.response_stats`.
4. **HRF convolution** (``hrf="glover"``/``"spm"``, optional) and **FIR delays** (``delays``,
   in TRs), computed on the extended grid, so no row is zero-filled unless the stimulus was
   silent there.
5. **Trimming**: the first/last ``trim`` TRs of the response grid are dropped from both sides.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

from .._settings import Choices, Interval, ListOf, declare
from .checks import ON_UNCOVERED, match_runs
from .delays import check_delays
from .design import Design
from .hrf import HRF_MODELS, hrf_kernel
from .resample import KERNELS
from .runs import as_responses, check_features, check_responses, check_trim, features_reference, plan_runs

logger = logging.getLogger(__name__)

#: FIR delays (in TRs) of an fMRI design without an HRF, and with one (see :func:`fmri_delays`).
DEFAULT_DELAYS = (1, 2, 3, 4)
HRF_DELAYS = (0,)

#: Constraints of the options shared by the fMRI and MEG/EEG designs.
COMMON_CONSTRAINTS = {
    "zscore": ["boolean"],
    "reference": [None, Choices("onset", "midpoint")],
    "on_uncovered": [Choices(ON_UNCOVERED)],
}


def fmri_delays(delays: Sequence[int] | None = None, hrf: str | None = None) -> tuple[int, ...]:
    """The FIR delays (in TRs) of an fMRI design: ``delays`` as given, else ``(0,)`` with an
    ``hrf`` (the HRF carries the lag) and ``(1, 2, 3, 4)`` without.

    Examples
    --------
    >>> fmri_delays(hrf="glover"), fmri_delays(), fmri_delays([2, 3], hrf="glover")
    ((0,), (1, 2, 3, 4), (2, 3))
    """
    if delays is None:
        return HRF_DELAYS if hrf else DEFAULT_DELAYS
    return check_delays(delays)


@declare({
    "method": [Choices(tuple(KERNELS))],
    "window": [Interval(Real, 0, None, closed="neither")],
    "cutoff_mult": [Interval(Real, 0, None, closed="neither")],
    "normalize": ["boolean"],
    "trim": [Interval(Integral, 0, None, closed="left"),
             ListOf(Interval(Integral, 0, None, closed="left"), length=2)],
    "delays": [None, ListOf(Interval(Integral, None, None, closed="neither"))],
    "hrf": [None, Choices(HRF_MODELS)],
    **COMMON_CONSTRAINTS,
})
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
        FIR delays in TRs; default ``(1, 2, 3, 4)``, or ``(0,)`` with ``hrf`` (the HRF
        carries the lag; see :func:`fmri_delays`).
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
    trim = check_trim(trim)
    delays = fmri_delays(delays, hrf)
    items, layers = check_features(features, layers, reference)
    responses = as_responses(responses)
    run_names = match_runs(items, responses, runs)
    check_responses(responses, "fmri", run_names, trim)
    tr = responses[run_names[0]].tr
    n_hrf = len(hrf_kernel(tr, hrf)) - 1 if hrf else 0
    n_pre = max(max(delays), 0) + n_hrf
    n_post = max(-min(delays), 0)
    warnings: list[str] = []
    planned = plan_runs(items, responses, run_names, n_pre=n_pre, n_post=n_post, trim=trim,
                        on_uncovered=on_uncovered, warnings=warnings)
    settings = {
        "kind": "fmri", "method": method, "window": float(window), "cutoff_mult": float(cutoff_mult),
        "normalize": bool(normalize),
        "trim": list(trim), "delays": list(delays), "hrf": hrf, "zscore": bool(zscore),
        "reference": features_reference(items), "on_uncovered": on_uncovered, "tr": tr, "runs": run_names,
        "starts": {r: responses[r].start for r in run_names},
        "n_rows": {r: responses[r].n_samples for r in run_names},
    }
    resampling = {"method": method, "window": window, "cutoff_mult": cutoff_mult,
                  "normalize": bool(normalize)}
    design = Design(kind="fmri", runs=planned, layers=layers, delays=delays, hrf=hrf,
                    zscore=zscore, resampling=resampling, dtype=dtype, settings=settings,
                    warnings=warnings, rebuild=_rebuild)
    logger.info("fMRI design: %s", design)
    return design


def _rebuild(design: Design, items: dict, responses: dict, delays: Sequence[int] | None,
             hrf: str | None, common: dict[str, Any]) -> Design:
    """A design of other word features on the runs, grids, resampling and trimming of ``design``."""
    return make_fmri_design(items, responses, **design.resampling, trim=design.settings["trim"],
                            delays=design.delays if delays is None else delays,
                            hrf=design.hrf if hrf == "default" else hrf, **common)
