"""The :class:`LayerSweep`: one ridge model per layer, per-target penalties, held-out scores."""
from __future__ import annotations

import logging
import threading
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
from scipy.sparse import issparse
from sklearn.base import BaseEstimator, MultiOutputMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data
from tqdm.auto import tqdm

from .._logging import show_progress
from .._settings import VERBOSE, Choices, Interval, ListOf, Logspace, Pattern, check_params
from .._validation import _check_option, _check_random_state, _preview
from . import _joint, _ridge
from ._joint import DEFAULT_RATIOS, UNIQUE_SCORES, JointBand
from .backend import BACKENDS, DTYPES, resolve_backend, resolve_compute_dtype, to_numpy, use_backend
from .best import best_index
from .compare import centred_null, compare_layers
from .contribution import UNIQUE_SOURCES, UniqueContribution, unique_contribution
from .cv import (
    CV_NAMES,
    CV_OBJECTS,
    DEFAULT_GAP,
    HOLDOUT_PATTERN,
    STIMULUS_CV_PATTERNS,
    check_groups,
    inner_splits,
    int_seed,
    make_cv,
    parse_stimulus_cv,
    resolve_cv,
)
from .designs import LayerDesigns, as_layer_designs, gap_for
from .memory import MEMORY_PATTERN, fit_budget
from .stats import (
    PERMUTATIONS,
    REFIT_NULL_BUDGET,
    PermutedDraws,
    ShiftedDraws,
    null_pvalues,
    permutation_null,
    run_indices,
    run_shifts,
)

logger = logging.getLogger(__name__)

#: Largest held-out predictions (bytes: samples x layers x targets, float64) kept for the layer
#: comparisons' refits on signal + shifted residuals; above it they use the permutation null's draws.
COMPARE_PREDICTION_BYTES = 2**30
#: What each score of the results is (``settings["scores"]``).
SCORES = {
    "r": "held-out Pearson r, computed within each outer fold, mean over folds (/scores/r)",
    "r_pooled": "held-out Pearson r of the predictions of all outer folds pooled (/scores/r_pooled)",
    "r2": "held-out R², computed within each outer fold, mean over folds (/scores/r2)",
}
#: What the layer comparisons of a stimulus-level fit draw from (their ``source``): the refit
#: null's draws, stimuli permuted within groups (if any) and the model refitted.
STIMULUS_NULL_SOURCE = "permuted stimuli (refit)"
#: What the layer comparisons of a stimulus-level fit draw from with the residual draws.
STIMULUS_RESIDUAL_SOURCE = "residual (permuted stimuli)"
#: Ridge penalties used when none are given: 10^-1 ... 10^7 (17 values).
DEFAULT_ALPHAS = tuple(np.logspace(-1, 7, 17).tolist())
#: The circular-shift draws made last (:func:`shifted_draws`), for the next fits of the same runs.
_DRAWS: dict = {}
_DRAWS_KEPT = 4
_DRAWS_LOCK = threading.Lock()


def shifted_draws(runs: list[np.ndarray], n_permutations: int, seed: int, n_samples: int) -> ShiftedDraws:
    """``ShiftedDraws(runs, run_shifts(runs, n_permutations, seed), n_samples)``, the same draws,
    kept for the next fits with the same runs and seed (the baseline models of a subject, the
    other subjects of the story): the last few are kept, with their sample orders read-only."""
    if not isinstance(seed, (int, np.integer)):
        return ShiftedDraws(runs, run_shifts(runs, n_permutations, seed), n_samples)
    key = (tuple(np.asarray(r, dtype=np.int64).tobytes() for r in runs), int(n_permutations), int(seed),
           int(n_samples))
    with _DRAWS_LOCK:
        draws = _DRAWS.pop(key, None)
    if draws is None:
        draws = ShiftedDraws(runs, run_shifts(runs, n_permutations, seed), n_samples)
        for idx in (draws._all, draws.shifts):
            if idx is not None:
                idx.setflags(write=False)
    with _DRAWS_LOCK:
        _DRAWS[key] = draws  # the most recent last
        while len(_DRAWS) > _DRAWS_KEPT:
            _DRAWS.pop(next(iter(_DRAWS)))
    return draws


def _derived_seed(seed: int, which: int = 1) -> int:
    """Another seed from ``seed``, for draws that must differ from the permutation null's
    (``which``: 1 for the layer comparisons, 2 for the unique-contribution tests)."""
    return int(np.random.default_rng([seed, which]).integers(2**62))


def check_responses(Y: Any, n_samples: int | None = None, names: Any = None) -> np.ndarray:
    """Responses as a finite float 2-D array; NaN/inf raise an error naming targets and rows."""
    Y = np.asarray(Y)
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2:
        raise ValueError(f"Responses must be 2-D (n_samples, n_targets), got shape {Y.shape}.")
    if not np.issubdtype(Y.dtype, np.floating):
        Y = Y.astype(np.float64)
    if n_samples is not None and Y.shape[0] != n_samples:
        raise ValueError(
            f"The responses have {Y.shape[0]} samples but the designs have {n_samples} rows; "
            "align features and responses on the same grid (and the same runs) first."
        )
    bad = ~np.isfinite(Y)
    if bad.any():
        cols = np.flatnonzero(bad.any(0))
        label = _preview([names[c] for c in cols]) if names is not None else _preview(cols)
        raise ValueError(
            f"The responses have NaN or inf in {cols.size} target(s) {label} "
            f"(rows {_preview(np.flatnonzero(bad.any(1)))}); drop those targets, or interpolate "
            "the missing samples, before fitting."
        )
    return Y


def constant_targets(Y: np.ndarray) -> np.ndarray:
    """Indices of targets that do not vary over samples."""
    return np.flatnonzero(np.ptp(Y, axis=0) == 0)


#: The cheap null of each kind of rows, used by ``permutation="auto"`` when a refit null costs
#: too much: what it does, for the warning.
_CHEAP_NULL = {
    "samples": ("circular", "shifts each test fold against fixed predictions ('circular')"),
    "stimuli": ("block", "shuffles each test fold's stimuli against fixed predictions"),
}


