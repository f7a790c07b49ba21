"""Layer profiles: the mean score per (target, layer) with bootstrap confidence intervals.

The bootstrap resamples *units* (subjects, or the outer CV folds of one subject) with
replacement; one resample draws the same units for every layer and target, so the interval of
a profile reflects how the whole profile varies between units. Intervals are percentile
intervals of the resampled means.
"""
from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

from .._validation import _check_positive, _check_random_state
from ._cube import ScoreCube, cube_from_table, unit_columns

logger = logging.getLogger(__name__)

#: Largest number of (resample x column) means held in memory at once.
_CHUNK = 4_000_000


def _check_ci(ci: float) -> float:
    if isinstance(ci, bool) or not isinstance(ci, (int, float, np.floating)) or not 0 < ci < 1:
        raise ValueError(f"'ci' must be a confidence level between 0 and 1 (e.g. 0.95), got {ci!r}.")
    return float(ci)


def bootstrap_mean_ci(
    values: np.ndarray,
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    random_state=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over axis 0 with a percentile bootstrap interval (units resampled with replacement).

    Parameters
    ----------
    values : ndarray, shape (n_units, ...)
        One row per unit (subject or fold). NaN values are left out of each mean.
    n_boot : int
        Number of bootstrap resamples.
    ci : float
        Confidence level of the interval, in (0, 1).
    random_state : None | int | numpy Generator
        Seeds the resampling.

    Returns
    -------
    mean, low, high : ndarray, shape ``values.shape[1:]``
        The mean over units and the interval bounds; the bounds are NaN with fewer than two units.
    """
    _check_positive("n_boot", n_boot, integer=True)
    ci = _check_ci(ci)
    rng = _check_random_state(random_state)
    values = np.asarray(values, dtype=np.float64)
    flat, finite, data, count = unit_columns(values)
    n_units = flat.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = data.sum(0) / count
    low = np.full(flat.shape[1], np.nan)
    high = np.full(flat.shape[1], np.nan)
    if n_units >= 2:
        idx = rng.integers(0, n_units, size=(n_boot, n_units))
        counts = np.zeros((n_boot, n_units))
        np.add.at(counts, (np.repeat(np.arange(n_boot), n_units), idx.ravel()), 1.0)
        step = max(1, _CHUNK // n_boot)
        alpha = (1 - ci) / 2
        for start in range(0, flat.shape[1], step):
            cols = slice(start, start + step)
            with np.errstate(invalid="ignore", divide="ignore"):
                boot = (counts @ data[:, cols]) / (counts @ finite[:, cols].astype(np.float64))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
                low[cols], high[cols] = np.nanquantile(boot, [alpha, 1 - alpha], axis=0)
    shape = values.shape[1:]
    return mean.reshape(shape), low.reshape(shape), high.reshape(shape)


def profiles_from_cube(
    cube: ScoreCube,
    *,
    score: str = "r",
    n_boot: int = 1000,
    ci: float = 0.95,
    random_state=None,
) -> pd.DataFrame:
    """Layer profiles from a :class:`ScoreCube` (see :func:`layer_profiles`)."""
    values = cube.values(score)
    n_u, n_l, n_t = values.shape
    if n_u < 2:
        logger.info("one %s only: layer profiles have no confidence interval", cube.unit)
    mean, low, high = bootstrap_mean_ci(values, n_boot=n_boot, ci=ci, random_state=random_state)
    return pd.DataFrame(
        {
            "target": np.tile(np.asarray(cube.targets, dtype=object), n_l),
            "layer": np.repeat(cube.layers, n_t),
            "relative_depth": np.repeat(cube.depth, n_t),
            "mean": mean.ravel(),
            "ci_low": low.ravel(),
            "ci_high": high.ravel(),
            "n": np.isfinite(values).sum(0).ravel(),
            "unit": cube.unit,
            "score": score,
        }
    ).sort_values(["target", "layer"], key=_target_order(cube.targets), kind="stable", ignore_index=True)


def _target_order(targets: list[str]):
    rank = {t: i for i, t in enumerate(targets)}

    def key(col: pd.Series) -> pd.Series:
        return col.map(rank) if col.name == "target" else col

    return key


def layer_profiles(
    table: pd.DataFrame,
    *,
    score: str = "r",
    unit: str = "subject",
    n_boot: int = 1000,
    ci: float = 0.95,
    random_state=None,
) -> pd.DataFrame:
    """Mean score per (target, layer) with bootstrap confidence intervals over units.

    Parameters
    ----------
    table : DataFrame
        A tidy table with one row per (unit, layer, target): :func:`scores_table` (units =
        subjects) or :func:`fold_table` (units = the outer CV folds, ``unit="fold"``).
    score : str
        The score column to average (``"r"`` or ``"r2"``).
    unit : str
        The column whose values are resampled: ``"subject"`` or ``"fold"``.
    n_boot : int
        Number of bootstrap resamples.
    ci : float
        Confidence level of the interval.
    random_state : None | int | numpy Generator
        Seeds the resampling.

    Returns
    -------
    profiles : DataFrame
        One row per (target, layer): ``relative_depth``, ``mean``, ``ci_low``, ``ci_high``,
        ``n`` (units with a finite score), ``unit``, ``score``. Intervals are NaN with one unit.
    """
    cube = cube_from_table(table, score=score, unit=unit)
    return profiles_from_cube(cube, score=score, n_boot=n_boot, ci=ci, random_state=random_state)
