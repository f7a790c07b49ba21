"""Work that the layers of one fit, or the subjects of one story, share: each shared path gives
the numbers of the unshared computation (bit for bit: the same operations on the same arrays)."""
import numpy as np
import pytest

from neuroenc.encoding import _joint, _ridge, compare
from neuroenc.encoding.backend import use_backend
from neuroenc.encoding.compare import centred_null, compare_layers
from neuroenc.encoding.cv import inner_splits, make_cv
from neuroenc.encoding.spectra import SpectrumStore
from neuroenc.encoding.stats import ShiftedDraws, run_indices, run_shifts
from neuroenc.encoding.sweep import LayerSweep


def _layers(rng, n=90, p=120, n_layers=3):
    base = rng.standard_normal((n, p))
    return [base[:, rng.permutation(p)] + 0.3 * rng.standard_normal((n, p)) for _ in range(n_layers)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_refit_null_of_layers_sharing_their_held_out_responses_is_unchanged(rng, dtype):
    n, t = 60, 4
    Y = rng.standard_normal((n, t)).astype(dtype)
    runs = run_indices(np.zeros(n))
    draws = ShiftedDraws(runs, run_shifts(runs, 200, 0), n)
    alphas = np.logspace(-1, 3, 5).astype(dtype)
    held: dict = {}
    with use_backend("numpy") as B:
        for X in _layers(rng, n=n, p=80):
            gram = _ridge.LayerGram.compute(X.astype(dtype), "kernel")
            split = _ridge.decompose(B, gram, np.arange(40), np.arange(45, 60))
            for best in (np.array([0, 2, 2, 4]), np.array([1, 1, 1, 1]), np.array([0, 1, 2, 3])):
                got = _ridge.refit_null(B, split, gram, Y, alphas, best, draws, order="hat", held=held)
                ref = _ridge.refit_null(B, split, gram, Y, alphas, best, draws, order="hat")
                np.testing.assert_array_equal(got, ref)
    hat = [v for k, v in held.items() if isinstance(k, tuple) and k[0] == "hat"]
    assert hat and ("held", 0) in hat[0] and "rows" in hat[0]  # made by the first layer, used by the others


def test_held_out_r_is_fold_scores_r(rng):
    Yt = rng.standard_normal((30, 50))
    pred = (0.5 * Yt + rng.standard_normal((30, 50))).astype(np.float32)
    Yt[:, 3] = 1.0  # a constant response: NaN
    pred[:, 7] = 2.0  # a constant prediction: 0
    yc = Yt - Yt.mean(0)
    with use_backend("numpy") as B:
        ref, _ = _ridge.fold_scores(B, Yt, pred)
    got = _ridge.held_out_r(pred, yc, np.einsum("i...,i...->...", yc, yc))
    np.testing.assert_array_equal(got, ref)
    assert np.isnan(got[3]) and got[7] == 0.0


def _fit_layers(layers, Y, N, shared):
    n = Y.shape[0]
    outer = make_cv(4, np.zeros(n), n, 4, 3)
    inner = [inner_splits(tr, np.zeros(n), 3, 3) for tr, _ in outer]
    runs = run_indices(np.zeros(n))
    draws = ShiftedDraws(runs, run_shifts(runs, 100, 1), n)
    alphas = np.logspace(-1, 4, 6)
    with use_backend("numpy"):
        base = _ridge.fit_layer_cv(N, Y, outer, inner, alphas, return_predictions=False)
        band = _joint.JointBand(N, N, np.array([1.0, 3.0]), base["fold_alpha"])
        return [_ridge.fit_layer_cv(X, Y, outer, inner, alphas, null_shifts=draws, joint=band, shared=shared,
                                    joint_inner=True) for X in layers]


def test_the_layers_of_a_fit_sharing_their_baseline_pieces_give_the_same_results(rng):
    layers = _layers(rng)
    N = rng.standard_normal((90, 3))
    Y = layers[1][:, :4] @ rng.standard_normal((4, 3)) + N @ rng.standard_normal((3, 3)) \
        + rng.standard_normal((90, 3))
    shared: dict = {}
    got = _fit_layers(layers, Y, N, shared)
    ref = _fit_layers(layers, Y, N, None)
    assert any(k[0] == b"joint" for k in shared if isinstance(k, tuple))
    # another baseline with the same dict: its own pieces, not the first band's
    N2 = rng.standard_normal((90, 2))
    got += _fit_layers(layers, Y, N2, shared)
    ref += _fit_layers(layers, Y, N2, None)
    for g, r in zip(got, ref):
        for key, value in r.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(g[key], value, err_msg=key)
        for gs, rs in zip(g["joint_splits"], r["joint_splits"]):
            for name in ("NH", "NtN", "blam", "bP", "bV", "Zu", "P"):
                np.testing.assert_array_equal(getattr(gs, name), getattr(rs, name), err_msg=name)


def test_joint_hat_with_kept_terms_is_the_same_map(rng):
    n = 50
    X, N, Y = rng.standard_normal((n, 70)), rng.standard_normal((n, 3)), rng.standard_normal((n, 2))
    band = _joint.JointBand(N, N, np.array([1.0]), np.ones((1, 2)))
    with use_backend("numpy") as B:
        gram = _ridge.LayerGram.compute(X, "kernel")
        split = _ridge.decompose(B, gram, np.arange(35), np.arange(40, 50))
        js = _joint.split_pieces(B, split, gram, band)
    memo: dict = {}
    for alpha, w in ((10.0, 2.0), (10.0, 0.5), (3.0, 2.0), (10.0, 2.0)):
        np.testing.assert_array_equal(_joint.joint_hat(js, alpha, w, memo), _joint.joint_hat(js, alpha, w))
    assert len(memo) == 2  # one entry per penalty, shared by its weights
    pred = _joint._Predictor(js, None, N, 10.0, 5.0, memo)
    np.testing.assert_array_equal(pred(Y, None, Y[js.train]), pred(Y, None))


def test_the_baseline_maps_of_the_unique_draws_are_made_once(rng):
    n, t = 60, 2
    N, Y = rng.standard_normal((n, 2)), rng.standard_normal((n, t))
    outer = make_cv(3, np.zeros(n), n, 3, 2)
    runs = run_indices(np.zeros(n))
    draws = ShiftedDraws(runs, run_shifts(runs, 20, 0), n)
    ud = _joint.UniqueDraws(Y, N, outer, np.full((3, t), 2.0), np.full((3, t), 0.1), draws)
    js = _joint.JointSplit("kernel", np.arange(30), np.arange(35, 45), np.ones(1), np.zeros((10, 1)),
                           np.ones((1, 1)), np.zeros((1, 2)), N[35:45], N[:30].T @ N[:30])
    first = ud._ridge_hat(js, 2.0)
    assert ud._ridge_hat(js, 2.0) is first  # the same map for the next layer
    for got, ref in zip(first, _joint.ridge_hat(N[:30], N[35:45], 2.0)):
        np.testing.assert_array_equal(got, ref)


def test_compare_layers_without_nan_draws_gives_what_nanmean_gives(rng, monkeypatch):
    observed = rng.standard_normal((5, 3)) * 0.1
    draws = centred_null(rng.standard_normal((300, 5, 3)) * 0.05)
    assert compare._mean_of(draws) is np.mean
    fast = compare_layers(observed, draws)
    monkeypatch.setattr(compare, "_mean_of", lambda draws: np.nanmean)
    slow = compare_layers(observed, draws)
    for name in ("pvalues", "ci_low", "ci_high", "delta_r"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))
    draws[4, 1, 2] = np.nan
    assert compare._mean_of(draws) is np.nanmean


