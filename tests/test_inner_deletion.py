"""Inner CV from the outer split's spectrum (the group-deletion identity) against the direct path:
the same CV losses, penalties, scores and p-values, with one eigendecomposition per outer fold."""
from __future__ import annotations

import functools

import numpy as np
import pytest
from _encoding_fixtures import _one_blas_thread  # noqa: F401

from neuroenc.encoding import _ridge, fit_encoding, make_cv
from neuroenc.encoding.backend import use_backend
from neuroenc.encoding.cv import inner_splits
from neuroenc.encoding.stats import PermutedDraws, ShiftedDraws, run_indices, run_shifts


def _design(rng, n, p, rank=None):
    if rank is None:
        X = rng.standard_normal((n, p)) * np.logspace(0, -1.5, p)
    else:  # numerically low-rank: tiny penalties are ill-conditioned
        X = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, p)) + 1e-6 * rng.standard_normal((n, p))
    return (X - X.mean(0)) / X.std(0)


def _splits(kind, n, groups=None):
    if kind == "blocks":  # samples in time: contiguous blocks, gap rows in neither part
        outer = make_cv("blocks", None, n, n_blocks=4, gap=3)
        return outer, [inner_splits(tr, None, 3, 3) for tr, _ in outer]
    outer = make_cv(kind, groups, n, random_state=0)
    scheme = kind.split(":")[0]
    return outer, [inner_splits(tr, groups, 4, 0, scheme=scheme, random_state=1) for tr, _ in outer]


CASES = [("kernel", 260, "blocks"), ("primal", 40, "blocks"), ("kernel", 260, "kfold:5"),
         ("primal", 40, "kfold:5"), ("kernel", 260, "group-kfold:5"), ("primal", 40, "group-kfold:5")]


@pytest.mark.parametrize("form,p,cv", CASES)
def test_deletion_losses_equal_the_direct_path(rng, form, p, cv):
    n, t = 160, 3
    groups = np.repeat(np.arange(16), 10)
    X = _design(rng, n, p)
    Y = X[:, :4] @ rng.standard_normal((4, t)) + rng.standard_normal((n, t))
    outer, inner = _splits(cv, n, groups)
    alphas = np.logspace(-1, 7, 17)
    with use_backend("numpy") as B:
        gram = _ridge.LayerGram.compute(X, form)
        XtY = X.T @ Y if form == "primal" else None
        for (train, test), inn in zip(outer, inner):
            split = _ridge.decompose(B, gram, train, test)
            Z = split.project(B, gram, Y, XtY)
            for tr, va in inn:
                ref_split = _ridge.decompose(B, gram, tr, va)
                _ridge.prepare_filters(B, ref_split, alphas, t, "float64")
                ref = _ridge.cv_losses(B, ref_split, gram, Y, alphas, XtY)
                for n_targets in (1, 10**6):  # both orders of the products
                    d = _ridge.deletion_split(B, gram, split, tr, va, alphas, "float64", n_targets)
                    assert d.ok.all() and d.fallback is None
                    if n_targets == 1:  # few targets: the factorisations, applied per target
                        assert d.maps is None and len(d.factors) == alphas.size
                    elif form == "kernel" or cv == "blocks":  # many: one map per penalty
                        assert d.maps is not None and d.factors is None
                    got = _ridge.deletion_losses(B, d, split, gram, Y, Z, alphas, XtY)
                    np.testing.assert_allclose(got, ref, rtol=1e-10)


