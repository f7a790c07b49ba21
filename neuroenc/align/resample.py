"""Word-level values to a regular grid: Lanczos, windowed sinc, rectangular sum, nearest.

Every method is a sparse filter matrix ``M`` of shape (n_new, n_old), built once per run from
the two time axes, then applied to all columns (all layers) at once: ``new = M @ values``.
Row ``i`` of ``M`` holds the weights of the old samples around new time ``new_times[i]``;
``M`` has about ``n_new × (words per TR) × (2 × window)`` non-zeros.

The cutoff is ``cutoff_mult / mean(diff(new_times))`` (Hz), i.e. ``1 / TR`` by default, as in
Huth et al. (2016). Rows are **not** normalised by default (as published): a new sample is a weighted *sum* of the
old ones, so a feature of ones becomes (about) the number of words per TR, and every feature is
modulated by the local word rate. ``normalize=True`` divides each row by its sum of weights
(a weighted mean), which recovers a smooth signal from very irregular sample times.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from .._validation import _check_option, _check_positive


def lanczos_kernel(t: np.ndarray, cutoff: float, window: float = 3) -> np.ndarray:
    """The Lanczos kernel of Huth et al.: ``sinc(c·t)·sinc(c·t/window)``, zero beyond ``window``.

    With the normalised sinc (``sinc(x) = sin(πx)/(πx)``), this is Huth et al.'s
    ``lanczosfun``: ``window·sin(πct)·sin(πct/window) / (πct)²`` for ``|ct| ≤ window``,
    ``0`` beyond, and ``1`` at ``t = 0``.

    Parameters
    ----------
    t : ndarray
        Time differences (new time − old time) in seconds.
    cutoff : float
        The cutoff ``c`` in Hz (``1 / TR`` by default in :func:`resample`).
    window : float
        Number of lobes kept on each side.

    Returns
    -------
    weights : ndarray, same shape as ``t``
    """
    x = np.asarray(t, dtype=np.float64) * cutoff
    val = np.sinc(x) * np.sinc(x / window)
    return np.where(np.abs(x) > window, 0.0, val)


def sinc_kernel(t: np.ndarray, cutoff: float, window: float = 3) -> np.ndarray:
    """A Hann-windowed sinc: ``sinc(c·t)·(1 + cos(π·c·t/window))/2`` for ``|ct| ≤ window``."""
    x = np.asarray(t, dtype=np.float64) * cutoff
    val = np.sinc(x) * 0.5 * (1.0 + np.cos(np.pi * x / window))
    return np.where(np.abs(x) > window, 0.0, val)


def rect_kernel(t: np.ndarray, cutoff: float, window: float = 3) -> np.ndarray:
    """A box one period wide around each new time: 1 for ``-1/2 < c·t ≤ 1/2``, else 0.

    An old sample at time ``s`` counts towards new time ``u`` when ``u − P/2 ≤ s < u + P/2``
    (``P = 1 / c``), so each old sample lands in exactly one new sample of a regular grid.
    ``window`` is ignored.
    """
    x = np.asarray(t, dtype=np.float64) * cutoff
    return ((x > -0.5) & (x <= 0.5)).astype(np.float64)


#: Kernel functions by method name, and the half-width of their support in periods (1 / cutoff).
KERNELS: dict[str, Callable[..., np.ndarray]] = {
    "lanczos": lanczos_kernel,
    "sinc": sinc_kernel,
    "rect": rect_kernel,
    "nearest": rect_kernel,  # support only: the nearest sample is chosen in _nearest_weights
}
_SUPPORT: dict[str, Callable[[float], float]] = {
    "lanczos": lambda window: float(window),
    "sinc": lambda window: float(window),
    "rect": lambda window: 0.5,
    "nearest": lambda window: 0.5,
}


def kernel_reach(method: str = "lanczos", window: float = 3, cutoff_mult: float = 1.0) -> int:
    """Rows of a regular grid on each side of a grid time that the resampling kernel reaches.

    The kernel's support is ``window`` periods for Lanczos/sinc and half a period for
    rect/nearest, where a period is ``1 / cutoff = TR / cutoff_mult``; in rows of the grid that
    is ``ceil(window / cutoff_mult)`` or ``ceil(0.5 / cutoff_mult)``.

    Examples
    --------
    >>> kernel_reach("lanczos", window=3), kernel_reach("rect"), kernel_reach("sinc", 2, 0.5)
    (3, 1, 4)
    """
    _check_option("method", method, KERNELS)
    _check_positive("window", window)
    _check_positive("cutoff_mult", cutoff_mult)
    return int(np.ceil(_SUPPORT[method](window) / float(cutoff_mult) - 1e-9))


def _check_times(name: str, times: object, min_len: int = 1) -> np.ndarray:
    arr = np.asarray(times, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name!r} must be a 1-D array of times in seconds, got shape {arr.shape}.")
    if arr.size < min_len:
        raise ValueError(f"{name!r} needs at least {min_len} time(s), got {arr.size}.")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(
            f"{name!r} has {bad.size} non-finite time(s) (first at index {int(bad[0])}); remove "
            "those samples or fix their times."
        )
    return arr


def grid_cutoff(new_times: np.ndarray, cutoff_mult: float = 1.0) -> float:
    """The cutoff frequency (Hz) used for a grid: ``cutoff_mult / mean(diff(new_times))``."""
    new = _check_times("new_times", new_times, min_len=2)
    steps = np.diff(new)
    if np.any(steps <= 0):
        i = int(np.flatnonzero(steps <= 0)[0])
        raise ValueError(
            f"'new_times' must be strictly increasing (a regular grid); new_times[{i + 1}] = "
            f"{new[i + 1]!r} follows {new[i]!r}."
        )
    return float(cutoff_mult) / float(np.mean(steps))


def filter_matrix(
    old_times: np.ndarray,
    new_times: np.ndarray,
    method: str = "lanczos",
    window: float = 3,
    cutoff_mult: float = 1.0,
    normalize: bool = False,
    dtype: np.dtype | type = np.float64,
) -> sp.csr_matrix:
    """The sparse (n_new, n_old) matrix that resamples values at ``old_times`` to ``new_times``.

    Parameters
    ----------
    old_times : array-like, shape (n_old,)
        Times of the input rows (word onsets), seconds; any order.
    new_times : array-like, shape (n_new,)
        The regular output grid (TR times), strictly increasing, at least two.
    method : {"lanczos", "sinc", "rect", "nearest"}
        ``"lanczos"``: :func:`lanczos_kernel` (Huth et al.); ``"sinc"``: :func:`sinc_kernel`;
        ``"rect"``: the sum of the old values within half a period of each new time
        (:func:`rect_kernel`); ``"nearest"``: the value of the old sample nearest to each new
        time if it lies within half a period, else 0.
    window : float
        Lobes on each side for ``"lanczos"`` and ``"sinc"``.
    cutoff_mult : float
        Multiplies the cutoff ``1 / mean(diff(new_times))``.
    normalize : bool
        Divide each row by the sum of its weights (a weighted *mean* instead of the published
        weighted sum); rows whose weights sum to less than 1e-6 in absolute value become 0.
    dtype : numpy dtype
        Of the weights.

    Returns
    -------
    matrix : scipy.sparse.csr_matrix, shape (n_new, n_old)
    """
    _check_option("method", method, KERNELS)
    _check_positive("window", window)
    _check_positive("cutoff_mult", cutoff_mult)
    old = _check_times("old_times", old_times, min_len=0)
    new = _check_times("new_times", new_times, min_len=2)
    cutoff = grid_cutoff(new, cutoff_mult)
    order = np.argsort(old, kind="stable")
    old_sorted = old[order]
    half = _SUPPORT[method](window) / cutoff
    pad = 1e-9 * max(1.0, half)
    lo = np.searchsorted(old_sorted, new - half - pad, side="left")
    hi = np.searchsorted(old_sorted, new + half + pad, side="right")
    counts = hi - lo
    rows = np.repeat(np.arange(new.size), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    cols_sorted = np.arange(int(counts.sum())) - first + np.repeat(lo, counts)
    t = new[rows] - old_sorted[cols_sorted]
    if method == "nearest":
        weights = _nearest_weights(t, rows, cutoff)
    else:
        weights = KERNELS[method](t, cutoff, window)
    if normalize:
        sums = np.bincount(rows, weights=weights, minlength=new.size)
        scale = np.where(np.abs(sums) > 1e-6, 1.0 / np.where(sums == 0, 1.0, sums), 0.0)
        weights = weights * scale[rows]
    keep = weights != 0
    return sp.csr_matrix(
        (weights[keep].astype(dtype), (rows[keep], order[cols_sorted[keep]])),
        shape=(new.size, old.size),
    )


def _nearest_weights(t: np.ndarray, rows: np.ndarray, cutoff: float) -> np.ndarray:
    """1 for the candidate with the smallest |t| in each row (ties: the earlier old sample)."""
    inside = rect_kernel(t, cutoff) > 0
    weights = np.zeros(t.shape, dtype=np.float64)
    if not inside.any():
        return weights
    idx = np.flatnonzero(inside)
    # sort candidates by row, then |t|, then t (t >= 0 first: the earlier old sample on ties)
    order = np.lexsort((-t[idx], np.abs(t[idx]), rows[idx]))
    sorted_rows = rows[idx][order]
    is_first = np.ones(sorted_rows.size, dtype=bool)
    is_first[1:] = sorted_rows[1:] != sorted_rows[:-1]
    weights[idx[order[is_first]]] = 1.0
    return weights


def resample(
    values: np.ndarray,
    old_times: np.ndarray,
    new_times: np.ndarray,
    method: str = "lanczos",
    window: float = 3,
    cutoff_mult: float = 1.0,
    axis: int = 0,
    normalize: bool = False,
) -> np.ndarray:
    """Resample values at irregular times (word onsets) onto a regular grid (TR times).

    A pure function: the sparse filter matrix (:func:`filter_matrix`) is built once and applied
    to every column, so all layers of a story can go through in one call (stack them along
    another axis, e.g. ``resample(fs.stack(), fs.times, tr_times, axis=1)``: one sparse product
    per layer, no transposed copy of the stack).

    Parameters
    ----------
    values : array-like, shape (n_old, ...) along ``axis``
        The values at ``old_times`` (words × features, or layers × words × features).
    old_times : array-like, shape (n_old,)
        Seconds; need not be sorted (words at the same time are all counted).
    new_times : array-like, shape (n_new,)
        A regular grid, strictly increasing; its mean step sets the cutoff.
    method : {"lanczos", "sinc", "rect", "nearest"}
        See :func:`filter_matrix`. Default ``"lanczos"`` (Huth et al., 2016).
    window : float
        Lobes on each side for ``"lanczos"`` and ``"sinc"`` (default 3).
    cutoff_mult : float
        The cutoff is ``cutoff_mult / mean(diff(new_times))``.
    axis : int
        The time axis of ``values``.
    normalize : bool
        ``False`` (default, as published): each new sample is a weighted *sum* of the old ones,
        so the output is the signal times the local number of words per TR (a feature of ones
        becomes the word rate). ``True``: a weighted *mean* (rows divided by their sum of
        weights), which recovers a smooth signal sampled at very irregular times.

    Returns
    -------
    resampled : ndarray
        ``values`` with ``axis`` of length ``n_new``; float32 input stays float32, anything
        else becomes float64.

    Examples
    --------
    >>> words = np.array([0.3, 1.1, 1.9, 2.6])
    >>> resample(np.ones((4, 1)), words, np.array([0.0, 2.0, 4.0]), method="rect")[:, 0]
    array([1., 3., 0.])
    """
    arr = np.asarray(values)
    if arr.ndim == 0:
        raise ValueError("'values' must have at least one dimension (the time axis), got a scalar.")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise TypeError(f"'values' must be a real numeric array, got dtype {arr.dtype}.")
    axis = int(axis)
    if not -arr.ndim <= axis < arr.ndim:
        raise ValueError(f"'axis' {axis} is out of range for 'values' with {arr.ndim} dimension(s).")
    old = _check_times("old_times", old_times, min_len=0)
    if arr.shape[axis] != old.size:
        raise ValueError(
            f"'values' has {arr.shape[axis]} rows along axis {axis} but 'old_times' has "
            f"{old.size} times; give one time per row (e.g. FeatureSet.times)."
        )
    dtype = np.float32 if arr.dtype == np.float32 else np.float64
    matrix = filter_matrix(old, new_times, method=method, window=window, cutoff_mult=cutoff_mult,
                           normalize=normalize, dtype=dtype)
    axis %= arr.ndim
    lead = int(np.prod(arr.shape[:axis], dtype=np.int64))
    trail = int(np.prod(arr.shape[axis + 1:], dtype=np.int64))
    # (lead, n_old, trail) is a view of a contiguous array: one sparse product per leading
    # index (e.g. per layer), no transposed copy of the whole stack
    blocks = arr.reshape(lead, old.size, trail)
    out = np.empty((lead, matrix.shape[0], trail), dtype=dtype)
    for i in range(lead):
        out[i] = matrix @ blocks[i].astype(dtype, copy=False)
    return out.reshape(arr.shape[:axis] + (matrix.shape[0],) + arr.shape[axis + 1:])
