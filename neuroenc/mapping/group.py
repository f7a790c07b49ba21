"""Group summaries across subjects and the group-level test.

Group profile
    The mean score over subjects per (target, layer); its best layer, relative depth and
    preference index describe the group.
Group test (two or more subjects)
    Picking the best layer of the group mean and then testing the score at that layer
    against the baseline uses the same data twice and is biased upwards. The test therefore
    selects each subject's layer *leave-one-subject-out*: for subject s, the layer that is
    best in the mean profile of the other subjects. The effect of subject s is its score at
    that layer minus its baseline score (or minus 0 without a baseline). The mean effect is
    tested against 0 by a one-sided sign-flip permutation test (exact when
    ``2 ** n_subjects <= n_permutations``, else ``n_permutations`` random sign flips and
    ``p = (1 + #{null >= observed}) / (1 + n_permutations)``) and by a one-sample t-test;
    q-values are Benjamini-Hochberg across targets.
Layer comparisons (two or more subjects)
    Every layer against the best layer of the mean profile, tested against the other layers
    (not against chance): sign flips of the subjects' paired differences, the same flips for every
    layer, and the studentized maximum over the other layers
    (:func:`~neuroenc.encoding.compare.compare_layers_across_units`). ``best_set`` holds the
    layers not reliably worse than the best (one-sided, alpha 0.05). The margins ``delta_last``
    and ``delta_mid`` choose the best (and the best intermediate) layer leave-one-subject-out:
    for subject s, the layers that are best in the mean profile of the other subjects; the
    margin is the mean over subjects of s's score there minus its score at the last layer (or
    at that best intermediate layer), so it is not biased by the choice, with the interval of
    the same sign flips.
One subject
    There is no group test; ``p`` and ``q`` are the encoding model's own permutation p- and
    q-values at the best layer (from the results file), corrected for choosing the best of the
    layers when the results have ``pvalues_best`` (max over layers of the permutation null;
    ``p_method`` says which, see :mod:`neuroenc.mapping.layers`).
Selection bias
    The group profile's best-layer score and its gains are maxima over layers, so they are
    optimistically biased; the leave-one-subject-out effect and its test are not.
"""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from .._validation import _check_option, _check_positive, _check_random_state
from ..encoding.compare import (
    DEFAULT_ALPHA,
    LayerComparison,
    chance_mask,
    compare_layers_across_units,
    intermediate_layers,
    margin_columns,
    sign_flip_interval,
    sign_flips,
    verdicts,
)
from ..encoding.results import P_MAX_OVER_LAYERS
from ..encoding.stats import fdr_bh
from ._cube import ScoreCube, cube_from_table, unit_columns
from .layers import (
    NEGATIVE_POLICIES,
    attach_best_pvalues,
    best_index,
    best_layer_pvalues,
    preference_index,
)

_CHUNK = 4_000_000
ALTERNATIVES = ("greater", "less", "two-sided")