@pytest.mark.parametrize("form,p,cv", CASES)
def test_fits_and_nulls_equal_the_direct_path(rng, form, p, cv):
    n, t = 160, 4
    groups = np.repeat(np.arange(16), 10)
    X = _design(rng, n, p)
    Y = X[:, :4] @ rng.standard_normal((4, t)) + rng.standard_normal((n, t))
    outer, inner = _splits(cv, n, groups)
    alphas = np.logspace(-1, 7, 17)
    if cv == "blocks":
        runs = run_indices(np.zeros(n))
        draws = ShiftedDraws(runs, run_shifts(runs, 30, 0), n)
    else:
        draws = PermutedDraws(run_indices(groups) if cv.startswith("group") else [np.arange(n)], 30, n,
                              random_state=0)
    out = {}
    for path in ("direct", "deletion"):
        counter = {}
        out[path] = _ridge.fit_layer_cv(X, Y, outer, inner, alphas, form=form, null_shifts=draws,
                                        inner_path=path, counter=counter)
        out[path]["flops"] = counter["flops"]
    ref, got = out["direct"], out["deletion"]
    assert got["form"] == form
    np.testing.assert_array_equal(got["fold_alpha"], ref["fold_alpha"])
    for name in ("fold_r", "fold_r2", "pooled_r", "predictions", "null"):
        np.testing.assert_allclose(got[name], ref[name], rtol=0, atol=1e-10)


def test_ill_conditioned_penalties_fall_back_to_the_direct_path(rng):
    n, p, t = 150, 200, 3
    X = _design(rng, n, p, rank=15)
    Y = X[:, :3] @ rng.standard_normal((3, t)) + rng.standard_normal((n, t))
    alphas = np.logspace(-10, 4, 15)
    train, test = np.arange(20, n), np.arange(20)
    tr, va = train[40:], train[:40]
    with use_backend("numpy") as B:
        gram = _ridge.LayerGram.compute(X, "kernel")
        split = _ridge.decompose(B, gram, train, test)
        d = _ridge.deletion_split(B, gram, split, tr, va, alphas, "float64", 1)
        # the tiny penalties, whose (I - H_DD) is ill-conditioned, are the direct path's
        assert not d.ok[:5].any() and d.ok[-5:].all() and d.fallback is not None
        ref_split = _ridge.decompose(B, gram, tr, va)
        _ridge.prepare_filters(B, ref_split, alphas, t, "float64")
        ref = _ridge.cv_losses(B, ref_split, gram, Y, alphas)
        got = _ridge.deletion_losses(B, d, split, gram, Y, split.project(B, gram, Y), alphas)
    np.testing.assert_array_equal(got[~d.ok], ref[~d.ok])
    np.testing.assert_allclose(got[d.ok], ref[d.ok], rtol=1e-8)
    # with every penalty ill-conditioned, the split is the direct one
    with use_backend("numpy") as B:
        d = _ridge.deletion_split(B, gram, split, tr, va, alphas[:3], "float64", 1)
        assert not d.ok.any() and d.factors is None and d.maps is None
        got = _ridge.deletion_losses(B, d, split, gram, Y, None, alphas[:3])
        _ridge.prepare_filters(B, ref_split, alphas[:3], t, "float64")
        ref = _ridge.cv_losses(B, ref_split, gram, Y, alphas[:3])
    np.testing.assert_array_equal(got, ref)


def test_auto_takes_the_cheaper_path_and_counts_less(rng):
    n, p = 300, 400
    X = _design(rng, n, p)
    Y = rng.standard_normal((n, 2))
    outer, inner = _splits("kfold:5", n)
    alphas = np.logspace(-1, 7, 17)
    with use_backend("numpy") as B:
        gram = _ridge.LayerGram.compute(X, "kernel")
        split = _ridge.decompose(B, gram, *outer[0])
        assert _ridge.plan_inner(B, gram, split, inner[0], alphas, 1, "auto") == "deletion"
        assert _ridge.plan_inner(B, gram, split, inner[0], alphas, 100000, "auto") == "direct"
        assert _ridge.plan_inner(B, gram, split, inner[0], alphas, 1, "direct") == "direct"
        assert _ridge.plan_inner(B, gram, split, inner[0], np.r_[1e-9, alphas], 1, "auto") == "deletion"
        # float32, or a penalty that a low-rank design's outer spectrum makes ill-conditioned: direct
        low = _ridge.LayerGram.compute(_design(rng, n, p, rank=20), "kernel")
        low_split = _ridge.decompose(B, low, *outer[0])
        assert _ridge.plan_inner(B, low, low_split, inner[0], alphas, 1, "auto") == "deletion"
        assert _ridge.plan_inner(B, low, low_split, inner[0], alphas, 1, "auto", dtype="float32") == "direct"
        assert _ridge.plan_inner(B, low, low_split, inner[0], np.r_[1e-9, alphas], 1, "auto") == "direct"
    counters = {path: {} for path in ("auto", "direct")}
    for path, counter in counters.items():
        _ridge.fit_layer_cv(X, Y, outer, inner, alphas, inner_path=path, counter=counter)
    assert counters["auto"]["flops"] < 0.6 * counters["direct"]["flops"]


