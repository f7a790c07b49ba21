"""The speed-ups of the demo's fit change no number: each saving is pinned against the path it
replaces (issue 23: the same results to 1e-8; in float32, the demo's dtype, bit for bit)."""
import numpy as np
import pytest

from neuroenc.encoding import _ridge, fit_encoding
from neuroenc.encoding.backend import take_block, take_rows, use_backend
from neuroenc.encoding.spectra import SpectrumStore
from neuroenc.encoding.stats import ShiftedDraws, run_indices, run_shifts


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_take_rows_and_blocks_are_fancy_indexing(rng, backend):
    A = rng.standard_normal((30, 4)).astype(np.float32)
    idx = rng.integers(0, 30, (7, 5)).astype(np.int32)  # any shape, as the draws' sample orders
    rows, cols = np.array([3, 1, 29, 3]), np.array([2, 0])
    with use_backend(backend) as B:
        Ab = B.asarray(A)
        got = B.to_numpy(take_rows(B, Ab, idx))
        np.testing.assert_array_equal(got, A[idx])
        assert got.shape == (7, 5, 4) and got.dtype == np.float32
        np.testing.assert_array_equal(B.to_numpy(take_rows(B, Ab, rows)), A[rows])
        np.testing.assert_array_equal(B.to_numpy(take_block(B, Ab, rows, cols)), A[rows][:, cols])


def _explicit_null(X, Y, train, test, alphas, best, idx, base=None):
    """Each draw refitted on its own: kernel ridge of the shifted training responses."""
    K = X @ X.T
    out = np.empty((idx.shape[0], Y.shape[1]))
    for d, order in enumerate(idx):
        Yd = Y[order] + (0 if base is None else base)
        for c in range(Y.shape[1]):
            a = alphas[best[c]]
            w = np.linalg.solve(K[np.ix_(train, train)] + a * np.eye(train.size), Yd[train, c])
            out[d, c] = np.corrcoef(K[np.ix_(test, train)] @ w, Yd[test, c])[0, 1]
    return out


@pytest.mark.parametrize("with_base", [False, True])
def test_refit_null_hat_order_gathers_each_penalty_group_apart_with_the_same_null(rng, with_base):
    """The hat order takes each penalty's targets' draws directly (no gather of every target
    then a copy of its columns): the same null as refitting every draw."""
    n, t = 40, 5
    X, Y = rng.standard_normal((n, 60)), rng.standard_normal((n, t))
    base = rng.standard_normal((n, t)) if with_base else None
    runs = run_indices(np.repeat([0, 1], 20))
    draws = ShiftedDraws(runs, run_shifts(runs, 25, 0), n)
    train, test = np.r_[0:22, 30:40], np.arange(24, 30)
    alphas, best = np.array([0.5, 5.0, 50.0]), np.array([2, 0, 2, 1, 0])  # three groups, of 1 or 2 targets
    with use_backend("numpy") as B:
        gram = _ridge.LayerGram.compute(X, "kernel")
        split = _ridge.decompose(B, gram, train, test)
        for batch_bytes in (_ridge.REFIT_BATCH_BYTES, 3000):  # one batch of draws, or several
            got = _ridge.refit_null(B, split, gram, Y, alphas, best, draws, order="hat", base=base,
                                    batch_bytes=batch_bytes)
            ref = _explicit_null(X, Y, train, test, alphas, best, draws.indices(0, draws.n_draws), base)
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)


def _design(rng, n=60, p=90):
    layer = rng.standard_normal((n, p))
    return [layer, layer[:, ::-1] + 0.3 * rng.standard_normal((n, p))]


@pytest.mark.parametrize("baseline", [False, True])
def test_a_design_kept_in_the_store_gives_the_same_bits_in_float32(rng, baseline):
    """The held-out projections and penalty filters of every split are kept with its spectrum:
    a later subject's float32 fit (the demo's dtype) equals a fit without the store bit for bit."""
    layers = [x.astype(np.float32) for x in _design(rng)]
    kw = dict(alphas=np.logspace(-1, 4, 6), cv=3, inner_cv=3, n_permutations=30, random_state=1,
              backend="numpy", dtype="float32", compare="null")
    if baseline:
        kw["nuisance"] = {"rate": rng.standard_normal((60, 2))}
    store = SpectrumStore()
    for _ in range(2):
        Y = (layers[0][:, :2] @ rng.standard_normal((2, 3)) + rng.standard_normal((60, 3))).astype(np.float32)
        shared = fit_encoding(layers, Y, spectra=store, **kw)
        alone = fit_encoding(layers, Y, **kw)
        for name in ("r", "r2", "pvalues", "alphas", "fold_r", "pvalues_best"):
            np.testing.assert_array_equal(getattr(shared, name), getattr(alone, name))
        if baseline:
            np.testing.assert_array_equal(shared.unique.delta_r2, alone.unique.delta_r2)


