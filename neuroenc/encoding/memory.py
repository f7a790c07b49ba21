"""The memory model of an encoding fit: its peak bytes, and layers and targets per task.

The one memory model of neuroenc (the pipeline's distributed runner sizes its tasks with it).
A fit (:func:`neuroenc.encoding.fit_encoding` on a subset of layers and a chunk of targets,
as :func:`neuroenc.pipeline.tasks.fit_subject` runs it) holds, at its peak, what
:func:`fit_task_bytes` adds up:

- fixed, whatever the chunk: the subject's responses as the loader returns them; the features
  of the task's layers (float32, every word of every run); one layer's design at a time (and
  its copy in the working dtype); the layer's Gram matrix (``X X^T``, n × n, in the dual form
  used when features outnumber samples; ``X^T X`` otherwise); the eigendecompositions of the
  inner and outer splits of one outer fold, held together (and, in the primal form with more
  validation rows than columns, the QR factors of the inner splits' held-out projections;
  and ``X^T Y`` of every target, kept from fold to fold up to
  :data:`neuroenc.encoding._ridge.XTY_KEEP_BYTES`);
- per target: the responses of the chunk and their copies (z-scored design ``Y``, backend
  copy), the held-out predictions of one layer, the permutation null (FFT of each fold and
  ``n_permutations`` draws), every layer's draws kept for the layer comparisons (float32) and,
  with a refitted null, every layer's held-out predictions (the comparisons' residual draws),
  and the score arrays; plus, once, the comparisons' working chunk;
- per batch of targets: the predictions of every penalty for the validation rows, capped by
  :data:`neuroenc.encoding._ridge.DEFAULT_BATCH_BYTES`, or (not at the same time) a batch of
  draws of the refit permutation null, capped by
  :data:`neuroenc.encoding._ridge.REFIT_BATCH_BYTES`; and, once the chunk has more targets
  than ``n_alphas × n_validation`` rows, the dual form's "resolve first" matrices
  ``(n_alphas, n_validation, n_train)`` of every inner split (dual form only), which can dwarf
  everything else (7.7 GB for 10,000 samples, 4 x 4,096 columns, 15 penalties, 5 inner folds):
  chunking below that threshold avoids them.

:func:`partition_fit` turns that into ``(layers per task, targets per task)`` for a worker's
memory limit; :func:`target_chunk_size` is the targets part alone. All are pure functions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._validation import _check_positive
from ._ridge import REFIT_BATCH_BYTES, XTY_KEEP_BYTES, refit_null_draw_bytes, refit_null_flops
from .compare import CHUNK_VALUES as COMPARE_CHUNK
from .stats import REFIT_INDEX_BYTES, REFIT_NULL_BUDGET

#: Fraction of a worker's memory limit a fit task may plan to use. Dask starts spilling at 60%
#: and pauses a worker at 80% of its limit; estimates are upper bounds, but other tasks' data
#: and the interpreter live there too.
MEMORY_FRACTION = 0.5
#: Bytes of one batch of penalty predictions (as in ``neuroenc.encoding._ridge``).
BATCH_BYTES = 512 * 2**20
#: When layers must be split, a task should still fit at least this many targets.
MIN_TARGETS_PER_TASK = 256


@dataclass(frozen=True)
class FitShape:
    """The size of one subject's fit, as far as memory goes.

    Parameters
    ----------
    n_samples : int
        Rows of the design (TRs or MEG samples, after trimming, over all runs).
    n_features : int
        Columns of one layer's design (hidden size × delays or lags).
    n_targets : int
        Targets of the subject (voxels, ROIs, sensors).
    n_layers : int
        Layers to fit.
    n_words : int
        Words over all runs (rows of the features files).
    hidden_size : int
        Features per layer and word (float32 in the features files).
    response_bytes : int
        The subject's responses (all targets, all runs) as the data-set loader returns them.
    n_alphas : int
        Ridge penalties.
    n_folds : int
        Outer CV folds (runs, or blocks of a single run).
    inner_cv : int
        Inner CV folds.
    n_permutations : int
        Permutations of the null (0: none).
    itemsize : int
        Bytes per value of the working dtype (8: float64 on CPU; 4: float32 on a GPU).
    permutation : str
        The permutation scheme (``"auto"`` is resolved as the fit resolves it, from the whole
        subject's size: :func:`~neuroenc.encoding.sweep.resolve_permutation`).
    """

    n_samples: int
    n_features: int
    n_targets: int
    n_layers: int
    n_words: int = 0
    hidden_size: int = 0
    response_bytes: int = 0
    n_alphas: int = 15
    n_folds: int = 5
    inner_cv: int = 5
    n_permutations: int = 1000
    itemsize: int = 8
    permutation: str = "auto"

    @property
    def refit_null(self) -> bool:
        """Whether the fit may refit its permutation null (``"refit"``, or ``"auto"`` within
        twice the budget: the fit decides from the trimmed design, this from the data's size, so
        the memory estimate errs on the side of counting the refit's buffers)."""
        if not self.n_permutations or self.permutation in ("circular", "block"):
            return False
        if self.permutation == "refit":
            return True
        flops = refit_null_flops(self.n_samples, self.n_features, self.n_targets, self.n_permutations,
                                 self.n_folds, self.n_layers, self.n_alphas)
        return flops <= 2 * REFIT_NULL_BUDGET

    def __post_init__(self) -> None:
        for name in ("n_samples", "n_features", "n_targets", "n_layers", "n_alphas", "n_folds",
                     "inner_cv", "itemsize"):
            _check_positive(f"FitShape.{name}", getattr(self, name), integer=True)
        for name in ("n_words", "hidden_size", "response_bytes", "n_permutations"):
            _check_positive(f"FitShape.{name}", getattr(self, name), strict=False, integer=True)
        if self.n_folds < 2 and self.n_samples > 1:
            raise ValueError(f"FitShape.n_folds must be >= 2 (outer CV folds), got {self.n_folds}.")


def fit_task_bytes(shape: FitShape, n_targets: int | None = None, n_layers: int | None = None,
                   batch_bytes: int = BATCH_BYTES) -> int:
    """Peak bytes of one fit task of ``n_layers`` layers × ``n_targets`` targets (an upper bound).

    Parameters
    ----------
    shape : FitShape
        The subject's fit.
    n_targets, n_layers : int | None
        The task's targets and layers (default: all of ``shape``'s).
    batch_bytes : int
        The cap on one batch of penalty predictions.

    Returns
    -------
    n_bytes : int
    """
    t = shape.n_targets if n_targets is None else int(n_targets)
    L = shape.n_layers if n_layers is None else int(n_layers)
    _check_positive("n_targets", t, integer=True)
    _check_positive("n_layers", L, integer=True)
    s = shape.itemsize
    n, p = shape.n_samples, shape.n_features
    n_test = math.ceil(n / shape.n_folds)
    n_train = max(n - n_test, 1)
    n_val = math.ceil(n_train / shape.inner_cv)
    kernel = p > n_train
    m = min(n_train, p)  # size of each split's eigendecomposition
    fixed = (
        shape.response_bytes
        + 4 * shape.n_words * shape.hidden_size * L  # the task's features, float32
        + 2 * n * p * s  # one layer's design and its copy in the working dtype
        + min(n, p) ** 2 * s  # the Gram matrix (kernel n x n, or primal p x p)
        + (shape.inner_cv + 1) * (m * m + max(n_val, n_test) * m) * s  # eigenvectors, projections
        + 2 * m * m * s  # eigh workspace
        # primal with more validation rows than columns: the QR factors of each inner split's projection
        + (shape.inner_cv * (n_val * m + m * m) * s if not kernel and n_val > m else 0)
    )
    if not kernel and s * p * t <= XTY_KEEP_BYTES:  # primal: X^T Y of every target, kept for every fold
        fixed += s * p * t
    resolve_first = kernel and shape.n_alphas * n_val < t  # as neuroenc.encoding._ridge._resolve_first
    per_target = (
        8 * n  # the chunk of the subject's responses (a selection, float64)
        + s * n  # the design's z-scored responses Y
        + 8 * n  # held-out predictions of one layer (float64)
        + 8 * (5 * n_test + 3 * shape.n_permutations)  # one fold's FFTs, or the refit null's sums
        + 8 * (3 * shape.n_folds + 5) * L  # fold and mean scores, alphas, p-values
        + 4 * shape.n_permutations * L  # every layer's comparison draws (float32)
        + (8 * n * L if shape.refit_null else 0)  # every layer's held-out predictions (residual draws)
    )
    if shape.n_permutations:
        # the layer comparisons' working arrays: a few float64 (draws x layers x targets) chunks
        fixed += 5 * 8 * min(COMPARE_CHUNK, shape.n_permutations * L * t)
    # predictions on the validation rows: every penalty at once when resolving first, else one
    # penalty at a time (and its residual)
    batch = min(int(batch_bytes), (shape.n_alphas if resolve_first else 2) * n_val * s * t)
    resolve = shape.inner_cv * shape.n_alphas * n_val * n_train * s if resolve_first else 0
    # the refit permutation null: a batch of shifted responses and their refitted predictions
    refit = 0
    if shape.refit_null:
        draw = refit_null_draw_bytes(n, 0 if kernel else p, m, n_test, t, s)
        refit = min(REFIT_BATCH_BYTES + draw, shape.n_permutations * draw)
        # the draws' sample orders (int32), kept for all layers and, per fold, for all penalties
        fixed += 2 * min(4 * shape.n_permutations * n, REFIT_INDEX_BYTES)
    return int(fixed + per_target * t + max(batch, refit) + resolve)


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.2f} GiB"


def target_chunk_size(shape: FitShape, memory_limit: int, *, n_layers: int | None = None,
                      fraction: float = MEMORY_FRACTION, batch_bytes: int = BATCH_BYTES) -> int:
    """Targets per fit task so that a task fits in ``fraction`` of a worker's memory.

    The largest chunk that fits is found, then the targets are cut into equal chunks no larger
    than it (so the last chunk is not a sliver).

    Parameters
    ----------
    shape : FitShape
        The subject's fit.
    memory_limit : int
        A worker's memory limit in bytes.
    n_layers : int | None
        Layers per task (default all of ``shape``'s).
    fraction : float
        Share of ``memory_limit`` a task may plan to use.
    batch_bytes : int
        The cap on one batch of penalty predictions.

    Returns
    -------
    chunk : int
        Targets per task, between 1 and ``shape.n_targets``.

    Raises
    ------
    ValueError
        If even one target does not fit.
    """
    _check_positive("memory_limit", memory_limit)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}.")
    L = shape.n_layers if n_layers is None else int(n_layers)
    budget = fraction * float(memory_limit)
    one = fit_task_bytes(shape, 1, L, batch_bytes)
    if one > budget:
        raise ValueError(
            f"a fit task of {L} layer(s) of a {shape.n_samples} x {shape.n_features} design needs "
            f"{_gib(one)} even for one target, but workers have {_gib(memory_limit)} "
            f"({fraction:.0%} usable: {_gib(budget)}). Give workers more memory (fewer workers per "
            "machine, or executor.slurm.memory), fit fewer layers per task (layers_per_task), "
            "or use fewer delays."
        )
    lo, hi = 1, shape.n_targets  # invariant: lo fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fit_task_bytes(shape, mid, L, batch_bytes) <= budget:
            lo = mid
        else:
            hi = mid - 1
    n_chunks = math.ceil(shape.n_targets / lo)
    return math.ceil(shape.n_targets / n_chunks)