def resolve_permutation(permutation: str, n_samples: int, n_features: int, n_targets: int, n_layers: int,
                        n_permutations: int, n_folds: int, n_alphas: int | None = None,
                        rows: str = "samples") -> str:
    """The permutation scheme to use: ``permutation``, with ``"auto"`` resolved by cost.

    ``"auto"`` is ``"refit"`` unless the refit null of ``n_layers`` layers of ``n_features``
    columns and ``n_targets`` targets would cost more than
    :data:`~neuroenc.encoding.stats.REFIT_NULL_BUDGET` floating-point operations
    (:func:`~neuroenc.encoding._ridge.refit_null_flops`); then, with a warning, the cheap null
    of the rows: ``"circular"`` for samples in time, ``"block"`` (each test fold's stimuli
    shuffled) for stimuli. Fits cut into target chunks or layer subsets should resolve it
    once, for the whole fit, and pass the result, so that every part uses the same scheme.
    """
    _check_option("permutation", permutation, PERMUTATIONS)
    if permutation != "auto":
        return permutation
    flops = _ridge.refit_null_flops(n_samples, n_features, n_targets, n_permutations, n_folds, n_layers,
                                    n_alphas)
    if flops <= REFIT_NULL_BUDGET:
        return "refit"
    cheap, what = _CHEAP_NULL[rows]
    warnings.warn(
        f"permutation='auto': a refit permutation null would cost about {flops:.1e} floating-point "
        f"operations (more than {REFIT_NULL_BUDGET:.0e}), so the null {what}, which ignores the dependence "
        "between the folds' scores and gives p-values that are too small. Pass permutation='refit' (and "
        "fewer n_permutations, or fewer targets) for calibrated p-values.",
        UserWarning, stacklevel=3,
    )
    return cheap


class _DefaultBatches:
    """The batches of a fit without a memory budget: what the solver chooses by default."""

    refit_batch_bytes = _ridge.REFIT_BATCH_BYTES
    resolve = True

    def __init__(self, n_targets_batch: int | None) -> None:
        self.n_targets_batch = n_targets_batch


