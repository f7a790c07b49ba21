"""Canonical-HRF convolution on the TR grid (nilearn's ``glover`` and ``spm`` models).

An alternative to FIR delays: one regressor per feature instead of one per delay. The kernel is
nilearn's HRF evaluated at multiples of the TR (0, TR, 2·TR... < ``time_length``) and scaled to
sum to 1, so a constant input gives the same constant out (unit gain at 0 Hz). The convolution
is causal and starts from zeros at the beginning of every run (nothing crosses a boundary).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.signal import lfilter
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .._validation import _check_2d, _check_option, _check_positive
from .delays import run_bounds


def _nilearn_hrf(name: str) -> Callable[..., np.ndarray]:
    from nilearn.glm.first_level import glover_hrf, spm_hrf

    return {"glover": glover_hrf, "spm": spm_hrf}[name]


#: HRF models by name (nilearn's difference-of-gammas models).
HRF_MODELS = ("glover", "spm")


def hrf_kernel(tr: float, model: str = "glover", time_length: float = 32.0,
               oversampling: int = 50) -> np.ndarray:
    """The HRF sampled at ``0, tr, 2·tr, ...`` (below ``time_length``), summing to 1.

    Parameters
    ----------
    tr : float
        Sampling period in seconds.
    model : {"glover", "spm"}
        nilearn's ``glover_hrf`` or ``spm_hrf``.
    time_length : float
        Kernel length in seconds.
    oversampling : int
        nilearn's oversampling; the fine kernel is interpolated at multiples of ``tr``.

    Returns
    -------
    kernel : ndarray, shape (ceil(time_length / tr),)
    """
    _check_positive("tr", tr)
    _check_option("hrf", model, HRF_MODELS)
    _check_positive("time_length", time_length)
    if time_length < tr:
        raise ValueError(f"'time_length' ({time_length} s) must be at least one TR ({tr} s).")
    fine = _nilearn_hrf(model)(tr, oversampling=oversampling, time_length=time_length)
    # nilearn samples its kernel at linspace(0, time_length, n), not at multiples of tr/oversampling
    fine_times = np.linspace(0.0, time_length, fine.size)
    times = np.arange(int(np.ceil(time_length / tr - 1e-9))) * tr
    kernel = np.interp(times, fine_times, fine)
    return kernel / kernel.sum()


def convolve_hrf(
    X: np.ndarray,
    tr: float,
    model: str = "glover",
    run_lengths: Sequence[int] | None = None,
    groups: Any = None,
    time_length: float = 32.0,
) -> np.ndarray:
    """Convolve every column of ``X`` with the canonical HRF, causally, run by run.

    Parameters
    ----------
    X : array-like, shape (n_samples, n_features)
        Features on the TR grid.
    tr : float
        The TR in seconds.
    model : {"glover", "spm"}
    run_lengths, groups
        Run boundaries, see :func:`~neuroenc.align.delays.run_bounds`; default one run.
    time_length : float
        HRF length in seconds.

    Returns
    -------
    X_conv : ndarray, shape (n_samples, n_features)
        ``X_conv[t] = Σ_j kernel[j] · X[t − j]`` over the rows of the same run.
    """
    X = _check_2d("X", X)
    kernel = hrf_kernel(tr, model, time_length)
    bounds = run_bounds(X.shape[0], run_lengths=run_lengths, groups=groups)
    dtype = np.result_type(X.dtype, np.float32)
    out = np.empty(X.shape, dtype=dtype)
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b > a:
            out[a:b] = lfilter(kernel.astype(dtype), [1.0], X[a:b].astype(dtype, copy=False), axis=0)
    return out


class HRFConvolver(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Canonical-HRF convolution as a scikit-learn transformer (the alternative to
    :class:`~neuroenc.align.delays.Delayer`), with the same run-boundary handling.

    Parameters
    ----------
    tr : float
        The TR in seconds.
    model : {"glover", "spm"}
    run_lengths : sequence of int | None
        Rows per run; or pass ``groups`` to :meth:`transform`.
    time_length : float
        HRF length in seconds.

    Attributes
    ----------
    kernel_ : ndarray
        The HRF on the TR grid (sums to 1).
    n_features_in_ : int
    """

    def __init__(self, tr: float = 2.0, model: str = "glover",
                 run_lengths: Sequence[int] | None = None, time_length: float = 32.0):
        self.tr = tr
        self.model = model
        self.run_lengths = run_lengths
        self.time_length = time_length

    def fit(self, X: Any, y: Any = None) -> "HRFConvolver":
        """Check X and compute the kernel."""
        validate_data(self, X, dtype=[np.float64, np.float32])
        self.kernel_ = hrf_kernel(self.tr, self.model, self.time_length)
        return self

    def transform(self, X: Any, groups: Any = None) -> np.ndarray:
        """The convolved features; ``groups`` (a run label per row) overrides ``run_lengths``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        run_lengths = None if groups is not None else self.run_lengths
        return convolve_hrf(X, self.tr, self.model, run_lengths=run_lengths, groups=groups,
                            time_length=self.time_length)

    def fit_transform(self, X: Any, y: Any = None, groups: Any = None) -> np.ndarray:
        """Fit, then transform (``groups`` goes to :meth:`transform`)."""
        return self.fit(X, y).transform(X, groups=groups)
