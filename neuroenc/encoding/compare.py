"""Paired layer comparisons: which layers are not reliably worse than the best.

A target's best layer is the one with the highest held-out score, but neighbouring layers often
score almost as well, and the best is chosen on the same noisy data. This module gives, for
every target and layer, the difference from the best layer, its interval, a p-value against the
other layers, and the *confidence set of best layers*: the layers that the data cannot rule out
as the best one.

The test (multiple comparisons with the best, studentized maximum statistic)
    For layer ``j`` the null hypothesis is "layer ``j`` is (one of) the best": its true score is
    at least that of every other layer. Its statistic is ``T_j = max_{k != j} (s_k - s_j) /
    sd_kj``, the largest studentized margin by which another layer beats it, with ``sd_kj`` the
    standard deviation of ``s_k - s_j`` over the draws. The draws ``e*`` (centred errors of the
    scores, paired across layers: the same draw for every layer) give its null distribution,
    ``M_j = max_{k != j} (e*_k - e*_j) / sd_kj``, and ``p_j = (1 + #{M_j >= T_j}) / (1 +
    n_draws)``. Taking the maximum over the other layers corrects for the ``n_layers - 1``
    comparisons of each layer (a single-step max-t correction, Romano & Wolf 2005; the set is
    Hsu's 1984 "multiple comparisons with the best"), so the best layer's selection on the same
    data is accounted for: the set ``{j : p_j > alpha}`` contains the truly best layer with
    probability about ``1 - alpha`` or more. One-sided: a layer leaves the set only when it is
    reliably *worse*.

Where the draws come from
    - one response (a subject, or the group-mean response): a model-based circular bootstrap.
      Each draw's response is the best layer's held-out prediction (scaled to the response)
      plus the residuals, each run's residuals shifted circularly; every layer's model is
      refitted on it, fold by fold, with the penalties chosen on the real data, and scored on
      the held-out rows (:func:`neuroenc.encoding._ridge.comparison_draws`). The draws keep the
      signal, the autocorrelation and the dependence between the folds through their shared
      training data; centred per layer, their spread stands for that of the observed scores.
      In simulations the spread of the difference between two layers' r matches its spread
      across independent data sets within 1.0-1.15x (``benchmarks/layer_comparison.py``).
      When every layer's held-out predictions do not fit in memory, or the permutation null was
      not refitted, the permutation null's own draws are used instead (centred per layer): at
      no signal the scores vary most, so these overstate the spread (1.3-2x: conservative;
      fixed-prediction nulls understate the training part).
    - several subjects: random sign flips of the subjects' scores (paired across layers: the
      difference of two layers' draws is the sign-flipped mean of the subjects' paired
      differences), exact when ``2 ** n_subjects`` is no more than the number of draws.

Intervals
    ``ci_low``/``ci_high`` of ``delta_r = s_j - s_best`` are basic intervals from the same
    draws: ``delta - quantiles of (e*_j - e*_best)``. The best layer is chosen on these data, so
    the deltas are optimistic for it (the p-values and the set are not).
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import _check_random_state
from .best import best_index

logger = logging.getLogger(__name__)

#: Default level of the confidence set of best layers (one-sided).
DEFAULT_ALPHA = 0.05
#: Largest number of (layer x draw x target) values held at once by :func:`compare_layers`.
CHUNK_VALUES = 8_000_000


def describe_comparison(source: str, n_layers: int, n_draws: int, alpha: float = DEFAULT_ALPHA) -> str:
    """One sentence on what the layer comparisons test, for reports and results files."""
    how = {
        "residual": ("refits of every layer on the best layer's held-out prediction plus the residuals, "
                     "each run's residuals shifted circularly (the penalties chosen on the data)"),
        "residual (permuted stimuli)": ("refits of every layer on the best layer's held-out prediction plus "
                                        "the residuals, permuted across stimuli (within groups)"),
        "refit": "the refit permutation null's draws (each run's response shifted, the model refitted)",
        "permuted stimuli (refit)": ("the refit permutation null's draws (stimuli permuted within groups, "
                                     "the model refitted)"),
        "circular": "the permutation null's draws (test folds shifted against fixed predictions)",
        "block": "the permutation null's draws (test-fold blocks shuffled against fixed predictions)",
        "sign-flip": "sign flips of the subjects' paired differences",
    }.get(source, source)
    return (
        f"Each layer is tested against the other layers (H0: it is one of the best): the largest "
        f"studentized margin by which another layer beats it, against its distribution over "
        f"{n_draws} draws from {how}; the maximum over the other {n_layers - 1} layers corrects "
        f"for the comparisons. The best-layer set holds the layers with p > {alpha:g} (one-sided, "
        f"alpha = {alpha:g}): the data cannot rule them out as the best."
    )


@dataclass
class LayerComparison:
    """Each layer against the best, per target.

    Attributes
    ----------
    delta_r : ndarray, shape (n_layers, n_targets)
        Score of each layer minus that of the target's best layer (0 at the best, NaN where the
        layer's score is NaN).
    pvalues : ndarray, shape (n_layers, n_targets)
        p-value of "layer j is one of the best" against the other layers (studentized maximum
        over them); NaN at the best layer and where undefined.
    in_best_set : ndarray of bool, shape (n_layers, n_targets)
        ``pvalues > alpha``, and the best layer itself.
    ci_low, ci_high : ndarray, shape (n_layers, n_targets)
        Interval of ``delta_r`` at level ``ci`` (basic bootstrap from the draws).
    best : ndarray of int, shape (n_targets,)
        Index (row) of the best layer per target, -1 where every score is NaN.
    alpha, ci : float
    n_draws : int
    source : str
        Where the draws came from (``"refit"``, ``"circular"``, ``"block"``, ``"sign-flip"``).
    """

    delta_r: np.ndarray
    pvalues: np.ndarray
    in_best_set: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    best: np.ndarray
    alpha: float
    ci: float
    n_draws: int
    source: str

    @property
    def description(self) -> str:
        """What the comparison tests, in words."""
        return describe_comparison(self.source, self.delta_r.shape[0], self.n_draws, self.alpha)

    @classmethod
    def concatenate(cls, parts: list[LayerComparison]) -> LayerComparison:
        """Comparisons of target chunks put together (their settings must agree)."""
        first = parts[0]
        for k, c in enumerate(parts[1:], 1):
            if c.attrs() != first.attrs():
                raise ValueError(f"Cannot concatenate layer comparisons: part {k} has other settings "
                                 f"({c.attrs()} vs {first.attrs()}).")
        return cls(**{name: np.concatenate([getattr(c, name) for c in parts], axis=-1)
                      for name in ("delta_r", "pvalues", "in_best_set", "ci_low", "ci_high", "best")},
                   alpha=first.alpha, ci=first.ci, n_draws=first.n_draws, source=first.source)

    def attrs(self) -> dict[str, Any]:
        """The settings to store beside the arrays."""
        return {"alpha": float(self.alpha), "ci": float(self.ci), "n_draws": int(self.n_draws),
                "source": self.source, "description": self.description}


def _quantiles(draws: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    """The outer quantiles of draws along axis 0 at level ``ci``, rounded outwards (the lower one
    down, the upper one up to an observed draw), so that the interval of a coarse null (few
    subjects, few draws) is never narrower than the test it goes with. NaN draws are left out."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo = np.nanquantile(draws, (1 - ci) / 2, axis=0, method="lower")
        hi = np.nanquantile(draws, 1 - (1 - ci) / 2, axis=0, method="higher")
    return lo, hi


