"""One call from aligned designs and responses to an :class:`EncodingResults`.

:func:`fit_encoding` runs the layer sweep (nested CV), the permutation tests, the FDR correction
across targets, an optional baseline model of nuisance regressors (e.g. word rate + sound
power) under the same folds (the same outer splits and gap), and records settings, provenance
and warnings. Every number it computes for a target depends on that target only (the permutation
draws depend on the seed, the settings and the folds, never on the other targets or layers), so
target chunks and layer subsets can be fitted apart and merged exactly with
:func:`neuroenc.encoding.merge.merge_results` -- except ``pvalues_best``, the p-value corrected for
choosing the best layer, which needs every layer's null in one fit (a merge over layers drops it).
"""
from __future__ import annotations

import logging
import platform
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._settings import Choices, constraints_of, declare
from .._threads import threads_provenance
from .brainscore_linear import SCORINGS, add_brainscore, check_stimulus_design
from .designs import LayerDesigns, as_layer_designs
from .results import EncodingResults
from .sensors import info_for_targets, info_of_design
from .sweep import LayerSweep, check_responses, constant_targets

logger = logging.getLogger(__name__)


def versions() -> dict[str, str]:
    """Versions of the packages that shape the numbers."""
    import himalaya
    import scipy
    import sklearn

    import neuroenc

    out = {"neuroenc": neuroenc.__version__, "himalaya": himalaya.__version__, "numpy": np.__version__,
           "scipy": scipy.__version__, "scikit-learn": sklearn.__version__, "python": platform.python_version()}
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def _nuisance_design(nuisance: Any, n: int) -> tuple[np.ndarray, list[str]]:
    if isinstance(nuisance, Mapping):
        names = [str(k) for k in nuisance]
        cols = [np.asarray(v, dtype=np.float64).reshape(n, -1) for v in nuisance.values()]
        return np.hstack(cols), names
    arr = np.asarray(nuisance, dtype=np.float64)
    arr = arr[:, None] if arr.ndim == 1 else arr
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ValueError(f"nuisance has shape {arr.shape}; expected ({n}, n_regressors) on the response grid.")
    return arr, [f"nuisance_{i}" for i in range(arr.shape[1])]


@declare({**{name: c for name, c in constraints_of(LayerSweep).items() if name != "refit"},
          "save_weights": ["boolean"], "scoring": [Choices(*SCORINGS)], "trf": ["boolean"]})
