"""Layer-sweep benchmark: neuroenc's LayerSweep vs a plain loop of himalaya fits vs scikit-learn.

The problem (defaults, the issue's full size): 30 layers of 576 features x 4 delays, 2,000
samples in 5 runs of 400, 10,000 targets, leave-one-run-out outer CV (5 folds), penalties
chosen per target by leave-one-run-out inner CV (4 folds) among 20 alphas (by default the
voxelwise tutorials' ``np.logspace(1, 20, 20)``; ``--alpha-range -1,8`` for a grid that stays
inside the kernels' spectrum), held-out Pearson r per (layer, target). Layers are a random walk
(neighbours correlate ~0.8) smoothed over time; the responses mix layers 10 and 20 with noise.

Compared, side by side in one run:

- ``neuroenc``: :class:`neuroenc.encoding.LayerSweep` (refit=False, no permutations);
- ``himalaya loop``: for each layer and outer fold, ``KernelRidgeCV`` (features outnumber
  samples; ``RidgeCV`` otherwise, as himalaya's model flowchart says) fitted with the same inner
  folds and alphas, batched as the voxelwise tutorials do (``n_targets_batch=500,
  n_alphas_batch=5, n_targets_batch_refit=100``), then ``predict`` + ``correlation_score`` on the
  test run. Run on the first ``--himalaya-layers`` layers and extrapolated linearly to all
  layers (each layer is an independent, identical amount of work); scores are compared on them;
- ``scikit-learn``: ``GridSearchCV(Ridge(fit_intercept=False), {"alpha": alphas}, cv=inner folds)``
  per target (no intercept, as the two others: the data are centred)
  (one alpha per target needs one search per target), on ``--sklearn-targets`` targets of one
  layer and one outer fold, extrapolated to every (target, layer, fold);
- a large float matrix product, for the machine's attainable FLOP rate in the same run.

FLOPs of neuroenc's solve are counted as it runs (kernels/Grams, eigendecompositions at 9 n^3,
projections, predictions of every penalty, scores). Peak memory is traced with ``tracemalloc``
(NumPy reports its buffers to it) over each method, the shared input data excluded.

Run ``python benchmarks/ridge.py --quick`` while developing (seconds), the full size once.
"""
from __future__ import annotations

import argparse
import time
import tracemalloc
import warnings

import numpy as np