def test_a_later_fit_of_the_design_reuses_its_projections_and_filters(rng, monkeypatch):
    layers = _design(rng)
    kw = dict(alphas=np.logspace(-1, 4, 6), cv=3, inner_cv=3, n_permutations=0, backend="numpy",
              dtype="float64", nuisance={"rate": rng.standard_normal((60, 2))})  # the joint models: direct inner CV
    store = SpectrumStore()
    calls = []
    real = _ridge.filter_basis
    monkeypatch.setattr(_ridge, "filter_basis", lambda *a: calls.append(1) or real(*a))
    kinds = []
    get = store.get
    monkeypatch.setattr(store, "get", lambda key, part: kinds.append(part.split(b"|")[0]) or get(key, part))
    fit_encoding(layers, rng.standard_normal((60, 2)), spectra=store, **kw)
    first, misses = len(calls), store.misses
    kinds.clear()
    fit_encoding(layers, rng.standard_normal((60, 2)), spectra=store, **kw)
    # the layers' 2 x 3 x 3 inner splits take their filters from the store (the baseline's fits have none)
    assert len(calls) - first == first - 2 * 3 * 3
    assert store.misses == misses and kinds.count(b"P") == 2 * 3 * 4 and kinds.count(b"filters") == 2 * 3 * 3


def test_unique_contribution_draws_are_computed_once_per_distinct_shift(rng, monkeypatch):
    """A short run has few circular shifts: the unique contributions' residual draws compute each
    distinct one once and copy it to its repeats, with the same tests as computing every draw."""
    from neuroenc.encoding import _joint
    from neuroenc.encoding.stats import ShiftedDraws

    layers = _design(rng, n=60, p=50)
    Y = layers[0][:, :2] @ rng.standard_normal((2, 2)) + rng.standard_normal((60, 2))
    kw = dict(alphas=np.logspace(-1, 4, 5), cv=3, inner_cv=3, n_permutations=100, random_state=2,
              backend="numpy", dtype="float64", compare="residual", nuisance={"rate": rng.standard_normal((60, 2))})
    seen = []
    real = _joint.UniqueDraws.__init__

    def spy(self, *args, **kwargs):
        seen.append(args[-1].n_draws)
        real(self, *args, **kwargs)

    monkeypatch.setattr(_joint.UniqueDraws, "__init__", spy)
    once = fit_encoding(layers, Y, **kw)
    assert seen and seen[0] < 60  # at most 59 shifts of a 60-sample run, not 100 draws
    monkeypatch.setattr(ShiftedDraws, "distinct", lambda self: (self, None))  # every draw computed
    every = fit_encoding(layers, Y, **kw)
    assert seen[-1] == 100
    for name in ("delta_r2", "delta_r", "pvalues", "ci_low", "ci_high"):
        np.testing.assert_allclose(getattr(once.unique, name), getattr(every.unique, name), rtol=0, atol=1e-10)
    np.testing.assert_array_equal(once.unique.in_best_set, every.unique.in_best_set)
    assert once.unique.n_draws == every.unique.n_draws == 100


def test_refit_null_hat_maps_are_kept_for_later_fits_of_the_design(rng):
    """The hat order's (n_test, n_train) map of each penalty depends on the design only: a later
    subject takes it from the store, the same bits."""
    n, t = 40, 3
    X = rng.standard_normal((n, 60)).astype(np.float32)
    runs = run_indices(np.zeros(n))
    draws = ShiftedDraws(runs, run_shifts(runs, 20, 0), n)
    alphas, best = np.array([0.5, 5.0], dtype=np.float32), np.array([1, 0, 1])
    store = SpectrumStore()
    with use_backend("numpy") as B:
        outer = [(np.r_[0:25, 33:40], np.arange(27, 31))]
        for k in range(2):
            Y = rng.standard_normal((n, t)).astype(np.float32)
            _, gram, _ = _ridge._layer_gram(X, outer, "kernel", None, store)
            split = _ridge.decompose(B, gram, *outer[0])
            hits, counter = store.hits, {"flops": 0.0}
            got = _ridge.refit_null(B, split, gram, Y, alphas, best, draws, order="hat", counter=counter)
            fresh = _ridge.LayerGram.compute(X, "kernel")
            ref = _ridge.refit_null(B, _ridge.decompose(B, fresh, *outer[0]), fresh, Y, alphas, best, draws,
                                    order="hat")
            np.testing.assert_array_equal(got, ref)
            if k:  # both maps from the store: only the draws' products counted
                assert store.hits - hits == 2  # the two penalties' maps
                assert counter["flops"] == 2.0 * 4 * 32 * draws.distinct()[0].n_draws * t


