"""Validation losses from the QR factors of the held-out projection (``_ridge.qr_losses``): the
losses of every penalty without forming any validation prediction, equal to those from the
predictions (``cv_losses``), and the same penalties and scores in a whole fit."""
from __future__ import annotations

import numpy as np
import pytest
from _encoding_fixtures import _one_blas_thread  # noqa: F401

from neuroenc.encoding import _ridge, make_cv
from neuroenc.encoding.backend import use_backend
from neuroenc.encoding.cv import inner_splits
from neuroenc.encoding.spectra import SpectrumStore


def _data(rng, n=420, p=24, t=9, dtype=np.float64):
    X = rng.standard_normal((n, p)) * np.logspace(0, -1.5, p)
    X = (X - X.mean(0)) / X.std(0)
    Y = X[:, :5] @ rng.standard_normal((5, t)) + 3.0 * rng.standard_normal((n, t))
    return X.astype(dtype), Y.astype(dtype)


def _losses(B, X, Y, train, val, alphas, use_qr):
    gram = _ridge.LayerGram.compute(X, "primal")
    XtY = X.T @ Y
    split = _ridge.decompose(B, gram, train, val)
    dtype = "float32" if X.dtype == np.float32 else "float64"
    _ridge.prepare_filters(B, split, alphas, Y.shape[1], dtype, qr_targets=10**6 if use_qr else 0)
    assert (split.R is not None) == use_qr
    counter = {}
    loss = _ridge.cv_losses(B, split, gram, Y, alphas, XtY, counter)
    return np.asarray(B.to_numpy(loss), dtype=np.float64), counter["flops"]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_qr_losses_equal_the_predictions_losses(rng, backend):
    if backend == "torch":
        pytest.importorskip("torch")
    X, Y = _data(rng)
    n = X.shape[0]
    # a gap between the training and validation rows (blocked CV): the projection subtracts them
    train, val = np.arange(0, 300), np.arange(310, n)
    alphas = np.logspace(-2, 6, 13)
    with use_backend(backend) as B:
        Xb, Yb, ab = B.asarray(X), B.asarray(Y), B.asarray(alphas)
        ref, _ = _losses(B, Xb, Yb, train, val, ab, use_qr=False)
        got, _ = _losses(B, Xb, Yb, train, val, ab, use_qr=True)
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    # the penalties differ (the grid is wide): the losses are not one number repeated
    assert np.ptp(ref, axis=0).min() > 1e-3 * np.abs(ref).max()
    # and by hand: the residuals of the ridge fit on the training rows
    for j, alpha in enumerate(alphas[[0, 6, 12]]):
        Xt = X[train]
        W = np.linalg.solve(Xt.T @ Xt + alpha * np.eye(X.shape[1]), Xt.T @ Y[train])
        np.testing.assert_allclose(got[[0, 6, 12][j]], -((X[val] @ W - Y[val]) ** 2).mean(0), rtol=1e-9)


def test_qr_losses_in_float32_are_those_of_float64(rng):
    X, Y = _data(rng)
    train, val = np.arange(0, 320), np.arange(320, X.shape[0])
    alphas = np.logspace(-2, 6, 13)
    with use_backend("numpy") as B:
        ref, _ = _losses(B, X, Y, train, val, alphas, use_qr=False)
        got, _ = _losses(B, X.astype(np.float32), Y.astype(np.float32), train, val, alphas.astype(np.float32), True)
    np.testing.assert_allclose(got, ref, rtol=2e-5)


def test_the_qr_path_is_chosen_when_it_saves_work_and_counts_fewer_flops(rng):
    X, Y = _data(rng, n=600, p=20, t=40)
    train, val = np.arange(0, 400), np.arange(400, 600)
    alphas = np.logspace(-2, 6, 10)
    with use_backend("numpy") as B:
        gram = _ridge.LayerGram.compute(X, "primal")
        few = _ridge.decompose(B, gram, train, val)
        _ridge.prepare_filters(B, few, alphas, 1, "float64")  # one target: the factorisation costs more
        many = _ridge.decompose(B, gram, train, val)
        _ridge.prepare_filters(B, many, alphas, 40, "float64")
        assert few.R is None and many.R is not None
        _, pred_flops = _losses(B, X, Y, train, val, alphas, use_qr=False)
        _, qr_flops = _losses(B, X, Y, train, val, alphas, use_qr=True)
        # validation rows (200) outnumber the columns (20): about 10x fewer operations per penalty
        assert qr_flops < 0.5 * pred_flops
        # more columns than validation rows: never
        wide = _ridge.decompose(B, _ridge.LayerGram.compute(X[:, :20], "primal"), np.arange(590), np.arange(590, 600))
        _ridge.prepare_filters(B, wide, alphas, 10**6, "float64")
        assert wide.R is None


