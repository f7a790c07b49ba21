"""Work shared between fits: repeated null draws computed once, and the eigendecompositions of a
design shared by the subjects who heard the same story (:class:`SpectrumStore`)."""
import pickle

import numpy as np
import pytest

from neuroenc.encoding import _ridge, fit_encoding
from neuroenc.encoding.backend import use_backend
from neuroenc.encoding.spectra import SpectrumStore
from neuroenc.encoding.stats import ShiftedDraws, run_indices, run_shifts


class _AllDraws:
    """The same draws, each computed (no deduplication): the reference."""

    def __init__(self, draws):
        self.draws = draws
        self.n_draws = draws.n_draws

    def indices(self, start, stop):
        return self.draws.indices(start, stop)

    def distinct(self):
        return self, None


@pytest.mark.parametrize("order", ["hat", "project"])
def test_repeated_shifts_are_computed_once_with_the_same_null(rng, order):
    n, t = 14, 3
    X, Y = rng.standard_normal((n, 40)), rng.standard_normal((n, t))
    runs = run_indices(np.zeros(n))
    draws = ShiftedDraws(runs, run_shifts(runs, 60, 0), n)  # 60 draws of 13 possible shifts
    distinct, inverse = draws.distinct()
    assert distinct.n_draws <= 13 and inverse.shape == (60,)
    np.testing.assert_array_equal(distinct.indices(0, distinct.n_draws)[inverse], draws.indices(0, 60))
    alphas, best = np.array([0.1, 10.0]), np.array([0, 1, 1])
    with use_backend("numpy") as B:
        gram = _ridge.LayerGram.compute(X, "kernel")
        split = _ridge.decompose(B, gram, np.arange(10), np.arange(11, 14))
        once, every = {"flops": 0.0}, {"flops": 0.0}
        got = _ridge.refit_null(B, split, gram, Y, alphas, best, draws, order=order, counter=once)
        ref = _ridge.refit_null(B, split, gram, Y, alphas, best, _AllDraws(draws), order=order, counter=every)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    assert once["flops"] < every["flops"] * distinct.n_draws / 60 * 1.5


def test_distinct_draws_of_several_runs_keep_every_draw(rng):
    runs = run_indices(np.repeat([0, 1, 2], 50))
    draws = ShiftedDraws(runs, run_shifts(runs, 30, 1), 150)
    distinct, inverse = draws.distinct()
    assert distinct is draws and inverse is None  # 30 draws of 49**3 shift triplets: all distinct


def _layers(rng, n=80, p=120):
    base = rng.standard_normal((n, p))
    return [base, base[:, ::-1] + 0.5 * rng.standard_normal((n, p))]


@pytest.mark.parametrize("compare, baseline", [("residual", False), (False, False), ("residual", True)])
def test_subjects_of_one_design_share_its_spectra_with_the_same_results(rng, compare, baseline):
    layers = _layers(rng)
    subjects = [layers[0][:, :3] @ rng.standard_normal((3, 2)) + rng.standard_normal((80, 2)) for _ in range(3)]
    kw = dict(alphas=np.logspace(-1, 4, 6), cv=4, inner_cv=3, n_permutations=40, compare=compare,
              random_state=3, backend="numpy", dtype="float64")
    if baseline:  # the unique contributions' joint models reuse the same spectra
        kw["nuisance"] = {"rate": rng.standard_normal((80, 2))}
    store = SpectrumStore()
    missed = []
    get = store.get

    def spy(key, part):
        value = get(key, part)
        if value is None:
            missed.append(part)
        return value

    store.get = spy
    for k, Y in enumerate(subjects):
        missed.clear()
        shared = fit_encoding(layers, Y, spectra=store, **kw)
        alone = fit_encoding(layers, Y, **kw)
        for name in ("r", "r2", "pvalues", "alphas", "fold_r", "pvalues_best"):
            np.testing.assert_allclose(getattr(shared, name), getattr(alone, name), rtol=0, atol=1e-12)
        if compare:
            for name in ("delta_r", "pvalues", "ci_low", "ci_high"):
                np.testing.assert_allclose(getattr(shared.comparison, name), getattr(alone.comparison, name),
                                           rtol=0, atol=1e-12)
        if baseline:
            for name in ("delta_r2", "pvalues", "ci_low", "ci_high"):
                np.testing.assert_allclose(getattr(shared.unique, name), getattr(alone.unique, name),
                                           rtol=0, atol=1e-12)
        if k > 0:  # every Gram and spectrum came from the store (a penalty first chosen now: its new hat map)
            assert all(part.startswith(b"hat-map|") for part in missed)
    assert store.hits > 0 and 0 < store.nbytes <= store.max_bytes


def test_a_store_over_its_budget_drops_the_oldest_and_changes_nothing(rng):
    layers = _layers(rng)
    Y = rng.standard_normal((80, 2))
    kw = dict(alphas=np.logspace(-1, 4, 6), cv=4, inner_cv=3, n_permutations=0, backend="numpy",
              dtype="float64")
    small = SpectrumStore(max_bytes=200_000)
    for _ in range(2):
        got = fit_encoding(layers, Y, spectra=small, **kw)
        assert small.nbytes <= 200_000
    np.testing.assert_allclose(got.r, fit_encoding(layers, Y, **kw).r, rtol=0, atol=1e-12)


def test_a_store_travels_empty(rng):
    from neuroenc.pipeline.dask_worker import WorkerCache

    store = SpectrumStore(max_bytes=12345)
    store.put(b"k", b"gram", np.ones(10))
    copy = pickle.loads(pickle.dumps(store))
    assert copy.nbytes == 0 and copy.max_bytes == 12345 and store.nbytes == 80
    cache = WorkerCache()
    cache.spectra.put(b"k", b"gram", np.ones(10))
    assert pickle.loads(pickle.dumps(cache)).spectra.nbytes == 0


def test_the_key_is_the_content(rng):
    X = rng.standard_normal((5, 4))
    assert SpectrumStore.key(X, "kernel") == SpectrumStore.key(X.copy(), "kernel")
    assert SpectrumStore.key(X, "kernel") != SpectrumStore.key(X, "primal")
    Y = X.copy()
    Y[2, 3] += 1e-15
    assert SpectrumStore.key(X, "kernel") != SpectrumStore.key(Y, "kernel")