def make_data(args):
    """Layer features (n_layers, n_samples, n_features) and responses, seeded."""
    rng = np.random.default_rng(args.seed)
    n, f, L = args.samples, args.features, args.layers
    smooth = 3

    def noise():
        x = rng.standard_normal((n + smooth, f), dtype=np.float32)
        return (x[:-2] + x[1:-1] + x[2:])[:n] / np.sqrt(3.0)

    layers = np.empty((L, n, f), dtype=np.float32)
    layers[0] = noise()
    for i in range(1, L):
        layers[i] = 0.8 * layers[i - 1] + 0.6 * noise()
    layers -= layers.mean(1, keepdims=True)
    layers /= layers.std(1, keepdims=True)
    groups = np.repeat(np.arange(args.runs), n // args.runs)
    gen = [min(L - 1, L // 3), min(L - 1, 2 * L // 3)]
    Y = np.zeros((n, args.targets), dtype=np.float32)
    for g in gen:
        W = rng.standard_normal((f, args.targets), dtype=np.float32) / np.sqrt(f)
        Y += delayed(layers[g], groups, args.delays) @ np.tile(W, (args.delays, 1)) / np.sqrt(args.delays)
    snr = rng.uniform(0.05, 1.0, args.targets).astype(np.float32)
    Y = Y / Y.std(0) * np.sqrt(snr) + rng.standard_normal(Y.shape, dtype=np.float32)
    Y -= Y.mean(0)
    Y /= Y.std(0)
    return layers, Y, groups


def delayed(X, groups, n_delays):
    """FIR delays 1..n_delays within runs, zero-filled (delay-major columns)."""
    out = np.zeros((X.shape[0], X.shape[1] * n_delays), dtype=X.dtype)
    for run in np.unique(groups):
        idx = np.flatnonzero(groups == run)
        for d in range(1, n_delays + 1):
            out[idx[d:], (d - 1) * X.shape[1]:d * X.shape[1]] = X[idx[:-d]]
    return out


def matmul_rate(dtype, size=4096, repeats=3):
    """Best GFLOP/s of a size x size matrix product."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    a @ b
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size**3 / best / 1e9


class Traced:
    """Wall time and traced peak memory of a block."""

    def __enter__(self):
        tracemalloc.start()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def run_neuroenc(layers, Y, groups, alphas, args, which=None):
    """LayerSweep over ``which`` layers (default all): (sweep, Traced)."""
    from neuroenc.encoding import LayerSweep
    from neuroenc.encoding.designs import LayerDesigns

    which = list(range(layers.shape[0])) if which is None else list(which)
    designs = LayerDesigns(which, lambda i: delayed(layers[i], groups, args.delays), groups=groups)
    sweep = LayerSweep(alphas=alphas, cv="runs", inner_cv=args.runs - 1, backend=args.backend,
                       dtype=args.dtype, refit=False, n_permutations=0, verbose=args.verbose)
    with Traced() as tr:
        sweep.fit(designs, Y, groups=groups)
    return sweep, tr


def run_himalaya(layers, Y, groups, alphas, args, outer, inner, which):
    """The plain loop over ``which`` layers: r and best alphas (n_folds, n_layers, n_targets), Traced."""
    from himalaya.backend import set_backend
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV
    from himalaya.scoring import correlation_score

    backend = set_backend(args.backend if args.backend != "auto" else "numpy")
    params = dict(n_targets_batch=500, n_alphas_batch=5, n_targets_batch_refit=100) if args.tutorial_batches else {}
    which = list(which)
    r = np.zeros((len(outer), len(which), Y.shape[1]))
    best = np.zeros_like(r)
    with Traced() as tr:
        for j, layer in enumerate(which):
            X = delayed(layers[layer], groups, args.delays)
            for k, ((train, test), inn) in enumerate(zip(outer, inner)):
                pos = np.full(X.shape[0], -1)
                pos[train] = np.arange(train.size)
                cv = [(pos[a], pos[b]) for a, b in inn]
                Est = KernelRidgeCV if X.shape[1] > train.size else RidgeCV
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    model = Est(alphas=alphas, cv=cv, solver_params=params).fit(X[train], Y[train])
                    pred = model.predict(X[test])
                r[k, j] = backend.to_numpy(correlation_score(Y[test], pred))
                best[k, j] = backend.to_numpy(model.best_alphas_)
    return r, best, tr, Est.__name__


def run_sklearn(layers, Y, groups, alphas, args, outer, inner):
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV

    X = delayed(layers[0], groups, args.delays)
    train, test = outer[0]
    pos = np.full(X.shape[0], -1)
    pos[train] = np.arange(train.size)
    cv = [(pos[a], pos[b]) for a, b in inner[0]]
    r, best = [], []
    with Traced() as tr:
        for t in range(args.sklearn_targets):
            search = GridSearchCV(Ridge(fit_intercept=False), {"alpha": list(alphas)}, cv=cv,
                                  scoring="neg_mean_squared_error")
            search.fit(X[train], Y[train, t])
            r.append(np.corrcoef(search.predict(X[test]), Y[test, t])[0, 1])
            best.append(search.best_params_["alpha"])
    return np.array(r), np.array(best), tr


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--features", type=int, default=576)
    parser.add_argument("--delays", type=int, default=4)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5, help="runs = outer folds (leave-one-run-out)")
    parser.add_argument("--targets", type=int, default=10000)
    parser.add_argument("--alphas", type=int, default=20)
    parser.add_argument("--alpha-range", type=lambda t: [float(x) for x in t.split(",")], default=[1.0, 20.0],
                        help="log10 of the first and last alpha (default 1,20: np.logspace(1, 20, 20), the "
                             "voxelwise tutorials' grid)")
    parser.add_argument("--himalaya-layers", type=int, default=2, help="layers run with the himalaya loop")
    parser.add_argument("--sklearn-targets", type=int, default=2, help="targets run with scikit-learn")
    parser.add_argument("--check-targets", type=int, default=500,
                        help="targets of the float64 equality check against himalaya (1 layer)")
    parser.add_argument("--no-tutorial-batches", dest="tutorial_batches", action="store_false",
                        help="run himalaya without the voxelwise tutorials' batch sizes")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--backend", default="numpy", choices=("auto", "numpy", "torch", "torch_cuda"))
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: the library's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="scaled down for development: 4 layers, 64 features, 600 samples, 1,000 targets")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.layers, args.features, args.samples, args.targets = 4, 64, 600, 1000
        args.himalaya_layers = min(args.himalaya_layers, args.layers)
    args.himalaya_layers = min(args.himalaya_layers, args.layers)

    import contextlib

    from threadpoolctl import threadpool_info, threadpool_limits

    from neuroenc.encoding import make_cv
    from neuroenc.encoding.cv import inner_splits

    limit = threadpool_limits(args.threads) if args.threads else contextlib.nullcontext()
    with limit:
        threads = {i["internal_api"]: i["num_threads"] for i in threadpool_info()}
        dtype = np.dtype(args.dtype)
        t0 = time.perf_counter()
        layers, Y, groups = make_data(args)
        layers, Y = layers.astype(dtype), Y.astype(dtype)
        lo, hi = args.alpha_range
        alphas = np.logspace(lo, hi, args.alphas)
        outer = make_cv("runs", groups, args.samples)
        inner = [inner_splits(tr, groups, args.runs - 1) for tr, _ in outer]
        p = args.features * args.delays
        print(f"problem: {args.layers} layers x ({args.features} features x {args.delays} delays = {p}), "
              f"{args.samples} samples in {args.runs} runs, {args.targets} targets, {len(outer)} outer folds "
              f"(inner: {len(inner[0])}), {args.alphas} alphas 10^{lo:g}..10^{hi:g}, {args.dtype}, "
              f"backend {args.backend}, "
              f"BLAS threads {threads}; data made in {time.perf_counter() - t0:.1f} s")

        # 1. neuroenc vs the himalaya loop, layer by layer, back to back (a shared machine's load
        #    drifts: pairing keeps the ratio fair); a matrix-product rate before each
        n_h = args.himalaya_layers
        paired = sorted({int(round(x)) for x in np.linspace(0, args.layers - 1, n_h + 2)[1:-1]}) if n_h < args.layers \
            else list(range(args.layers))
        n_h = len(paired)
        ours_paired, him_paired, rates = 0.0, 0.0, []
        r_h, best_h, r_o, best_o, him_peak = [], [], [], [], 0
        for j in paired:
            rates.append(matmul_rate(dtype))
            sw, tr = run_neuroenc(layers, Y, groups, alphas, args, which=[j])
            ours_paired += tr.seconds
            r_o.append(sw.fold_r_[:, 0])
            best_o.append(sw.fold_alphas_[:, 0])
            rh, bh, th, est_name = run_himalaya(layers, Y, groups, alphas, args, outer, inner, [j])
            him_paired += th.seconds
            him_peak = max(him_peak, th.peak)
            r_h.append(rh[:, 0])
            best_h.append(bh[:, 0])
            print(f"layer {j}: neuroenc {tr.seconds:.1f} s, himalaya {est_name} loop {th.seconds:.1f} s "
                  f"(matrix product {rates[-1]:.1f} GFLOP/s)", flush=True)
        r_h, best_h, r_o, best_o = map(np.stack, (r_h, best_h, r_o, best_o))
        same = np.isclose(best_h, best_o, rtol=1e-4)
        diff = np.nanmax(np.abs(r_h - r_o)[same])
        diff_all = np.nanmax(np.abs(r_h - r_o))
        speedup = him_paired / ours_paired
        print(f"paired on layer(s) {paired}: neuroenc {ours_paired:.1f} s, himalaya {est_name} loop {him_paired:.1f} s "
              f"-> {speedup:.2f}x; same alpha for {100 * same.mean():.3f} % of (fold, layer, target); "
              f"max |r - neuroenc r| = {diff:.1e} where the alphas agree, {diff_all:.1e} overall "
              f"({args.dtype} near-ties of the CV loss); himalaya peak traced memory {him_peak / 2**20:.0f} MiB",
              flush=True)

        # 2. the whole sweep, with the matrix-product rate measured before and after it
        rates.append(matmul_rate(dtype))
        sweep, ours = run_neuroenc(layers, Y, groups, alphas, args)
        rates.append(matmul_rate(dtype))
        rate = float(np.mean(rates[-2:]))
        gflops = sweep.flops_ / 1e9
        print(f"neuroenc LayerSweep, {args.layers} layers: {ours.seconds:.1f} s, {gflops:.0f} GFLOP counted -> "
              f"{gflops / ours.seconds:.1f} GFLOP/s = {100 * gflops / ours.seconds / rate:.0f} % of the matrix "
              f"product ({rates[-2]:.1f} before, {rates[-1]:.1f} GFLOP/s after), forms "
              f"{sorted(set(sweep.forms_.values()))}, peak traced memory {ours.peak / 2**20:.0f} MiB", flush=True)
        him_full = him_paired * args.layers / n_h
        him_scaled = speedup * ours.seconds

        # 3. the same comparison in float64 on a subset: exact agreement, no near-ties
        sub = argparse.Namespace(**{**vars(args), "dtype": "float64"})
        k = min(args.check_targets, Y.shape[1])
        sweep64, _ = run_neuroenc(layers[:1].astype(np.float64), Y[:, :k].astype(np.float64), groups, alphas, sub)
        r64, best64, _, _ = run_himalaya(layers[:1].astype(np.float64), Y[:, :k].astype(np.float64), groups,
                                         alphas, sub, outer, inner, [0])
        diff64 = np.nanmax(np.abs(r64 - sweep64.fold_r_))
        same64 = np.mean(np.isclose(best64, sweep64.fold_alphas_, rtol=1e-10))
        print(f"float64 check (layer 0, {k} targets): max |r - neuroenc r| = {diff64:.1e}, same alpha for "
              f"{100 * same64:.2f} %", flush=True)

        r_s, best_s, sk = run_sklearn(layers, Y, groups, alphas, args, outer, inner)
        per_unit = sk.seconds / args.sklearn_targets
        sk_full = per_unit * args.targets * args.layers * len(outer)
        diff_s = np.max(np.abs(r_s - sweep.fold_r_[0, 0, :args.sklearn_targets]))
        print(f"scikit-learn GridSearchCV(Ridge): {sk.seconds:.2f} s for {args.sklearn_targets} target(s) x 1 layer "
              f"x 1 fold -> {sk_full:.0f} s for all (extrapolated); max |r - neuroenc r| = {diff_s:.2e}")

        rows = [
            ("neuroenc LayerSweep", ours.seconds, f"measured, {args.layers} layers", ours.peak, 1.0),
            (f"himalaya {est_name} loop", him_scaled,
             f"{speedup:.2f}x neuroenc's time, measured back to back on {n_h}/{args.layers} layers "
             f"({him_full:.0f} s if their sum is scaled by {args.layers}/{n_h})", him_peak, speedup),
            ("sklearn GridSearchCV(Ridge)", sk_full,
             f"extrapolated from {args.sklearn_targets} targets x 1 layer x 1 fold", sk.peak, sk_full / ours.seconds),
        ]
        print()
        print("| method | time (s) | how | peak memory (MiB) | time / neuroenc |")
        print("|---|---:|---|---:|---:|")
        for name, sec, how, peak, ratio in rows:
            print(f"| {name} | {sec:.1f} | {how} | {peak / 2**20:.0f} | {ratio:.1f}x |")
        print(f"| matrix product 4096^3 | | {rate:.1f} GFLOP/s (around the sweep; {np.mean(rates[:-2]):.1f} "
              f"around the paired runs) | | |")
        print(f"| neuroenc solve rate | | {gflops / ours.seconds:.1f} GFLOP/s = "
              f"{100 * gflops / ours.seconds / rate:.0f} % of the matrix product | | |")
        print()
        print(f"targets: >= 2x faster than the himalaya loop: {speedup:.2f}x; "
              f">= 20x faster than scikit-learn: {sk_full / ours.seconds:.0f}x; "
              f">= 30 % of the matrix-product rate: {100 * gflops / ours.seconds / rate:.0f} %; "
              f"scores equal to himalaya within 1e-5: max diff {diff:.1e} ({args.dtype}, same alphas), "
              f"{diff64:.1e} (float64)")


if __name__ == "__main__":
    main()