def partition_fit(shape: FitShape, memory_limit: int, *, layers_per_task: int | None = None,
                  target_chunk: int | None = None, fraction: float = MEMORY_FRACTION,
                  min_targets: int = MIN_TARGETS_PER_TASK,
                  batch_bytes: int = BATCH_BYTES) -> tuple[int, int]:
    """Layers and targets per fit task for a worker's memory.

    Every layer goes in one task (the responses are read and the baseline fitted once) unless
    the features of all layers leave no room for ``min_targets`` targets; then the layers are
    halved until they do. Targets are then chunked by :func:`target_chunk_size`. Either number
    can be given instead.

    Parameters
    ----------
    shape : FitShape
    memory_limit : int
        A worker's memory limit in bytes.
    layers_per_task, target_chunk : int | None
        Fixed values (not chosen from memory); ``target_chunk`` is capped at the number of
        targets.
    fraction, batch_bytes : see :func:`target_chunk_size`
    min_targets : int
        Targets a task should hold before layers are split.

    Returns
    -------
    layers_per_task, target_chunk : int, int
    """
    if layers_per_task is not None:
        _check_positive("layers_per_task", layers_per_task, integer=True)
        L = min(int(layers_per_task), shape.n_layers)
    else:
        L = shape.n_layers
        want = min(int(min_targets), shape.n_targets)
        while L > 1 and fit_task_bytes(shape, want, L, batch_bytes) > fraction * float(memory_limit):
            L = math.ceil(L / 2)
    if target_chunk is not None:
        _check_positive("target_chunk", target_chunk, integer=True)
        return L, min(int(target_chunk), shape.n_targets)
    return L, target_chunk_size(shape, memory_limit, n_layers=L, fraction=fraction,
                                batch_bytes=batch_bytes)