class LayerSweep(MultiOutputMixin, RegressorMixin, BaseEstimator):
    """Ridge encoding models of every layer, with per-target penalties chosen by nested CV.

    For every layer and every outer fold, each target's penalty is chosen by inner CV on the
    outer training part only (himalaya's criterion), the model is refit on the outer training
    part and scored on the held-out part (Pearson r and R²). The kernel form (``X X^T``) is
    used when features outnumber samples, the primal form (``X^T X``) otherwise; one
    eigendecomposition per split serves every penalty and target, and the design of each layer
    is loaded once. Targets are processed in batches, so 100k voxels fit in memory.

    What the rows are decides the CV, the permutation null and the layer comparisons' residual
    draws: the designs say (:attr:`~neuroenc.encoding.LayerDesigns.rows`, e.g. ``"stimuli"`` for
    a :class:`~neuroenc.align.stimuli.StimulusDesign`); plain arrays are samples in time unless
    ``cv`` names a stimulus scheme (``kfold:K``, ``group-kfold:K``). Samples: runs or blocks
    with a gap, circular shifts; stimuli: k-fold or group-k-fold without a gap, permutations
    within groups (:func:`~neuroenc.encoding.cv.resolve_cv`).

    Parameters
    ----------
    alphas : sequence of float | None
        Ridge penalties (default :data:`DEFAULT_ALPHAS`, 10^-1 ... 10^7).
    cv : {"auto", "runs", "blocks"} | "holdout:RUN" | "kfold:K" | "group-kfold:K" | int | splitter | list
        Outer CV (see :func:`neuroenc.encoding.make_cv`): leave-one-run-out with several runs
        (``groups``), else ``n_blocks`` contiguous blocks with a ``gap``. ``"holdout:RUN"``:
        a fixed train/test protocol, trained on every other run and tested once on ``RUN``
        (the LeBel 2023 protocol is ``holdout:wheretheressmoke``), penalties from inner CV over
        the training runs. For stimulus-level
        data (no time): ``"group-kfold:K"`` holds out whole groups (``groups``: passages,
        topics), ``"kfold:K"`` shuffles the stimuli (seeded by ``random_state``); there is no
        gap, the inner splits follow the same scheme inside each outer training set, and the
        permutation null permutes stimuli (within groups when there are groups) instead of
        shifting runs in time.
    n_blocks : int
        Blocks of a single run.
    gap : int | None
        Samples dropped on each side of a test block (default: when the designs come from a
        :class:`neuroenc.align.Design`, how far a design row reaches into the stimulus + 1: the
        longest delay, the HRF kernel and the resampling half-window, see
        :func:`~neuroenc.encoding.designs.gap_for`; else 5).
    inner_cv : int | None
        Inner folds to choose penalties (whole runs or blocks, inside the outer training part).
    form : {"auto", "kernel", "primal"}
        Ridge form (``"auto"``: kernel when features outnumber samples).
    backend : {"auto", "numpy", "torch", "torch_cuda"}
        himalaya backend for the fit (``"auto"``: CUDA when available); restored afterwards.
    dtype : {"auto", "float32", "float64"}
        Working precision (``"auto"``: float32 on a GPU, the input's on CPU).
    n_targets_batch : int | None
        Targets per batch (default: from a 512 MiB budget for the predictions).
    memory : int | str | None
        A memory budget for the fit: bytes, or a size such as ``"4GB"`` or ``"512MiB"``. The
        targets (and the refit null's draws) are then processed in batches small enough that the
        fit's own arrays stay under it (:func:`~neuroenc.encoding.memory.fit_budget`; the inputs
        are not counted), with the same results; a budget too small for one target is an error
        that says how much is needed. None: the default batches.
    n_permutations : int
        Permutations for p-values of r (0: none; default 1000, as :func:`fit_encoding`). The
        draws are the same for every layer and target, so the maximum over layers of the null
        gives p-values corrected for choosing each target's best layer (``pvalues_best_``).
    permutation : {"auto", "refit", "circular", "block"}
        Permutation scheme. ``"refit"``: each run's response is shifted circularly (keeping
        its autocorrelation; any shift, see :func:`~neuroenc.encoding.stats.run_shifts`), and
        the held-out predictions of every outer fold are refitted on the shifted training
        responses with the penalties chosen on the real ones; calibrated for cross-validated
        scores. With a stimulus-level ``cv`` (``kfold:K``, ``group-kfold:K``) the refit null's
        draws permute the stimuli instead, within groups when ``groups`` are given
        (:class:`~neuroenc.encoding.stats.PermutedDraws`); ``"circular"`` is then an error
        and ``"block"`` shuffles each test fold's stimuli against fixed predictions.
        ``"circular"`` / ``"block"``: each
        test fold's response is shifted circularly (or its blocks permuted) against fixed
        predictions; much cheaper, but the fold scores of a cross-validated model are
        correlated through their shared training data, which such a null ignores, so its
        p-values are too small (about 15 % below 0.05 under the null in our simulations).
        ``"auto"``: refit unless it would cost more than
        :data:`~neuroenc.encoding.stats.REFIT_NULL_BUDGET` floating-point operations, then
        circular, with a warning.
    block_size : int | sequence of int | "auto"
        For ``"circular"`` / ``"block"``: block length / smallest shift in samples, for all
        folds or one per fold. ``"auto"``: the CV gap (how far a design row reaches into the
        stimulus + 1; shifts shorter than that let the delays re-align the response with its
        own stimulus), clipped to ``[2, n_test // 4]`` in each test fold. It depends on the
        settings and the folds only, so the draws are identical for every layer, every target
        chunk and every layer subset fitted apart.
    compare : {"auto", "residual", "null"} | bool
        With permutations, compare every layer with each target's best layer
        (:func:`~neuroenc.encoding.compare.compare_layers`): ``comparison_`` holds each layer's
        difference from the best, its interval, its p-value against the other layers and the
        confidence set of best layers. ``"residual"``: draws that refit every layer on the best
        layer's held-out prediction plus circularly shifted residuals (``n_permutations`` draws,
        after the main fit; needs ``permutation="refit"`` and keeps every layer's held-out
        predictions); ``"null"``: the permutation null's own draws (free, but conservative when
        there is signal); ``"auto"`` or True: residual when the null is refitted and the
        predictions take at most :data:`COMPARE_PREDICTION_BYTES`, else null; False: none.
    compare_alpha : float
        Level of the one-sided test of the best-layer set (``p > compare_alpha`` stays in).
    unique : bool
        With a baseline (``nuisance`` in :meth:`fit`), also fit per layer the joint banded
        ridge of [baseline + layer] with a penalty per band, on the same outer and inner folds,
        and store each layer's unique contribution beyond the baseline (``unique_``: held-out
        ``delta_r2``, ``delta_r``, with permutations their p-values, intervals and best-layer
        set, :mod:`neuroenc.encoding.contribution`). Exact and cheap: solved from each layer's
        own eigendecompositions (:mod:`neuroenc.encoding._joint`). No effect without a baseline.
        The p-values and intervals come from residual draws, like the layer comparisons, and
        only where those are drawn (``compare`` resolved to residual draws): a subject among
        several (``compare="null"``) keeps its fold values for the tests across subjects.
    unique_ratios : sequence of float | None
        Grid of the baseline band's penalty in the joint models, as multiples of the penalty the
        baseline alone chose in the same outer fold, searched with the layer band's penalty (the
        ``alphas``) by the inner CV (default :data:`~neuroenc.encoding._joint.DEFAULT_RATIOS`:
        1, the baseline band as the baseline model has it).
    unique_score : {"squared-r", "R2"}
        The score of the unique contribution (``delta_r2``): ``"squared-r"`` (default), the
        signed squared correlation ``r |r|`` of the held-out predictions, joint minus baseline:
        the variance a linear rescaling of each model's prediction explains, so a baseline whose
        held-out predictions are badly scaled (negative R² at positive r, as in short runs
        z-scored one by one) does not inflate the delta; ``"R2"``: the coefficient of
        determination ``1 - SSE / SST`` (variance partitioning as in de Heer et al. 2017).
    refit : bool
        Refit each target's best layer on all samples (penalty chosen by CV over the outer
        splits), so that :meth:`predict` works. Dual coefficients are kept when features
        outnumber samples.
    random_state : None | int | Generator
        Seed of the permutations (default 0, as :func:`fit_encoding`: the same p-values on
        every run; None: fresh draws).
    verbose : bool | str | int | None
        Progress bar over layers (shown at ``INFO`` and below). mne's convention
        (:func:`neuroenc._logging.verbose_level`): None follows the ``neuroenc`` logger's level,
        True is ``INFO``, False ``WARNING``, or a level name or int.

    Attributes
    ----------
    layers_ : ndarray of int, shape (n_layers,)
    r_, r2_ : ndarray, shape (n_layers, n_targets)
        Held-out Pearson r and R², mean over outer folds.
    r_pooled_ : ndarray, shape (n_layers, n_targets)
        Held-out Pearson r of the predictions of all outer folds pooled (one r over every
        sample; the usual score of stimulus-level studies).
    fold_r_, fold_r2_ : ndarray, shape (n_folds, n_layers, n_targets)
    fold_alphas_ : ndarray, shape (n_folds, n_layers, n_targets)
        Penalty chosen in each outer fold.
    alphas_ : ndarray, shape (n_layers, n_targets)
        Geometric mean over folds of the chosen penalties.
    pvalues_ : ndarray, shape (n_layers, n_targets) | None
        Permutation p-values of ``r_``, each layer on its own (not corrected for choosing a
        layer).
    pvalues_best_ : ndarray, shape (n_targets,) | None
        Permutation p-value of each target's best ``r_``, corrected for choosing the best of the
        layers (max statistic): ``(1 + #{max over layers of the null >= r at the best layer})
        / (1 + n_permutations)``, the null of every layer from the same draws. Valid for the
        layers fitted together.
    comparison_ : LayerComparison | None
        With ``compare`` and permutations: every layer against each target's best layer
        (``delta_r``, ``pvalues``, ``in_best_set``, ``ci_low``, ``ci_high``), from the centred
        permutation draws. Valid for the layers fitted together.
    unique_ : UniqueContribution | None
        With ``nuisance`` and ``unique``: each layer's unique contribution beyond the baseline
        (:class:`~neuroenc.encoding.contribution.UniqueContribution`).
    block_sizes_ : list of int | None
        The permutation block / smallest shift used in each outer fold (circular and block).
    permutation_ : str | None
        The permutation scheme used (``"refit"``, ``"circular"`` or ``"block"``).
    null_unit_ : {"runs", "stimuli"}
        What the permutation draws move: runs shifted in time, or stimuli permuted (rows that
        are stimuli).
    rows_ : {"samples", "stimuli"}
        What the rows were (from the designs, else from ``cv``).
    cv_ : str | int | splitter | list
        The outer CV used (``"auto"`` resolved to ``group-kfold:K`` or ``kfold:K`` for stimuli).
    best_layer_ : ndarray of int, shape (n_targets,)
        Layer with the highest ``r_`` per target.
    cv_splits_ : list of (ndarray, ndarray)
        The outer splits.
    forms_ : dict of int -> str
        Ridge form used per layer.
    flops_ : float
        Floating-point operations of the CV solves (decompositions, projections, predictions).
    constant_targets_ : ndarray of int
        Targets constant over samples (their r is NaN).
    refit_alphas_ : ndarray, shape (n_targets,)
        With ``refit``: the penalty of each target's refit (CV over the outer splits).
    coefs_ : dict of int -> dict
        With ``refit``: per best layer, ``targets`` (indices), ``kind`` (``"dual"`` or
        ``"primal"``), ``coef`` and, for dual coefficients, ``X_fit`` (the training design).
    n_features_in_ : int
        Only when fitted on a single 2-D array.
    """

    #: The values each parameter takes (scikit-learn's convention; read by :func:`fit_encoding`,
    #: the run config and ``neuroenc fit``, see :mod:`neuroenc._settings`). ``alphas`` may be
    #: spelt as a log-spaced grid there.
    _parameter_constraints: dict = {
        "alphas": [None, Logspace(), ListOf(Interval(Real, 0, None, closed="neither"))],
        "cv": [Choices(CV_NAMES), Interval(Integral, 2, None, closed="left"),
               *STIMULUS_CV_PATTERNS, HOLDOUT_PATTERN, *CV_OBJECTS],
        "n_blocks": [Interval(Integral, 2, None, closed="left")],
        "gap": [None, Interval(Integral, 0, None, closed="left")],
        "inner_cv": [Interval(Integral, 2, None, closed="left")],
        "form": [Choices(_ridge.FORMS)],
        "backend": [Choices(BACKENDS)],
        "dtype": [Choices(DTYPES)],
        "n_targets_batch": [None, Interval(Integral, 1, None, closed="left")],
        "memory": [None, Interval(Integral, 1, None, closed="left"),
                   Pattern(MEMORY_PATTERN, "a size such as '4GB' or '512MiB'")],
        "n_permutations": [Interval(Integral, 0, None, closed="left")],
        "permutation": [Choices(PERMUTATIONS)],
        "block_size": [Choices("auto"), Interval(Integral, 1, None, closed="left"),
                       ListOf(Interval(Integral, 1, None, closed="left"))],
        "compare": ["boolean", Choices("auto", "residual", "null")],
        "compare_alpha": [Interval(Real, 0, 1, closed="neither")],
        "unique": ["boolean"],
        "unique_ratios": [None, Logspace(), ListOf(Interval(Real, 0, None, closed="neither"))],
        "unique_score": [Choices(*UNIQUE_SCORES)],
        "refit": ["boolean"],
        "random_state": [None, Interval(Integral, 0, 2**32 - 1, closed="both"), np.random.Generator,
                         np.random.RandomState],
        "verbose": VERBOSE,
    }

    def __init__(self, alphas=None, cv="auto", n_blocks=5, gap=None, inner_cv=5, form="auto",
                 backend="auto", dtype="auto", n_targets_batch=None, n_permutations=1000,
                 permutation="auto", block_size="auto", compare="auto", compare_alpha=0.05,
                 unique=True, unique_ratios=None, unique_score="squared-r", refit=True, random_state=0,
                 verbose=None, memory=None):
        self.alphas = alphas
        self.cv = cv
        self.n_blocks = n_blocks
        self.gap = gap
        self.inner_cv = inner_cv
        self.form = form
        self.backend = backend
        self.dtype = dtype
        self.n_targets_batch = n_targets_batch
        self.memory = memory
        self.n_permutations = n_permutations
        self.permutation = permutation
        self.block_size = block_size
        self.compare = compare
        self.compare_alpha = compare_alpha
        self.unique = unique
        self.unique_ratios = unique_ratios
        self.unique_score = unique_score
        self.refit = refit
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ helpers
    def _alphas(self) -> np.ndarray:
        alphas = np.asarray(DEFAULT_ALPHAS if self.alphas is None else self.alphas, dtype=np.float64).reshape(-1)
        return np.sort(alphas)  # positive and finite: checked by the declaration (check_params)

    def _designs(self, X: Any, reset: bool) -> LayerDesigns:
        plain = (isinstance(X, np.ndarray) and X.ndim <= 2) or issparse(X) or (
            isinstance(X, (list, tuple)) and not all(np.ndim(x) == 2 for x in X))
        if plain:
            # one layer given as a plain array: scikit-learn's checks and n_features_in_
            X = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])
        return as_layer_designs(X)

    def _block_sizes(self, tests: list[np.ndarray], gap: int) -> Any:
        """The permutation block / smallest shift of each test fold (see ``block_size``)."""
        if not isinstance(self.block_size, str):
            return self.block_size
        return [int(np.clip(gap, 2, max(2, te.size // 4))) for te in tests]

    def _check_params(self) -> None:
        check_params(self)  # each parameter against its declaration (_parameter_constraints)

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, groups=None, nuisance=None, spectra=None, shared=None):
        """Fit and score every layer.

        Parameters
        ----------
        X : array (n_samples, n_features) | list/dict of arrays | LayerDesigns | design object
            One design per layer (a single 2-D array is one layer, index 0).
        y : array-like, shape (n_samples,) or (n_samples, n_targets)
            Responses, z-scored per run (no intercept is fitted, as himalaya's default).
        groups : array-like, shape (n_samples,) | None
            Run label of each sample (default: the designs' ``groups``, else one run).
        nuisance : array-like, shape (n_samples, k) | None
            A baseline's regressors on the same rows: with ``unique``, the unique contribution of
            every layer beyond them (``unique_``, :mod:`neuroenc.encoding.contribution`).
        spectra : SpectrumStore | None
            Where each layer's Gram and its splits' eigendecompositions are looked up and kept
            (:class:`~neuroenc.encoding.spectra.SpectrumStore`): fits of the same design (subjects
            of the same story) then share them, with the same results.
        shared : dict | None
            What fits of the same responses, splits, penalties and draws share beyond the
            design (the refit null's draws and held-out responses): one dict given to each (the
            baseline models of :func:`~neuroenc.encoding.fit_encoding`); default one per fit.
            The results are the same.

        Returns
        -------
        self : LayerSweep
        """
        self._check_params()
        if y is None:
            raise ValueError("LayerSweep requires y to be passed, but the target y is None.")
        designs = self._designs(X, reset=True)
        y_arr = np.asarray(y)
        self._ravel = y_arr.ndim == 1
        Y = check_responses(y_arr)
        n, t = Y.shape
        designs = designs.with_n_samples(n)
        N = self._nuisance(nuisance, n) if nuisance is not None and self.unique else None
        if n < 2:
            raise ValueError(f"LayerSweep needs several samples, got n_samples={n}.")
        if groups is None:
            groups = designs.groups
        given_groups = None if groups is None else check_groups(groups, n)
        groups = check_groups(groups, n)
        # what the rows are (the design says; plain arrays are samples unless cv names a stimulus
        # scheme) decides the CV, the null and the comparisons' residual draws
        rows = designs.rows or ("stimuli" if parse_stimulus_cv(self.cv) is not None else "samples")
        cv, stimulus = resolve_cv(self.cv, rows, given_groups)
        alphas = self._alphas()
        self.constant_targets_ = constant_targets(Y)
        if self.constant_targets_.size:
            warnings.warn(
                f"{self.constant_targets_.size} target(s) {_preview(self.constant_targets_)} are "
                "constant; their scores are NaN.", UserWarning, stacklevel=2,
            )
        if rows == "stimuli":
            if self.gap:
                raise ValueError(
                    f"gap={self.gap!r}: stimulus-level CV ({cv!r}) has no time, so no gap; drop gap.")
            gap = 0
            # one seed for the outer and inner shuffles (the same splits for a baseline fit)
            cv_seed = int_seed(self.random_state) if self.random_state is not None else \
                int(np.random.default_rng().integers(2**31 - 1))
            outer = make_cv(cv, given_groups, n, random_state=cv_seed)
            scheme = stimulus[0] if stimulus is not None else ("group-kfold" if given_groups is not None else "kfold")
            inner = [inner_splits(tr, given_groups, self.inner_cv, 0, scheme=scheme,
                                  random_state=cv_seed) for tr, _ in outer]
            if self.permutation == "circular":
                raise ValueError(
                    "permutation='circular' shifts responses in time, but stimulus-level CV "
                    f"({cv!r}) has no time; use permutation='refit' (or 'auto'): the stimuli "
                    "are permuted (within groups) and the model refitted.")
        else:
            gap = self.gap if self.gap is not None else gap_for(designs, DEFAULT_GAP)
            outer = make_cv(cv, groups, n, self.n_blocks, gap)
            inner = [inner_splits(tr, groups, self.inner_cv, gap) for tr, _ in outer]
        self.cv_splits_, self.gap_, self.cv_, self.rows_ = outer, gap, cv, rows
        self.null_unit_ = "runs" if rows == "samples" else "stimuli"
        self.null_within_groups_ = rows == "stimuli" and given_groups is not None
        layers = list(designs.layers)
        n_l, n_f = len(layers), len(outer)
        fold_r = np.full((n_f, n_l, t), np.nan)
        fold_r2 = np.full((n_f, n_l, t), np.nan)
        fold_alpha = np.full((n_f, n_l, t), np.nan)
        pooled = np.full((n_l, t), np.nan)
        n_perm = int(self.n_permutations)
        pvalues = np.full((n_l, t), np.nan) if n_perm else None
        # running maximum over layers of the null, for p-values corrected for the layer choice
        null_max = np.full((n_perm, t), -np.inf) if n_perm else None
        # the layer comparisons: "residual" keeps every layer's held-out predictions (for the second
        # pass of refits), "null" every layer's permutation null (the same draws for every layer)
        compare_mode = predictions = nulls = None
        tests = [te for _, te in outer]
        method = blocks = null_shifts = None
        self.block_sizes_ = None
        self.forms_ = {}
        counter: dict[str, float] = {"flops": 0.0}
        backend_name = resolve_backend(self.backend)
        dtype = resolve_compute_dtype(self.dtype, backend_name, Y)
        # the same permutation draws for every layer (and every target chunk and layer subset)
        perm_seed = int(_check_random_state(self.random_state).integers(2**62))
        budget = None
        shared = {} if shared is None else shared  # what every layer's fit shares (fit_layer_cv's shared)
        with use_backend(backend_name) as B:
            Yb = B.asarray(Y, dtype=dtype)
            ab = B.asarray(alphas, dtype=dtype)
            band = base_out = jfold = udraws = usamples = uinverse = None
            if N is not None:
                # the baseline alone, and its band in every layer's joint model: the same splits
                base_out = _ridge.fit_layer_cv(B.asarray(N, dtype=dtype), Yb, outer, inner, ab, form=self.form,
                                               n_targets_batch=self.n_targets_batch, counter=counter,
                                               return_predictions=False)
                band = JointBand(B.asarray(N, dtype=dtype), N, np.asarray(
                    DEFAULT_RATIOS if self.unique_ratios is None else self.unique_ratios, dtype=np.float64),
                    base_out["fold_alpha"])
                jfold = {key: np.full((n_f, n_l, t), np.nan) for key in ("r", "r2", "alpha", "alpha_base")}
            for j, layer in enumerate(tqdm(layers, desc="layers", disable=not show_progress(self.verbose))):
                X = designs[layer]
                if n_perm and method is None:
                    # the scheme, from the first layer's size (every layer's cost is alike)
                    method = resolve_permutation(self.permutation, n, X.shape[1], t, n_l, n_perm, n_f,
                                                 len(alphas), rows=rows)
                    if rows == "stimuli":
                        units = run_indices(given_groups) if given_groups is not None else [np.arange(n)]

                        def make_draws(seed, units=units):  # stimuli permuted within groups
                            return PermutedDraws(units, n_perm, n, seed)
                    else:
                        runs = run_indices(groups)

                        def make_draws(seed, runs=runs):  # each run shifted circularly
                            return shifted_draws(runs, n_perm, seed, n)
                    if method == "refit":
                        null_shifts = make_draws(perm_seed)
                    elif rows == "stimuli":  # each test fold's stimuli shuffled against fixed predictions
                        blocks = self.block_sizes_ = [1] * n_f
                    else:
                        blocks = self.block_sizes_ = self._block_sizes(tests, gap)
                    compare_mode = self._compare_mode(method, n, n_l, t)
                    if compare_mode == "residual":
                        predictions = np.full((n_l, n, t), np.nan)
                    elif compare_mode == "null":
                        nulls = np.full((n_perm, n_l, t), np.nan, dtype=np.float32)
                if budget is None or self.memory is not None:  # each layer's own width
                    budget = self._budget(n, X.shape[1], t, n_l, outer, inner, len(alphas), n_perm, method,
                                          compare_mode, dtype)
                # the unique contributions' residual draws, as the layer comparisons': skipped where
                # those are (compare "null" / False: a subject among several, tested across subjects)
                unique_draws = band is not None and n_perm >= 2 and method == "refit" and compare_mode == "residual"
                Xb = B.asarray(X, dtype=dtype)
                out = _ridge.fit_layer_cv(Xb, Yb, outer, inner, ab, form=self.form,
                                          n_targets_batch=budget.n_targets_batch,
                                          return_predictions=method in ("circular", "block")
                                          or compare_mode == "residual",
                                          counter=counter, null_shifts=null_shifts, joint=band,
                                          store=spectra, refit_batch_bytes=budget.refit_batch_bytes,
                                          resolve=budget.resolve, joint_inner=unique_draws, shared=shared)
                if band is not None:
                    for key in jfold:
                        jfold[key][:, j] = out[f"joint_fold_{key}"]
                    if unique_draws:
                        if udraws is None:
                            # each distinct draw once (a short run has few shifts), copied to its repeats
                            udistinct, uinverse = make_draws(_derived_seed(perm_seed, 2)).distinct()
                            udraws = _joint.UniqueDraws(Y, N, outer, base_out["fold_alpha"], base_out["fold_r2"],
                                                        udistinct, score=self.unique_score)
                            usamples = np.full((n_perm, n_l, t), np.nan)
                        Xn = np.asarray(X, dtype=np.float64) if out["form"] == "primal" else None
                        layer_draws = udraws.layer(out["joint_splits"], out["joint_inner_splits"], Xn,
                                                   out["joint_fold_alpha"], out["joint_fold_alpha_kept"],
                                                   out["joint_fold_alpha_base_kept"])
                        usamples[:, j] = layer_draws if uinverse is None else layer_draws[uinverse]
                        del Xn
                out.pop("joint_splits", None)
                out.pop("joint_inner_splits", None)
                del Xb, X
                fold_r[:, j], fold_r2[:, j], fold_alpha[:, j] = out["fold_r"], out["fold_r2"], out["fold_alpha"]
                if predictions is not None:
                    predictions[j] = out["predictions"]
                pooled[j] = out["pooled_r"]
                self.forms_[layer] = out["form"]
                if n_perm:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        observed = np.nanmean(out["fold_r"], 0)
                    if method == "refit":
                        null = out["null"]
                    else:
                        null = permutation_null(Y, out["predictions"], tests, n_permutations=n_perm,
                                                method=method, block_size=blocks, random_state=perm_seed)
                    pvalues[j] = null_pvalues(null, observed)
                    np.fmax(null_max, null, out=null_max)  # NaN (constant target) is skipped
                    if nulls is not None:
                        nulls[:, j] = null
                    del null
                if logger.isEnabledFor(logging.DEBUG) and np.isfinite(out["fold_r"]).any():
                    logger.debug("layer %s: mean r %.4f", layer, np.nanmean(out["fold_r"]))
        self.permutation_ = method
        self.layers_ = np.asarray(layers, dtype=np.int64)
        self.fold_r_, self.fold_r2_, self.fold_alphas_ = fold_r, fold_r2, fold_alpha
        self.r_pooled_ = pooled
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            self.r_ = np.nanmean(fold_r, 0)
            self.r2_ = np.nanmean(fold_r2, 0)
        self.alphas_ = np.exp(np.mean(np.log(fold_alpha), 0))
        self.pvalues_ = pvalues
        best = np.maximum(best_index(self.r_)[0], 0)  # a constant target (no finite r): row 0
        self.best_layer_ = self.layers_[best]
        self.pvalues_best_ = None
        self.comparison_ = None
        if n_perm:
            self.pvalues_best_ = null_pvalues(null_max, self.r_[best, np.arange(t)])
        if compare_mode == "residual" and n_perm >= 2:
            draws = self._comparison_draws(designs, Y, outer, alphas, predictions, best, backend_name,
                                           dtype, make_draws(_derived_seed(perm_seed)), counter, spectra,
                                           budget)
            del predictions
            self.comparison_ = compare_layers(self.r_, centred_null(draws), alpha=self.compare_alpha,
                                              source="residual" if rows == "samples" else STIMULUS_RESIDUAL_SOURCE)
        elif nulls is not None and n_perm >= 2:
            source = method if rows == "samples" or method != "refit" else STIMULUS_NULL_SOURCE
            self.comparison_ = compare_layers(self.r_, centred_null(nulls), alpha=self.compare_alpha,
                                              source=source)
            del nulls
        self.unique_ = None
        if N is not None:
            self.unique_ = self._unique(base_out, jfold, usamples, rows)
        self.flops_ = counter["flops"]
        self.backend_, self.dtype_ = backend_name, dtype
        self.coefs_ = {}
        self.budget_ = budget if self.memory is not None else None
        if self.refit:
            self._refit(designs, Y, outer, alphas, backend_name, dtype, budget)
        return self

    @staticmethod
    def _nuisance(nuisance: Any, n: int) -> np.ndarray:
        """The baseline regressors as a finite float64 (n_samples, k) array."""
        N = np.asarray(nuisance, dtype=np.float64)
        N = N[:, None] if N.ndim == 1 else N
        if N.ndim != 2 or N.shape[0] != n or N.shape[1] == 0:
            raise ValueError(f"nuisance has shape {N.shape}; expected ({n}, n_regressors): the baseline's "
                             "regressors on the responses' rows.")
        if not np.isfinite(N).all():
            bad = _preview(np.flatnonzero(~np.isfinite(N).all(0)))
            raise ValueError(f"nuisance has NaN or inf in column(s) {bad}; fill or drop those regressors "
                             "before fitting.")
        return N

    def _unique(self, base_out, jfold, samples, rows) -> UniqueContribution:
        """The unique contribution of every layer beyond the baseline, with its tests when there
        are residual draws (``samples``, (n_draws, n_layers, n_targets), from
        :class:`~neuroenc.encoding._joint.UniqueDraws`: each draw the baseline's fit plus
        resampled residuals, the baseline and every joint model refitted with the penalties
        chosen on the real responses, the layer band kept by the inner CV's rule on the draw)."""
        # where the inner CV switched the layer off, the joint model is the baseline: delta 0
        off = np.isinf(jfold["alpha"])
        for key in ("r", "r2"):
            jfold[key] = np.where(off, base_out[f"fold_{key}"][:, None, :], jfold[key])
        score = self.unique_score
        joint = _joint.unique_score(jfold["r"], jfold["r2"], score)
        base = _joint.unique_score(base_out["fold_r"], base_out["fold_r2"], score)
        return unique_contribution(joint, base, jfold["r"], base_out["fold_r"], samples, score=score,
                                   alpha=self.compare_alpha, source=UNIQUE_SOURCES[rows])

    def _budget(self, n, p, t, n_layers, outer, inner, n_alphas, n_perm, method, compare_mode, dtype):
        """The batches of the fit: from ``memory`` (:func:`~neuroenc.encoding.memory.fit_budget`),
        else the defaults (``n_targets_batch`` or a 512 MiB block of predictions)."""
        if self.memory is None:
            return _DefaultBatches(self.n_targets_batch)
        # kept held-out predictions: every layer's for the residual comparisons (and then their signal,
        # residuals and backend copies), else one layer's for a shifted null
        keep = n_layers + 3 if compare_mode == "residual" else (1 if method in ("circular", "block") else 0)
        return fit_budget(self.memory, n_samples=n, n_features=p, n_targets=t, n_layers=n_layers,
                          n_folds=len(outer), inner_cv=max(len(inn) for inn in inner),
                          n_validation=max(va.size for inn in inner for _, va in inn),
                          n_test=max(te.size for _, te in outer), n_alphas=n_alphas,
                          n_permutations=n_perm, refit_null=method == "refit", keep_predictions=keep,
                          refit=bool(self.refit), itemsize=np.dtype(dtype).itemsize,
                          n_targets_batch=self.n_targets_batch)

    def _compare_mode(self, method: str, n: int, n_layers: int, n_targets: int) -> str | None:
        """How the layers are compared: ``"residual"`` (refits on the best layer's prediction plus
        shifted residuals: needs the refit null and every layer's held-out predictions in memory),
        ``"null"`` (the permutation null's own draws) or None."""
        if self.compare is False:
            return None
        if self.compare == "null":
            return "null"
        affordable = 8 * n * n_layers * n_targets <= COMPARE_PREDICTION_BYTES
        if self.compare == "residual":
            if method != "refit":
                raise ValueError(f"compare='residual' refits every layer on resampled responses, which needs "
                                 f"permutation='refit' (got {method!r}); use compare='null' or 'auto'.")
            return "residual"
        return "residual" if method == "refit" and affordable else "null"

    def _comparison_draws(self, designs, Y, outer, alphas, predictions, best, backend_name, dtype,
                          draws, counter, spectra=None, budget=None) -> np.ndarray:
        """Draws of every layer's fold-mean r for the layer comparisons, shape (n_draws, n_layers, t).

        The signal is each target's best-layer held-out prediction, scaled to the response by
        least squares; the residuals are resampled as the permutation null resamples responses
        (``draws``: each run shifted circularly, or stimuli permuted within groups; seeded apart
        from the null's), and every layer is refitted on signal + resampled residuals with the
        penalties chosen on the real responses (:func:`~neuroenc.encoding._ridge.comparison_draws`).
        """
        n, t = Y.shape
        cols = np.arange(t)
        signal = np.nan_to_num(predictions[best, :, cols].T)  # (n, t)
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = (signal * Y).sum(0) / (signal * signal).sum(0)
        signal = signal * np.nan_to_num(scale)
        grid = np.asarray(alphas)
        out = np.full((draws.n_draws, len(designs.layers), t), np.nan, dtype=np.float32)
        with use_backend(backend_name) as B:
            ab = B.asarray(alphas, dtype=dtype)
            sb, rb = B.asarray(signal, dtype=dtype), B.asarray(Y - signal, dtype=dtype)
            progress = show_progress(self.verbose)
            for j, layer in enumerate(tqdm(designs.layers, desc="layer comparisons", disable=not progress)):
                chosen = np.where(np.isfinite(self.fold_r_[:, j]), self.fold_alphas_[:, j], np.nan)
                fold_best = np.where(np.isfinite(chosen), np.searchsorted(grid, np.nan_to_num(chosen)), -1)
                Xb = B.asarray(designs[layer], dtype=dtype)
                out[:, j] = _ridge.comparison_draws(
                    Xb, sb, rb, outer, ab, fold_best, draws, form=self.form,
                    n_targets_batch=self.n_targets_batch if budget is None else budget.n_targets_batch,
                    counter=counter, store=spectra,
                    refit_batch_bytes=_ridge.REFIT_BATCH_BYTES if budget is None else budget.refit_batch_bytes)
                del Xb
        return out

    def _refit(self, designs, Y, outer, alphas, backend_name, dtype, budget=None) -> None:
        """Refit each target's best layer on all samples (dual coefficients in kernel form)."""
        self.refit_alphas_ = np.full(Y.shape[1], np.nan)
        with use_backend(backend_name) as B:
            ab = B.asarray(alphas, dtype=dtype)
            for layer in np.unique(self.best_layer_):
                cols = np.flatnonzero(self.best_layer_ == layer)
                X = designs[int(layer)]
                Xb = B.asarray(X, dtype=dtype)
                kind, coef, best = _ridge.refit_layer(Xb, B.asarray(Y[:, cols], dtype=dtype), outer, ab,
                                                      form=self.form,
                                                      n_targets_batch=self.n_targets_batch if budget is None
                                                      else budget.n_targets_batch)
                self.coefs_[int(layer)] = {
                    "targets": cols, "kind": kind, "coef": to_numpy(coef),
                    "X_fit": np.asarray(X, dtype=dtype) if kind == "dual" else None,
                }
                self.refit_alphas_[cols] = best

    # ------------------------------------------------------------------ predict
    def predict(self, X):
        """Predict every target with its best layer (refit on all samples).

        Parameters
        ----------
        X : same kind as in :meth:`fit`
            Designs of (at least) the layers that are best for some target.

        Returns
        -------
        Y_hat : ndarray, shape (n_samples, n_targets) (or (n_samples,) if fitted on 1-D y)
        """
        check_is_fitted(self, "r_")
        if not self.refit:
            raise ValueError("This LayerSweep was fitted with refit=False and keeps only scores; "
                             "set refit=True to predict.")
        designs = self._designs(X, reset=False)
        n_targets = self.r_.shape[1]
        out = None
        for layer, item in self.coefs_.items():
            Xl = np.asarray(designs[layer], dtype=item["coef"].dtype)
            if out is None:
                out = np.zeros((Xl.shape[0], n_targets))
            if item["kind"] == "dual":
                pred = (Xl @ item["X_fit"].T) @ item["coef"]
            else:
                pred = Xl @ item["coef"]
            out[:, item["targets"]] = pred
        if self._ravel:
            return out[:, 0]
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    def to_results(self, targets: Any = None, **kwargs: Any):
        """The scores as an :class:`~neuroenc.encoding.EncodingResults`.

        The one conversion from a fitted sweep to results (:func:`~neuroenc.encoding.fit_encoding`
        uses it): scores, fold scores, penalties, p-values (``pvalues_best`` corrected for the
        choice of layer), the layer comparisons and the fitted settings.

        Parameters
        ----------
        targets : sequence of str | None
            Target names (default ``"0"``, ``"1"``...).
        **kwargs
            Other :class:`~neuroenc.encoding.EncodingResults` fields (``baseline``,
            ``noise_ceiling``, ``provenance``, ``warnings``...); ``settings`` are updated with
            :meth:`fitted_settings`.
        """
        from .results import EncodingResults

        check_is_fitted(self, "r_")
        n_t = self.r_.shape[1]
        targets = [str(i) for i in range(n_t)] if targets is None else list(targets)
        settings = dict(kwargs.pop("settings", {}) or {})
        fitted = self.fitted_settings()
        fitted.update(settings)
        return EncodingResults(r=self.r_, r2=self.r2_, layers=self.layers_, targets=targets,
                               pvalues=self.pvalues_, alphas=self.alphas_,
                               fold_r=self.fold_r_, fold_r2=self.fold_r2_, settings=fitted,
                               pvalues_best=self.pvalues_best_, comparison=self.comparison_,
                               r_pooled=self.r_pooled_, unique=getattr(self, "unique_", None), **kwargs)

    def alpha_edge_shares(self) -> dict[str, list[float]]:
        """Per layer, the share of the chosen (fold, target) penalties at the smallest (``"low"``)
        and at the largest (``"high"``) value of the grid; constant targets are left out."""
        check_is_fitted(self, "fold_alphas_")
        grid = self._alphas()
        keep = np.ones(self.fold_alphas_.shape[2], dtype=bool)
        keep[self.constant_targets_] = False
        out: dict[str, list[float]] = {"low": [], "high": []}
        for j in range(self.layers_.size):
            chosen = self.fold_alphas_[:, j][:, keep]
            chosen = chosen[np.isfinite(chosen)]
            for side, value in (("low", grid[0]), ("high", grid[-1])):
                out[side].append(float(np.mean(np.isclose(chosen, value))) if chosen.size and grid.size > 1
                                 else 0.0)
        return out

    def alpha_edges(self, threshold: float = 0.1) -> list[str]:
        """Warnings for layers whose chosen penalties pile up at an edge of the grid.

        A penalty at the smallest or largest value of the grid may be a boundary of the search
        rather than the best one: extend the grid on that side. One message per edge, naming the
        layers where more than ``threshold`` of the (fold, target) penalties sit there.
        """
        from .compare import format_layer_set

        shares = self.alpha_edge_shares()
        grid = self._alphas()
        messages = []
        advice = {
            "low": "the best penalty may lie below it: extend the alphas lower (e.g. encoding.alphas).",
            "high": ("these targets prefer the strongest shrinkage, which is what targets with little "
                     "predictable signal do (their r hardly changes as the penalty grows); where they "
                     "matter, extend the alphas higher (e.g. encoding.alphas) to check."),
        }
        for side, word, value in (("low", "smallest", grid[0]), ("high", "largest", grid[-1])):
            share = np.asarray(shares[side])
            over = share > threshold
            if over.any():
                worst = int(np.argmax(share))
                messages.append(
                    f"In layer(s) {format_layer_set(self.layers_[over])}, more than {threshold:.0%} of the chosen "
                    f"ridge penalties sit at the {word} value of the grid ({value:.3g}; up to {share[worst]:.0%}, "
                    f"layer {int(self.layers_[worst])}): {advice[side]}"
                )
        return messages

    def fitted_settings(self) -> dict[str, Any]:
        """The parameters and fitted choices, for results files."""
        check_is_fitted(self, "r_")
        params = {k: v for k, v in self.get_params().items() if k != "verbose"}
        params["alphas"] = self._alphas().tolist()
        params["cv_folds"] = [[int(tr.size), int(te.size)] for tr, te in self.cv_splits_]
        if isinstance(self.cv_, str):  # "auto" resolved for the rows (stimuli: kfold or group-kfold)
            params["cv"] = self.cv_
        params["gap_used"] = int(self.gap_)
        params["rows"] = self.rows_
        params["scores"] = dict(SCORES)
        params["null_unit"] = self.null_unit_
        if self.null_unit_ == "stimuli":
            params["null_within_groups"] = bool(self.null_within_groups_)
        if self.block_sizes_ is not None:
            params["block_sizes_used"] = np.asarray(self.block_sizes_).astype(int).tolist()
        if self.permutation_ is not None:
            params["permutation_used"] = self.permutation_
        params["forms"] = {str(k): v for k, v in self.forms_.items()}
        params["alpha_edge_shares"] = self.alpha_edge_shares()
        params["backend_used"] = self.backend_
        params["dtype_used"] = self.dtype_
        if isinstance(params.get("random_state"), np.random.Generator):
            params["random_state"] = repr(params["random_state"])
        return params

