"""Memory-aware task sizes: the fit-task memory model against measured peaks, and the chunking
rules built on it (pure functions)."""
from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from neuroenc.encoding.memory import FitShape, fit_task_bytes, partition_fit, target_chunk_size

GiB = 2**30


def _measured_peak(rng, n, p, t, n_alphas, n_permutations):
    from neuroenc.encoding import fit_encoding

    X, Y = rng.standard_normal((n, p)), rng.standard_normal((n, t))
    kwargs = dict(alphas=np.logspace(0, 4, n_alphas), cv="blocks", n_blocks=4, inner_cv=3,
                  n_permutations=n_permutations, backend="numpy")
    fit_encoding([X[:40, :3]], Y[:40, :2], **{**kwargs, "n_permutations": 5})  # imports, caches
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fit_encoding([X], Y, **kwargs)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("n, p, t, n_permutations", [
    (300, 400, 500, 100),  # dual (kernel) form, penalties resolved first (5 x 75 < 500 targets)
    (300, 400, 200, 100),  # dual form, resolved per penalty
    (300, 40, 2000, 200),  # primal form
])
def test_fit_task_bytes_bounds_the_measured_peak(rng, n, p, t, n_permutations):
    """The estimate is an upper bound of fit_encoding's peak, and not a loose one (< 2.5x)."""
    peak = _measured_peak(rng, n, p, t, 5, n_permutations)
    estimate = fit_task_bytes(FitShape(n, p, t, 1, n_alphas=5, n_folds=4, inner_cv=3,
                                       n_permutations=n_permutations))
    assert peak <= estimate <= 2.5 * peak, (peak, estimate)


def test_fit_task_bytes_terms():
    shape = FitShape(n_samples=1000, n_features=2000, n_targets=10_000, n_layers=8, n_words=5000,
                     hidden_size=500, response_bytes=123, n_alphas=10, n_folds=5, inner_cv=5,
                     n_permutations=1000)
    # per layer of the task: its features (float32, every word), its scores, and its null draws kept
    # for the layer comparisons (float32) with the comparisons' float64 working arrays
    assert fit_task_bytes(shape, 10, 3) - fit_task_bytes(shape, 10, 2) == \
        4 * 5000 * 500 + 8 * (3 * 5 + 5) * 10 + (4 + 5 * 8) * 1000 * 10
    # with a refitted null, each layer's held-out predictions are kept for the comparisons' residual draws
    refit = FitShape(**{**shape.__dict__, "permutation": "refit"})
    assert (fit_task_bytes(refit, 10, 3) - fit_task_bytes(refit, 10, 2)) \
        - (fit_task_bytes(shape, 10, 3) - fit_task_bytes(shape, 10, 2)) == 8 * 1000 * 10
    # the subject's responses count once, whatever the chunk
    assert fit_task_bytes(FitShape(**{**shape.__dict__, "response_bytes": 10**6}), 10) \
        - fit_task_bytes(shape, 10) == 10**6 - 123
    # linear in targets below the "resolve first" threshold (n_alphas * n_validation = 10 * 160)
    # and while the comparisons' working arrays are below their cap (8e6 values: 1000 x 8 x 1000)
    step = fit_task_bytes(shape, 101) - fit_task_bytes(shape, 100)
    assert fit_task_bytes(shape, 900) - fit_task_bytes(shape, 100) == 800 * step
    # above it, every inner split holds (n_alphas, n_validation, n_train) matrices
    jump = fit_task_bytes(shape, 1601) - fit_task_bytes(shape, 1600)
    assert jump - step >= 5 * 10 * 160 * 800 * 8
    # the primal form (more samples than features) never resolves first
    primal = FitShape(n_samples=10_000, n_features=200, n_targets=100_000, n_layers=1)
    assert fit_task_bytes(primal, 50_001) - fit_task_bytes(primal, 50_000) < 10**6