#: The form of a memory size in a config or on the command line (``"4GB"``, ``"512MiB"``).
MEMORY_PATTERN = r"\s*\d+(\.\d*)?\s*([kKMGTP]i?)?B\s*"
_UNITS = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
          "ki": 2**10, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}


def parse_memory(value: int | str, name: str = "memory") -> int:
    """Bytes of a memory size: an int, or a string such as ``"4GB"`` (10^9) or ``"4GiB"`` (2^30).

    Examples
    --------
    >>> parse_memory("4GB"), parse_memory("512MiB"), parse_memory(1000)
    (4000000000, 536870912, 1000)
    """
    import re

    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if value < 1:
            raise ValueError(f"{name} must be a positive number of bytes or a size such as '4GB'; got {value!r}.")
        return int(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kKMGTP]i?)?B\s*", str(value))
    if not isinstance(value, str) or match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{name} must be a positive number of bytes or a size such as '4GB' or "
                         f"'512MiB'; got {value!r}.")
    return int(float(match.group(1)) * _UNITS[match.group(2) or ""])


@dataclass(frozen=True)
class FitBudget:
    """How one fit keeps under a memory budget (:func:`fit_budget`).

    Attributes
    ----------
    memory : int
        The budget in bytes.
    fixed_bytes : int
        What the fit holds whatever the batches: its copies of the responses, the score and null
        arrays of every target, one layer's design, Gram and eigendecompositions.
    per_target_bytes : int
        Working memory per target of a batch (validation predictions of every penalty,
        projections, held-out predictions and their float64 scores).
    n_targets_batch : int
        Targets per batch.
    refit_batch_bytes : int
        Cap on one batch of draws of the refit null.
    resolve : bool
        Whether the dual form's "resolve first" matrices are allowed.
    """

    memory: int
    fixed_bytes: int
    per_target_bytes: int
    n_targets_batch: int
    refit_batch_bytes: int
    resolve: bool


