"""Brain-Score language's linear-predictivity metric (``scoring="brainscore-linear"``), computed
next to neuroenc's ridge scores for stimulus-level data.

Brain-Score's ``linear_pearsonr`` metric (github.com/brain-score/language, brainscore-language
2.3.0), followed step by step:

- **Splits** (``brainscore_language/utils/transformations.py``, ``Split.__init__`` and
  ``Split.build_splits``; defaults from ``CrossRegressedCorrelation.__init__`` in
  ``brainscore_language/metrics/linear_predictivity/metric.py``): 10 splits of
  ``sklearn.model_selection.ShuffleSplit(n_splits=10, train_size=0.9, test_size=None,
  random_state=1)`` over the rows of the target assembly, in its order (the
  ``Pereira2018.*-linear-shuffle`` benchmarks pass the same values). No grouping by passage.
- **Regression** (``linear_regression`` / ``XarrayRegression``): ``sklearn.linear_model.
  LinearRegression()`` (intercept, no penalty) from the model's activations (as extracted, not
  z-scored: with more features than stimuli the minimum-norm solution depends on the columns'
  scale) to all neuroids at once, on the training rows.
- **Correlation** (``pearsonr`` / ``XarrayCorrelationBatched``): Pearson r per neuroid between
  the held-out predictions and responses, with their ``+ 1e-8`` on both norms.
- **Aggregation** (``CrossRegressedCorrelation.aggregate``, then ``Split.aggregate`` through
  ``Transformation.__call__``): the median over neuroids within each split, then the mean over
  splits. Per neuroid, the results keep the mean over splits (``results.r_brainscore``).
- **Ceiling** (``brainscore_language/utils/ceiling.py``, ``ceiling_normalize``): score /
  ceiling, set to 1 above 1 and to 0 below 0. Brain-Score's ceiling is one number, the median
  over neuroids of per-neuroid ceilings (``ExtrapolationCeiling.aggregate_neuroid_ceilings`` in
  ``brainscore_language/benchmarks/blank2014/ceiling.py``); given per target here, it is
  aggregated the same way (NaNs left out). Theirs extrapolates subject pools; neuroenc's
  split-half ceiling is another estimate of the same bound, so normalised scores compare with
  Brain-Score's only when the ceiling is theirs (pass it as a number).

The metric is theirs; the features are neuroenc's (pooling and context as the run sets them),
so a score equals a Brain-Score benchmark's only for the same activations: their
``HuggingfaceSubject`` reads each stimulus's last token within its passage, which
``pooling: last`` with ``context: group`` mirrors most closely.

Brain-Score's own package pins numpy<2 and cannot share neuroenc's environment, so
``tests/test_encoding_brainscore_linear.py`` checks this module against it when it is
importable, and always against a verbatim copy of the functions named above.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: The scoring options: neuroenc's ridge only, or Brain-Score's metric next to it.
SCORINGS = ("ridge", "brainscore-linear")
#: Brain-Score's split scheme (``Split.Defaults`` and ``CrossRegressedCorrelation``'s defaults).
N_SPLITS = 10
TRAIN_SIZE = 0.9
RANDOM_STATE = 1
SCHEME = {"splitter": "ShuffleSplit", "n_splits": N_SPLITS, "train_size": TRAIN_SIZE, "random_state": RANDOM_STATE}
#: Their epsilon on the norms of the centred series (``metric.pearsonr``).
EPS = 1e-8
#: What the results' Brain-Score scores are (``settings["scores"]``).
DESCRIPTION = ("r_brainscore: Brain-Score language's linear_pearsonr metric (LinearRegression on the "
               "features as extracted, Pearson r per target on 10 ShuffleSplit(train_size=0.9, random_state=1) "
               "splits), mean over splits per target; provenance['brainscore_linear'] holds their "
               "aggregate per layer (median over targets per split, mean over splits) and its "
               "ceiling-normalised value")


def brainscore_splits(n_samples: int, n_splits: int = N_SPLITS, train_size: float = TRAIN_SIZE,
                      random_state: int = RANDOM_STATE) -> list[tuple[np.ndarray, np.ndarray]]:
    """Brain-Score's train/test splits of ``n_samples`` rows (``Split.build_splits``).

    Returns
    -------
    splits : list of (train, test) index arrays
    """
    from sklearn.model_selection import ShuffleSplit

    if int(n_samples) < 3:
        raise ValueError(f"Brain-Score's splits need at least 3 stimuli (a held-out r needs two); got {n_samples}.")
    split = ShuffleSplit(n_splits=n_splits, train_size=train_size, test_size=None, random_state=random_state)
    return list(split.split(np.zeros(int(n_samples))))


def pearsonr_columns(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each column pair, with Brain-Score's ``+ 1e-8`` on the norms."""
    xm = x - x.mean(axis=0, keepdims=True)
    ym = y - y.mean(axis=0, keepdims=True)
    nx = np.linalg.norm(xm, axis=0, keepdims=True) + EPS
    ny = np.linalg.norm(ym, axis=0, keepdims=True) + EPS
    return ((xm / nx) * (ym / ny)).sum(axis=0)


