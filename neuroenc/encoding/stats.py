"""Statistics of held-out scores: permutation nulls, FDR, noise ceilings.

- :func:`permutation_test`: a null for the cross-validated Pearson r that keeps the
  autocorrelation of brain responses: each test fold's response is circularly shifted (or its
  blocks are permuted) against its prediction, batched as array operations (all circular shifts
  of a fold at once by FFT), with the same draws for every target, so that target chunks give
  the same p-values as one big run.
- :func:`permutation_test_best`: the same for several layers, plus each target's best-layer
  p-value corrected for choosing the layer (maximum over layers of the null, the same draws for
  every layer), as :class:`~neuroenc.encoding.LayerSweep` computes it layer by layer.
- :func:`fdr_bh`: Benjamini-Hochberg q-values across targets.
- Noise ceilings: :func:`noise_ceiling_repeats` (repeated presentations; with
  :func:`cc_norm` and :func:`repeat_scores`, Schoppe et al. 2016's normalised correlation),
  :func:`split_half_reliability` / :func:`noise_ceiling_split_half` (random halves of repeats or
  subjects, Spearman-Brown corrected) and :func:`noise_ceiling_intersubject`
  (leave-one-subject-out correlation with the mean of the others, Spearman-Brown).
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import _check_option, _check_random_state
from .cv import runs_in_order

logger = logging.getLogger(__name__)

#: Permutation schemes of the encoding models: ``"refit"`` (shift each run's response, refit
#: the held-out predictions: valid for cross-validated predictions), ``"circular"`` and
#: ``"block"`` (shift or shuffle each test fold against fixed predictions: cheaper, but
#: anti-conservative for cross-validated predictions, whose fold scores are correlated through
#: the shared training data) and ``"auto"`` (refit unless its cost exceeds
#: :data:`REFIT_NULL_BUDGET`, then circular, with a warning).
PERMUTATIONS = ("auto", "refit", "circular", "block")
#: The schemes of :func:`permutation_null` (fixed predictions).
FIXED_PERMUTATIONS = ("circular", "block")
#: Floating-point operations above which ``permutation="auto"`` falls back to fixed predictions.
REFIT_NULL_BUDGET = 5e12
#: The sample orders of a refit null's draws (int32) are computed once and kept when they take
#: at most this many bytes.
REFIT_INDEX_BYTES = 64 * 2**20


def describe_null(settings: dict) -> str:
    """One sentence on the permutation null a fit used (from its results' ``settings``), for
    reports; empty when the settings do not say (results written before the scheme was kept)."""
    used = settings.get("permutation_used")
    if used == "refit" and settings.get("null_unit") == "stimuli":
        within = " within groups" if settings.get("null_within_groups") else ""
        return ("Permutation null: the stimuli's responses permuted" + within + " and the held-out "
                "predictions of every fold refitted, so the p-values are calibrated for "
                "cross-validated scores.")
    if used == "refit":
        return ("Permutation null: each run's response shifted circularly and the held-out "
                "predictions of every fold refitted, so the p-values are calibrated for "
                "cross-validated scores.")
    if used in ("circular", "block"):
        how = "shifted circularly" if used == "circular" else "cut into shuffled blocks"
        return (f"Permutation null: each test fold's response {how} against fixed predictions; "
                "the folds' scores share training data, which this null ignores, so these "
                "p-values are too small (refit the null, permutation='refit', to calibrate them).")
    return ""


def run_indices(groups: np.ndarray) -> list[np.ndarray]:
    """The sample indices of each run (label), in order of first appearance."""
    groups = np.asarray(groups)
    return [np.flatnonzero(groups == g) for g in runs_in_order(groups)]


def run_shifts(runs: Sequence[np.ndarray], n_permutations: int, random_state: Any = None) -> np.ndarray:
    """Circular shifts of each run's response for a refit null: (n_permutations, n_runs) ints.

    Each run's shift is drawn uniformly from 1 to its length - 1, independently per run and
    permutation (no minimum shift: leaving out the small shifts would drop the draws most like
    the data and make one-run p-values too small); a run of one sample is not shifted.
    """
    rng = _check_random_state(random_state)
    out = np.zeros((n_permutations, len(runs)), dtype=np.int64)
    for i, idx in enumerate(runs):
        if len(idx) >= 2:
            out[:, i] = rng.integers(1, len(idx), size=n_permutations)
    return out


class ShiftedDraws:
    """The draws of a refit null: each run's response shifted circularly, per draw.

    Parameters
    ----------
    runs : sequence of ndarray of int
        The sample indices of each run (:func:`run_indices`).
    shifts : ndarray of int, shape (n_draws, n_runs)
        The shift of each run in each draw (:func:`run_shifts`).
    n_samples : int
        Samples in all.
    cache_bytes : int
        The sample orders of all draws are computed once and kept when they take at most this
        many bytes (they serve every layer and fold); else per batch of draws.
    """

    def __init__(self, runs: Sequence[np.ndarray], shifts: np.ndarray, n_samples: int,
                 cache_bytes: int = REFIT_INDEX_BYTES) -> None:
        self.runs = [np.asarray(r) for r in runs]
        self.shifts = np.atleast_2d(np.asarray(shifts))
        self.n_samples = int(n_samples)
        self._all = None
        if self.n_draws * self.n_samples * 4 <= cache_bytes:
            self._all = self._compute(0, self.n_draws)
        self._distinct: tuple[ShiftedDraws, np.ndarray | None] | None = None

    @property
    def n_draws(self) -> int:
        return self.shifts.shape[0]

    def _compute(self, start: int, stop: int) -> np.ndarray:
        idx = shifted_indices(self.runs, self.shifts[start:stop], self.n_samples)
        return idx.astype(np.int32) if self.n_samples < 2**31 else idx

    def indices(self, start: int, stop: int) -> np.ndarray:
        """The sample order of draws ``start`` to ``stop``: (n, n_samples), ``Y[idx[d]]``."""
        if self._all is not None:
            return self._all[start:stop]
        return self._compute(start, stop)

    def distinct(self) -> tuple[ShiftedDraws, np.ndarray | None]:
        """The distinct draws and, per draw, the index of its copy among them (None when every
        draw is distinct). A run of n samples has only n - 1 shifts, so 1,000 draws of one run
        of a few hundred samples repeat most of them: a refit null computes each once."""
        if self._distinct is None:
            unique, inverse = np.unique(self.shifts, axis=0, return_inverse=True)
            self._distinct = (self, None) if unique.shape[0] == self.n_draws else (
                ShiftedDraws(self.runs, unique, self.n_samples), np.asarray(inverse).reshape(-1))
        return self._distinct


class PermutedDraws:
    """The draws of a refit null for stimuli: the stimuli permuted, within groups if any.

    The same interface as :class:`ShiftedDraws` (``n_draws``, ``indices(start, stop)``), so
    :func:`~neuroenc.encoding._ridge.refit_null` refits every fold's held-out predictions on
    each draw's permuted training responses. Stimuli without time are exchangeable under the
    null, except for what their group shares (a passage's topic, a subject's session): a
    permutation within each group keeps every group's responses in that group, so a group
    effect in the responses stays in every draw.

    Parameters
    ----------
    units : sequence of ndarray of int
        The sample indices of each exchangeable unit (:func:`run_indices` of the groups; one
        unit of all samples without groups). Samples in no unit keep their place.
    n_draws : int
        Number of draws.
    n_samples : int
        Samples in all.
    random_state : None | int | Generator
        Seed; draw ``d`` comes from the seed and ``d`` alone, so any batch of draws (and any
        target chunk or layer fitted apart with the same seed) sees the same permutations.
    cache_bytes : int
        The sample orders of all draws are computed once and kept when they take at most this
        many bytes; else per batch of draws.

    Examples
    --------
    >>> d = PermutedDraws([np.arange(3), np.arange(3, 6)], 2, 6, random_state=0)
    >>> idx = d.indices(0, 2)
    >>> sorted(idx[0, :3].tolist()), sorted(idx[0, 3:].tolist())
    ([0, 1, 2], [3, 4, 5])
    """

    def __init__(self, units: Sequence[np.ndarray], n_draws: int, n_samples: int, random_state: Any = None,
                 cache_bytes: int = REFIT_INDEX_BYTES) -> None:
        self.units = [np.asarray(u, dtype=np.int64) for u in units]
        if not any(u.size >= 2 for u in self.units):
            raise ValueError(
                "A permutation null within groups needs a group of at least 2 stimuli, but every "
                "group holds one; permute without groups (or group stimuli more coarsely)."
            )
        self._n_draws = int(n_draws)
        self.n_samples = int(n_samples)
        self.seed = int(_check_random_state(random_state).integers(2**62))
        self._all = None
        if self._n_draws * self.n_samples * 4 <= cache_bytes:
            self._all = self._compute(0, self._n_draws)

    @property
    def n_draws(self) -> int:
        return self._n_draws

    def _compute(self, start: int, stop: int) -> np.ndarray:
        dtype = np.int32 if self.n_samples < 2**31 else np.int64
        idx = np.tile(np.arange(self.n_samples, dtype=dtype), (max(stop - start, 0), 1))
        for row, d in enumerate(range(start, stop)):
            rng = np.random.default_rng([self.seed, d])
            for unit in self.units:
                if unit.size >= 2:
                    idx[row, unit] = unit[rng.permutation(unit.size)]
        return idx

    def indices(self, start: int, stop: int) -> np.ndarray:
        """The sample order of draws ``start`` to ``stop``: (n, n_samples), ``Y[idx[d]]``."""
        if self._all is not None:
            return self._all[start:stop]
        return self._compute(start, stop)

    def distinct(self) -> tuple[PermutedDraws, None]:
        """Every draw, as distinct (permutations of more than a few stimuli hardly repeat)."""
        return self, None


def shifted_indices(runs: Sequence[np.ndarray], shifts: np.ndarray, n_samples: int) -> np.ndarray:
    """Sample order of the shifted responses: (n_draws, n_samples), ``Y[idx[d]]`` is draw ``d``.

    Within each run, sample ``i`` takes the response of sample ``(i + shift) % length`` of
    that run (so ``np.roll(y_run, -shift)``); samples in no run keep their place.

    Examples
    --------
    >>> shifted_indices([np.arange(3), np.arange(3, 5)], np.array([[1, 1]]), 5)
    array([[1, 2, 0, 4, 3]])
    """
    shifts = np.atleast_2d(shifts)
    idx = np.tile(np.arange(n_samples), (shifts.shape[0], 1))
    for i, run in enumerate(runs):
        n = len(run)
        pos = (np.arange(n)[None, :] + shifts[:, i:i + 1]) % n
        idx[:, run] = np.asarray(run)[pos]
    return idx


def _zscore(a: np.ndarray) -> np.ndarray:
    """Columns with zero mean and unit (population) variance; constant columns become NaN."""
    a = np.asarray(a, dtype=np.float64)
    c = a - a.mean(0)
    sd = np.sqrt((c * c).mean(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return c / np.where(sd > 0, sd, np.nan)


def autocorrelation_length(Y: np.ndarray, threshold: float = 0.1) -> int:
    """First lag at which the mean autocorrelation of the columns of ``Y`` drops below ``threshold``.

    Used to size permutation blocks and the smallest circular shift: samples closer than this
    are not exchangeable. Clipped to ``[2, n_samples // 4]``.
    """
    Y = np.asarray(Y, dtype=np.float64)
    n = Y.shape[0]
    hi = max(2, n // 4)
    z = _zscore(Y)
    z = z[:, np.isfinite(z).all(0)]
    if z.shape[1] == 0 or n < 8:
        return int(min(2, hi))
    f = np.fft.rfft(z, n=2 * n, axis=0)
    acf = np.fft.irfft(f * np.conj(f), axis=0)[:n].mean(1) / n
    below = np.flatnonzero(acf < threshold)
    lag = int(below[0]) if below.size else hi
    return int(np.clip(lag, 2, hi))


def _fold_draws(n: int, method: str, n_permutations: int, block: int,
                rng: np.random.Generator) -> np.ndarray:
    """Per permutation, either a circular shift (shape (P,)) or an index order (shape (P, n))."""
    if method == "circular":
        lo, hi = block, n - block
        if hi < lo:
            lo, hi = 1, n - 1
        return rng.integers(lo, hi + 1, size=n_permutations)
    starts = np.arange(0, n, block)
    blocks = [np.arange(s, min(s + block, n)) for s in starts]
    return np.stack([np.concatenate([blocks[i] for i in rng.permutation(len(blocks))])
                     for _ in range(n_permutations)])


def permutation_null(Y: np.ndarray, predictions: np.ndarray, folds: Sequence[np.ndarray],
                     n_permutations: int = 1000, method: str = "circular",
                     block_size: int | str = "auto", random_state: Any = None,
                     n_permutations_batch: int = 250) -> np.ndarray:
    """Null distribution of the fold-mean Pearson r, shape (n_permutations, n_targets).

    Parameters
    ----------
    Y, predictions : ndarray, shape (n_samples, n_targets)
        Responses and held-out predictions.
    folds : sequence of ndarray of int
        The test indices of each outer fold (the statistic is the mean over folds of the r
        within each fold).
    n_permutations : int
        Number of draws (each fold drawn independently in each).
    method : {"circular", "block"}
        ``"circular"``: shift each fold's response circularly by at least ``block_size``
        samples (all shifts computed at once by FFT); ``"block"``: permute contiguous blocks of
        ``block_size`` samples.
    block_size : int | sequence of int | "auto"
        Blocks (and smallest shift) in samples, one for all folds or one per fold; ``"auto"``:
        :func:`autocorrelation_length` of each fold's responses (over the targets given, so
        pass explicit sizes when fitting target chunks apart).
    random_state : None | int | Generator
        Seed; the same draws are used for every target.
    n_permutations_batch : int
        Permutations per batch for the block method (memory).

    Notes
    -----
    A target that is constant within a test fold has no r in that fold (the observed statistic,
    the mean over folds, leaves that fold out, as ``nanmean`` does). Its null leaves the same
    fold out: the null of a target is the mean over the folds where it varies, and NaN for a
    target constant in every fold.
    """
    _check_option("method", method, FIXED_PERMUTATIONS)
    rng = _check_random_state(random_state)
    Y = np.asarray(Y, dtype=np.float64)
    predictions = np.asarray(predictions, dtype=np.float64)
    t = Y.shape[1]
    null = np.zeros((n_permutations, t))
    n_valid = np.zeros(t)
    if not isinstance(block_size, str) and np.ndim(block_size) == 1:
        if len(block_size) != len(folds):
            raise ValueError(f"block_size has {len(block_size)} values for {len(folds)} folds; give one per fold.")
        sizes = [int(b) for b in block_size]
    else:
        sizes = [block_size] * len(folds)
    for test, size in zip(folds, sizes):
        test = np.asarray(test)
        zy = _zscore(Y[test])
        # a target constant in this fold has no r here: leave the fold out of its null
        valid = np.isfinite(zy).all(0)
        zy = np.where(valid, zy, 0.0)
        n_valid += valid
        zp = _zscore(predictions[test])
        zp = np.where(np.isfinite(zp), zp, 0.0)  # a constant prediction correlates 0 with anything
        n = test.size
        block = autocorrelation_length(Y[test]) if size == "auto" else int(size)
        if block < 1:
            raise ValueError(f"block_size must be >= 1 sample, got {block}.")
        draws = _fold_draws(n, method, n_permutations, block, rng)
        if method == "circular":
            # c[s] = mean_i zp[i] * zy[(i + s) % n], every shift s at once
            c = np.fft.irfft(np.conj(np.fft.rfft(zp, axis=0)) * np.fft.rfft(zy, axis=0), n=n, axis=0) / n
            null += c[draws]
        else:
            for start in range(0, n_permutations, n_permutations_batch):
                idx = draws[start:start + n_permutations_batch]
                null[start:start + idx.shape[0]] += np.einsum("pit,it->pt", zy[idx], zp) / n
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_valid > 0, null / n_valid, np.nan)


def null_pvalues(null: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """One-sided p-values of ``observed`` (n_targets,) against a null (n_permutations, n_targets).

    ``p = (1 + #{null >= observed}) / (1 + n_permutations)``; NaN where the observed value is NaN.
    """
    observed = np.asarray(observed, dtype=np.float64)
    n_permutations = null.shape[0]
    with np.errstate(invalid="ignore"):
        count = (null >= observed[None, :] - 1e-12).sum(0)
    p = (1.0 + count) / (1.0 + n_permutations)
    return np.where(np.isfinite(observed), p, np.nan)


def _fold_mean_r(Y: np.ndarray, predictions: np.ndarray, folds: Sequence[np.ndarray]) -> np.ndarray:
    """Mean over folds of the r within each fold (a constant prediction: 0; a constant response:
    NaN, left out of the mean)."""
    fold_r = np.stack([(_zscore(Y[f]) * np.nan_to_num(_zscore(predictions[f]), nan=0.0)).mean(0)
                       for f in folds])
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(fold_r, 0)


def permutation_test(Y: np.ndarray, predictions: np.ndarray, folds: Sequence[np.ndarray],
                     observed: np.ndarray | None = None, n_permutations: int = 1000,
                     method: str = "circular", block_size: int | str = "auto",
                     random_state: Any = None) -> np.ndarray:
    """One-sided permutation p-values of the fold-mean Pearson r, shape (n_targets,).

    ``p = (1 + #{null >= observed}) / (1 + n_permutations)``; NaN where the observed r is NaN.
    See :func:`permutation_null` for the parameters. ``observed`` defaults to the fold-mean r
    of ``predictions``.
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}.")
    Y = np.asarray(Y, dtype=np.float64)
    predictions = np.asarray(predictions, dtype=np.float64)
    if observed is None:
        observed = _fold_mean_r(Y, predictions, folds)
    null = permutation_null(Y, predictions, folds, n_permutations, method, block_size, random_state)
    return null_pvalues(null, observed)


def permutation_test_best(Y: np.ndarray, predictions: Sequence[np.ndarray], folds: Sequence[np.ndarray],
                          observed: np.ndarray | None = None, n_permutations: int = 1000,
                          method: str = "circular", block_size: int | str = "auto",
                          random_state: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Permutation p-values of several layers' r, and of each target's best layer corrected for
    choosing it (the maximum statistic over layers).

    Every layer's null is drawn with the same permutations (the same seed, and block sizes that
    do not depend on the layer: give explicit ``block_size`` or ``"auto"``, which depends on the
    responses only). Each target's best layer is the one with the highest observed r, and its
    corrected p-value is ``(1 + #{max over layers of the null >= observed r at the best layer})
    / (1 + n_permutations)``: it controls the error of declaring the best of many (correlated)
    layers significant, which the best layer's own p-value does not.

    Parameters
    ----------
    Y : ndarray, shape (n_samples, n_targets)
    predictions : sequence of ndarray, shape (n_samples, n_targets)
        Held-out predictions, one array per layer.
    folds, n_permutations, method, block_size
        As in :func:`permutation_null`.
    observed : ndarray, shape (n_layers, n_targets) | None
        The observed fold-mean r per layer (default: computed from ``predictions``).
    random_state : None | int | Generator
        Seed; one seed is drawn from it and used for every layer.

    Returns
    -------
    pvalues : ndarray, shape (n_layers, n_targets)
        Each layer's own p-values (as :func:`permutation_test`).
    pvalues_best : ndarray, shape (n_targets,)
        The corrected p-value of each target's best layer (NaN where every r is NaN).
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}.")
    if len(predictions) == 0:
        raise ValueError("permutation_test_best needs the predictions of at least one layer.")
    Y = np.asarray(Y, dtype=np.float64)
    seed = int(_check_random_state(random_state).integers(2**62))
    if observed is None:
        observed = np.stack([_fold_mean_r(Y, np.asarray(p, dtype=np.float64), folds) for p in predictions])
    observed = np.asarray(observed, dtype=np.float64)
    if observed.shape != (len(predictions), Y.shape[1]):
        raise ValueError(f"observed has shape {observed.shape}; expected {(len(predictions), Y.shape[1])} "
                         "(n_layers, n_targets).")
    pvalues = np.full(observed.shape, np.nan)
    null_max = np.full((n_permutations, Y.shape[1]), -np.inf)
    for j, pred in enumerate(predictions):
        null = permutation_null(Y, pred, folds, n_permutations, method, block_size, seed)
        pvalues[j] = null_pvalues(null, observed[j])
        np.fmax(null_max, null, out=null_max)
    from .best import best_index

    best = np.maximum(best_index(observed)[0], 0)
    return pvalues, null_pvalues(null_max, observed[best, np.arange(Y.shape[1])])


def fdr_bh(pvalues: np.ndarray, axis: int = -1) -> np.ndarray:
    """Benjamini-Hochberg q-values along ``axis`` (across targets); NaNs are left out and kept.

    scipy's :func:`~scipy.stats.false_discovery_control` on the finite p-values of each slice.

    Examples
    --------
    >>> fdr_bh(np.array([0.01, 0.04, 0.03, 0.5])).round(3).tolist()
    [0.04, 0.053, 0.053, 0.5]
    >>> fdr_bh(np.array([0.01, np.nan, 0.02])).tolist()
    [0.02, nan, 0.02]
    """
    from scipy.stats import false_discovery_control

    p = np.moveaxis(np.asarray(pvalues, dtype=np.float64), axis, -1)
    q = np.full_like(p, np.nan)
    flat_p = p.reshape(-1, p.shape[-1]) if p.ndim else p.reshape(1, 1)
    flat_q = q.reshape(flat_p.shape)
    for row in range(flat_p.shape[0]):
        ok = np.isfinite(flat_p[row])
        if ok.any():
            flat_q[row, ok] = false_discovery_control(flat_p[row, ok], method="bh")
    return np.moveaxis(flat_q.reshape(p.shape), -1, axis)


# ----------------------------------------------------------------------------- noise ceilings
def _check_units(data: Any, what: str) -> np.ndarray:
    data = np.asarray(data, dtype=np.float64)
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3 or data.shape[0] < 2:
        raise ValueError(
            f"{what} must have shape (n_{what}, n_samples, n_targets) with at least 2 {what}, "
            f"got shape {data.shape}."
        )
    if not np.isfinite(data).all():
        raise ValueError(f"{what} contain NaN or inf; drop or impute them first.")
    return data


def spearman_brown(r: np.ndarray | float, factor: float) -> np.ndarray:
    """Reliability of a mean of ``factor`` times as many units: ``k r / (1 + (k - 1) r)``."""
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return factor * r / (1.0 + (factor - 1.0) * r)


def noise_ceiling_repeats(repeats: Any) -> np.ndarray:
    """Ceiling on the r of any model of the mean over repeated presentations, per target.

    ``repeats``: (n_repeats, n_samples, n_targets). With ``y_k = s + e_k``, the signal
    variance is ``(N var(mean) - mean_k var(y_k)) / (N - 1)`` and the ceiling is
    ``sqrt(var(s) / var(mean))`` (Schoppe et al. 2016's CC_max); clipped to [0, 1].
    """
    data = _check_units(repeats, "repeats")
    n = data.shape[0]
    var_mean = data.mean(0).var(0)
    mean_var = data.var(1).mean(0)
    signal = (n * var_mean - mean_var) / (n - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ceiling = np.sqrt(np.clip(signal / var_mean, 0.0, 1.0))
    return np.where(var_mean > 0, ceiling, np.nan)


def signed_square(r: Any) -> np.ndarray:
    """``r * |r|``: the squared correlation with the sign of ``r`` (LeBel et al. 2023 and
    Antonello et al. 2023 report it as the variance explained, kept negative where r is).

    Examples
    --------
    >>> signed_square([0.5, -0.2]).round(2).tolist()
    [0.25, -0.04]
    """
    r = np.asarray(r, dtype=np.float64)
    return r * np.abs(r)


def cc_norm(r: Any, cc_max: Any) -> np.ndarray:
    """Schoppe et al. 2016's normalised correlation ``CC_norm = CC_abs / CC_max``.

    ``r`` (``CC_abs``) is the correlation of a prediction with the mean over repeats and
    ``cc_max`` its ceiling from the repeats (:func:`noise_ceiling_repeats`); their ratio
    estimates the correlation of the prediction with the noise-free signal. The HuthLab code
    (``spe_and_cc_norm`` with ``max_flooring``) computes the same ratio, its ``cc_max`` being
    ``1 / sqrt(1 + (TP / SP - 1) / N)``, which equals ``sqrt(SP / var(mean))`` here.
    NaN where the ceiling is unknown or not positive (no signal shared by the repeats).

    Examples
    --------
    >>> cc_norm([0.3, 0.3], [0.6, 0.0]).tolist()
    [0.5, nan]
    """
    r = np.asarray(r, dtype=np.float64)
    cc_max = np.asarray(cc_max, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cc_max > 0, r / np.where(cc_max > 0, cc_max, 1.0), np.nan)


def repeat_scores(prediction: Any, repeats: Any) -> dict[str, np.ndarray]:
    """The scores of a prediction of the mean over repeated presentations, per target.

    Parameters
    ----------
    prediction : array-like, shape (n_samples, n_targets)
        The model's prediction of the test story.
    repeats : array-like, shape (n_repeats, n_samples, n_targets)
        The responses to each presentation (at least 2).

    Returns
    -------
    scores : dict of str -> ndarray (n_targets,)
        ``r`` (Pearson r with the mean over repeats), ``r_abs_r`` (``r * |r|``), ``cc_max``
        (:func:`noise_ceiling_repeats`) and ``cc_norm`` (``r / cc_max``, :func:`cc_norm`).
    """
    data = _check_units(repeats, "repeats")
    pred = np.asarray(prediction, dtype=np.float64)
    pred = pred[:, None] if pred.ndim == 1 else pred
    if pred.shape != data.shape[1:]:
        raise ValueError(f"prediction has shape {pred.shape} but the repeats have {data.shape[1:]} "
                         "(n_samples, n_targets) each; predict the same samples and targets as the repeats.")
    r = np.mean(_zscore(pred) * _zscore(data.mean(0)), 0)
    ceiling = noise_ceiling_repeats(data)
    return {"r": r, "r_abs_r": signed_square(r), "cc_max": ceiling, "cc_norm": cc_norm(r, ceiling)}


def split_half_reliability(data: Any, n_splits: int = 100, random_state: Any = None) -> np.ndarray:
    """Spearman-Brown corrected split-half reliability of the mean over units, per target.

    ``data``: (n_units, n_samples, n_targets), units being repeats or subjects. Units are split
    at random into two halves ``n_splits`` times; the correlation of the two half-means,
    averaged over splits, is corrected to the full number of units (``2 r / (1 + r)``).
    """
    data = _check_units(data, "units")
    rng = _check_random_state(random_state)
    n = data.shape[0]
    rs = []
    for _ in range(n_splits):
        perm = rng.permutation(n)
        a, b = data[perm[: n // 2]].mean(0), data[perm[n // 2:]].mean(0)
        rs.append(np.mean(_zscore(a) * _zscore(b), 0))
    r = np.mean(rs, 0)
    return spearman_brown(r, 2.0)


def noise_ceiling_split_half(data: Any, n_splits: int = 100, random_state: Any = None) -> np.ndarray:
    """Ceiling on the r of a model of the mean over units: ``sqrt`` of :func:`split_half_reliability`."""
    rel = split_half_reliability(data, n_splits, random_state)
    return np.sqrt(np.clip(rel, 0.0, 1.0))


def noise_ceiling_intersubject(data: Any, target: str = "individual") -> np.ndarray:
    """Noise ceiling from leave-one-subject-out correlations (subjects heard the same stimulus).

    For each subject ``s``, ``r_s = corr(y_s, mean of the others)``. With a common signal and
    equally reliable subjects, ``r_s^2 = rho_1 * rho_{N-1}`` where ``rho_1`` is one subject's
    reliability and ``rho_{N-1}`` the Spearman-Brown reliability of a mean of N - 1 subjects;
    ``rho_1`` is solved from the mean ``r_s``.

    Parameters
    ----------
    data : array-like, shape (n_subjects, n_samples, n_targets)
        Responses of every subject to the same stimulus, on the same grid.
    target : {"individual", "group"}
        ``"individual"``: the ceiling on r of a model of each subject,
        ``corr(y_s, signal) = r_s / sqrt(rho_{N-1})``, shape (n_subjects, n_targets).
        ``"group"``: the ceiling for a model of the group mean, ``sqrt(rho_N)``, shape
        (n_targets,).

    Returns
    -------
    ceiling : ndarray
        NaN (for every subject, and for the group) where the mean ``r_s`` is not positive: the
        subjects share no measurable signal there, so there is no ceiling to estimate (not a
        ceiling of 0 or 1).
    """
    _check_option("target", target, ("individual", "group"))
    data = _check_units(data, "subjects")
    n = data.shape[0]
    if n < 3:
        raise ValueError(f"Inter-subject noise ceilings need at least 3 subjects, got {n}.")
    total = data.sum(0)
    r_s = np.stack([np.mean(_zscore(data[s]) * _zscore((total - data[s]) / (n - 1)), 0) for s in range(n)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_r = np.nanmean(r_s, 0)
    shared = mean_r > 0  # False for NaN too
    r = np.where(shared, np.minimum(mean_r, 1.0), np.nan)
    k = n - 1
    # k rho^2 - r^2 (k - 1) rho - r^2 = 0, positive root
    rho1 = (r**2 * (k - 1) + np.sqrt(r**4 * (k - 1) ** 2 + 4 * k * r**2)) / (2 * k)
    if target == "group":
        return np.where(shared, np.sqrt(np.clip(spearman_brown(rho1, n), 0.0, 1.0)), np.nan)
    rho_k = spearman_brown(rho1, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        ceiling = r_s / np.sqrt(rho_k)[None, :]
    return np.where(shared[None, :], np.clip(ceiling, 0.0, 1.0), np.nan)
