"""The nested-CV ridge maths against himalaya, on every CPU backend; the backend switch."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from _encoding_fixtures import _one_blas_thread  # noqa: F401
from himalaya.backend import get_backend, set_backend
from himalaya.kernel_ridge import KernelRidgeCV
from himalaya.ridge import RidgeCV
from himalaya.scoring import correlation_score, r2_score

from neuroenc.encoding import _ridge, make_cv, use_backend
from neuroenc.encoding.backend import resolve_backend
from neuroenc.encoding.cv import inner_splits


def _problem(rng, n=150, p=30, t=12):
    X = rng.standard_normal((n, p))
    W = rng.standard_normal((p, t)) * (rng.random(t) < 0.8)
    Y = X @ W / np.sqrt(p) + 1.5 * rng.standard_normal((n, t))
    return X - X.mean(0), Y - Y.mean(0)


def _himalaya_loop(X, Y, outer, inner, alphas, Est):
    rs, r2s, best = [], [], []
    for (train, test), inn in zip(outer, inner):
        pos = {v: i for i, v in enumerate(train)}
        cv = [(np.array([pos[i] for i in a]), np.array([pos[i] for i in b])) for a, b in inn]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model = Est(alphas=alphas, cv=cv).fit(X[train], Y[train])
        pred = model.predict(X[test])
        rs.append(correlation_score(Y[test], pred))
        r2s.append(r2_score(Y[test], pred))
        best.append(model.best_alphas_)
    return np.array(rs), np.array(r2s), np.array(best)


@pytest.mark.parametrize("p,form,Est", [(30, "primal", RidgeCV), (200, "kernel", KernelRidgeCV),
                                        (30, "kernel", KernelRidgeCV), (200, "primal", RidgeCV)])
def test_fit_layer_cv_equals_himalaya(rng, p, form, Est):
    """Same folds and penalties: the same chosen alphas and held-out scores as himalaya."""
    X, Y = _problem(rng, p=p)
    alphas = np.logspace(-1, 4, 11)
    outer = make_cv("blocks", None, X.shape[0], n_blocks=4, gap=2)
    inner = [inner_splits(tr, None, 3, 2) for tr, _ in outer]
    out = _ridge.fit_layer_cv(X, Y, outer, inner, alphas, form=form)
    r, r2, best = _himalaya_loop(X, Y, outer, inner, alphas, Est)
    assert out["form"] == form
    np.testing.assert_allclose(out["fold_alpha"], best, rtol=1e-12)
    np.testing.assert_allclose(out["fold_r"], r, atol=1e-10)
    np.testing.assert_allclose(out["fold_r2"], r2, atol=1e-10)
    # held-out predictions are the himalaya predictions, sample by sample
    assert np.isfinite(out["predictions"]).all()


@pytest.mark.parametrize("form,Est", [("kernel", KernelRidgeCV), ("primal", RidgeCV)])
def test_low_rank_filters_equal_himalaya(rng, form, Est):
    """The voxelwise tutorials' grid (10^1..10^20): a few basis filters serve all 20 penalties."""
    X, Y = _problem(rng, p=200 if form == "kernel" else 30, t=40)
    alphas = np.logspace(1, 20, 20)
    outer = make_cv("blocks", None, X.shape[0], n_blocks=3, gap=1)
    inner = [inner_splits(tr, None, 3, 1) for tr, _ in outer]
    with use_backend("numpy") as B:
        split = _ridge.decompose(B, _ridge.LayerGram.compute(X, form), *inner[0][0])
        _ridge.prepare_filters(B, split, alphas, 40, "float64", qr_targets=0)  # the losses from predictions
    assert split.combine is not None and split.filters.shape[0] < 15
    out = _ridge.fit_layer_cv(X, Y, outer, inner, alphas, form=form)
    r, _, best = _himalaya_loop(X, Y, outer, inner, alphas, Est)
    np.testing.assert_allclose(out["fold_alpha"], best, rtol=1e-12)
    np.testing.assert_allclose(out["fold_r"], r, atol=1e-10)


def test_filter_basis_reconstructs_filters():
    lam = np.concatenate([[0.0], np.logspace(-1, 4, 200)])
    alphas = np.logspace(-1, 8, 20)
    C, G = _ridge.filter_basis(lam, alphas, 1e-12)
    F = 1.0 / (lam[None] + alphas[:, None])
    np.testing.assert_allclose(C @ G, F, rtol=1e-9, atol=0)
    assert G.shape[0] < 20
    assert _ridge.filter_basis(lam, alphas[:3], 1e-12) is None  # nothing to save
    assert _ridge.filter_basis(np.array([-1.0, 1.0]), np.array([0.5, 1.0, 2.0]), 1e-12) is None


def test_fit_layer_cv_target_batches_and_chunks_are_exact(rng):
    X, Y = _problem(rng, p=60, t=20)
    alphas = np.logspace(-1, 4, 6)
    groups = np.repeat(["a", "b", "c"], 50)
    outer = make_cv("auto", groups, 150)
    inner = [inner_splits(tr, groups, 5) for tr, _ in outer]
    full = _ridge.fit_layer_cv(X, Y, outer, inner, alphas)
    batched = _ridge.fit_layer_cv(X, Y, outer, inner, alphas, n_targets_batch=3)
    chunk = _ridge.fit_layer_cv(X, Y[:, 7:13], outer, inner, alphas)
    np.testing.assert_allclose(batched["fold_r"], full["fold_r"], atol=1e-12)
    np.testing.assert_allclose(chunk["fold_r"], full["fold_r"][:, 7:13], atol=1e-12)
    np.testing.assert_array_equal(chunk["fold_alpha"], full["fold_alpha"][:, 7:13])


