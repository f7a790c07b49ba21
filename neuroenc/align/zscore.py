"""Z-scoring with stored statistics: the same transform applies to the data it was fit on and to
new (test) data.

Columns whose standard deviation is 0 cannot be z-scored: :func:`zscore` centres them (they
become 0, which a ridge model ignores) and reports their indices in :attr:`ZStats.constant`;
callers decide whether that is an error (responses) or a warning (features).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .._validation import _check_2d, _preview

logger = logging.getLogger(__name__)


@dataclass
class ZStats:
    """The statistics of one z-scoring: per-column mean and standard deviation.

    Attributes
    ----------
    mean : ndarray, shape (n_columns,)
    std : ndarray, shape (n_columns,)
        Population standard deviation (``ddof=0``) of the rows the statistics came from; 1 for
        constant columns.
    n : int
        How many rows the statistics came from.
    constant : ndarray of int
        Indices of the columns whose standard deviation was 0 (they are centred only).
    """

    mean: np.ndarray
    std: np.ndarray
    n: int
    constant: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))

    def apply(self, X: np.ndarray) -> np.ndarray:
        """``(X − mean) / std`` with these statistics (e.g. training statistics on test data)."""
        X = _check_2d("X", X)
        if X.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"X has {X.shape[1]} columns but these z-scoring statistics have "
                f"{self.mean.shape[0]}; apply them to data with the same columns."
            )
        return (X - self.mean) / self.std

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, for JSON provenance."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "n": int(self.n),
                "constant": self.constant.tolist()}


def zscore_stats(X: np.ndarray, tol: float = 0.0) -> ZStats:
    """The per-column mean and standard deviation (``ddof=0``) of ``X``.

    Parameters
    ----------
    X : array-like, shape (n_samples, n_columns)
        At least one row, finite.
    tol : float
        Columns with ``std <= tol · max(1, |mean|)`` count as constant.
    """
    X = _check_2d("X", X)
    if X.shape[0] == 0:
        raise ValueError("cannot compute z-scoring statistics from 0 rows.")
    X = X.astype(np.float64, copy=False)
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    constant = np.flatnonzero(std <= tol * np.maximum(1.0, np.abs(mean)))
    std = std.copy()
    std[constant] = 1.0
    return ZStats(mean=mean, std=std, n=int(X.shape[0]), constant=constant)


def zscore(X: np.ndarray, stats: ZStats | None = None) -> tuple[np.ndarray, ZStats]:
    """Z-score the columns of ``X``, with its own statistics or with given ones.

    Parameters
    ----------
    X : array-like, shape (n_samples, n_columns)
    stats : ZStats | None
        Statistics to apply (e.g. from training data); default: computed from ``X``.

    Returns
    -------
    Z : ndarray, float64
    stats : ZStats
        The statistics used.

    Examples
    --------
    >>> Z, st = zscore(np.array([[1.0], [3.0]]))
    >>> Z[:, 0].tolist(), st.mean.tolist(), st.std.tolist()
    ([-1.0, 1.0], [2.0], [1.0])
    """
    if stats is None:
        stats = zscore_stats(X)
    return stats.apply(X), stats


class ZScore(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Z-scoring as a scikit-learn transformer: statistics learned in ``fit``, applied as stored.

    Like ``StandardScaler`` (``ddof=0``), with messages that name bad columns: ``fit`` on the
    training part of a split, ``transform`` the test part with the training statistics, so no
    test statistic leaks into the model. Constant training columns are centred only (they become
    0) and listed in ``constant_``.

    Parameters
    ----------
    with_mean : bool
        Subtract the mean.
    with_std : bool
        Divide by the standard deviation.

    Attributes
    ----------
    mean_ : ndarray, shape (n_features,)
    scale_ : ndarray, shape (n_features,)
    constant_ : ndarray of int
        Columns with zero variance in the training data.
    n_features_in_ : int
    """

    def __init__(self, with_mean: bool = True, with_std: bool = True):
        self.with_mean = with_mean
        self.with_std = with_std

    def fit(self, X: Any, y: Any = None) -> "ZScore":
        """Learn the per-column mean and standard deviation of ``X``."""
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        stats = zscore_stats(X)
        self.mean_ = stats.mean if self.with_mean else np.zeros_like(stats.mean)
        self.scale_ = stats.std if self.with_std else np.ones_like(stats.std)
        self.constant_ = stats.constant
        if stats.constant.size:
            logger.warning("ZScore: %d constant column(s) %s in the training data; they are "
                           "centred only.", stats.constant.size, _preview(stats.constant))
        return self

    def transform(self, X: Any) -> np.ndarray:
        """``(X − mean_) / scale_`` with the statistics learned in :meth:`fit`."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return ((X - self.mean_) / self.scale_).astype(X.dtype, copy=False)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """``X · scale_ + mean_``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return (X * self.scale_ + self.mean_).astype(X.dtype, copy=False)
