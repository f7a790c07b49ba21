"""All the mapping tables of one group of results, in one call: :func:`map_layers`."""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd

from .._settings import Choices, Interval, declare
from .._validation import _check_random_state
from ..encoding.compare import DEFAULT_ALPHA, LayerComparison, best_rows
from ..encoding.contribution import delta_formula
from ..encoding.results import EncodingResults
from ._cube import ScoreCube, cube_from_folds, cube_from_results
from .collect import load_results, scores_table
from .group import group_from_cube, nanmean
from .layers import NEGATIVE_POLICIES, attach_best_pvalues, best_layers_from_cube
from .profiles import profiles_from_cube
from .stability import split_half_stability
from .unique import describe_unique, unique_columns, unique_layers

logger = logging.getLogger(__name__)

PROFILE_UNITS = ("auto", "subject", "fold")


@dataclass
class LayerMapping:
    """Which layers predict which targets, for one model and one or more subjects.

    Attributes
    ----------
    best : DataFrame
        One row per (subject, target): best layer and depth, scores there, gains, preference
        index (:func:`~neuroenc.mapping.best_layers`).
    profiles : DataFrame
        One row per (target, layer): mean score and bootstrap interval
        (:func:`~neuroenc.mapping.layer_profiles`).
    group : DataFrame
        One row per target: the group mean profile's best layer, scores, gains, the group
        test against the baseline (:func:`~neuroenc.mapping.group.group_summary`), the layer
        comparisons (``best_set``, margins over the last and the best intermediate layer with
        intervals, ``verdict``) and, with 4 or more subjects, the split-half stability of the
        best layer (``split_half_agreement``, ``split_half_distance``).
    results : list of EncodingResults
        The results it was computed from (one per subject).
    subjects, targets : list of str
    layers, relative_depth : ndarray
    model : str | None
    score : str
        The score that was maximised (``"r"`` or ``"r2"``).
    params : dict
        The parameters of :func:`map_layers` (n_boot, ci, negative, n_permutations, random_state,
        profile unit).
    comparison : LayerComparison | None
        Every layer against the best layer of the group profile (sign flips across subjects),
        or one subject's own comparison; None without one.
    stability : DataFrame | None
        Split-half stability: one row per (target, layer) with ``share_best``, the share of
        random halves of the subjects whose mean profile is best at that layer (4+ subjects).
    unique : DataFrame | None
        What each layer adds beyond the baseline, when the fits have it: one row per (target,
        layer) with the mean ``delta_r2`` over subjects, its interval, ``p`` and ``in_best_set``
        (:func:`~neuroenc.mapping.unique.unique_layers`); ``group`` then has the ``unique_*``
        columns (:func:`~neuroenc.mapping.unique.unique_columns`). None without a baseline.
    """

    best: pd.DataFrame
    profiles: pd.DataFrame
    group: pd.DataFrame
    results: list[EncodingResults]
    subjects: list[str]
    targets: list[str]
    layers: np.ndarray
    relative_depth: np.ndarray
    model: str | None
    score: str = "r"
    params: dict[str, Any] = field(default_factory=dict)
    comparison: LayerComparison | None = None
    stability: pd.DataFrame | None = None
    unique: pd.DataFrame | None = None

    @property
    def n_subjects(self) -> int:
        """Number of subjects."""
        return len(self.subjects)

    def scores(self) -> pd.DataFrame:
        """The tidy scores table (one row per subject, layer and target)."""
        return scores_table(self.results)

    def summary(self, max_targets: int = 10) -> str:
        """A summary in words, one line per target: the best layer with the layers the data cannot
        tell apart from it, its margins, its score and what its p-value tests; then what the
        p-values and the best-layer sets were tested against."""
        g = self.group
        who = f"{self.n_subjects} subject{'s' if self.n_subjects != 1 else ''}"
        head = (
            f"{self.model or 'The model'} ({self.layers.size} layers) on {who} and "
            f"{len(self.targets)} target{'s' if len(self.targets) != 1 else ''}"
        )
        # Targets in their own order (ROIs); the best-scoring ones first when not all fit.
        ranked = g if len(g) <= max_targets else g.sort_values(self.score, ascending=False, na_position="last")
        parts = [describe_target(row, self.score, self.n_subjects) for _, row in ranked.head(max_targets).iterrows()]
        if len(g) > max_targets:
            parts.append(f"... ({len(g) - max_targets} more targets)")
        test = str(g["test"].iloc[0]) if "test" in g and len(g) else ""
        n_sig = int((g["q"] < 0.05).sum()) if "q" in g else 0
        tail = []
        if test:
            tail.append(f"p against {'the baseline' if self.n_subjects > 1 else 'chance'}: {test}; "
                        f"{n_sig} of {len(g)} targets have q < 0.05.")
        if self.comparison is not None:
            how = "sign flips across subjects" if self.n_subjects > 1 else self.comparison.source + " draws"
            tail.append(f"Best-layer sets: the layers not reliably worse than the best, tested against the other "
                        f"layers ({how}, one-sided alpha = {self.comparison.alpha:g}, max over layers). "
                        f"{MARGINS_NOTE}")
        if self.unique is not None:
            how = ("the mean over subjects, its p and 95 % interval from sign flips across subjects, its set "
                   "tested against the other layers by the same flips" if self.n_subjects > 1 else
                   "the fit's own p, interval and set")
            score = str(g["unique_score"].iloc[0]) if "unique_score" in g and len(g) else "squared-r"
            tail.append(f"Unique contributions: held-out Δr² = {delta_formula(score)}, fitted on the "
                        f"same folds ({how}); p tests Δr² > 0.")
        return "\n".join([f"{head}:"] + [f"- {p}." for p in parts] + tail)