def test_a_sweep_with_a_baseline_and_a_store_twice_gives_the_same_results(rng):
    layers = _layers(rng, n=80, p=100, n_layers=2)
    N = rng.standard_normal((80, 2))
    Y = layers[0][:, :3] @ rng.standard_normal((3, 2)) + rng.standard_normal((80, 2))
    kw = dict(alphas=np.logspace(-1, 4, 5), cv=4, inner_cv=3, n_permutations=30, compare="residual",
              random_state=2, backend="numpy", dtype="float64", refit=False)
    store = SpectrumStore()
    runs = [LayerSweep(**kw).fit(layers, Y, nuisance=N, spectra=s) for s in (store, store, None)]
    for sweep in runs[:2]:
        for name in ("r_", "pvalues_", "fold_alphas_", "pvalues_best_"):
            np.testing.assert_array_equal(getattr(sweep, name), getattr(runs[2], name))
        for name in ("delta_r2", "pvalues", "ci_low", "ci_high"):
            np.testing.assert_array_equal(getattr(sweep.unique_, name), getattr(runs[2].unique_, name))


def _story(rng, n_words=220, n_trs=40):
    from neuroenc.features import FeatureSet
    from neuroenc.responses import Response

    onsets = 4.0 + np.cumsum(rng.uniform(0.2, 0.6, n_words))
    onsets = onsets[onsets < n_trs * 2.0 - 2.0]
    layers = {1: rng.standard_normal((onsets.size, 4)), 2: rng.standard_normal((onsets.size, 3))}
    layers[2][:, 1] = 0.0  # a constant column: warned
    fs = FeatureSet(layers, onsets, onsets + 0.2, run="story", model="m", n_model_layers=3)

    def subject(name):
        return Response(rng.standard_normal((n_trs, 2)), tr=2.0, start=0.0, names=["a", "b"], run="story",
                        subject=name)

    return fs, subject