def test_refit_layer_equals_himalaya_ridgecv(rng):
    X, Y = _problem(rng, p=40)
    alphas = np.logspace(-1, 4, 8)
    splits = make_cv("blocks", None, X.shape[0], n_blocks=3, gap=0)
    for form, Est in (("primal", RidgeCV), ("kernel", KernelRidgeCV)):
        kind, coef, best = _ridge.refit_layer(X, Y, splits, alphas, form=form)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ref = Est(alphas=alphas, cv=splits).fit(X, Y)
        np.testing.assert_allclose(best, ref.best_alphas_, rtol=1e-12)
        pred = X @ coef if kind == "primal" else (X @ X.T) @ coef
        np.testing.assert_allclose(pred, ref.predict(X), atol=1e-9)
        assert kind == {"primal": "primal", "kernel": "dual"}[form]


def test_fold_scores_constant_cases():
    y = np.array([[1.0, 2.0, 3.0], [2.0, 2.0, 1.0], [3.0, 2.0, 2.0]])
    pred = np.array([[1.0, 5.0, 0.0], [2.0, 4.0, 0.0], [3.0, 3.0, 0.0]])
    with use_backend("numpy") as B:
        r, r2 = _ridge.fold_scores(B, y, pred)
    np.testing.assert_allclose(r[0], 1.0)
    assert np.isnan(r[1]) and np.isnan(r2[1])  # constant target
    assert r[2] == 0.0  # constant prediction
    np.testing.assert_allclose(r2[0], 1.0)


def test_torch_backend_equals_numpy(rng):
    X, Y = _problem(rng, p=80)
    alphas = np.logspace(-1, 4, 6)
    outer = make_cv("blocks", None, X.shape[0], n_blocks=3, gap=1)
    inner = [inner_splits(tr, None, 3, 1) for tr, _ in outer]
    ref = _ridge.fit_layer_cv(X, Y, outer, inner, alphas, form="kernel")
    with use_backend("torch") as B:
        out = _ridge.fit_layer_cv(B.asarray(X), B.asarray(Y), outer, inner, B.asarray(alphas), form="kernel")
    np.testing.assert_allclose(out["fold_r"], ref["fold_r"], atol=1e-10)
    np.testing.assert_array_equal(out["fold_alpha"], ref["fold_alpha"])


def test_use_backend_restores_previous_backend():
    set_backend("numpy")
    with use_backend("torch") as B:
        assert B.name == "torch" and get_backend().name == "torch"
    assert get_backend().name == "numpy"
    with pytest.raises(RuntimeError, match="boom"):
        with use_backend("torch"):
            raise RuntimeError("boom")
    assert get_backend().name == "numpy"


def test_backend_auto_and_bad_names(monkeypatch):
    import neuroenc.encoding.backend as backend_mod

    monkeypatch.setattr(backend_mod, "_cuda_available", lambda: False)
    assert resolve_backend("auto") == "numpy"
    with pytest.raises(ValueError, match="backend='torch_cuda' was requested but PyTorch sees no CUDA"):
        resolve_backend("torch_cuda")
    monkeypatch.setattr(backend_mod, "_cuda_available", lambda: True)
    assert resolve_backend("auto") == "torch_cuda"
    with pytest.raises(ValueError, match="Invalid value for 'backend'"):
        resolve_backend("cupy")


def test_flop_counter_counts_the_solves(rng):
    X, Y = _problem(rng, n=120, p=200, t=5)
    alphas = np.logspace(0, 3, 4)
    outer = make_cv("blocks", None, 120, n_blocks=3, gap=0)
    inner = [inner_splits(tr, None, 2, 0) for tr, _ in outer]
    counter = {}
    _ridge.fit_layer_cv(X, Y, outer, inner, alphas, form="kernel", counter=counter)
    # at least the kernel and one eigendecomposition per split
    n_tr = [tr.size for inn in inner for tr, _ in inn] + [tr.size for tr, _ in outer]
    floor = 2 * 120 * 120 * 200 + sum(9 * m**3 for m in n_tr)
    assert floor <= counter["flops"] < 3 * floor


@pytest.mark.gpu
def test_torch_cuda_backend_equals_numpy(rng):
    """On a GPU, backend='auto' picks torch_cuda (float32) and agrees with NumPy."""
    from neuroenc.encoding import LayerSweep

    X, Y = _problem(rng, n=200, p=300, t=50)
    with use_backend("auto") as B:
        assert B.name == "torch_cuda"
    gpu = LayerSweep(cv=4, gap=1, inner_cv=3, n_permutations=50, random_state=0).fit([X], Y)
    cpu = LayerSweep(cv=4, gap=1, inner_cv=3, n_permutations=50, random_state=0, backend="numpy",
                     dtype="float32").fit([X], Y)
    assert gpu.backend_ == "torch_cuda" and gpu.dtype_ == "float32"
    same = gpu.fold_alphas_ == cpu.fold_alphas_
    assert same.mean() > 0.99
    np.testing.assert_allclose(gpu.fold_r_[same], cpu.fold_r_[same], atol=1e-4)
    np.testing.assert_allclose(gpu.predict([X]), cpu.predict([X]), atol=1e-3)
    assert get_backend().name == "numpy"
