"""What each layer adds beyond a baseline: the held-out unique contribution and its tests.

Per layer and target, the joint banded ridge of [baseline + layer] (a penalty per band) and the
baseline alone are fitted on the same outer and inner folds (:func:`~neuroenc.encoding.fit_encoding`
with a ``nuisance``; the maths in :mod:`neuroenc.encoding._joint`). The unique contribution is
``delta_r2 = r²(joint) - r²(baseline)`` (and ``delta_r``), per outer fold and its mean, with
``r²`` the signed squared correlation ``r |r|`` of the held-out predictions by default
(``score="squared-r"``: blind to how the held-out predictions are scaled, so a baseline with a
negative held-out R² at positive r, as in short runs z-scored one by one, does not inflate the
delta) or the coefficient of determination R² (``score="R2"``).

For one response (a subject, or the group-mean response) its test uses residual draws, as the
layer comparisons do: each draw's response is the baseline's held-out prediction (scaled to the
response) plus the residuals, resampled as the permutation null resamples responses (each run
shifted circularly; stimuli permuted within groups); the joint and the baseline models are
refitted fold by fold with the penalties chosen on the real data and ``delta_r2`` recomputed.
Each draw's response is the baseline's least-squares fit plus the resampled residuals, so the
draws are the null distribution of ``delta_r2`` ("the layer adds nothing"); on each draw and fold
the layer band enters the joint model only where it passes the inner CV's rule again (as on the
data), so a delta of exactly 0 (the layer switched off) is compared with draws that are off, on
and better, or on and worse: ``p = (1 + #{draws >= delta_r2}) / (1 + n_draws)``, calibrated on
null data (``benchmarks/unique_calibration.py``).
The 95 % intervals hold for all layers at once (the best layer is picked on the same data), from
the quantiles of each layer's centred draws at a tail level chosen so that 95 % of the draws lie
inside every layer's band at once (:func:`simultaneous_intervals`): the draws of a held-out delta
are skewed (a layer band let in by chance costs more than it can bring), so the intervals are
asymmetric, like the p-values' one-sided test. The draws are paired across layers
(the same resampling for every layer), so the best layer by unique contribution, the set of
layers not reliably worse than it (:func:`~neuroenc.encoding.compare.compare_layers`) and
``pvalues_best`` (the best layer's p, corrected for the choice by the maximum over layers) are
computed on them as on raw r. Across subjects, the fold-mean deltas of each subject are tested
by sign flips (:func:`~neuroenc.encoding.compare.compare_layers_across_units`).
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .best import best_index, best_pvalues
from .compare import DEFAULT_ALPHA, centred_null, chance_mask, compare_layers, format_layer_set
from .stats import fdr_bh, null_pvalues

#: Where the draws of the unique-contribution tests come from (``source``), per kind of rows.
UNIQUE_SOURCES = {
    "samples": "baseline prediction + residuals, each run shifted circularly (joint and baseline refitted)",
    "stimuli": "baseline prediction + residuals, stimuli permuted within groups (joint and baseline refitted)",
}
#: The arrays of (n_layers, n_targets) in a results file's ``/unique`` group.
LAYER_ARRAYS = ("delta_r2", "delta_r", "pvalues", "ci_low", "ci_high", "in_best_set")
#: The per-fold arrays (n_folds, n_layers, n_targets).
FOLD_ARRAYS = ("fold_delta_r2", "fold_delta_r")


def delta_formula(score: str) -> str:
    """How ``delta_r2`` is computed, in words, for a score (:data:`~neuroenc.encoding._joint.UNIQUE_SCORES`)."""
    if score == "R2":
        return "R²(baseline + layer) − R²(baseline)"
    return "r²(baseline + layer) − r²(baseline), r² = r·|r| of the held-out predictions"


def _fold_mean(values: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, 0)


@dataclass
class UniqueContribution:
    """The unique contribution of each layer beyond a baseline, per target.

    Attributes
    ----------
    delta_r2, delta_r : ndarray, shape (n_layers, n_targets)
        ``r²(baseline + layer) - r²(baseline)`` (``score``) and ``r(baseline + layer) -
        r(baseline)``, held out, mean over outer folds (0 where the inner CV switched the layer
        off).
    pvalues : ndarray, shape (n_layers, n_targets) | None
        One-sided p-value of ``delta_r2`` against "the layer adds nothing" (residual draws).
    ci_low, ci_high : ndarray, shape (n_layers, n_targets) | None
        Interval of ``delta_r2`` at level ``ci``.
    in_best_set : ndarray of bool, shape (n_layers, n_targets) | None
        The layers not reliably worse than the best by ``delta_r2`` (tested against the other
        layers, level ``alpha``), and the best layer itself.
    fold_delta_r2, fold_delta_r : ndarray, shape (n_folds, n_layers, n_targets)
        The deltas of each outer fold (for tests across subjects).
    baseline_names : list of str
        The baseline's regressors.
    pvalues_best : ndarray, shape (n_targets,) | None
        p-value of the best layer's ``delta_r2``, corrected for choosing it among the layers
        (maximum over layers of the draws).
    alpha, ci : float
        Level of the best-layer set and of the intervals.
    score : {"squared-r", "R2"}
        What ``r²`` is: the signed squared correlation ``r |r|``, or the coefficient of
        determination (:data:`~neuroenc.encoding._joint.UNIQUE_SCORES`).
    n_draws : int
    source : str
        Where the draws came from.
    """

    delta_r2: np.ndarray
    delta_r: np.ndarray
    fold_delta_r2: np.ndarray
    fold_delta_r: np.ndarray
    baseline_names: list[str] = field(default_factory=list)
    pvalues: np.ndarray | None = None
    ci_low: np.ndarray | None = None
    ci_high: np.ndarray | None = None
    in_best_set: np.ndarray | None = None
    pvalues_best: np.ndarray | None = None
    alpha: float = DEFAULT_ALPHA
    ci: float = 0.95
    score: str = "squared-r"
    n_draws: int = 0
    source: str = ""

    def __post_init__(self) -> None:
        self.delta_r2 = np.atleast_2d(np.asarray(self.delta_r2, dtype=np.float64))
        shape = self.delta_r2.shape
        for name in ("delta_r", "pvalues", "ci_low", "ci_high"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=np.float64)
                if value.shape != shape:
                    raise ValueError(f"UniqueContribution.{name} has shape {value.shape}; expected {shape} "
                                     "(n_layers, n_targets).")
                setattr(self, name, value)
        if self.in_best_set is not None:
            self.in_best_set = np.asarray(self.in_best_set, dtype=bool).reshape(shape)
        for name in FOLD_ARRAYS:
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.ndim != 3 or value.shape[1:] != shape:
                raise ValueError(f"UniqueContribution.{name} has shape {value.shape}; expected (n_folds,) + {shape}.")
            setattr(self, name, value)
        if self.pvalues_best is not None:
            self.pvalues_best = np.asarray(self.pvalues_best, dtype=np.float64).reshape(shape[1])
        self.baseline_names = [str(x) for x in self.baseline_names]

    @property
    def qvalues(self) -> np.ndarray | None:
        """Benjamini-Hochberg q-values of :attr:`pvalues` across targets, per layer."""
        return None if self.pvalues is None else fdr_bh(self.pvalues, axis=-1)

    def attrs(self) -> dict[str, Any]:
        """The settings stored beside the arrays."""
        return {"baseline_names": json.dumps(self.baseline_names), "alpha": float(self.alpha),
                "ci": float(self.ci), "score": self.score, "n_draws": int(self.n_draws), "source": self.source}

    def best(self, layers: Any, targets: Any = None) -> pd.DataFrame:
        """The best layer by unique contribution per target, as
        :meth:`~neuroenc.encoding.EncodingResults.best` for raw r.

        One row per target: ``best_layer`` (highest ``delta_r2``), ``delta_r2``, ``ci_low``,
        ``ci_high``, ``delta_r`` there; ``p`` (corrected for choosing the layer where
        ``pvalues_best`` is known; ``p_method`` says), ``best_set`` (layers not reliably worse,
        e.g. ``"12–30"``), ``n_in_set`` and ``at_chance`` (``p`` above ``alpha``: no layer adds
        anything detectable beyond the baseline).
        """
        layers = np.asarray(layers)
        n_t = self.delta_r2.shape[1]
        targets = [str(j) for j in range(n_t)] if targets is None else list(targets)
        best, valid = best_index(self.delta_r2)
        idx = np.arange(n_t)
        nan = np.full(n_t, np.nan)

        def at_best(arr):
            return np.where(valid, arr[best, idx], np.nan) if arr is not None else nan

        q = self.qvalues
        reported = best_pvalues(valid, self.pvalues_best if self.pvalues_best is not None else nan,
                                fdr_bh(self.pvalues_best) if self.pvalues_best is not None else nan,
                                at_best(self.pvalues), at_best(q))
        table = pd.DataFrame({
            "target": targets,
            "best_layer": pd.array(np.where(valid, layers[best], np.nan), dtype="Int64"),
            "delta_r2": at_best(self.delta_r2), "ci_low": at_best(self.ci_low), "ci_high": at_best(self.ci_high),
            "delta_r": at_best(self.delta_r), "p": reported["p"], "p_method": reported["p_method"],
        })
        if self.in_best_set is not None:
            table["best_set"] = [format_layer_set(layers[self.in_best_set[:, j]]) if valid[j] else ""
                                 for j in range(n_t)]
            table["n_in_set"] = self.in_best_set.sum(0)
        table["at_chance"] = chance_mask(table["p"].to_numpy(np.float64), self.alpha)
        return table

    @classmethod
    def concatenate(cls, parts: list[UniqueContribution], axis: str = "targets",
                    order: np.ndarray | None = None) -> UniqueContribution:
        """Parts of target chunks (exact), or of layer subsets (``order``: the sorting of the
        concatenated layers), put together. Along layers the best-layer set and
        ``pvalues_best`` need every layer's draws at once, so they are dropped."""
        first = parts[0]
        for k, c in enumerate(parts[1:], 1):
            if c.attrs() != first.attrs():
                raise ValueError(f"Cannot merge unique contributions: part {k} has other settings "
                                 f"({c.attrs()} vs {first.attrs()}).")
        ax = -1 if axis == "targets" else -2

        def cat(name):
            values = [getattr(c, name) for c in parts]
            if any(v is None for v in values):
                return None
            out = np.concatenate(values, axis=ax)
            return out if order is None or axis == "targets" else np.take(out, order, axis=ax)

        along_targets = axis == "targets"
        return cls(**{name: cat(name) for name in ("delta_r2", "delta_r", "pvalues", "ci_low", "ci_high",
                                                    *FOLD_ARRAYS)},
                   in_best_set=cat("in_best_set") if along_targets else None,
                   pvalues_best=cat("pvalues_best") if along_targets else None,
                   baseline_names=first.baseline_names, alpha=first.alpha, ci=first.ci, score=first.score,
                   n_draws=first.n_draws, source=first.source)

    def save(self, group) -> None:
        """Write to an h5py group (``/unique``)."""
        for name in (*LAYER_ARRAYS, *FOLD_ARRAYS, "pvalues_best"):
            value = getattr(self, name)
            if value is not None:
                group.create_dataset(name, data=value)
        for key, value in self.attrs().items():
            group.attrs[key] = value

    @classmethod
    def load(cls, group) -> UniqueContribution:
        """Read from the ``/unique`` group of a results file."""
        def opt(key):
            return group[key][()] if key in group else None

        return cls(**{name: opt(name) for name in (*LAYER_ARRAYS, *FOLD_ARRAYS, "pvalues_best")},
                   baseline_names=json.loads(group.attrs.get("baseline_names", "[]")),
                   alpha=float(group.attrs["alpha"]), ci=float(group.attrs["ci"]),
                   score=str(group.attrs.get("score", "R2")),  # files written before the score was stored: R²
                   n_draws=int(group.attrs["n_draws"]), source=str(group.attrs["source"]))


