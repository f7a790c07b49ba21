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
from .delays import make_delayed
from .design import Design
from .fmri import make_fmri_design
from .meg import make_meg_design
from .resample import resample
from .stimuli import make_stimulus_design
from .wordrate import word_rate
from .zscore import zscore

__all__ = [
    "Design",
    "make_fmri_design",
    "make_meg_design",
    "make_stimulus_design",
    "resample",
    "make_delayed",
    "zscore",
    "word_rate",
]