#: Said wherever best-layer margins are given.
MARGINS_NOTE = "The margins compare held-out r, which can be negative."


def describe_target(row: Any, score: str = "r", n_subjects: int = 1) -> str:
    """One target's line of a summary: its verdict on the best layer (never a lone best layer),
    its score against the baseline, and its p-value with what it tests."""
    if pd.isna(row["best_layer"]):
        return f"{row['target']}: no finite score"
    verdict = row.get("verdict") if isinstance(row.get("verdict"), str) else None
    if verdict is None:
        verdict = (f"best layer {int(row['best_layer'])} (not compared with the other layers: "
                   "no permutation draws)")
    text = f"{row['target']}: {verdict}; {score} = {row[score]:.3f} at layer {int(row['best_layer'])}"
    base = row.get("baseline_" + score, np.nan)
    if np.isfinite(base):
        text += f" vs baseline {base:.3f}"
    p = row.get("p", np.nan)
    if np.isfinite(p):
        against = "vs baseline, across subjects" if n_subjects > 1 else "vs chance"
        text += f" (p = {_fmt_p(p)}, {against})"
    if np.isfinite(row.get("split_half_distance", np.nan)):
        text += (f"; in random halves of the subjects the best layer moves by a median of "
                 f"{row['split_half_distance']:.0f} layers")
    unique = describe_unique(row)
    if unique is not None:
        text += f"; {unique}"
    return text


def group_best_table(results: EncodingResults) -> pd.DataFrame:
    """Best layer per target of one results file (e.g. the group-mean fit): :meth:`EncodingResults.best`.

    ``depth`` repeats ``best_depth`` and ``r_last_layer`` repeats ``r_last`` under the names
    earlier versions of this table used.
    """
    table = results.best()
    table.insert(2, "depth", table["best_depth"])
    table["r_last_layer"] = table["r_last"]
    if getattr(results, "unique", None) is not None:  # the best layer by unique contribution too
        cube = cube_from_results([results])
        _, arrays = unique_layers(cube)
        for name, value in unique_columns(cube, arrays, table["best_layer"].to_numpy()).items():
            table[name] = value
    return table