def test_bad_inner_path_and_inner_rows_outside_the_outer_training_set(rng):
    X, Y = rng.standard_normal((40, 50)), rng.standard_normal((40, 1))
    outer, inner = _splits("kfold:4", 40)
    with pytest.raises(ValueError, match="Invalid value for 'inner_path'.*'deletion'.*got 'fast'"):
        _ridge.fit_layer_cv(X, Y, outer, inner, np.array([1.0]), inner_path="fast")
    with use_backend("numpy") as B:
        gram = _ridge.LayerGram.compute(X, "kernel")
        split = _ridge.decompose(B, gram, *outer[0])
        with pytest.raises(ValueError, match="must lie in its outer training set"):
            _ridge.deletion_split(B, gram, split, outer[0][0][5:], outer[0][1], np.array([1.0]), "float64")


@pytest.mark.parametrize("cv", ["kfold:5", "group-kfold:4"])
def test_stimulus_fit_pvalues_equal_the_direct_path(rng, monkeypatch, cv):
    n = 120
    layers = [_design(rng, n, 150), _design(rng, n, 150)]
    Y = layers[0][:, :3] @ rng.standard_normal((3, 2)) + rng.standard_normal((n, 2))
    groups = np.repeat(np.arange(12), 10) if cv.startswith("group") else None
    kw = dict(cv=cv, inner_cv=3, n_permutations=60, compare=False, random_state=2, backend="numpy",
              dtype="float64")
    original = _ridge.fit_layer_cv
    fits = {}
    for path in ("direct", "deletion"):
        monkeypatch.setattr(_ridge, "fit_layer_cv", functools.partial(original, inner_path=path))
        fits[path] = fit_encoding(layers, Y, groups, **kw)
    for name in ("r", "r2", "pvalues", "alphas", "fold_r", "pvalues_best"):
        np.testing.assert_allclose(getattr(fits["deletion"], name), getattr(fits["direct"], name),
                                   rtol=0, atol=1e-10)


@pytest.mark.parametrize("form,p", [("kernel", 120), ("primal", 20)])
def test_refits_by_cholesky_solve_equal_the_eigendecomposition(rng, form, p):
    """A few penalties' refit maps from Cholesky solves: the same null and comparison draws."""
    n, t = 90, 3
    X = _design(rng, n, p)
    Y = X[:, :3] @ rng.standard_normal((3, t)) + rng.standard_normal((n, t))
    alphas = np.logspace(-1, 4, 6)
    outer, _ = _splits("kfold:5", n)
    draws = PermutedDraws([np.arange(n)], 25, n, random_state=0)
    best = np.array([1, 4, 1])
    with use_backend("numpy") as B:
        gram = _ridge.LayerGram.compute(X, form)
        train, test = outer[0]
        solved = _ridge.refit_split(B, gram, train, test, np.unique(best), alphas, t, 25)
        assert isinstance(solved, _ridge.SolveSplit)
        many = np.logspace(-1, 4, 40)  # a solve per penalty used costs more than one eigendecomposition
        assert isinstance(_ridge.refit_split(B, gram, train, test, np.arange(40), many, 10**5, 25), _ridge.Split)
        split = _ridge.decompose(B, gram, train, test)
        ref = _ridge.refit_null(B, split, gram, Y, alphas, best, draws, order="hat")
        got = _ridge.refit_null(B, solved, gram, Y, alphas, best, draws)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)
    fold_best = np.tile(best, (len(outer), 1))
    fold_best[2, 1] = -1  # a target undefined in one fold
    signal = 0.5 * Y
    got = _ridge.comparison_draws(X, signal, Y - signal, outer, alphas, fold_best, draws, form=form)
    original = _ridge.refit_split
    try:
        _ridge.refit_split = lambda B, gram, train, test, *a: _ridge.decompose(B, gram, train, test)
        ref = _ridge.comparison_draws(X, signal, Y - signal, outer, alphas, fold_best, draws, form=form)
    finally:
        _ridge.refit_split = original
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)