def test_a_features_file_is_read_and_hashed_once_per_worker(tmp_path, monkeypatch):
    from neuroenc._validation import _sha256_file
    from neuroenc.features import featureset, kinds
    from neuroenc.pipeline import tasks

    fs = featureset.FeatureSet({0: np.ones((4, 3)), 1: np.zeros((4, 3))}, np.arange(4.0), run="r")
    path = featureset.save_features(fs, tmp_path / "f.h5")
    reads = []
    real = kinds.load_feature_file
    monkeypatch.setattr(kinds, "load_feature_file", lambda *a, **k: reads.append(1) or real(*a, **k))
    store = SpectrumStore()
    first, digest = tasks._read_features(path, None, store)
    again, digest2 = tasks._read_features(path, None, store)
    assert again is first and digest == digest2 == _sha256_file(path) and len(reads) == 1
    assert store.nbytes == sum(first[i].nbytes for i in first.layer_indices) > 0
    tasks._read_features(path, [1], store)  # other layers: read
    featureset.save_features(featureset.FeatureSet({0: 2 * np.ones((4, 3))}, np.arange(4.0), run="r"), path)
    changed, digest3 = tasks._read_features(path, None, store)  # a rewritten file: read again
    assert len(reads) == 3 and digest3 != digest and changed[0][0, 0] == 2.0
    alone, digest4 = tasks._read_features(path, None)  # no store: read every time
    assert len(reads) == 4 and digest4 == digest3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cv_losses_filter_all_at_once_as_one_at_a_time(rng, monkeypatch, dtype):
    """The held-out projection filtered by every basis filter in one batched product: the same
    GEMMs as one filter at a time (the path above FILTERED_BYTES), the same bits; and a projection
    given by the caller (the joint models compute it once for both) changes nothing."""
    X, Y = rng.standard_normal((50, 80)).astype(dtype), rng.standard_normal((50, 4)).astype(dtype)
    alphas = np.logspace(-2, 6, 12).astype(dtype)
    with use_backend("numpy") as B:
        gram = _ridge.LayerGram.compute(X, "kernel")
        split = _ridge.decompose(B, gram, np.arange(35), np.arange(40, 50))
        _ridge.prepare_filters(B, split, alphas, 0, np.dtype(dtype).name)
        batched, E = _ridge.cv_losses(B, split, gram, Y, alphas, return_residuals=True)
        given = _ridge.cv_losses(B, split, gram, Y, alphas, Z=split.project(B, gram, Y))
        monkeypatch.setattr(_ridge, "FILTERED_BYTES", 0)
        looped, E2 = _ridge.cv_losses(B, split, gram, Y, alphas, return_residuals=True)
    np.testing.assert_array_equal(batched, looped)
    np.testing.assert_array_equal(E, E2)
    np.testing.assert_array_equal(given, looped)


def test_fold_scores_sums_without_temporaries_give_pearson_r_and_r2(rng):
    Yt, pred = rng.standard_normal((30, 5)), rng.standard_normal((30, 5))
    Yt[:, 3] = 1.0  # a constant response: NaN
    pred[:, 4] = 2.0  # a constant prediction: r = 0
    with use_backend("numpy") as B:
        r, r2 = _ridge.fold_scores(B, Yt.astype(np.float32), pred.astype(np.float32))
    Y64, P64 = Yt.astype(np.float32).astype(np.float64), pred.astype(np.float32).astype(np.float64)
    for j in (0, 1, 2):
        np.testing.assert_allclose(r[j], np.corrcoef(Y64[:, j], P64[:, j])[0, 1], rtol=0, atol=1e-12)
        ss = ((Y64[:, j] - P64[:, j]) ** 2).sum() / ((Y64[:, j] - Y64[:, j].mean()) ** 2).sum()
        np.testing.assert_allclose(r2[j], 1 - ss, rtol=0, atol=1e-12)
    assert np.isnan(r[3]) and np.isnan(r2[3]) and r[4] == 0.0