def fit_budget(memory: int | str, *, n_samples: int, n_features: int, n_targets: int, n_layers: int,
               n_folds: int, inner_cv: int, n_validation: int, n_test: int, n_alphas: int,
               n_permutations: int = 0, refit_null: bool = False, keep_predictions: int = 0,
               refit: bool = False, itemsize: int = 8, n_targets_batch: int | None = None) -> FitBudget:
    """Batches of targets (and of refit-null draws) that keep one fit's peak under ``memory``.

    The fit's arrays that grow with all its targets (its copies of the responses, every
    layer's fold scores, the permutation null, the layer comparisons' draws, kept predictions)
    cannot be batched: they are ``fixed_bytes``, with one layer's design, Gram and
    eigendecompositions. What is left is shared between one batch of targets (its validation
    predictions of every penalty, projections and scores: ``per_target_bytes`` each), one batch
    of refit-null draws, and the dual form's "resolve first" matrices when they fit in half of
    it. The inputs (designs and responses as given) are not counted.

    Parameters
    ----------
    memory : int | str
        The budget: bytes, or a size such as ``"4GB"``.
    n_samples, n_features, n_targets, n_layers, n_folds, inner_cv, n_alphas : int
        The fit's shape.
    n_validation, n_test : int
        The largest inner validation set and outer test set.
    n_permutations : int
        Permutation draws (0: none).
    refit_null : bool
        Whether the null is refitted (its draws are batched) rather than shifted.
    keep_predictions : int
        Layers whose held-out predictions (n_samples x n_targets, float64) are kept at once.
    refit : bool
        Whether each target's best layer is refitted on all samples after (its coefficients).
    itemsize : int
        Bytes per value of the working dtype.
    n_targets_batch : int | None
        A batch size asked for: the budget's is not larger.

    Returns
    -------
    budget : FitBudget

    Raises
    ------
    ValueError
        If even one target per batch does not fit.
    """
    mem = parse_memory(memory)
    n, p, t, L, s = int(n_samples), int(n_features), int(n_targets), int(n_layers), int(itemsize)
    a, n_val, n_te = int(n_alphas), int(n_validation), int(n_test)
    n_train = max(n - n_te, 1)
    m = min(n_train, p)  # the rank of a split's eigendecomposition
    kernel = p > n_train
    perm = int(n_permutations)
    per_all = (
        8 * n + s * n  # the responses checked (float64) and on the backend
        + 8 * (3 * n_folds * L + 6 * L + 3 * n_folds + 6)  # fold and mean scores, sums, p-values
        + (8 * 3 * perm + 4 * perm * L if perm else 0)  # null maximum, a layer's null, the comparisons' draws
        + (0 if refit_null or not perm else 8 * 5 * n_te)  # a shifted null's FFTs
        + 8 * n * max(int(keep_predictions), 0)
        + (3 * s * m if refit else 0)  # the refit's coefficients
    )
    per_layer = (
        n * p * s  # the layer's design on the backend
        + min(n, p) ** 2 * s  # its Gram
        + 2 * (inner_cv + 1) * (m * m + max(n_val, n_te) * m) * s  # eigendecompositions (cached ones too)
        + 2 * m * m * s  # eigh workspace
        # primal with more validation rows than columns: the QR factors of each inner split's projection
        + (2 * inner_cv * (n_val * m + m * m) * s if not kernel and n_val > m else 0)
    )
    fixed = per_all * t + per_layer
    if not kernel and s * p * t <= XTY_KEEP_BYTES:  # primal: X^T Y of every target, kept for every fold
        fixed += s * p * t
    per_target = (
        s * (n + p + 2 * m + (3 * a + 1) * n_val + 2 * n_te)  # projections, filters' predictions
        + 8 * (2 * a + 11 * n_te)  # float64 losses and scores
        + (8 * 3 * perm if refit_null else 0)  # the batch's null draws and their sums
    )
    room = mem - fixed
    if room < per_target:
        need = fixed + per_target
        raise ValueError(
            f"memory={memory!r} is too small for this fit ({n} samples x {p} columns, {t} targets, "
            f"{L} layer(s), {perm} permutations): it needs {_gib(fixed)} for what grows with every "
            f"target and one layer's decompositions, plus {per_target / 2**20:.2f} MiB per target of a "
            f"batch, so at least {_gib(need)}. Give memory >= {math.ceil(need / 1e7) / 100:.2f}GB, or fit fewer "
            "targets or layers at a time (neuroenc run chunks them), or fewer permutations.")
    resolve_bytes = inner_cv * a * n_val * n_train * s if kernel else 0
    resolve = kernel and resolve_bytes <= room // 2
    avail = room - (resolve_bytes if resolve else 0)
    batch = int(max(1, min(t, (avail // 2) // per_target)))
    if n_targets_batch is not None:
        batch = min(batch, int(n_targets_batch))
    refit_bytes = int(max(1, min(REFIT_BATCH_BYTES, avail - batch * per_target)))
    return FitBudget(mem, int(fixed), int(per_target), batch, refit_bytes, bool(resolve))


__all__ = ["FitBudget", "FitShape", "fit_budget", "fit_task_bytes", "parse_memory", "partition_fit",
           "target_chunk_size"]