def test_subjects_of_one_story_share_each_layer_design(rng):
    from neuroenc.align import make_fmri_design
    from neuroenc.align.shared_designs import share_layers

    fs, subject = _story(rng)
    store = SpectrumStore()
    keys = {"story": "sha-of-the-features-file"}
    first = make_fmri_design({"story": fs}, {"story": subject("s1")}, delays=(1, 2))
    second = make_fmri_design({"story": fs}, {"story": subject("s2")}, delays=(1, 2))
    alone = make_fmri_design({"story": fs}, {"story": subject("s3")}, delays=(1, 2))
    assert share_layers(first, store, keys) and share_layers(second, store, keys)
    for layer in (1, 2):
        X1 = first.X(layer)
        X2 = second.X(layer)
        assert X2 is X1 and not X2.flags.writeable  # made once, never changed
        np.testing.assert_array_equal(X2, alone.X(layer))
        for run, st in alone.feature_stats(layer).items():
            np.testing.assert_array_equal(second.feature_stats(layer)[run].mean, st.mean)
    assert second.warnings == alone.warnings and any("constant" in w for w in second.warnings)
    # its store key is computed once, and is the content's
    assert store.key_of(X1, "kernel") == SpectrumStore.key(X1.copy(), "kernel")
    assert store._keys[id(X1)][1]["kernel"] == SpectrumStore.key(X1, "kernel")
    # other delays or other features: not shared
    other = make_fmri_design({"story": fs}, {"story": subject("s4")}, delays=(1, 2, 3))
    assert share_layers(other, store, keys) and other.X(1).shape[1] == 12
    renamed = make_fmri_design({"story": fs}, {"story": subject("s5")}, delays=(1, 2))
    assert share_layers(renamed, store, {"story": "another-file"}) and renamed.X(1) is not X1
    assert not share_layers(make_fmri_design({"story": fs}, {"story": subject("s6")}, delays=(1, 2)), store, {})


def test_a_writable_array_is_hashed_every_time(rng):
    store = SpectrumStore()
    X = rng.standard_normal((6, 3))
    store.put(b"k", b"x", X)  # kept, but writable: its key is not remembered
    key = store.key_of(X, "kernel")
    X[0, 0] += 1.0
    assert store.key_of(X, "kernel") == SpectrumStore.key(X, "kernel") != key


def test_the_circular_shift_draws_of_one_seed_are_made_once(rng):
    from neuroenc.encoding.sweep import shifted_draws

    runs = run_indices(np.repeat([0, 1], [40, 30]))
    first = shifted_draws(runs, 50, 7, 70)
    fresh = ShiftedDraws(runs, run_shifts(runs, 50, 7), 70)
    np.testing.assert_array_equal(first.indices(0, 50), fresh.indices(0, 50))
    assert shifted_draws(runs, 50, 7, 70) is first  # the next fit of the same runs and seed
    assert shifted_draws(runs, 50, 8, 70) is not first
    with pytest.raises(ValueError, match="read-only"):
        first.indices(0, 1)[0, 0] = 3  # shared: never changed


def test_fold_scores_without_r2_gives_the_same_r(rng):
    Yt, pred = rng.standard_normal((20, 9)), rng.standard_normal((20, 9)).astype(np.float32)
    with use_backend("numpy") as B:
        r, r2 = _ridge.fold_scores(B, Yt, pred)
        r_only, none = _ridge.fold_scores(B, Yt, pred, r2=False)
    np.testing.assert_array_equal(r_only, r)
    assert none is None and r2 is not None