def parse_layer_set(text: str) -> list[int]:
    """The layers of a best-layer set as written in tables: ``"3, 12–14"`` -> ``[3, 12, 13, 14]``.

    The inverse of :func:`~neuroenc.encoding.compare.format_layer_set` (ranges use an en dash).
    """
    out: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, _, hi = part.partition("–")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def _fmt_p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def _one_target(cube: ScoreCube, **fields) -> ScoreCube:
    """A cube with one pseudo-target, "mean of N targets", holding ``fields``."""
    return ScoreCube(unit=cube.unit, units=cube.units, layers=cube.layers, depth=cube.depth,
                     targets=[f"mean of {len(cube.targets)} targets"], model=cube.model, **fields)


def _mean_over_targets(cube: ScoreCube, score: str) -> ScoreCube:
    """A cube with one pseudo-target: the mean score over all targets."""
    return _one_target(cube, layer_fields={score: nanmean(cube.values(score), axis=2)[..., None]})


def _mean_unique(cube: ScoreCube) -> ScoreCube:
    """A cube with one pseudo-target whose unique contribution is the mean Δr² over all targets
    (the name of :func:`_mean_over_targets`'s); one subject's own tests do not carry over."""
    return _one_target(cube, unique={name: nanmean(cube.unique[name], axis=2)[..., None]
                                     for name in ("delta_r2", "delta_r") if name in cube.unique},
                       unique_baseline=cube.unique_baseline, unique_score=cube.unique_score)


def _own_comparison(results: EncodingResults, cube: ScoreCube) -> LayerComparison | None:
    """One subject's layer comparison, in the cube's (sorted) layer order; None without one."""
    comp = results.comparison
    if comp is None:
        return None
    order = np.argsort(results.layers, kind="stable")
    if np.array_equal(order, np.arange(order.size)):
        return comp
    fields = {name: getattr(comp, name)[order] for name in ("delta_r", "pvalues", "in_best_set", "ci_low", "ci_high")}
    return LayerComparison(**fields, best=best_rows(results.r[order]), alpha=comp.alpha, ci=comp.ci,
                           n_draws=comp.n_draws, source=comp.source)