def fit_encoding(designs: Any, Y: Any = None, groups: Any = None, *, targets: Sequence[str] | None = None,
                 nuisance: Any = None, noise_ceiling: Any = None, alphas: Any = None, cv: Any = "auto",
                 n_blocks: int = 5, gap: int | None = None, inner_cv: Any = 5, form: str = "auto",
                 backend: str = "auto", dtype: str = "auto", n_targets_batch: int | None = None,
                 n_permutations: int = 1000, permutation: str = "auto", block_size: Any = "auto",
                 compare: bool | str = "auto", compare_alpha: float = 0.05, unique: bool = True,
                 unique_ratios: Any = None, unique_score: str = "squared-r", random_state: int = 0,
                 baseline_models: bool = False, save_weights: bool = False, scoring: str = "ridge",
                 trf: bool = False, provenance: dict | None = None,
                 settings: dict | None = None, verbose: bool | str | int | None = None,
                 spectra: Any = None, memory: int | str | None = None) -> EncodingResults:
    """Fit a ridge model per layer and return held-out scores with statistics.

    Parameters
    ----------
    designs : LayerDesigns | list/dict of arrays | 3-D array | design object
        Per-layer designs on the response grid (z-scored, delayed); see
        :func:`neuroenc.encoding.designs.as_layer_designs`.
    Y : array-like, shape (n_samples, n_targets) | None
        Responses (z-scored per run); default the design's ``Y``. NaN/inf raise an error;
        constant targets are kept, with NaN scores and a warning recorded in the results.
    groups : array-like, shape (n_samples,) | None
        Run label per sample (default: the designs' ``groups``).
    targets : sequence of str | None
        Target names (ROIs, voxels, sensors); default the design's ``target_names`` when it
        has as many, else ``"0"``, ``"1"``...
    nuisance : array (n_samples, k) | dict of str -> array | None
        Regressors of a baseline model (e.g. word rate and sound power, as aligned to the grid);
        fitted with the same folds (the main fit's gap), penalties and permutation draws; its
        scores go to ``results.baseline``.
    noise_ceiling : array (n_targets,) | None
        A ceiling on r per target (see :mod:`neuroenc.encoding.stats`).
    alphas, cv, n_blocks, gap, inner_cv, form, backend, dtype, n_targets_batch : see :class:`LayerSweep`
    n_permutations : int
        Permutations for p-values (0: no p-values); the default, 1000, and that of
        ``random_state``, 0, are :class:`LayerSweep`'s.
    permutation : {"auto", "refit", "circular", "block"}
        ``"refit"``: shift each run's response circularly and refit the held-out predictions
        (calibrated); ``"circular"`` / ``"block"``: shift each test fold against fixed predictions
        (cheaper, p-values too small); ``"auto"``: refit unless too costly (see
        :class:`LayerSweep`).
    block_size : int | sequence of int | "auto"
        Permutation block / smallest shift in samples, for all folds or one per fold; "auto":
        the CV gap, clipped to a quarter of each test fold (see :class:`LayerSweep`).
    compare, compare_alpha : str | bool, float
        Compare every layer with each target's best layer from the permutation draws, and the
        level of the best-layer set (see :class:`LayerSweep` and
        :mod:`neuroenc.encoding.compare`).
    unique, unique_ratios, unique_score : bool, sequence of float | None, str
        With a ``nuisance``, also fit per layer the joint banded ridge of [baseline + layer] (a
        penalty per band, the same folds) and store each layer's unique contribution beyond the
        baseline in ``results.unique`` (see :class:`LayerSweep` and
        :mod:`neuroenc.encoding.contribution`); ``unique_ratios``: the grid of the baseline
        band's relative weight; ``unique_score``: ``"squared-r"`` (r |r|, default) or ``"R2"``.
    random_state : int
        Seed of the permutation draws (the same draws for every layer and target).
    baseline_models : bool
        With two or more named ``nuisance`` regressors (a dict), also fit each alone, with the
        same folds, penalties and draws: ``results.provenance["baseline_models"]`` holds one
        row per (model, target) with ``r``, ``r_pooled`` and ``p`` (the last model, ``"all
        baseline regressors"``, is ``results.baseline``).
    save_weights : bool
        Keep the encoders: every layer refitted on all rows, each target with its penalty chosen
        by CV over the outer splits (as :class:`LayerSweep`'s refit), stored as primal weights
        or, where smaller, dual coefficients with the training design, with what turns new
        stimuli into the same design (``results.weights``, :mod:`neuroenc.encoding.weights`);
        :meth:`EncodingResults.predict` and ``neuroenc predict`` use them. Off by default:
        they cost one more fit per layer and room in the results file.
    scoring : {"ridge", "brainscore-linear"}
        ``"brainscore-linear"`` (stimulus-level data only): also Brain-Score language's metric
        (unpenalised linear regression on the features as extracted, Pearson r on their 10
        shuffled 90/10 splits; :mod:`neuroenc.encoding.brainscore_linear`), next to the ridge
        scores: ``results.r_brainscore`` per target, ``results.brainscore_scores()`` per layer,
        ceiling-normalised when there is a noise ceiling.
    trf : bool
        MEG/EEG designs only: also refit each layer on all samples at its chosen penalties and
        keep the TRF weights (channels × features × lags) in the results
        (:func:`~neuroenc.encoding.sensors.add_trf`, :meth:`EncodingResults.trf`).
    provenance, settings : dict | None
        Extra entries for the results (features file hash, data set, subject, model...).
    verbose : bool | str | int | None
        Progress bar over layers and permutations (shown at ``INFO`` and below). mne's convention
        (:func:`neuroenc._logging.verbose_level`): None follows the ``neuroenc`` logger's level,
        True is ``INFO``, False ``WARNING``, or a level name or int.
    spectra : SpectrumStore | None
        Keeps each layer's Gram and eigendecompositions for later fits of the same design (the
        other subjects of a story; see :meth:`LayerSweep.fit`). The results are the same.
    memory : int | str | None
        A memory budget for the fit (bytes, or a size such as ``"4GB"``): targets and refit-null
        draws are batched to keep under it, with the same results (see :class:`LayerSweep`).

    Returns
    -------
    results : EncodingResults
        ``r``, ``r2``, ``pvalues`` (against chance; q-values derived, BH across targets per
        layer), ``alphas``, fold scores, ``pvalues_best`` (per target: the p-value of the best
        layer's r against chance, corrected for choosing among the layers by the maximum over
        layers of the null), ``comparison`` (every layer against the best layer: tested against
        the other layers), ``baseline`` (``r``, ``r2``, ``pvalues``, ``alphas``) when
        ``nuisance`` is given, ``unique`` (:class:`~neuroenc.encoding.contribution.UniqueContribution`:
        each layer's held-out ``delta_r2`` and ``delta_r`` beyond the baseline, their p-values,
        intervals and best-layer set) when ``nuisance`` is given and ``unique``,
        ``noise_ceiling``, settings, provenance and warnings (including
        layers whose penalties pile up at an edge of the grid).
    """
    started = time.time()
    source = designs
    Y_given = Y
    if scoring != "ridge" and getattr(source, "rows", None) != "stimuli":
        check_stimulus_design(source)
    if trf and getattr(source, "kind", None) != "meg":
        raise ValueError(f"trf=True (encoding.trf, --trf) needs a time-lagged MEG/EEG design from make_meg_design; "
                         f"this design is {type(source).__name__} (kind {getattr(source, 'kind', None)!r}): "
                         "drop trf, or fit MEG/EEG data.")
    if Y is None:
        if getattr(source, "Y", None) is None:
            raise ValueError("Give the responses Y (or a neuroenc.align.Design, which carries them).")
        Y = source.Y
        if targets is None:
            targets = getattr(source, "target_names", None)
    sensor_info = info_of_design(designs)  # MEG/EEG read with mne: the results keep the Info
    designs = as_layer_designs(designs)
    names = getattr(source, "target_names", None)
    if targets is None and names is not None and np.ndim(Y) == 2 and np.shape(Y)[1] == len(names):
        targets = names
    Y = check_responses(Y, names=targets)
    n, t = Y.shape
    designs = designs.with_n_samples(n)
    targets = [str(i) for i in range(t)] if targets is None else [str(x) for x in targets]
    if len(targets) != t:
        raise ValueError(f"{len(targets)} target names for {t} targets; give one name per column.")
    if groups is None:
        groups = designs.groups
    messages: list[str] = list(getattr(source, "warnings", []) or [])
    const = constant_targets(Y)
    if const.size:
        msg = (f"{const.size} constant target(s) {[targets[i] for i in const[:5]]}"
               f"{'...' if const.size > 5 else ''}: their scores are NaN.")
        messages.append(msg)
        logger.warning(msg)
    common = dict(alphas=alphas, cv=cv, n_blocks=n_blocks, gap=gap, inner_cv=inner_cv, form=form,
                  backend=backend, dtype=dtype, n_targets_batch=n_targets_batch,
                  n_permutations=n_permutations, permutation=permutation, refit=False,
                  compare=compare, compare_alpha=compare_alpha, unique=unique, unique_ratios=unique_ratios,
                  unique_score=unique_score, random_state=random_state, verbose=verbose, memory=memory)
    if isinstance(block_size, str) or np.ndim(block_size) == 0:
        sweep_block = block_size
    else:
        sweep_block = [int(b) for b in block_size]
    N = baseline_names = None
    if nuisance is not None:
        N, baseline_names = _nuisance_design(nuisance, n)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*constant.*", category=UserWarning)
        sweep = LayerSweep(block_size=sweep_block, **common).fit(designs, Y, groups=groups, nuisance=N,
                                                                 spectra=spectra)
    if sweep.unique_ is not None:
        sweep.unique_.baseline_names = list(baseline_names)
    if n_permutations and permutation == "auto" and sweep.permutation_ != "refit":
        messages.append(
            "The permutation null was too costly to refit for this many targets and samples, so the "
            "p-values shift each test fold against fixed predictions ('circular'): they are too small "
            "(the folds' scores are correlated through their training data). Fit with "
            "permutation='refit' (and fewer permutations) for calibrated p-values."
        )
    edges = sweep.alpha_edges()
    for message in edges:
        logger.warning(message)
    messages.extend(edges)
    baseline: dict[str, np.ndarray] = {}
    baseline_names = baseline_names or []
    model_rows: list[dict[str, Any]] = []
    if nuisance is not None:
        # the main fit's rows, CV, gap and permutation scheme: the same outer and inner splits and draws
        same = dict(common, cv=sweep.cv_, gap=sweep.gap_, permutation=sweep.permutation_ or permutation,
                    compare=False, unique=False)

        shared: dict = {}  # the baseline models' refit nulls share their draws' responses (the same Y and draws)

        def fit_baseline(N: np.ndarray) -> LayerSweep:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*constant.*", category=UserWarning)
                return LayerSweep(block_size=sweep_block, **same).fit(
                    LayerDesigns([0], lambda _: N, n, None, rows=designs.rows), Y, groups=groups, shared=shared)

        base = fit_baseline(N)
        baseline = {"r": base.r_[0], "r2": base.r2_[0], "alphas": base.alphas_[0]}
        if base.pvalues_ is not None:
            baseline["pvalues"] = base.pvalues_[0]
        if baseline_models and isinstance(nuisance, Mapping) and len(nuisance) >= 2:  # each alone too
            fits = {name: fit_baseline(_nuisance_design({name: nuisance[name]}, n)[0]) for name in nuisance}
            fits["all baseline regressors"] = base
            for label, fit in fits.items():
                regressors = list(nuisance) if fit is base else [label]
                model_rows += [{"model": label, "regressors": ", ".join(map(str, regressors)), "target": name,
                                     "r": float(fit.r_[0, j]), "r_pooled": float(fit.r_pooled_[0, j]),
                                     "p": float(fit.pvalues_[0, j]) if fit.pvalues_ is not None else float("nan")}
                                    for j, name in enumerate(targets)]
    if noise_ceiling is not None:
        noise_ceiling = np.asarray(noise_ceiling, dtype=np.float64).reshape(-1)
        if noise_ceiling.size != t:
            raise ValueError(f"noise_ceiling has {noise_ceiling.size} values for {t} targets.")
    all_settings = {"n_samples": n, "baseline_regressors": baseline_names, "block_size": sweep_block}
    all_settings.update(settings or {})
    prov = {"versions": versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "fit_seconds": round(time.time() - started, 3), "flops": sweep.flops_, "threads": threads_provenance()}
    prov.update(designs.info)
    if model_rows:
        prov["baseline_models"] = model_rows
    prov.update(provenance or {})
    weights = None
    if save_weights:
        from .weights import fit_weights

        weights = fit_weights(sweep, designs, Y, source=source, targets=targets)
    results = sweep.to_results(targets=targets, baseline=baseline, noise_ceiling=noise_ceiling,
                               settings=all_settings, provenance=prov, warnings=messages, weights=weights)
    results.sensor_info = info_for_targets(sensor_info, results.targets)
    if scoring == "brainscore-linear":
        add_brainscore(results, source, Y_given)
    if trf:
        from .sensors import add_trf

        add_trf(results, source, Y=Y)
    return results
