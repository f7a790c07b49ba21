"""The word rate of a run on its response grid: a nuisance band (:func:`word_rate`)."""
from __future__ import annotations

import numpy as np

from .._validation import _check_option
from ..features.featureset import FeatureSet
from ..responses import Response
from ..stimuli.transcript import Transcript
from .fmri import make_fmri_design
from .meg import make_meg_design


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
        See :func:`~neuroenc.align.checks.check_coverage`.
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