def sign_flip_test(
    values: np.ndarray,
    *,
    n_permutations: int = 10000,
    alternative: str = "greater",
    random_state=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sign-flip permutation test of the mean over axis 0 against zero.

    Parameters
    ----------
    values : ndarray, shape (n_units, ...)
        One value per unit (e.g. per subject: best-layer r minus baseline r). NaN values are
        left out of the mean of their column.
    n_permutations : int
        Number of random sign flips; all ``2 ** n_units`` flips are enumerated instead when
        there are no more than ``n_permutations`` of them (an exact test).
    alternative : "greater" | "less" | "two-sided"
        The alternative hypothesis about the mean.
    random_state : None | int | numpy Generator
        Seeds the random sign flips.

    Returns
    -------
    mean, pvalue : ndarray, shape ``values.shape[1:]``
        The observed mean and its p-value (NaN for a column without finite values).
    """
    _check_positive("n_permutations", n_permutations, integer=True)
    _check_option("alternative", alternative, ALTERNATIVES)
    rng = _check_random_state(random_state)
    values = np.asarray(values, dtype=np.float64)
    flat, _, data, count = unit_columns(values)
    n_units = flat.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = data.sum(0) / count

    def stat(x):
        return {"greater": x, "less": -x, "two-sided": np.abs(x)}[alternative]

    exact = n_units < 63 and 2**n_units <= n_permutations
    obs = stat(observed)
    tol = 1e-12 * np.maximum(1.0, np.abs(obs))
    hits = np.zeros(flat.shape[1])
    n_total = 0
    batches = (
        _all_signs(n_units, max(1, _CHUNK // max(flat.shape[1], 1)))
        if exact
        else _random_signs(rng, n_permutations, n_units, max(1, _CHUNK // max(flat.shape[1], 1)))
    )
    for signs in batches:
        with np.errstate(invalid="ignore", divide="ignore"):
            null = stat((signs @ data) / count)
        hits += (null >= obs - tol).sum(0)
        n_total += signs.shape[0]
    pvalue = hits / n_total if exact else (1.0 + hits) / (1.0 + n_total)
    pvalue = np.where(count > 0, pvalue, np.nan)
    shape = values.shape[1:]
    return observed.reshape(shape), pvalue.reshape(shape)


def _all_signs(n: int, batch: int):
    rows = itertools.product((1.0, -1.0), repeat=n)
    while True:
        chunk = list(itertools.islice(rows, batch))
        if not chunk:
            return
        yield np.asarray(chunk)


def _random_signs(rng: np.random.Generator, n_permutations: int, n: int, batch: int):
    done = 0
    while done < n_permutations:
        size = min(batch, n_permutations - done)
        yield rng.choice((-1.0, 1.0), size=(size, n))
        done += size


def nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    """``np.nanmean`` without the warning of an all-NaN slice (NaN there)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def group_from_cube(
    cube: ScoreCube,
    *,
    score: str = "r",
    negative: str = "clip",
    n_permutations: int = 10000,
    compare_alpha: float = DEFAULT_ALPHA,
    comparison: LayerComparison | None = None,
    random_state=None,
) -> tuple[pd.DataFrame, LayerComparison | None]:
    """Group summary from a :class:`ScoreCube` of subjects (see :func:`group_summary`).

    Returns the table and the layer comparison it used: across subjects (sign flips) with two
    or more, else ``comparison`` (one subject's own, from its results), which may be None.
    """
    _check_option("negative", negative, NEGATIVE_POLICIES)
    _check_positive("n_permutations", n_permutations, integer=True)
    rng = _check_random_state(random_state)
    values = cube.values(score)
    n_s, n_l, n_t = values.shape
    profile = nanmean(values, axis=0)  # (L, T)
    best, valid = best_index(profile, axis=0)
    cols = np.arange(n_t)
    safe = np.clip(best, 0, None)
    at_best = np.where(valid, profile[safe, cols], np.nan)
    per_subject = values[:, safe, cols]  # (S, T)
    n_finite = np.isfinite(per_subject).sum(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sem = np.nanstd(per_subject, axis=0, ddof=1) / np.sqrt(n_finite)
    out = {
        "target": np.asarray(cube.targets, dtype=object),
        "n_subjects": np.full(n_t, n_s),
        "best_layer": pd.array(np.where(valid, cube.layers[safe], np.nan), dtype="Int64"),
        "best_depth": np.where(valid, cube.depth[safe], np.nan),
        "preference_index": preference_index(profile, cube.depth, axis=0, negative=negative),
        score: at_best,
        f"{score}_sem": np.where(n_finite >= 2, sem, np.nan),
        f"{score}_last": profile[-1],
        "gain_over_last": at_best - profile[-1],
    }
    base = cube.baseline(score)
    if base is not None:
        out[f"baseline_{score}"] = nanmean(base, axis=0)
        out["gain_over_baseline"] = at_best - out[f"baseline_{score}"]
    if "noise_ceiling" in cube.target_fields:
        ceiling = nanmean(cube.target_fields["noise_ceiling"], axis=0)
        out["noise_ceiling"] = ceiling
        if score == "r":
            with np.errstate(invalid="ignore", divide="ignore"):
                out["ceiling_fraction"] = np.where(ceiling > 0, at_best / ceiling, np.nan)
    if n_s >= 2:
        effect = _loso_effect(values, base)
        mean_effect, p_perm = sign_flip_test(effect, n_permutations=n_permutations, random_state=rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            t_res = stats.ttest_1samp(effect, 0.0, axis=0, nan_policy="omit", alternative="greater")
        against = "baseline" if base is not None else "zero"
        out["loso_effect"] = mean_effect
        out["t"] = np.asarray(t_res.statistic, dtype=np.float64)
        out["p_t"] = np.asarray(t_res.pvalue, dtype=np.float64)
        out["p"] = p_perm
        out["q"] = fdr_bh(p_perm)
        out["test"] = (
            f"sign-flip permutation across {n_s} subjects: {score} at the leave-one-subject-out "
            f"best layer vs {against}"
        )
        signs = sign_flips(n_s, min(n_permutations, 2000), rng)
        comparison = compare_layers_across_units(values, alpha=compare_alpha, signs=signs)
    else:
        picked = best_layer_pvalues(cube, best[None, :], valid[None, :])
        if picked:
            for name in ("p", "q", "p_method"):
                out[name] = picked[name][0]
        else:
            out["p"] = out["q"] = np.full(n_t, np.nan)
        corrected = bool(picked) and bool(np.any(picked["p_method"] == P_MAX_OVER_LAYERS))
        out["test"] = "permutation test of the encoding model (one subject)" + (
            f", max over {n_l} layers" if corrected else "")
    if comparison is not None:
        margins = margin_columns(comparison, profile, cube.layers, cube.depth)
        if n_s >= 2:
            margins.update(_loso_margins(values, cube.depth, signs[0], ci=comparison.ci))
        out.update(margins)
        # The best layer's p tests chance with one subject, or with several when there is no
        # baseline (the LOSO effect is then r against zero); against a baseline it does not.
        p_chance = out["p"] if (n_s < 2 or base is None) else None
        if p_chance is not None:
            out["at_chance"] = chance_mask(p_chance, comparison.alpha)
        out["verdict"] = verdicts(out["best_layer"], out, valid, comparison.ci,
                                  p_chance=p_chance, alpha=comparison.alpha)
    return pd.DataFrame(out), comparison


def loso_best(values: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per subject and target: the best layer (row) of the mean profile of the other subjects,
    among ``rows`` (default all); and whether there is one. Shapes (n_subjects, n_targets)."""
    finite = np.isfinite(values)
    data = np.where(finite, values, 0.0)
    total, count = data.sum(0), finite.sum(0)
    rows = np.arange(values.shape[1]) if rows is None else np.asarray(rows)
    n_s, _, n_t = values.shape
    best = np.full((n_s, n_t), -1)
    valid = np.zeros((n_s, n_t), dtype=bool)
    for s in range(n_s):
        with np.errstate(invalid="ignore", divide="ignore"):
            others = (total - data[s]) / (count - finite[s])
        b, v = best_index(others[rows], axis=0)
        best[s] = np.where(v, rows[np.clip(b, 0, None)], -1)
        valid[s] = v
    return best, valid


def _loso_margins(values: np.ndarray, depth: np.ndarray, signs: np.ndarray, ci: float = 0.95
                  ) -> dict[str, np.ndarray]:
    """Margins of the leave-one-subject-out best layer over the last layer and over the
    leave-one-subject-out best intermediate layer: mean over subjects with a sign-flip interval
    (the same flips as the layer comparisons)."""
    n_s, n_l, n_t = values.shape
    cols = np.arange(n_t)
    best, ok = loso_best(values)
    at_best = np.where(ok, values[np.arange(n_s)[:, None], np.clip(best, 0, None), cols[None, :]], np.nan)
    last = int(np.argmax(depth))
    out = {}
    pairs = [("delta_last", at_best - values[:, last, :])]
    mid = np.flatnonzero(intermediate_layers(depth))
    if mid.size:
        mbest, mok = loso_best(values, mid)
        at_mid = np.where(mok, values[np.arange(n_s)[:, None], np.clip(mbest, 0, None), cols[None, :]], np.nan)
        pairs.append(("delta_mid", at_best - at_mid))
    else:
        for name in ("delta_mid", "delta_mid_low", "delta_mid_high"):
            out[name] = np.full(n_t, np.nan)
    for name, diff in pairs:
        out[name], out[f"{name}_low"], out[f"{name}_high"] = sign_flip_interval(diff, signs, ci)
    return out


def _loso_effect(values: np.ndarray, base: np.ndarray | None) -> np.ndarray:
    """Per subject and target: score at the best layer of the others' mean profile minus baseline."""
    n_s, _, n_t = values.shape
    best, valid = loso_best(values)
    picked = values[np.arange(n_s)[:, None], np.clip(best, 0, None), np.arange(n_t)[None, :]]
    if base is not None:
        picked = picked - base
    return np.where(valid, picked, np.nan)


def group_summary(
    table: pd.DataFrame,
    *,
    score: str = "r",
    negative: str = "clip",
    n_permutations: int = 10000,
    random_state=None,
) -> pd.DataFrame:
    """Summary per target across subjects, with the group-level test.

    Parameters
    ----------
    table : DataFrame
        The tidy scores table (:func:`~neuroenc.mapping.collect.scores_table`), one model, one row per
        (subject, layer, target).
    score : str
        The score to summarise (``"r"`` or ``"r2"``).
    negative : "clip" | "shift"
        How the preference index treats negative scores (see :func:`preference_index`).
    n_permutations : int
        Sign flips of the group test (exact enumeration for up to log2(n_permutations) subjects).
    random_state : None | int | numpy Generator
        Seeds the sign flips.

    Returns
    -------
    group : DataFrame
        One row per target: ``n_subjects``, ``best_layer`` and ``best_depth`` of the group mean
        profile, its ``preference_index``, the mean ``<score>`` at that layer and its
        ``<score>_sem``, ``<score>_last`` and ``gain_over_last``, ``baseline_<score>`` and
        ``gain_over_baseline`` (with a baseline), ``noise_ceiling`` and ``ceiling_fraction``
        (with a ceiling); with two or more subjects ``loso_effect``, ``t``, ``p_t`` and the
        sign-flip ``p`` and its FDR ``q`` (see the module docstring), with one subject the
        encoding model's ``p`` and ``q`` at the best layer (corrected for the choice of layer
        when the results allow; ``p_method`` says so); ``test`` names the test. With two or
        more subjects, the layer comparisons (tested against the other layers): ``best_set``,
        ``n_in_set``, ``set_span``, ``delta_last`` and ``delta_mid`` (leave-one-subject-out
        margins over the last layer and over the best intermediate layer ``mid_layer``) with
        their intervals, and ``verdict`` in words.
    """
    cube = attach_best_pvalues(cube_from_table(table, score=score), table)
    return group_from_cube(
        cube, score=score, negative=negative, n_permutations=n_permutations, random_state=random_state
    )[0]
