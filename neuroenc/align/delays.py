"""FIR delays (fMRI, in TRs) and time lags (MEG/EEG, in samples), zero-filled within runs.

A delay ``d`` shifts the features down by ``d`` rows: row ``t`` of the delayed block holds row
``t − d`` of the input, or zeros when ``t − d`` falls outside the run. Nothing wraps around and
nothing crosses a run boundary. Negative delays look ahead (MEG lags with ``tmin < 0``).
Blocks are stacked delay-major, as himalaya and Huth et al. do: columns
``[k·n_features, (k+1)·n_features)`` hold delay ``delays[k]``.
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .._validation import _check_2d, _preview


def check_delays(delays: Any, name: str = "delays") -> tuple[int, ...]:
    """Delays as a tuple of ints (at least one, no duplicates)."""
    if isinstance(delays, (numbers.Integral, np.integer)) and not isinstance(delays, bool):
        delays = (delays,)
    try:
        values = list(delays)
    except TypeError:
        raise TypeError(f"{name!r} must be a sequence of integers, got {delays!r}.") from None
    if not values:
        raise ValueError(f"{name!r} must hold at least one delay, got {delays!r}.")
    out = []
    for d in values:
        if isinstance(d, bool) or not isinstance(d, (numbers.Integral, np.integer)):
            if isinstance(d, (numbers.Real, np.floating)) and float(d).is_integer():
                d = int(d)
            else:
                raise TypeError(
                    f"{name!r} must be integers (in samples/TRs), got {d!r} in {delays!r}; for "
                    "lags in seconds use lag_samples(tmin, tmax, sfreq)."
                )
        out.append(int(d))
    if len(set(out)) != len(out):
        raise ValueError(f"{name!r} has duplicates: {out}.")
    return tuple(out)


def run_bounds(
    n_samples: int,
    run_lengths: Sequence[int] | None = None,
    groups: Sequence[Any] | np.ndarray | None = None,
) -> np.ndarray:
    """The start of each run and the end of the last, from run lengths or per-sample labels.

    Parameters
    ----------
    n_samples : int
        Number of rows.
    run_lengths : sequence of int | None
        Rows per run, in order; must sum to ``n_samples``.
    groups : array-like, shape (n_samples,) | None
        A run label per row (e.g. :attr:`Design.groups`); each run must be one contiguous block.
        With neither, all rows are one run.

    Returns
    -------
    bounds : ndarray of int, shape (n_runs + 1,)
    """
    if run_lengths is not None and groups is not None:
        raise ValueError("Give either 'run_lengths' or 'groups', not both.")
    if groups is not None:
        groups = np.asarray(groups)
        if groups.ndim != 1 or groups.shape[0] != n_samples:
            raise ValueError(
                f"'groups' must give one run label per row: X has {n_samples} rows but groups "
                f"has shape {groups.shape}."
            )
        if n_samples == 0:
            return np.array([0, 0])
        change = np.flatnonzero(groups[1:] != groups[:-1]) + 1
        starts = np.concatenate([[0], change])
        labels = groups[starts]
        _, counts = np.unique(labels, return_counts=True)
        if np.any(counts > 1):
            repeated = np.unique(labels)[counts > 1]
            raise ValueError(
                f"run(s) {_preview(repeated)} appear in several separate blocks of 'groups'; each "
                "run must be one contiguous block of rows (sort the rows by run)."
            )
        return np.concatenate([starts, [n_samples]])
    if run_lengths is None:
        return np.array([0, n_samples])
    lengths = np.asarray(run_lengths)
    if lengths.ndim != 1 or lengths.size == 0 or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(f"'run_lengths' must be a non-empty sequence of integers, got {run_lengths!r}.")
    if np.any(lengths < 0):
        raise ValueError(f"'run_lengths' must be >= 0, got {lengths.tolist()}.")
    if int(lengths.sum()) != n_samples:
        raise ValueError(
            f"'run_lengths' sum to {int(lengths.sum())} but X has {n_samples} rows. In "
            "cross-validation, pass groups= (one run label per row) to transform instead of fixed "
            "run_lengths, or delay the full design before splitting it."
        )
    return np.concatenate([[0], np.cumsum(lengths)])


def make_delayed(
    X: np.ndarray,
    delays: Sequence[int] = (1, 2, 3, 4),
    run_lengths: Sequence[int] | None = None,
    groups: Sequence[Any] | np.ndarray | None = None,
) -> np.ndarray:
    """Stack delayed copies of ``X``: zero-filled, never wrapped, never across runs.

    Parameters
    ----------
    X : array-like, shape (n_samples, n_features)
    delays : sequence of int
        Shifts in rows (TRs or samples); ``d > 0``: row ``t`` gets row ``t − d`` (the past),
        ``d < 0``: the future, ``0``: unchanged.
    run_lengths, groups
        Run boundaries, see :func:`run_bounds`; default: one run.

    Returns
    -------
    X_delayed : ndarray, shape (n_samples, n_delays · n_features)
        Delay-major: block ``k`` is ``X`` delayed by ``delays[k]``.

    Examples
    --------
    >>> make_delayed(np.array([[1.], [2.], [3.]]), delays=(0, 1, -1))
    array([[1., 0., 2.],
           [2., 1., 3.],
           [3., 2., 0.]])
    """
    X = _check_2d("X", X)
    delays = check_delays(delays)
    n, nf = X.shape
    bounds = run_bounds(n, run_lengths=run_lengths, groups=groups)
    out = np.zeros((n, len(delays) * nf), dtype=np.result_type(X.dtype, np.float32))
    for a, b in zip(bounds[:-1], bounds[1:]):
        for k, d in enumerate(delays):
            cols = slice(k * nf, (k + 1) * nf)
            if abs(d) >= b - a:
                continue
            if d >= 0:
                out[a + d:b, cols] = X[a:b - d]
            else:
                out[a:b + d, cols] = X[a - d:b]
    return out


def reshape_by_delays(array: np.ndarray, n_delays: int, axis: int = 0) -> np.ndarray:
    """Split a delay-major axis of length ``n_delays · n_features`` into (n_delays, n_features).

    Use it on ridge coefficients ``(n_delays · n_features, n_targets)`` to get the
    temporal response function per feature: ``(n_delays, n_features, n_targets)``.

    Parameters
    ----------
    array : ndarray
    n_delays : int
    axis : int
        The delay-major axis; the delay axis takes its place, followed by the feature axis.
    """
    arr = np.asarray(array)
    axis = axis % arr.ndim
    size = arr.shape[axis]
    if n_delays <= 0 or size % n_delays:
        raise ValueError(
            f"axis {axis} has length {size}, which is not a multiple of n_delays={n_delays}."
        )
    shape = arr.shape[:axis] + (n_delays, size // n_delays) + arr.shape[axis + 1:]
    return arr.reshape(shape)


class Delayer(TransformerMixin, BaseEstimator):
    """FIR delays as a scikit-learn transformer, like himalaya's tutorial ``Delayer``.

    Zero-filled, never wrapped, never across run boundaries. The boundaries come from
    ``run_lengths`` (fixed, for a design that is transformed whole) or from per-row run labels
    ``groups`` given to :meth:`transform` (what cross-validation needs, since every split has
    other run lengths). In a ``Pipeline``, route ``groups`` with scikit-learn's metadata routing::

        sklearn.set_config(enable_metadata_routing=True)
        pipe = make_pipeline(Delayer().set_transform_request(groups=True), Ridge())
        pipe.fit(X, y, groups=groups)

    A split that cuts a run into pieces (blocked CV inside one run) is delayed as if the
    pieces were contiguous; delay the full design first (:func:`make_fmri_design` does).

    Parameters
    ----------
    delays : sequence of int
        Shifts in rows (TRs); default ``(1, 2, 3, 4)``.
    run_lengths : sequence of int | None
        Rows per run; must sum to the rows of every X transformed.

    Attributes
    ----------
    n_features_in_ : int
    delays_ : tuple of int
        The validated delays.
    """

    def __init__(self, delays: Sequence[int] = (1, 2, 3, 4), run_lengths: Sequence[int] | None = None):
        self.delays = delays
        self.run_lengths = run_lengths

    def fit(self, X: Any, y: Any = None) -> "Delayer":
        """Check X and remember its number of columns."""
        validate_data(self, X, dtype=[np.float64, np.float32])
        self.delays_ = check_delays(self.delays)
        return self

    def transform(self, X: Any, groups: Any = None) -> np.ndarray:
        """The delayed design, shape (n_samples, n_delays · n_features).

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        groups : array-like, shape (n_samples,) | None
            A run label per row; overrides ``run_lengths``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        run_lengths = None if groups is not None else self.run_lengths
        return make_delayed(X, self.delays_, run_lengths=run_lengths, groups=groups)

    def fit_transform(self, X: Any, y: Any = None, groups: Any = None) -> np.ndarray:
        """Fit, then transform (``groups`` goes to :meth:`transform`)."""
        return self.fit(X, y).transform(X, groups=groups)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names ``<feature>_delay<d>``, delay-major."""
        check_is_fitted(self)
        if input_features is None:
            input_features = getattr(self, "feature_names_in_", None)
        if input_features is None:
            input_features = [f"x{i}" for i in range(self.n_features_in_)]
        return np.array([f"{f}_delay{d}" for d in self.delays_ for f in input_features], dtype=object)

    def reshape_by_delays(self, Xt: np.ndarray, axis: int = 1) -> np.ndarray:
        """Split a delay-major axis into (n_delays, n_features), see :func:`reshape_by_delays`."""
        check_is_fitted(self)
        return reshape_by_delays(Xt, len(self.delays_), axis=axis)


def write_delayed(dest: np.ndarray, grid: np.ndarray, keep: slice, delays: tuple[int, ...]) -> None:
    """``dest[:, block k] = grid[keep shifted by delays[k]]`` (the extended grid covers it).

    Parameters
    ----------
    dest : ndarray, shape (n_kept, n_delays * n_features)
        Written in place, delay-major.
    grid : ndarray, shape (n_extended, n_features)
        Features on a response grid extended before ``keep`` by the largest delay.
    keep : slice
        The kept rows of ``grid``.
    delays : tuple of int
    """
    nf = grid.shape[1]
    for k, d in enumerate(delays):
        dest[:, k * nf:(k + 1) * nf] = grid[keep.start - d:keep.stop - d]