def best_rows(observed: np.ndarray) -> np.ndarray:
    """The best layer row of each target (:func:`~neuroenc.encoding.best.best_index`), -1 where none."""
    return best_index(observed, axis=0)[0]


def _mean_of(draws: np.ndarray):
    """The mean over draws that :func:`compare_layers` takes: ``np.nanmean``, or ``np.mean`` when
    no draw is NaN or infinite (then the same sums and counts, without ``nanmean``'s masked copies)."""
    return np.mean if np.isfinite(draws).all() else np.nanmean


def compare_layers(observed: np.ndarray, draws: np.ndarray, *, alpha: float = DEFAULT_ALPHA,
                   ci: float = 0.95, source: str = "draws", exact: bool = False) -> LayerComparison:
    """Compare every layer with the best, per target, from paired draws of the scores' errors.

    Parameters
    ----------
    observed : ndarray, shape (n_layers, n_targets)
        The scores (e.g. held-out r).
    draws : ndarray, shape (n_draws, n_layers, n_targets)
        Null draws of the scores, one draw for every layer at once (paired), whose differences
        between layers stand for the null distribution of the observed differences: e.g. a
        permutation null minus its mean (:func:`centred_null`), or sign-flipped subject means
        (:func:`sign_flip_draws`). NaN entries
        (constant targets) make the target's comparisons NaN for that layer.
    alpha : float
        Level of the one-sided test; the best-layer set holds the layers with ``p > alpha``.
    ci : float
        Level of the intervals of ``delta_r``.
    source : str
        Where the draws come from (stored, and used in the description).
    exact : bool
        The draws enumerate the whole null (exact sign flips): ``p = #{M >= T} / n_draws``.

    Returns
    -------
    comparison : LayerComparison
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}.")
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci!r}.")
    observed = np.atleast_2d(np.asarray(observed, dtype=np.float64))
    draws = np.asarray(draws)
    if draws.ndim != 3 or draws.shape[1:] != observed.shape:
        raise ValueError(f"draws have shape {draws.shape}; expected (n_draws,) + {observed.shape} "
                         "(n_draws, n_layers, n_targets).")
    n_d, n_l, n_t = draws.shape
    if n_d < 2:
        raise ValueError(f"layer comparisons need at least 2 draws, got {n_d}.")
    best = best_rows(observed)
    cols = np.arange(n_t)
    safe = np.clip(best, 0, None)
    at_best = np.where(best >= 0, observed[safe, cols], np.nan)
    delta = observed - at_best[None, :]
    pvalues = np.full((n_l, n_t), np.nan)
    low = np.full((n_l, n_t), np.nan)
    high = np.full((n_l, n_t), np.nan)
    step = max(1, CHUNK_VALUES // max(n_l * n_d, 1))
    for start in range(0, n_t, step):
        sl = slice(start, min(start + step, n_t))
        obs = observed[:, sl]
        e = np.asarray(draws[:, :, sl], dtype=np.float64)  # (D, L, t)
        mean = _mean_of(e)
        b = safe[sl]
        tt = np.arange(obs.shape[1])
        # intervals of delta_j = s_j - s_best: delta - quantiles of (e_j - e_best)
        diff_best = e - e[:, b, tt][:, None, :]
        qlo, qhi = _quantiles(diff_best, ci)
        low[:, sl] = delta[:, sl] - qhi
        high[:, sl] = delta[:, sl] - qlo
        for j in range(n_l):
            d = e - e[:, j:j + 1, :]  # (D, L, t): e_k - e_j
            with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                sd = np.sqrt(mean((d - mean(d, 0)) ** 2, 0))  # (L, t)
                scale = np.where(sd > 0, sd, np.inf)
                stat_obs = (obs - obs[j]) / scale  # (L, t)
                stat_null = d / scale
            stat_obs[j] = -np.inf
            stat_null[:, j] = -np.inf
            stat_obs = np.where(np.isfinite(obs), np.nan_to_num(stat_obs, nan=-np.inf), -np.inf)
            stat_null = np.nan_to_num(stat_null, nan=-np.inf, copy=False)  # a temporary: in place
            T = stat_obs.max(0)  # (t,)
            M = stat_null.max(1)  # (D, t)
            hits = (M >= T[None, :] - 1e-12).sum(0)
            p = hits / n_d if exact else (1.0 + hits) / (1.0 + n_d)
            ok = np.isfinite(obs[j]) & np.isfinite(e[:, j]).all(0)
            pvalues[j, sl] = np.where(ok, np.minimum(p, 1.0), np.nan)
    pvalues[safe[best >= 0], cols[best >= 0]] = np.nan
    in_set = pvalues > alpha
    in_set[safe[best >= 0], cols[best >= 0]] = True
    return LayerComparison(delta_r=delta, pvalues=pvalues, in_best_set=in_set, ci_low=low, ci_high=high,
                           best=best, alpha=float(alpha), ci=float(ci), n_draws=int(n_d), source=source)


def centred_null(null: np.ndarray) -> np.ndarray:
    """A permutation null (n_draws, n_layers, n_targets) centred per layer and target."""
    null = np.asarray(null, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return null - np.nanmean(null, axis=0, keepdims=True)


def sign_flips(n_units: int, n_draws: int = 2000, random_state: Any = None) -> tuple[np.ndarray, bool]:
    """Signs of a sign-flip test, shape (n_draws, n_units): all ``2 ** n_units`` of them when
    there are no more than ``n_draws`` (``exact`` True), else ``n_draws`` random ones."""
    if n_units < 2:
        raise ValueError(f"sign-flip comparisons need at least 2 units (subjects), got {n_units}.")
    exact = n_units < 31 and 2**n_units <= n_draws
    if exact:
        return 1.0 - 2.0 * ((np.arange(2**n_units)[:, None] >> np.arange(n_units)[None, :]) & 1), True
    rng = _check_random_state(random_state)
    return rng.choice((-1.0, 1.0), size=(n_draws, n_units)), False


def sign_flip_draws(values: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """Sign-flip draws of the mean over units, paired across layers.

    The difference of two layers' draws is the sign-flipped mean of the subjects' paired
    differences, so the maximum statistic of :func:`compare_layers` over these draws is the
    classical sign-flip max-t test (Westfall & Young): exact when the layers compared are truly
    equal and the subjects' differences symmetric, conservative when they are not; the draw
    with every sign positive is the observed one, so ``p >= 1 / n_draws``.

    Parameters
    ----------
    values : ndarray, shape (n_units, n_layers, n_targets)
        One score per unit (subject), layer and target; NaN units are left out of their column.
    signs : ndarray, shape (n_draws, n_units)
        From :func:`sign_flips`.

    Returns
    -------
    draws : ndarray, shape (n_draws, n_layers, n_targets)
        ``mean_u (sign_u * x_u)`` per draw: the same signs for every layer.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 3:
        raise ValueError(f"values must have shape (n_units, n_layers, n_targets), got {values.shape}.")
    n_u = values.shape[0]
    finite = np.isfinite(values)
    count = finite.sum(0)
    flat = np.where(finite, values, 0.0).reshape(n_u, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (signs @ flat).reshape((signs.shape[0],) + values.shape[1:]) / count
    return np.where(count > 0, out, np.nan)


def compare_layers_across_units(values: np.ndarray, *, n_draws: int = 2000, alpha: float = DEFAULT_ALPHA,
                                ci: float = 0.95, random_state: Any = None,
                                signs: tuple[np.ndarray, bool] | None = None) -> LayerComparison:
    """Every layer against the best layer of the mean profile over units (subjects).

    The draws are sign flips of each subject's scores, the same signs for every layer and
    target (exact when ``2 ** n_units <= n_draws``); see :func:`compare_layers` and
    :func:`sign_flip_draws`.

    Parameters
    ----------
    values : ndarray, shape (n_units, n_layers, n_targets)
    n_draws : int
        Random sign flips.
    alpha, ci : float
        See :func:`compare_layers`.
    random_state : None | int | Generator
    signs : (ndarray, bool) | None
        The signs to use and whether they are exhaustive (:func:`sign_flips`); default drawn
        here from ``n_draws`` and ``random_state``.

    Returns
    -------
    comparison : LayerComparison
        On the mean profile (``nanmean`` over units).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 3:
        raise ValueError(f"values must have shape (n_units, n_layers, n_targets), got {values.shape}.")
    n_u, n_l, n_t = values.shape
    signs, exact = signs if signs is not None else sign_flips(n_u, n_draws, random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        profile = np.nanmean(values, 0)
    step = max(1, CHUNK_VALUES // max(n_l * signs.shape[0], 1))
    parts = [compare_layers(profile[:, sl], sign_flip_draws(values[:, :, sl], signs), alpha=alpha, ci=ci,
                            source="sign-flip", exact=exact)
             for sl in (slice(a, min(a + step, n_t)) for a in range(0, n_t, step))]
    return parts[0] if len(parts) == 1 else LayerComparison.concatenate(parts)


def sign_flip_interval(diff: np.ndarray, signs: np.ndarray, ci: float = 0.95
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over units of ``diff`` (n_units, n_targets) and its interval from sign flips.

    The interval is ``mean - quantiles of the sign-flipped means``, the interval a sign-flip
    test inverts (so with few subjects it is as wide as the test is coarse). NaN units are left
    out of their column.
    """
    diff = np.asarray(diff, dtype=np.float64)
    finite = np.isfinite(diff)
    count = finite.sum(0)
    data = np.where(finite, diff, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = data.sum(0) / count
        flipped = (signs @ data) / count
    lo, hi = _quantiles(flipped, ci)
    ok = count >= 2
    return np.where(count > 0, mean, np.nan), np.where(ok, mean - hi, np.nan), np.where(ok, mean - lo, np.nan)


def intermediate_layers(depth: np.ndarray) -> np.ndarray:
    """Boolean mask of the intermediate third of the layers: relative depth in [1/3, 2/3]."""
    depth = np.asarray(depth, dtype=np.float64)
    return (depth >= 1 / 3 - 1e-9) & (depth <= 2 / 3 + 1e-9)


def format_layer_set(layers: Any) -> str:
    """Layers as ranges: ``[3, 12, 13, 14, 30]`` -> ``"3, 12–14, 30"``."""
    layers = sorted(int(x) for x in layers)
    if not layers:
        return ""
    parts, start, prev = [], layers[0], layers[0]
    for x in layers[1:] + [None]:
        if x is not None and x == prev + 1:
            prev = x
            continue
        parts.append(str(start) if start == prev else f"{start}–{prev}")
        if x is not None:
            start = prev = x
    return ", ".join(parts)


def margin_columns(comparison: LayerComparison, observed: np.ndarray, layers: np.ndarray,
                   depth: np.ndarray) -> dict[str, np.ndarray]:
    """Per target: the best layer's margin over the last layer and over the best intermediate
    layer (relative depth 1/3-2/3), each with its interval, and the best-layer set.

    Returns a dict of (n_targets,) arrays: ``best_set`` (text, e.g. ``"12–30"``), ``n_in_set``,
    ``set_span`` (relative depth from the shallowest to the deepest layer of the set),
    ``last_layer``, ``delta_last`` (best minus last), ``delta_last_low``/``_high``,
    ``mid_layer`` (the best intermediate layer), ``delta_mid``, ``delta_mid_low``/``_high``.
    """
    observed = np.asarray(observed, dtype=np.float64)
    layers = np.asarray(layers)
    depth = np.asarray(depth, dtype=np.float64)
    n_l, n_t = observed.shape
    best = comparison.best
    ok = best >= 0
    last = int(np.argmax(layers))  # the deepest layer scored
    out: dict[str, Any] = {
        "best_set": np.array([format_layer_set(layers[comparison.in_best_set[:, j]]) if ok[j] else ""
                              for j in range(n_t)], dtype=object),
        "n_in_set": np.where(ok, comparison.in_best_set.sum(0), 0),
    }
    span = np.full(n_t, np.nan)
    for j in np.flatnonzero(ok):
        d = depth[comparison.in_best_set[:, j]]
        span[j] = d.max() - d.min()
    out["set_span"] = span
    out["last_layer"] = np.full(n_t, int(layers[last]))
    out["delta_last"] = np.where(ok, -comparison.delta_r[last], np.nan)
    out["delta_last_low"] = np.where(ok, -comparison.ci_high[last], np.nan)
    out["delta_last_high"] = np.where(ok, -comparison.ci_low[last], np.nan)
    mid = np.flatnonzero(intermediate_layers(depth))
    mid_layer = np.full(n_t, -1)
    for name in ("delta_mid", "delta_mid_low", "delta_mid_high"):
        out[name] = np.full(n_t, np.nan)
    if mid.size:
        row, has_mid = best_index(observed[mid], axis=0)
        pick = mid[np.maximum(row, 0)]
        has = ok & has_mid
        cols = np.arange(n_t)
        mid_layer = np.where(has, layers[pick], -1)
        out["delta_mid"] = np.where(has, -comparison.delta_r[pick, cols], np.nan)
        out["delta_mid_low"] = np.where(has, -comparison.ci_high[pick, cols], np.nan)
        out["delta_mid_high"] = np.where(has, -comparison.ci_low[pick, cols], np.nan)
    out["mid_layer"] = mid_layer
    return out


def _fmt_delta(value: float, low: float, high: float) -> str:
    return f"Δr = {value:+.3f} [{low:+.3f}, {high:+.3f}]"


def describe_best_set(best_layer: int, best_set: str, set_span: float, last_layer: int,
                      delta_last: tuple[float, float, float], mid_layer: int,
                      delta_mid: tuple[float, float, float], ci: float = 0.95) -> str:
    """The best layer of one target in plain words, never without what qualifies it.

    Says which layers the data cannot tell apart from the best; says so plainly when that set
    spans more than a third of the depth, or when the margin over the last layer has an
    interval that includes 0; gives the margins over the last layer and over the best
    intermediate layer with their intervals.
    """
    level = f"{ci:.0%}"
    parts = []
    single = best_set == str(best_layer)
    if np.isfinite(set_span) and set_span > 1 / 3:
        parts.append(f"the data cannot single out a best layer: layers {best_set} are "
                     f"indistinguishable from the best (layer {best_layer})")
    elif single:
        parts.append(f"layer {best_layer} is reliably best (every other layer is reliably worse)")
    else:
        parts.append(f"best layer {best_layer}, but layers {best_set} are not reliably worse")
    value, low, high = delta_last
    if best_layer == last_layer:
        parts.append("the best is the last layer")
    elif np.isfinite(low) and low <= 0 <= high:
        parts.append(f"it does not reliably beat the last layer ({_fmt_delta(value, low, high)}, "
                     f"{level} interval includes 0)")
    elif np.isfinite(value):
        parts.append(f"vs the last layer {_fmt_delta(value, low, high)}")
    value, low, high = delta_mid
    if mid_layer >= 0 and mid_layer != best_layer and np.isfinite(value):
        parts.append(f"vs the best intermediate layer ({mid_layer}) {_fmt_delta(value, low, high)}")
    elif mid_layer == best_layer:
        parts.append("the best is an intermediate layer")
    return "; ".join(parts)


def describe_at_chance(best_layer: int, p: float, alpha: float = DEFAULT_ALPHA) -> str:
    """The verdict of a target whose best layer does not predict above chance.

    Its margins over the other layers compare held-out r values that are all at chance (and can
    be negative), so they are not evidence for any layer; the verdict says so instead of giving
    them.
    """
    return (f"at chance: even the best layer ({best_layer}) does not predict above chance "
            f"(p = {p:.2g} vs chance, alpha = {alpha:g}), so no layer is better than another "
            "and no margins are given")


def chance_mask(p_chance: Any, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """True where the best layer's p-value against chance is above ``alpha`` (NaN: False,
    nothing is known)."""
    p = np.asarray(p_chance, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(p) & (p > alpha)


def verdicts(best_layers: Any, columns: dict[str, Any], valid: np.ndarray, ci: float = 0.95,
             p_chance: Any = None, alpha: float = DEFAULT_ALPHA) -> list[str]:
    """:func:`describe_best_set` for every target, from its best layer and the columns of
    :func:`margin_columns` (or the same columns with other margins); "no finite score" where
    ``valid`` is False; :func:`describe_at_chance` where ``p_chance`` (the best layer's p-value
    against chance, one per target; None: not known) is above ``alpha``."""
    at_chance = np.zeros(len(valid), dtype=bool)
    if p_chance is not None:
        if np.shape(p_chance) != (len(valid),):
            raise ValueError(f"p_chance has shape {np.shape(p_chance)} but there are {len(valid)} targets; "
                             "pass one p-value against chance per target (or None)")
        at_chance = chance_mask(p_chance, alpha)

    def one(j: int) -> str:
        if at_chance[j]:
            return describe_at_chance(int(best_layers[j]), float(np.asarray(p_chance, dtype=np.float64)[j]), alpha)
        c = {k: columns[k][j] for k in ("best_set", "set_span", "last_layer", "mid_layer", "delta_last",
                                         "delta_last_low", "delta_last_high", "delta_mid", "delta_mid_low",
                                         "delta_mid_high")}
        return describe_best_set(int(best_layers[j]), c["best_set"], c["set_span"], int(c["last_layer"]),
                                 (c["delta_last"], c["delta_last_low"], c["delta_last_high"]), int(c["mid_layer"]),
                                 (c["delta_mid"], c["delta_mid_low"], c["delta_mid_high"]), ci)

    return [one(j) if valid[j] else "no finite score" for j in range(len(valid))]