def linear_predictivity(X: Any, Y: Any, splits: Sequence[tuple[Any, Any]] | None = None) -> np.ndarray:
    """Held-out Pearson r of an unpenalised linear regression, per split and target.

    Parameters
    ----------
    X : array-like, shape (n_stimuli, n_features)
        One layer's activations, as extracted.
    Y : array-like, shape (n_stimuli, n_targets)
        Responses, rows in the order of ``X``.
    splits : list of (train, test) | None
        Default :func:`brainscore_splits`.

    Returns
    -------
    r : ndarray, shape (n_splits, n_targets)
    """
    from sklearn.linear_model import LinearRegression

    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    Y = Y[:, None] if Y.ndim == 1 else Y
    if X.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has shape {X.shape} and Y {Y.shape}; they need one row per stimulus each.")
    splits = brainscore_splits(X.shape[0]) if splits is None else splits
    out = np.empty((len(splits), Y.shape[1]))
    for i, (train, test) in enumerate(splits):
        model = LinearRegression().fit(X[train], Y[train])
        out[i] = pearsonr_columns(model.predict(X[test]), Y[test])
    return out


def aggregate(split_r: np.ndarray) -> float:
    """Brain-Score's score from per-split, per-neuroid r: median over neuroids, mean over splits
    (NaNs skipped, as xarray's reductions skip them)."""
    split_r = np.asarray(split_r, dtype=np.float64)
    return float(np.nanmean(np.nanmedian(split_r, axis=1)))


def aggregate_ceiling(ceiling: Any) -> float:
    """One ceiling: a number as given, or the median over targets of per-target ceilings."""
    values = np.asarray(ceiling, dtype=np.float64).reshape(-1)
    if values.size == 1:
        return float(values[0])
    if not np.isfinite(values).any():
        return float("nan")
    return float(np.nanmedian(values))


def ceiling_normalize(score: float, ceiling: float) -> float:
    """``score / ceiling``, set to 1 above 1 and 0 below 0 (their ``ceiling_normalize``)."""
    value = score / ceiling if ceiling else float("nan")
    if value > 1:
        return 1.0
    if value < 0:
        return 0.0
    return float(value)


def brainscore_linear(layer_X: Mapping[int, Any], Y: Any, *, ceiling: Any = None,
                      splits: Sequence[tuple[Any, Any]] | None = None) -> dict[str, Any]:
    """Brain-Score's linear predictivity of every layer (see the module docstring).

    Parameters
    ----------
    layer_X : dict of int -> array, shape (n_stimuli, n_features)
        Each layer's activations, as extracted.
    Y : array-like, shape (n_stimuli, n_targets)
    ceiling : float | array (n_targets,) | None
        Brain-Score's ceiling (a number), or per-target ceilings (aggregated by their median).
    splits : list of (train, test) | None
        Default :func:`brainscore_splits` (theirs).

    Returns
    -------
    out : dict
        ``r`` (n_layers, n_targets): mean over splits per target; ``split_r`` (n_splits,
        n_layers, n_targets); ``score`` (n_layers,): their aggregate; ``ceiling`` (float or
        None); ``score_normalized`` (n_layers,) or None; ``layers``; ``splits``: the scheme.
    """
    Y = np.asarray(Y, dtype=np.float64)
    Y = Y[:, None] if Y.ndim == 1 else Y
    given = splits
    splits = brainscore_splits(Y.shape[0]) if splits is None else splits
    layers = [int(k) for k in layer_X]
    split_r = np.stack([linear_predictivity(layer_X[k], Y, splits) for k in layer_X], axis=1)
    score = np.array([aggregate(split_r[:, i]) for i in range(len(layers))])
    value = None if ceiling is None else aggregate_ceiling(ceiling)
    if value is not None and not np.isfinite(value):
        value = None
    normalized = None if value is None else np.array([ceiling_normalize(s, value) for s in score])
    logger.info("Brain-Score linear predictivity of %d layer(s): %s", len(layers), np.round(score, 4).tolist())
    return {"layers": layers, "r": split_r.mean(axis=0), "split_r": split_r, "score": score, "ceiling": value,
            "score_normalized": normalized,
            "splits": SCHEME if given is None else "given"}


