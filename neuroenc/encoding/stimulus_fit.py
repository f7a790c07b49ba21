"""Stimulus-level encoding in one call: :func:`fit_stimuli`, a thin wrapper of
:func:`~neuroenc.encoding.fit_encoding`.

It pairs :class:`~neuroenc.features.StimulusFeatures` (one row per stimulus and layer) with
stimulus-level responses (a :class:`~neuroenc.responses.Response` with ``ids``, or one per
subject, averaged) in a :class:`~neuroenc.align.stimuli.StimulusDesign` and fits it with
:func:`~neuroenc.encoding.fit_encoding`, like any design. The design's rows are stimuli, so the
fit splits and permutes stimuli:

- cross-validation by stimulus: ``cv="group-kfold:K"`` (whole groups held out; the default when
  the stimuli have groups, because the sentences of one passage share its topic, its words and
  its context, so a random split leaks) or ``"kfold:K"`` (shuffled, seeded); no gap; the inner
  splits that choose each target's penalty follow the same scheme inside each outer training set;
- the permutation null permutes the stimuli (within groups when there are groups), and refits
  every fold's held-out predictions on each draw;
- scores: ``r`` (mean over folds of each fold's Pearson r, as for stories) and ``r_pooled`` (one
  r over the held-out predictions of all folds pooled, the usual score of stimulus-level
  studies), both in the results file and labelled in ``settings["scores"]``;
- with one response per subject, the fitted response is the mean of the subjects' (each
  z-scored over stimuli), and its noise ceiling comes from split halves of the subjects
  (:func:`~neuroenc.encoding.noise_ceiling_split_half`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._settings import Choices, constraints_of, declare
from ..align.stimuli import SPILLOVER_CONSTRAINTS, group_mean_response, make_stimulus_design, zscore_columns
from . import encode as _encode
from .cv import CV_OBJECTS, DEFAULT_STIMULUS_FOLDS, STIMULUS_CV_PATTERNS, parse_stimulus_cv, resolve_cv
from .sweep import LayerSweep

__all__ = ["DEFAULT_STIMULUS_FOLDS", "fit_stimuli", "group_responses", "stimulus_cv", "zscore_columns"]


def stimulus_cv(cv: Any, groups: Sequence[str] | None) -> Any:
    """``cv="auto"`` for stimuli: ``group-kfold:K`` when there are at least 2 groups (K = 5, or
    the number of groups when fewer), else ``kfold:5``; anything else as given
    (:func:`~neuroenc.encoding.cv.resolve_cv` for rows that are stimuli)."""
    return resolve_cv(cv, "stimuli", groups)[0]


def group_responses(per_subject: Mapping[str, Any], ids: Sequence[str], n_splits: int = 100,
                    random_state: Any = 0) -> tuple[Any, np.ndarray | None]:
    """The mean response of several subjects and its split-half noise ceiling.

    Each subject's responses are matched to ``ids`` (an error lists the ids missing on either
    side) and z-scored per target over stimuli; the mean over subjects is the fitted response.
    Its ceiling is :func:`~neuroenc.encoding.noise_ceiling_split_half` of the subjects (random
    halves, Spearman-Brown corrected), with at least 2 subjects.

    Returns
    -------
    mean : Response
        Stimulus-level, ``subject="group"``, ``info["group_members"]`` the subjects averaged.
    ceiling : ndarray, shape (n_targets,) | None
    """
    from .stats import noise_ceiling_split_half

    mean, stack = group_mean_response(per_subject, ids)
    ceiling = noise_ceiling_split_half(stack, n_splits=n_splits, random_state=random_state) \
        if len(per_subject) >= 2 else None
    return mean, ceiling


@declare({
    "cv": [Choices("auto"), *STIMULUS_CV_PATTERNS, *CV_OBJECTS],
    "spillover": SPILLOVER_CONSTRAINTS,
    **{name: constraints_of(LayerSweep)[name]
       for name in ("alphas", "inner_cv", "n_permutations", "permutation", "random_state", "backend", "dtype",
                    "n_targets_batch", "compare", "compare_alpha", "unique", "unique_ratios", "unique_score",
                    "memory")},
    **{name: constraints_of(_encode.fit_encoding)[name] for name in ("save_weights", "scoring")},
})
def fit_stimuli(features: Any, responses: Any, *, cv: Any = "auto", baseline: Any = None,
                spillover: Any = None,
                noise_ceiling: Any = None, alphas: Any = None, inner_cv: int = 5, n_permutations: int = 1000,
                permutation: str = "auto", random_state: int = 0, backend: str = "auto", dtype: str = "auto",
                n_targets_batch: int | None = None, compare: bool | str = "auto", compare_alpha: float = 0.05,
                unique: bool = True, unique_ratios: Any = None, unique_score: str = "squared-r",
                layers: Sequence[int] | None = None,
                save_weights: bool = False, scoring: str = "ridge", provenance: dict | None = None,
                settings: dict | None = None, verbose: bool | str | int | None = None,
                memory: int | str | None = None):
    """Fit a ridge model per layer to stimulus-level responses (see the module docstring).

    Parameters
    ----------
    features : StimulusFeatures
        One row per stimulus (ids, texts, groups).
    responses : Response | dict of str -> Response
        Stimulus-level responses (``Response(..., ids=...)``, e.g. from
        :func:`~neuroenc.stimuli.responses.read_stimulus_responses`), or one per subject (then their mean
        is fitted, with a split-half noise ceiling unless ``noise_ceiling`` is given). Matched
        to the features by id.
    cv : "auto" | "group-kfold:K" | "kfold:K" | splitter | list of (train, test)
        Splits by stimulus: ``"group-kfold:K"``, whole groups held out; ``"kfold:K"``, the
        stimuli shuffled into K folds (seeded by ``random_state``); ``"auto"``,
        ``group-kfold:5`` when the stimuli have groups, else ``kfold:5``. A scikit-learn
        splitter or explicit splits are used as given.
    baseline : dict of str -> array | DataFrame | Response | None
        Baseline regressors per stimulus (in the features' order, or a stimulus-level Response
        matched by id; e.g. length, frequency, surprisal), fitted with the same folds,
        penalties and permutations into ``results.baseline`` (each alone too, with two or more:
        ``provenance["baseline_models"]``, see :func:`~neuroenc.encoding.fit_encoding`).
    spillover : int | dict | str | None
        Spill-over regressors for word-level data (e.g. reading times): beside each stimulus's
        own columns, those of the previous 1-3 stimuli of the same group (story), for the
        baseline regressors and for the layers, e.g. ``{baseline: 2, layers: 1}``, an int for
        both, ``baseline=2,layers=1`` on the command line; None or 0: none. A story's first
        words have no previous word (another story's are not their spill-over): their
        spill-over columns are 0, the mean of the z-scored column (see
        :func:`~neuroenc.align.make_stimulus_design`).
    noise_ceiling : array (n_targets,) | None
    alphas, inner_cv, n_permutations, permutation, random_state, backend, dtype, n_targets_batch,
    compare, compare_alpha, unique, unique_ratios, unique_score, memory : see :func:`~neuroenc.encoding.fit_encoding`
    layers : sequence of int | None
        Fit only these layers (default: all in the features).
    save_weights : bool
        Keep the encoders (see :func:`~neuroenc.encoding.fit_encoding`), with the training
        stimuli's z-scoring of each feature column, for predicting new stimuli.
    scoring : {"ridge", "brainscore-linear"}
        Also Brain-Score language's linear metric, next to the ridge scores (see
        :func:`~neuroenc.encoding.fit_encoding`).
    provenance, settings : dict | None
        Extra entries.
    verbose : bool | str | int | None
        Progress bars (see :func:`~neuroenc.encoding.fit_encoding`).

    Returns
    -------
    results : EncodingResults
        As for stories, plus ``r_pooled``; ``settings["scores"]`` says what ``r`` and
        ``r_pooled`` are; ``provenance`` names the stimuli, groups and subjects.
    """
    from .encode import fit_encoding

    if isinstance(cv, (str, int)) and not (cv == "auto" or parse_stimulus_cv(cv) is not None):
        resolve_cv(cv, "stimuli")  # the error: stimuli are split by stimulus
    subjects = None
    if isinstance(responses, Mapping):
        subjects = list(responses)
        responses, ceiling = group_responses(responses, features.ids, random_state=random_state)
        if noise_ceiling is None:
            noise_ceiling = ceiling
    design = make_stimulus_design(features, responses, layers=layers, spillover=spillover)
    nuisance = design.nuisance(baseline) if baseline is not None else None
    prov = {"group_members": subjects} if subjects is not None else {}
    prov.update(provenance or {})
    all_settings = {"data": "stimuli", "zscore": design.settings["zscore"],
                    "noise_ceiling": ("split halves of subjects (Spearman-Brown)" if subjects and len(subjects) >= 2
                                      and noise_ceiling is not None else None)}
    if "spillover" in design.settings:  # what the spill-over columns are
        all_settings["spillover"] = design.settings["spillover"]
    all_settings.update(settings or {})
    return fit_encoding(design, nuisance=nuisance, noise_ceiling=noise_ceiling, alphas=alphas, cv=cv,
                        inner_cv=inner_cv, backend=backend, dtype=dtype, n_targets_batch=n_targets_batch,
                        n_permutations=n_permutations, permutation=permutation, compare=compare,
                        compare_alpha=compare_alpha, unique=unique, unique_ratios=unique_ratios,
                        unique_score=unique_score, random_state=random_state, baseline_models=True,
                        save_weights=save_weights, scoring=scoring, provenance=prov,
                        settings=all_settings, verbose=verbose, memory=memory)