def test_groups_of_penalty_pairs_are_those_of_np_unique(rng):
    a = rng.choice([1.0, 10.0, np.inf], 40)
    b = rng.choice([2.0, 3.0], 40)
    cols = np.flatnonzero(rng.random(40) < 0.8)
    keys = np.stack([a[cols], b[cols]], 1)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    ref = [((float(x), float(y)), cols[inv.reshape(-1) == i]) for i, (x, y) in enumerate(uniq)]
    got = _joint._groups(a, b, cols)
    assert [g[0] for g in got] == [g[0] for g in ref]
    for (_, c1), (_, c2) in zip(got, ref):
        np.testing.assert_array_equal(c1, c2)


@pytest.mark.parametrize("order", ["hat", "project"])
def test_a_held_dict_serves_only_its_draws_and_responses(rng, order):
    n, t = 50, 3
    X = rng.standard_normal((n, 6))
    Y = rng.standard_normal((n, t))
    runs = run_indices(np.zeros(n))
    alphas, best = np.logspace(-1, 2, 4), np.array([0, 2, 2])
    held: dict = {}
    with use_backend("numpy") as B:
        gram = _ridge.LayerGram.compute(X, "primal")
        split = _ridge.decompose(B, gram, np.arange(35), np.arange(40, 50))
        for seed, Yk in ((0, Y), (0, Y), (1, Y), (1, Y + 1.0), (0, Y)):  # other draws or responses: made again
            draws = ShiftedDraws(runs, run_shifts(runs, 30, seed), n)
            got = _ridge.refit_null(B, split, gram, Yk, alphas, best, draws, order=order, held=held)
            ref = _ridge.refit_null(B, split, gram, Yk, alphas, best, draws, order=order)
            np.testing.assert_array_equal(got, ref)
    assert any(isinstance(k, tuple) and k[0] == order for k in held)


def test_the_baseline_models_share_their_null_draws_with_the_same_results(rng):
    from neuroenc.encoding import fit_encoding

    layers = _layers(rng, n=80, p=60, n_layers=1)
    Y = layers[0][:, :2] + rng.standard_normal((80, 2))
    nuisance = {"rate": rng.standard_normal((80, 2)), "power": rng.standard_normal((80, 1))}
    kw = dict(alphas=np.logspace(-1, 4, 5), cv=4, inner_cv=3, n_permutations=40, random_state=1,
              backend="numpy", dtype="float64", baseline_models=True)
    res = fit_encoding(layers, Y, nuisance=nuisance, **kw)
    for name, N in (("rate", nuisance["rate"]), ("power", nuisance["power"])):
        alone = LayerSweep(alphas=kw["alphas"], cv=4, inner_cv=3, n_permutations=40, random_state=1,
                           backend="numpy", dtype="float64", refit=False, compare=False, unique=False).fit(N, Y)
        rows = [r for r in res.provenance["baseline_models"] if r["model"] == name]
        np.testing.assert_array_equal([r["r"] for r in rows], alone.r_[0])
        np.testing.assert_array_equal([r["p"] for r in rows], alone.pvalues_[0])


def test_xty_kept_across_folds_gives_the_same_fit_with_one_product(rng, monkeypatch):
    """Primal form: X^T Y of all samples is made once for all outer folds (and recomputed in
    every fold when larger than XTY_KEEP_BYTES), the same numbers bit for bit."""
    n, p, t = 300, 12, 7
    X = rng.standard_normal((n, p))
    Y = X[:, :3] @ rng.standard_normal((3, t)) + rng.standard_normal((n, t))
    groups = np.repeat(np.arange(5), 60)
    outer = make_cv("runs", groups, n)
    inner = [inner_splits(tr, groups, 4, 0) for tr, _ in outer]
    alphas = np.logspace(-1, 4, 6)

    def fit():
        with use_backend("numpy") as B, _ridge.record_phases() as phases:
            out = _ridge.fit_layer_cv(B.asarray(X), B.asarray(Y), outer, inner, B.asarray(alphas), form="primal")
        return out, phases["kernels"]["flops"]

    kept, kernel_flops = fit()
    gram, xty = 2.0 * n * p * p, 2.0 * n * p * t
    assert kernel_flops == gram + xty  # once, not once per outer fold
    monkeypatch.setattr(_ridge, "XTY_KEEP_BYTES", 0)
    again, kernel_flops = fit()
    assert kernel_flops == gram + len(outer) * xty
    for key in ("fold_r", "fold_alpha", "predictions"):
        np.testing.assert_array_equal(kept[key], again[key])