def check_stimulus_design(design: Any) -> None:
    """Brain-Score's metric needs a stimulus-level design (rows: stimuli, raw features)."""
    if getattr(design, "rows", None) != "stimuli" or not callable(getattr(design, "raw_X", None)):
        raise ValueError(
            f"scoring='brainscore-linear' (encoding.scoring, --scoring) is Brain-Score's metric of stimulus-level "
            f"data (one response per stimulus); this design is {type(design).__name__} with rows "
            f"{getattr(design, 'rows', None)!r}. Use scoring='ridge' for stories, or fit a stimulus set.")


def add_brainscore(results: Any, design: Any, Y: Any = None) -> Any:
    """Brain-Score's metric of every layer of ``results``, fitted on a stimulus-level design's
    features as extracted, stored in ``results.brainscore_split_r`` (``settings["scores"]``
    and ``settings["brainscore_linear"]`` say what it is).

    Parameters
    ----------
    results : EncodingResults
    design : StimulusDesign
        The design the results were fitted on (rows: stimuli, in the order Brain-Score splits).
    Y : array-like | None
        Default the design's responses as read (``design.response``; Brain-Score's norms carry a
        ``+ 1e-8``, so z-scored responses would move r by about 1e-8), else its ``Y``.

    Returns
    -------
    results : EncodingResults
        The same object.
    """
    check_stimulus_design(design)
    if Y is None:
        Y = design.response.data if getattr(design, "response", None) is not None else design.Y
    out = brainscore_linear({int(k): design.raw_X(int(k)) for k in results.layers}, Y)
    results.brainscore_split_r = out["split_r"]
    scores = dict(results.settings.get("scores") or {})
    scores["r_brainscore"] = DESCRIPTION
    results.settings["scores"] = scores
    results.settings["brainscore_linear"] = dict(SCHEME, source="brainscore_language 2.3.0 linear_pearsonr")
    return results


def brainscore_table(results: Any, ceiling: Any = None) -> Any:
    """Brain-Score's score of each layer of ``results``, raw and ceiling-normalised.

    Parameters
    ----------
    results : EncodingResults
        Fitted with ``scoring="brainscore-linear"``.
    ceiling : float | array (n_targets,) | None
        Brain-Score's ceiling (a number), or per-target ceilings (their median); default the
        results' ``noise_ceiling``, if any.

    Returns
    -------
    table : DataFrame
        One row per layer: ``layer``, ``score`` (median over targets per split, mean over
        splits), ``ceiling`` and ``score_normalized`` (``score / ceiling`` in [0, 1], NaN
        without a ceiling).
    """
    import pandas as pd

    if results.brainscore_split_r is None:
        raise ValueError("these results have no Brain-Score scores; fit them with scoring='brainscore-linear' "
                         "(config encoding.scoring, --scoring).")
    if ceiling is None:
        ceiling = results.noise_ceiling
    if ceiling is not None and np.size(ceiling) not in (1, results.n_targets):
        raise ValueError(f"ceiling has {np.size(ceiling)} values; give one number (Brain-Score's ceiling) or one "
                         f"per target ({results.n_targets}).")
    value = float("nan") if ceiling is None else aggregate_ceiling(ceiling)
    score = np.array([aggregate(results.brainscore_split_r[:, i]) for i in range(results.n_layers)])
    normalized = (np.array([ceiling_normalize(s, value) for s in score]) if np.isfinite(value)
                  else np.full(score.shape, np.nan))
    return pd.DataFrame({"layer": results.layers, "score": score, "ceiling": value,
                         "score_normalized": normalized})
