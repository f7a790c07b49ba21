"""Stimulus-level encoding: per-stimulus features and responses, without time.

:func:`fit_stimuli` takes :class:`~neuroenc.features.stimuli.StimulusFeatures` (one row per
stimulus and layer) and one response per stimulus (:class:`~neuroenc.stimuli.StimulusResponses`,
or one per subject), matches them by stimulus id, and fits them with the story path's
machinery: :func:`~neuroenc.encoding.fit_encoding` (the :class:`~neuroenc.encoding.LayerSweep`,
its layer comparisons, ``pvalues_best``, FDR), the same results file, mapping and report. What
differs is only what time used to give:

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

Features (every layer's columns) and responses are z-scored over all stimuli before the fit, as
the story path z-scores per run; the ridge has no intercept (as himalaya's default).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._settings import Choices, constraints_of, declare
from .._validation import _preview
from .cv import CV_OBJECTS, STIMULUS_CV_PATTERNS
from .designs import LayerDesigns
from .sweep import LayerSweep

logger = logging.getLogger(__name__)

#: The fewest stimuli a fit takes: two folds of two held-out stimuli (a fold's r needs two).
MIN_STIMULI = 4

#: Folds of ``cv="auto"`` for stimuli.
DEFAULT_STIMULUS_FOLDS = 5


def zscore_columns(a: np.ndarray) -> np.ndarray:
    """Columns with zero mean and unit variance over rows; constant columns become 0."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    c = a - a.mean(0)
    sd = c.std(0)
    return c / np.where(sd > 0, sd, 1.0)


def stimulus_cv(cv: Any, groups: Sequence[str] | None) -> Any:
    """``cv="auto"`` for stimuli: ``group-kfold:K`` when there are at least 2 groups (K = 5, or
    the number of groups when fewer), else ``kfold:5``; anything else as given."""
    if not (isinstance(cv, str) and cv == "auto"):
        return cv
    n_groups = len(set(groups)) if groups is not None else 0
    if n_groups >= 2:
        return f"group-kfold:{min(DEFAULT_STIMULUS_FOLDS, n_groups)}"
    return f"kfold:{DEFAULT_STIMULUS_FOLDS}"


def stimulus_designs(features: Any, layers: Sequence[int] | None = None) -> LayerDesigns:
    """The designs of a stimulus fit: each layer's features z-scored over stimuli (loaded one
    layer at a time), with the stimuli's groups."""
    from ..features.featureset import extraction_provenance

    layers = features.layer_indices if layers is None else [int(x) for x in layers]
    info = {"kind": "stimuli", "design": {"zscore": "over all stimuli", "pooling": features.attrs.get("pooling"),
                                         "context": features.attrs.get("context"),
                                         "features": extraction_provenance(features)}}
    return LayerDesigns(layers, lambda layer: zscore_columns(features[layer]), features.n_stimuli,
                        None if features.groups is None else np.asarray(features.groups), info)


def group_responses(per_subject: Mapping[str, Any], ids: Sequence[str], n_splits: int = 100,
                    random_state: Any = 0) -> tuple[Any, np.ndarray | None]:
    """The mean response of several subjects and its split-half noise ceiling.

    Each subject's responses are matched to ``ids`` (an error lists the ids missing on either
    side) and z-scored per target over stimuli; the mean over subjects is the fitted response.
    Its ceiling is :func:`~neuroenc.encoding.noise_ceiling_split_half` of the subjects (random
    halves, Spearman-Brown corrected), with at least 2 subjects.

    Returns
    -------
    mean : StimulusResponses
        ``subject="group"``, ``info["subjects"]`` the subjects averaged.
    ceiling : ndarray, shape (n_targets,) | None
    """
    from ..stimuli.responses import StimulusResponses
    from .stats import noise_ceiling_split_half

    subjects = list(per_subject)
    matched = [per_subject[s].match(ids) for s in subjects]
    names = matched[0].names
    for s, m in zip(subjects, matched):
        if m.names != names:
            raise ValueError(
                f"subject {s!r} has targets {_preview(m.names)} but subject {subjects[0]!r} has "
                f"{_preview(names)}; every subject needs the same response columns."
            )
    stack = np.stack([zscore_columns(m.data) for m in matched])
    ceiling = noise_ceiling_split_half(stack, n_splits=n_splits, random_state=random_state) \
        if len(subjects) >= 2 else None
    info = {"subjects": subjects, "source": [m.info.get("source") for m in matched],
            "sha256": [m.info.get("sha256") for m in matched]}
    return StimulusResponses(stack.mean(0), list(ids), names, "group", info), ceiling