def test_target_chunk_size_fits_the_budget_and_balances():
    shape = FitShape(n_samples=2000, n_features=3000, n_targets=10_000, n_layers=4, n_words=6000,
                     hidden_size=750, n_permutations=1000)
    memory = GiB
    chunk = target_chunk_size(shape, memory)
    assert fit_task_bytes(shape, chunk) <= 0.5 * memory
    # the largest chunk that fits, cut into equal chunks: the same number of tasks
    largest = max(t for t in range(chunk, 10_001) if fit_task_bytes(shape, t) <= 0.5 * memory)
    assert fit_task_bytes(shape, largest + 1) > 0.5 * memory
    assert math.ceil(10_000 / chunk) == math.ceil(10_000 / largest)
    assert chunk == math.ceil(10_000 / math.ceil(10_000 / largest))
    # more memory, bigger chunks; enough memory, one task
    assert target_chunk_size(shape, 2 * GiB) > chunk
    assert target_chunk_size(shape, 1024 * GiB) == 10_000
    assert target_chunk_size(shape, memory, fraction=0.4) < chunk


def test_chunks_stay_below_the_resolve_first_blowup():
    """A LeBel-sized subject (95k voxels, 84 stories): chunks avoid the dual form's stacked
    (n_alphas, n_validation, n_train) matrices, which one whole-subject task would need."""
    shape = FitShape(n_samples=27_000, n_features=576 * 4, n_targets=95_000, n_layers=31,
                     n_words=150_000, hidden_size=576, response_bytes=27_000 * 95_000 * 4,
                     n_alphas=15, n_folds=84, inner_cv=5, n_permutations=1000)
    assert fit_task_bytes(shape) > 64 * GiB
    layers, chunk = partition_fit(shape, 64 * GiB)
    assert layers == 31
    n_val = math.ceil((27_000 - math.ceil(27_000 / 84)) / 5)
    assert chunk < 15 * n_val
    assert fit_task_bytes(shape, chunk) <= 32 * GiB


def test_partition_fit_splits_layers_when_features_dominate():
    shape = FitShape(n_samples=500, n_features=400, n_targets=1000, n_layers=32, n_words=100_000,
                     hidden_size=1000)  # 0.4 GB of features per layer
    layers, chunk = partition_fit(shape, 8 * GiB)
    assert layers == 8  # 32 -> 16 -> 8 layers: 3.2 GB of features leave room for 256 targets
    assert fit_task_bytes(shape, min(256, chunk), 8) <= 4 * GiB < fit_task_bytes(shape, 256, 16)
    assert partition_fit(shape, 8 * GiB, layers_per_task=4)[0] == 4
    assert partition_fit(shape, 8 * GiB, layers_per_task=100, target_chunk=5000) == (32, 1000)
    assert partition_fit(shape, 1024 * GiB) == (32, 1000)


@pytest.mark.parametrize("kwargs, match", [
    (dict(memory_limit=100 * 2**20), r"needs .* GiB even for one target, but workers have 0.10 GiB"),
    (dict(memory_limit=0), r"'memory_limit' must be > 0, got 0"),
    (dict(memory_limit=GiB, fraction=1.5), r"fraction must be in \(0, 1\], got 1.5"),
])
def test_target_chunk_size_errors(kwargs, match):
    shape = FitShape(n_samples=2000, n_features=3000, n_targets=100, n_layers=1)
    with pytest.raises(ValueError, match=match):
        target_chunk_size(shape, **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_samples=0), r"'FitShape.n_samples' must be > 0, got 0"),
    (dict(n_targets=2.5), r"'FitShape.n_targets' must be an integer"),
    (dict(n_permutations=-1), r"'FitShape.n_permutations' must be >= 0"),
    (dict(n_folds=1), r"FitShape.n_folds must be >= 2"),
])
def test_fit_shape_errors(kwargs, match):
    base = dict(n_samples=100, n_features=10, n_targets=5, n_layers=2)
    with pytest.raises((ValueError, TypeError), match=match):
        FitShape(**{**base, **kwargs})


def test_partition_fit_errors():
    shape = FitShape(n_samples=100, n_features=10, n_targets=5, n_layers=2)
    with pytest.raises(ValueError, match=r"'layers_per_task' must be > 0, got 0"):
        partition_fit(shape, GiB, layers_per_task=0)
    with pytest.raises(TypeError, match=r"'target_chunk' must be an integer"):
        partition_fit(shape, GiB, target_chunk="big")