@declare({
    "score": [Choices("r", "r2")],
    "negative": [Choices(NEGATIVE_POLICIES)],
    "n_boot": [Interval(Integral, 1, None, closed="left")],
    "ci": [Interval(Real, 0, 1, closed="neither")],
    "n_permutations": [Interval(Integral, 1, None, closed="left")],
    "profile_unit": [Choices(PROFILE_UNITS)],
    "max_profile_targets": [Interval(Integral, 1, None, closed="left")],
    "compare_alpha": [Interval(Real, 0, 1, closed="neither")],
    "n_splits": [Interval(Integral, 1, None, closed="left")],
    "random_state": [None, Interval(Integral, 0, 2**32 - 1, closed="both"), np.random.Generator,
                     np.random.RandomState],
})
def map_layers(
    results: str | os.PathLike | EncodingResults | Iterable[str | os.PathLike | EncodingResults],
    *,
    score: str = "r",
    negative: str = "clip",
    n_boot: int = 1000,
    ci: float = 0.95,
    n_permutations: int = 10000,
    profile_unit: str = "auto",
    max_profile_targets: int = 24,
    compare_alpha: float = DEFAULT_ALPHA,
    n_splits: int = 500,
    random_state=0,
) -> LayerMapping:
    """Best layers, layer profiles and group summaries of one model's results.

    Parameters
    ----------
    results : path | EncodingResults | iterable of these
        One results file per subject (files, folders, glob patterns or objects; see
        :func:`~neuroenc.mapping.load_results`).
    score : "r" | "r2"
        The score to maximise and average.
    negative : "clip" | "shift"
        How the preference index treats negative scores (see :func:`preference_index`).
    n_boot : int
        Bootstrap resamples of the layer profiles' intervals.
    ci : float
        Confidence level of the intervals.
    n_permutations : int
        Sign flips of the group test.
    profile_unit : "auto" | "subject" | "fold"
        What the profile bootstrap resamples: subjects, or the outer CV folds of a single
        subject. ``"auto"``: subjects when there are several, else folds when the results have
        fold scores.
    max_profile_targets : int
        With more targets than this (voxels, vertices), the profile (and the per-layer table of
        unique contributions, ``unique``) is computed for the mean over all targets (one
        pseudo-target ``"mean of N targets"``) rather than per target.
    compare_alpha : float
        Level of the best-layer sets (one-sided): with several subjects, every layer is tested
        against the best of the group profile by sign flips across subjects (at most 2,000, or
        ``n_permutations``); with one subject, its results' own comparison is used.
    n_splits : int
        Random splits of the subjects into halves for the split-half stability of the best
        layer (4 or more subjects).
    random_state : None | int | numpy Generator
        Seeds the bootstrap, the sign flips and the splits.

    Returns
    -------
    mapping : LayerMapping
    """
    rng = _check_random_state(random_state)
    loaded = load_results(results)
    cube = attach_best_pvalues(cube_from_results(loaded), loaded)
    unit = profile_unit
    if unit == "auto":
        unit = "subject" if len(loaded) >= 2 or loaded[0].fold_r is None else "fold"
    if unit == "fold":
        if len(loaded) != 1:
            raise ValueError(
                f"profile_unit='fold' resamples the CV folds of one subject, but {len(loaded)} "
                "subjects were given; use profile_unit='subject'."
            )
        profile_cube = cube_from_folds(loaded[0], subject=cube.units[0])
    else:
        profile_cube = cube
    if len(cube.targets) > max_profile_targets:
        profile_cube = _mean_over_targets(profile_cube, score)
    best = best_layers_from_cube(cube, score=score, negative=negative)
    profiles = profiles_from_cube(profile_cube, score=score, n_boot=n_boot, ci=ci, random_state=rng)
    own = _own_comparison(loaded[0], cube) if len(loaded) == 1 and score == "r" else None
    group, comparison = group_from_cube(cube, score=score, negative=negative, n_permutations=n_permutations,
                                        compare_alpha=compare_alpha, comparison=own, random_state=rng)
    stability = None
    if len(loaded) >= 4:
        stability, halves = split_half_stability(cube.values(score), cube.layers, cube.depth, cube.targets,
                                                 n_splits=n_splits, random_state=rng)
        group = group.merge(halves.drop(columns="n_splits"), on="target", how="left")
    unique, arrays = unique_layers(cube, n_permutations=n_permutations, ci=ci, compare_alpha=compare_alpha,
                                   random_state=rng)
    if arrays is not None and len(cube.targets) > max_profile_targets:  # the per-layer table: of the mean
        unique = unique_layers(_mean_unique(cube), n_permutations=n_permutations, ci=ci,
                               compare_alpha=compare_alpha, random_state=rng)[0]
    if arrays is not None:
        for name, value in unique_columns(cube, arrays, group["best_layer"].to_numpy(), n_permutations,
                                          random_state=rng).items():
            group[name] = value
    logger.info("mapped %d layers x %d targets x %d subjects", cube.layers.size, len(cube.targets),
                len(cube.units))
    return LayerMapping(
        best=best,
        profiles=profiles,
        group=group,
        results=loaded,
        subjects=cube.units,
        targets=cube.targets,
        layers=cube.layers,
        relative_depth=cube.depth,
        model=cube.model,
        score=score,
        comparison=comparison,
        stability=stability,
        unique=unique,
        params={
            "score": score,
            "negative": negative,
            "n_boot": n_boot,
            "ci": ci,
            "n_permutations": n_permutations,
            "profile_unit": unit,
            "compare_alpha": compare_alpha,
            "n_splits": n_splits,
            "random_state": random_state if isinstance(random_state, (int, type(None))) else "generator",
        },
    )