def _percentile_band(d: np.ndarray, srt: np.ndarray, count: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    """Each layer's lower and upper quantile of its draws ``d`` (n_draws, n_layers; ``srt``
    sorted, NaN last, ``count`` finite per layer), cutting as many draws ``k`` from each tail as
    keeps the draws that leave some layer's band at ``(1 - ci)`` of them or fewer."""
    cols = np.arange(count.size)

    def band(k):
        return srt[np.minimum(k, count - 1), cols], srt[np.maximum(count - 1 - k, 0), cols]

    best = 0
    for k in range(1, int(np.ceil(d.shape[0] * (1.0 - ci) / 2)) + 1):
        lo, hi = band(k)
        if ((d < lo[None]) | (d > hi[None])).any(1).sum() > (1.0 - ci) * d.shape[0]:
            break
        best = k
    return band(best)


def simultaneous_intervals(observed: np.ndarray, draws: np.ndarray, ci: float = 0.95,
                           fold_values: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Intervals of every layer's unique contribution that hold for all layers at once.

    ``observed`` (n_layers, n_targets), ``draws`` (n_draws, n_layers, n_targets) of the deltas
    under "no layer adds anything", paired across layers. The pivot ``delta_j - theta_j`` of
    layer ``j`` is taken to vary as its draws do about their mean ``m_j`` (the mean is the bias
    of a held-out delta when the layer adds nothing: an extra band costs variance). With
    ``e_j = draws_j - m_j`` and ``q_j(g)`` its quantile at ``g``, the interval is
    ``[delta_j - m_j - q_j(1 - g), delta_j - m_j - q_j(g)]``, the tail level ``g`` the largest
    for which at most ``1 - ci`` of the draws leave some layer's band (a percentile band,
    simultaneous over layers by the draws' own maximum): asymmetric where the draws are skewed.
    The best layer is chosen on the same data, so its interval must hold jointly with the
    others' to be read on its own. With ``fold_values`` (n_folds, n_layers, n_targets), each
    half-width is at least ``c`` standard errors of the fold values (sd / sqrt(n_folds)), ``c``
    the studentized maximum's critical value of the draws, so a layer whose draws barely vary
    still gets the spread of its folds. A layer whose deltas vary in neither (switched off
    everywhere) gets ``delta_j - m_j`` at both ends.
    """
    observed = np.asarray(observed, dtype=np.float64)
    draws = np.asarray(draws, dtype=np.float64)
    n_d, n_l, n_t = draws.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(draws, 0)
        # the band is found on the draws themselves: the mean cancels from the interval's ends
        # (delta - mean - (q - mean) = delta - q), so none of its rounding reaches them
        srt = np.sort(np.where(np.isfinite(draws), draws, np.nan), axis=0)  # NaN last
        count = np.isfinite(draws).sum(0)  # (n_l, n_t)
        low_q = np.full((n_l, n_t), np.nan)
        high_q = np.full((n_l, n_t), np.nan)
        for j in range(n_t):
            ok = count[:, j] > 0
            if ok.any():
                low_q[ok, j], high_q[ok, j] = _percentile_band(draws[:, ok, j], srt[:, ok, j], count[ok, j], ci)
        centre = observed - mean
        lower, upper = observed - high_q, observed - low_q
        if fold_values is not None:
            sd = np.nanstd(draws, 0)
            z = np.abs(draws - mean[None]) / np.where(sd > 0, sd, np.inf)[None]
            c = np.nanquantile(np.nanmax(np.where(np.isfinite(draws), z, np.nan), axis=1), ci, axis=0,
                               method="higher")
            k = np.isfinite(fold_values).sum(0)
            se = np.where(k >= 2, np.nanstd(fold_values, 0, ddof=1) / np.sqrt(k), 0.0)
            half = np.nan_to_num(c[None, :] * se)
            lower, upper = np.fmin(lower, centre - half), np.fmax(upper, centre + half)
    return lower, upper


def unique_contribution(fold_r2_joint: np.ndarray, fold_r2_base: np.ndarray, fold_r_joint: np.ndarray,
                        fold_r_base: np.ndarray, draws: np.ndarray | None = None, *, score: str = "squared-r",
                        baseline_names: Any = (), alpha: float = DEFAULT_ALPHA, ci: float = 0.95,
                        source: str = "") -> UniqueContribution:
    """The unique contribution from the joint and baseline fold scores, and its tests.

    Parameters
    ----------
    fold_r2_joint, fold_r_joint : ndarray, shape (n_folds, n_layers, n_targets)
        Held-out scores (``score``: r |r| or R²) and r of the joint models.
    fold_r2_base, fold_r_base : ndarray, shape (n_folds, n_targets)
        Those of the baseline alone (the same folds).
    draws : ndarray, shape (n_draws, n_layers, n_targets) | None
        ``delta_r2`` of each residual draw (:mod:`neuroenc.encoding.contribution`); None: no
        tests (p-values, intervals and set are None).
    score : {"squared-r", "R2"}
        What the scores are (stored).
    baseline_names, alpha, ci, source
        Stored as given (``alpha``: level of the best-layer set and of ``at_chance``).
    """
    fold_d2 = np.asarray(fold_r2_joint, dtype=np.float64) - np.asarray(fold_r2_base, dtype=np.float64)[:, None, :]
    fold_d = np.asarray(fold_r_joint, dtype=np.float64) - np.asarray(fold_r_base, dtype=np.float64)[:, None, :]
    delta_r2, delta_r = _fold_mean(fold_d2), _fold_mean(fold_d)
    out = UniqueContribution(delta_r2=delta_r2, delta_r=delta_r, fold_delta_r2=fold_d2, fold_delta_r=fold_d,
                             baseline_names=list(baseline_names), alpha=float(alpha), ci=float(ci), score=score,
                             source=source)
    if draws is None or np.shape(draws)[0] < 2:
        return out
    draws = np.asarray(draws, dtype=np.float64)
    out.n_draws = int(draws.shape[0])
    out.pvalues = np.stack([null_pvalues(draws[:, j], delta_r2[j]) for j in range(delta_r2.shape[0])])
    centred = centred_null(draws)
    out.ci_low, out.ci_high = simultaneous_intervals(delta_r2, draws, ci, fold_d2)
    out.in_best_set = compare_layers(delta_r2, centred, alpha=alpha, ci=ci, source=source).in_best_set
    best, valid = best_index(delta_r2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        top = np.nanmax(np.where(np.isfinite(draws), draws, -np.inf), axis=1)  # (n_draws, n_targets)
    at = np.where(valid, delta_r2[np.maximum(best, 0), np.arange(delta_r2.shape[1])], np.nan)
    out.pvalues_best = null_pvalues(top, at)
    return out
