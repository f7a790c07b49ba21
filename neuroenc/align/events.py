"""MEG/EEG side: words as impulses (or boxcars) on the sample grid, lags in seconds, and
resampling of responses with mne."""
from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from .._validation import _check_option, _check_positive
from ..responses import Response

logger = logging.getLogger(__name__)

#: How a word is placed on the sample grid.
EVENT_KINDS = ("impulse", "boxcar")


def event_matrix(
    onsets: np.ndarray,
    n_samples: int,
    sfreq: float,
    start: float = 0.0,
    offsets: np.ndarray | None = None,
    kind: str = "impulse",
) -> sp.csr_matrix:
    """The sparse (n_samples, n_words) matrix that places word values on a sample grid.

    ``event_matrix(...) @ features`` gives the feature time series: with ``"impulse"``, word
    ``w`` adds its features at the sample nearest its onset; with ``"boxcar"``, at every sample
    from that one (the sample nearest the onset, which may lie up to half a sample before it,
    as for impulses) to the last sample before the offset, at least one sample. Words off the
    grid add
    nothing (check coverage first: :func:`~neuroenc.align.checks.check_coverage`).

    Parameters
    ----------
    onsets : array-like, shape (n_words,)
        Seconds, on the response's clock.
    n_samples : int
        Samples of the grid.
    sfreq : float
        Sampling frequency (Hz).
    start : float
        Time of sample 0.
    offsets : array-like, shape (n_words,) | None
        Word offsets, needed for ``"boxcar"``.
    kind : {"impulse", "boxcar"}

    Returns
    -------
    matrix : scipy.sparse.csr_matrix, shape (n_samples, n_words)
    """
    _check_option("kind", kind, EVENT_KINDS)
    _check_positive("sfreq", sfreq)
    onsets = np.asarray(onsets, dtype=np.float64).reshape(-1)
    n_words = onsets.size
    first = np.rint((onsets - start) * sfreq).astype(np.int64)
    if kind == "impulse":
        rows, cols = first, np.arange(n_words)
    else:
        if offsets is None:
            raise ValueError("kind='boxcar' needs word offsets; pass offsets= (or use kind='impulse').")
        offsets = np.asarray(offsets, dtype=np.float64).reshape(-1)
        if offsets.size != n_words:
            raise ValueError(f"{n_words} onsets but {offsets.size} offsets; give one per word.")
        last = np.maximum(np.ceil((offsets - start) * sfreq - 1e-9).astype(np.int64), first + 1)
        counts = last - first
        cols = np.repeat(np.arange(n_words), counts)
        rows = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        rows = rows + np.repeat(first, counts)
    inside = (rows >= 0) & (rows < n_samples)
    return sp.csr_matrix((np.ones(int(inside.sum())), (rows[inside], cols[inside])),
                         shape=(int(n_samples), n_words))


def lag_samples(tmin: float, tmax: float, sfreq: float) -> np.ndarray:
    """The integer lags from ``tmin`` to ``tmax`` seconds at ``sfreq`` (both ends included).

    A lag ``L`` pairs the response at time ``t`` with the stimulus at ``t − L / sfreq``:
    positive lags are responses after the word, negative ones precede it.

    Examples
    --------
    >>> lag_samples(-0.02, 0.03, 100.0)
    array([-2, -1,  0,  1,  2,  3])
    """
    _check_positive("sfreq", sfreq)
    for name, value in (("tmin", tmin), ("tmax", tmax)):
        if not np.isfinite(value):
            raise ValueError(f"{name!r} must be a finite number of seconds, got {value!r}.")
    if tmin > tmax:
        raise ValueError(f"'tmin' ({tmin} s) must be <= 'tmax' ({tmax} s).")
    lo, hi = int(np.rint(tmin * sfreq)), int(np.rint(tmax * sfreq))
    return np.arange(lo, hi + 1)


def resample_response(response: Response, sfreq: float, method: str = "fft",
                      npad: int | str = 100) -> Response:
    """Resample (decimate) a MEG/EEG response to ``sfreq`` with ``mne.filter.resample``.

    mne low-passes before decimating (anti-aliasing). The first sample keeps its time
    (``start``); the new length is ``round(n_samples · sfreq / old_sfreq)``.

    Parameters
    ----------
    response : Response
        An sfreq-grid response.
    sfreq : float
        The new sampling frequency (Hz).
    method : {"fft", "polyphase"}
        mne's resampling method.
    npad : int | "auto"
        Padding for the FFT method (mne's default, 100; with mne 1.13, ``"auto"`` shifted a
        1 kHz → 100 Hz resampling by about half a new sample).
    """
    import mne

    if response.kind != "meg":
        raise ValueError(
            f"resample_response needs an sfreq-grid (MEG/EEG) response; run {response.run!r} "
            f"has TR {response.tr} s. fMRI responses keep their TR grid."
        )
    _check_positive("sfreq", sfreq)
    _check_option("method", method, ("fft", "polyphase"))
    if np.isclose(sfreq, response.sfreq):
        return response.copy()
    if method == "polyphase":
        ratio = sfreq / response.sfreq
        up, down = (ratio, 1.0) if ratio >= 1 else (1.0, response.sfreq / sfreq)
        if not (float(up).is_integer() and float(down).is_integer()):
            raise ValueError(
                f"method='polyphase' needs an integer ratio between {response.sfreq} Hz and "
                f"{sfreq} Hz; use method='fft'."
            )
    else:
        up, down = sfreq, response.sfreq
    kwargs = {"npad": npad} if method == "fft" else {}
    data = mne.filter.resample(response.data, up=up, down=down, axis=0, method=method,
                               verbose=False, **kwargs)
    logger.info("run %r: resampled %d samples at %g Hz to %d at %g Hz", response.run,
                response.n_samples, response.sfreq, data.shape[0], sfreq)
    return response.copy(data=data, sfreq=float(sfreq))