def test_deletion_on_the_torch_backend_equals_numpy(rng):
    pytest.importorskip("torch")
    n, p, t = 120, 160, 2
    X = _design(rng, n, p)
    Y = X[:, :3] @ rng.standard_normal((3, t)) + rng.standard_normal((n, t))
    outer, inner = _splits("blocks", n)
    alphas = np.logspace(-1, 6, 8)
    ref = _ridge.fit_layer_cv(X, Y, outer, inner, alphas, inner_path="direct")
    with use_backend("torch") as B:
        got = _ridge.fit_layer_cv(B.asarray(X), B.asarray(Y), outer, inner, B.asarray(alphas),
                                  inner_path="deletion")
    np.testing.assert_array_equal(got["fold_alpha"], ref["fold_alpha"])
    np.testing.assert_allclose(got["fold_r"], ref["fold_r"], rtol=0, atol=1e-10)


@pytest.mark.parametrize("form,p", [("kernel", 260), ("primal", 150)])
def test_refit_layer_by_deletion_equals_himalaya(rng, form, p):
    """The final refit's CV from the spectrum of all samples (which the refit needs anyway)."""
    import warnings

    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV

    n, t = 200, 2
    X = _design(rng, n, p)
    Y = X[:, :3] @ rng.standard_normal((3, t)) + rng.standard_normal((n, t))
    alphas = np.logspace(-1, 5, 13)
    splits = make_cv("kfold:5", None, n, random_state=0)
    with use_backend("numpy") as B:
        gram = _ridge.LayerGram.compute(X, form)
        full = _ridge.decompose(B, gram, np.arange(n), np.arange(0))
        assert _ridge.plan_inner(B, gram, full, splits, alphas, t, "auto") == "deletion"
    kind, coef, best = _ridge.refit_layer(X, Y, splits, alphas, form=form)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref = {"kernel": KernelRidgeCV, "primal": RidgeCV}[form](alphas=alphas, cv=splits).fit(X, Y)
    np.testing.assert_allclose(best, ref.best_alphas_, rtol=1e-12)
    pred = X @ coef if kind == "primal" else (X @ X.T) @ coef
    np.testing.assert_allclose(pred, ref.predict(X), atol=1e-9)


def test_auto_keeps_the_direct_path_for_inner_splits_that_are_not_deletions(rng):
    X, Y = _design(rng, 60, 80), rng.standard_normal((60, 1))
    outer, inner = _splits("kfold:3", 60)
    overlapping = [[(tr, np.r_[va, tr[:2]]) for tr, va in inn] for inn in inner]  # validation rows also trained on
    alphas = np.logspace(-1, 4, 6)
    with use_backend("numpy") as B:
        gram = _ridge.LayerGram.compute(X, "kernel")
        split = _ridge.decompose(B, gram, *outer[0])
        assert _ridge.plan_inner(B, gram, split, inner[0], alphas, 1, "auto") == "deletion"
        assert _ridge.plan_inner(B, gram, split, overlapping[0], alphas, 1, "auto") == "direct"
    got = _ridge.fit_layer_cv(X, Y, outer, overlapping, alphas)
    ref = _ridge.fit_layer_cv(X, Y, outer, overlapping, alphas, inner_path="direct")
    np.testing.assert_array_equal(got["fold_alpha"], ref["fold_alpha"])
