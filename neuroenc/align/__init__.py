"""Alignment: word-rate features to fMRI TRs and to MEG/EEG sample grids.

- :func:`resample` / :func:`filter_matrix`: word values to a TR grid (Lanczos, sinc, rect,
  nearest), one sparse matrix per run applied to all layers.
- :func:`make_delayed`, :class:`Delayer`: FIR delays (zero-filled, within runs);
  :func:`convolve_hrf`, :class:`HRFConvolver`: canonical HRF; :func:`zscore`, :class:`ZScore`.
- :func:`event_matrix`, :func:`lag_samples`, :func:`resample_response`: the MEG/EEG side.
- :func:`make_fmri_design` (``fmri``; :func:`fmri_delays`: its delays), :func:`make_meg_design`
  (``meg``) → :class:`Design` (``design``): features and responses paired by run name,
  checked, aligned, z-scored, delayed/lagged, stacked; :meth:`Design.nuisance` (``nuisance``) and :func:`word_rate`
  (``wordrate``) for nuisance bands; :attr:`Design.reach` for CV gaps.
- :func:`make_stimulus_design` (``stimuli``) → :class:`~neuroenc.align.stimuli.StimulusDesign`:
  stimulus-level features and responses matched by id; its rows are stimuli, not samples.
- :func:`check_coverage`, :func:`match_runs`: the checks, usable on their own.

The responses themselves (:class:`~neuroenc.responses.Response`) live in
:mod:`neuroenc.responses`.
"""
from .checks import check_coverage, check_response, match_runs
from .delays import Delayer, make_delayed
from .design import Design
from .events import event_matrix, lag_samples, resample_response
from .fmri import fmri_delays, make_fmri_design
from .hrf import HRFConvolver, convolve_hrf, hrf_kernel
from .meg import make_meg_design
from .resample import filter_matrix, kernel_reach, lanczos_kernel, rect_kernel, resample, sinc_kernel
from .stimuli import make_stimulus_design
from .wordrate import word_rate
from .zscore import ZScore, ZStats, zscore, zscore_stats

__all__ = [
    "Delayer",
    "Design",
    "HRFConvolver",
    "ZScore",
    "ZStats",
    "check_coverage",
    "check_response",
    "convolve_hrf",
    "event_matrix",
    "filter_matrix",
    "fmri_delays",
    "hrf_kernel",
    "kernel_reach",
    "lag_samples",
    "lanczos_kernel",
    "make_delayed",
    "make_fmri_design",
    "make_meg_design",
    "make_stimulus_design",
    "match_runs",
    "rect_kernel",
    "resample",
    "resample_response",
    "sinc_kernel",
    "word_rate",
    "zscore",
    "zscore_stats",
]