def test_the_factors_are_kept_in_the_design_store(rng):
    X, Y = _data(rng, t=3)
    train, val = np.arange(0, 320), np.arange(320, X.shape[0])
    alphas = np.logspace(-2, 6, 10)
    store = SpectrumStore()
    with use_backend("numpy") as B:
        gram = _ridge.LayerGram("primal", X, X.T @ X, store, store.key_of(X, "primal"))
        first = _ridge.decompose(B, gram, train, val)
        _ridge.prepare_filters(B, first, alphas, 10**6, "float64", gram)
        second = _ridge.decompose(B, gram, train, val)
        _ridge.prepare_filters(B, second, alphas, 10**6, "float64", gram)
    assert first.R is not None and second.R is first.R and second.Q is first.Q
    assert second.flops < first.flops  # the second found the factorisation kept


def _fit(X, Y, outer, inner, alphas, counter, store=None):
    with use_backend("numpy") as B:
        return _ridge.fit_layer_cv(B.asarray(X), B.asarray(Y), outer, inner, B.asarray(alphas), counter=counter,
                                   store=store, inner_path="direct")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_fit_with_qr_losses_gives_the_fit_with_predictions(rng, dtype, monkeypatch):
    X, Y = _data(rng, n=500, p=16, t=30, dtype=dtype)
    groups = np.repeat(np.arange(5), 100)
    outer = make_cv("runs", groups, X.shape[0])
    inner = [inner_splits(tr, groups, 4, 0) for tr, _ in outer]
    alphas = np.logspace(-1, 5, 10).astype(dtype)
    calls = []
    real = _ridge.qr_losses
    monkeypatch.setattr(_ridge, "qr_losses", lambda *a, **k: calls.append(1) or real(*a, **k))
    got = _fit(X, Y, outer, inner, alphas, {})
    assert len(calls) == 5 * 4  # every inner split of every outer fold
    # the same fit, every split's losses from its predictions
    monkeypatch.setattr(_ridge, "validation_flops", lambda *a, **k: (0.0, 1.0, 1.0))
    ref = _fit(X, Y, outer, inner, alphas, {})
    assert len(calls) == 20
    np.testing.assert_array_equal(got["fold_alpha"], ref["fold_alpha"])
    tol = 1e-10 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(got["fold_r"], ref["fold_r"], rtol=tol, atol=tol)
    np.testing.assert_allclose(got["predictions"], ref["predictions"], rtol=tol, atol=tol)
    assert np.nanmean(got["fold_r"]) > 0.3  # a real signal was fitted


def test_the_halved_triangular_product_is_the_full_product(rng):
    torch = pytest.importorskip("torch")
    R = torch.as_tensor(np.triu(rng.standard_normal((203, 203))))
    W = torch.as_tensor(rng.standard_normal((3, 203, 7)))
    with use_backend("torch") as B:
        for depth in (0, 1, 3):
            got = _ridge._upper_product(B, R, W, depth)
            np.testing.assert_allclose(got.numpy(), (R @ W).numpy(), rtol=1e-12, atol=1e-10)


def test_qr_losses_of_a_numerically_low_rank_design(rng):
    """Collinear columns (rank 5 of 24): R has near-zero diagonal entries, Q stays orthonormal,
    and the losses still equal those from the predictions."""
    n, p, t = 420, 24, 5
    X = rng.standard_normal((n, 5)) @ rng.standard_normal((5, p)) + 1e-6 * rng.standard_normal((n, p))
    Y = X[:, :2] @ rng.standard_normal((2, t)) + rng.standard_normal((n, t))
    train, val = np.arange(0, 300), np.arange(300, n)
    alphas = np.logspace(-1, 6, 12)
    with use_backend("numpy") as B:
        ref, _ = _losses(B, X, Y, train, val, alphas, use_qr=False)
        got, _ = _losses(B, X, Y, train, val, alphas, use_qr=True)
    np.testing.assert_allclose(got, ref, rtol=1e-9)