def baseline_design(baseline: Any, n: int) -> tuple[np.ndarray, list[str]]:
    """Baseline regressors (a dict name -> (n,) or (n, k) values, or a DataFrame), z-scored."""
    if isinstance(baseline, pd.DataFrame):
        baseline = {c: baseline[c].to_numpy() for c in baseline.columns}
    cols, names = [], []
    for name, values in baseline.items():
        arr = np.asarray(values, dtype=np.float64)
        arr = arr[:, None] if arr.ndim == 1 else arr
        if arr.shape[0] != n:
            raise ValueError(f"baseline regressor {name!r} has {arr.shape[0]} rows for {n} stimuli.")
        if not np.isfinite(arr).all():
            bad = np.flatnonzero(~np.isfinite(arr).all(1))
            raise ValueError(f"baseline regressor {name!r} has NaN or inf at stimuli {_preview(bad)}; "
                             "fill them in or drop the regressor.")
        cols.append(zscore_columns(arr))
        names += [str(name)] if arr.shape[1] == 1 else [f"{name}_{j}" for j in range(arr.shape[1])]
    return np.hstack(cols), names


@declare({
    "cv": [Choices("auto"), *STIMULUS_CV_PATTERNS, *CV_OBJECTS],
    **{name: constraints_of(LayerSweep)[name]
       for name in ("alphas", "inner_cv", "n_permutations", "permutation", "random_state", "backend", "dtype",
                    "n_targets_batch", "compare", "compare_alpha")},
})
def fit_stimuli(features: Any, responses: Any, *, cv: Any = "auto", baseline: Any = None,
                noise_ceiling: Any = None, alphas: Any = None, inner_cv: int = 5, n_permutations: int = 1000,
                permutation: str = "auto", random_state: int = 0, backend: str = "auto", dtype: str = "auto",
                n_targets_batch: int | None = None, compare: bool | str = "auto", compare_alpha: float = 0.05,
                layers: Sequence[int] | None = None, provenance: dict | None = None,
                settings: dict | None = None, verbose: bool | str | int | None = None):
    """Fit a ridge model per layer to stimulus-level responses (see the module docstring).

    Parameters
    ----------
    features : StimulusFeatures
        One row per stimulus (ids, texts, groups).
    responses : StimulusResponses | dict of str -> StimulusResponses
        One response set, or one per subject (then their mean is fitted, with a split-half
        noise ceiling unless ``noise_ceiling`` is given). Matched to the features by id.
    cv : "auto" | "group-kfold:K" | "kfold:K" | splitter | list of (train, test)
        Splits by stimulus: ``"group-kfold:K"``, whole groups held out; ``"kfold:K"``, the
        stimuli shuffled into K folds (seeded by ``random_state``); ``"auto"``,
        ``group-kfold:5`` when the stimuli have groups, else ``kfold:5``. A scikit-learn
        splitter or explicit splits are used as given.
    baseline : dict of str -> array | DataFrame | None
        Baseline regressors per stimulus (in the features' order; e.g. length, frequency,
        surprisal), fitted with the same folds, penalties and permutations into
        ``results.baseline``.
    noise_ceiling : array (n_targets,) | None
    alphas, inner_cv, n_permutations, permutation, random_state, backend, dtype, n_targets_batch,
    compare, compare_alpha : see :func:`~neuroenc.encoding.fit_encoding`
    layers : sequence of int | None
        Fit only these layers (default: all in the features).
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

    ids = features.ids
    subjects = None
    if isinstance(responses, Mapping):
        subjects = list(responses)
        matched, ceiling = group_responses(responses, ids, random_state=random_state)
        if noise_ceiling is None:
            noise_ceiling = ceiling
    else:
        matched = responses.match(ids)
    if len(ids) < MIN_STIMULI:
        raise ValueError(
            f"the stimulus-level features {features.attrs.get('path') or features.name!r} hold {len(ids)} "
            f"stimulus(es) ({_preview(ids)}); a cross-validated fit needs at least {MIN_STIMULI} (two folds, "
            "each holding out at least 2 stimuli for its r). Extract features of more stimuli."
        )
    Y = zscore_columns(matched.data)
    groups = features.groups
    cv = stimulus_cv(cv, groups)
    designs = stimulus_designs(features, layers)
    nuisance = None
    names: list[str] = []
    if baseline is not None:
        N, names = baseline_design(baseline, len(ids))
        nuisance = {n: N[:, [j]] for j, n in enumerate(names)}
    prov = {
        "model": features.model, "n_model_layers": features.n_model_layers, "stimuli": features.name,
        "n_stimuli": len(ids), "groups": sorted(set(groups)) if groups is not None else None,
        "features_file": features.attrs.get("path"), "stimuli_sha256": features.attrs.get("stimuli_sha256"),
        "responses_files": matched.info.get("source"), "responses_sha256": matched.info.get("sha256"),
        "context": features.attrs.get("context"), "pooling": features.attrs.get("pooling"),
    }
    if subjects is not None:
        prov["subjects_averaged"] = subjects
    for key in ("mask", "affine", "shape"):
        if key in matched.info:
            prov[key] = matched.info[key]
    prov.update(provenance or {})
    all_settings = {"data": "stimuli", "zscore": "features and responses z-scored over all stimuli",
                    "noise_ceiling": ("split halves of subjects (Spearman-Brown)" if subjects and len(subjects) >= 2
                                      and noise_ceiling is not None else None)}
    all_settings.update(settings or {})
    return fit_encoding(designs, Y, groups=None if groups is None else np.asarray(groups),
                        targets=matched.names, nuisance=nuisance, noise_ceiling=noise_ceiling, alphas=alphas,
                        cv=cv, inner_cv=inner_cv, backend=backend, dtype=dtype, n_targets_batch=n_targets_batch,
                        n_permutations=n_permutations, permutation=permutation, compare=compare,
                        compare_alpha=compare_alpha, random_state=random_state, provenance=prov,
                        settings=all_settings, verbose=verbose)


def baseline_scores(sets: Mapping[str, Any], Y: np.ndarray, groups: Any, *, cv: Any, alphas: Any = None,
                    inner_cv: int = 5, n_permutations: int = 0, random_state: int = 0,
                    target_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Held-out scores of several baseline models (each a set of regressors), one row per
    (model, target): ``r`` (mean over folds), ``r_pooled``, ``p`` (with permutations).

    Every model is fitted with the same folds, inner CV, penalties and seed as the layers (the
    same :class:`~neuroenc.encoding.LayerSweep` settings), so their r compare with the layers'.
    """
    from .sweep import LayerSweep

    Y = zscore_columns(Y)
    names = list(target_names) if target_names is not None else [str(i) for i in range(Y.shape[1])]
    rows = []
    for label, regressors in sets.items():
        N, _ = baseline_design(regressors, Y.shape[0])
        sweep = LayerSweep(alphas=alphas, cv=cv, inner_cv=inner_cv, n_permutations=n_permutations,
                           permutation="refit", refit=False, compare=False, random_state=random_state,
                           backend="numpy").fit(N, Y, groups=groups)
        for j, target in enumerate(names):
            rows.append({"model": label, "regressors": ", ".join(regressors), "target": target,
                         "r": sweep.r_[0, j], "r_pooled": sweep.r_pooled_[0, j],
                         "p": sweep.pvalues_[0, j] if sweep.pvalues_ is not None else np.nan})
    return pd.DataFrame(rows)
