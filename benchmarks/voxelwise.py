"""Voxel-scale benchmark: per-phase time, FLOPs and peak RSS of a layer sweep, against the
machine's matrix-product rate and a himalaya loop, in one run.

The problem: simulated responses with a planted layer profile. Every layer is
``c_l Z M_l + E_l`` (``Z`` a smooth latent signal shared by all layers, ``M_l`` a random
mixing, ``E_l`` independent smooth noise) with ``c_l`` a Gaussian bump over the layers that
peaks at two thirds of the depth; every response is ``Z w + noise``. The layer whose features
carry the latent signal with the least noise predicts best, so the recovered profile (the
layer of highest mean r) must be the planted peak. Layers are generated on demand, seeded per
layer, so 31 layers x 9,000 samples x 2,304 columns never sit in memory together.

Sizes: ``--samples`` x ``--targets`` (default the issue's {1,000, 3,000, 9,000} x {10,000,
80,000}), ``--layers`` layers (31) of ``--features`` columns (2,304), 5 runs, leave-one-run-out
outer CV, 4 inner folds (leave-one-run-out inside), 10 penalties (``logspace(1, 4, 10)``, the
LeBel cost measurement's), float32, ``--permutations`` draws of the refit null. Each size runs
in a fresh process; its peak RSS during the fit (``VmHWM`` of /proc/self/status, reset before
the fit) is printed beside its RSS before the fit (the inputs, the interpreter and libraries).
Per phase (:func:`neuroenc.encoding._ridge.record_phases`):
kernels (Grams and ``X^T Y``), decompositions, penalty search (validation losses of every
penalty), scores (refit predictions and scores), permutations (refit null), comparisons. Each
process times a float32 and a float64 matrix product first (best of 3, 2,048 x 2,048): the
sweep's FLOP rate over it is the share of the machine's attainable rate it used.

``--himalaya`` compares with a plain loop of himalaya fits (``KernelRidgeCV`` when features
outnumber samples, else ``RidgeCV``, the voxelwise tutorials' batch sizes) over the same layers,
outer folds, inner folds and penalties, back to back in one process, with the scores' largest
difference. ``--lebel`` measures one layer at LeBel 2023's size (84 stories x 334 TRs = 28,056
samples x 2,304 columns, 5 inner folds, 10 penalties) on 2 of its 84 folds at two target
counts, so the per-fold fixed and per-target FLOPs of each phase can be extrapolated
(docs/scaling.md); ``--lebel-reference`` measures it twice, side by side on the same data: with
the validation losses from the QR factors of the held-out projections (forced at these target
counts) and from every penalty's predictions, and prints the ratios and the largest difference
of a target's r.

``--quick`` (about 2 minutes on a shared 2-core machine): 1,000 samples x 1,500 targets,
3 layers, 20 permutations, and the himalaya comparison on 1 layer x 1,000 targets.
``--memory 4GB`` fits under that budget (``LayerSweep(memory=...)``).

    OPENBLAS_NUM_THREADS=1 python benchmarks/voxelwise.py --quick
    python benchmarks/voxelwise.py --samples 1000,3000 --targets 10000 --layers 2
    python benchmarks/voxelwise.py --samples 1000 --targets 80000 --layers 1 --memory 4GB --permutations 0
    python benchmarks/voxelwise.py --no-sizes --himalaya "" --lebel 1000,2000 --lebel-reference --permutations 0
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ALPHAS = np.logspace(1, 4, 10)
PHASES = ("kernels", "decompositions", "penalty search", "scores", "permutations", "comparisons")


# ---------------------------------------------------------------------- data
def smooth(rng, n, k, width=6):
    x = rng.standard_normal((n + width, k), dtype=np.float32)
    c = np.cumsum(x, 0, dtype=np.float64)
    return ((c[width:] - c[:-width])[:n] / np.sqrt(width)).astype(np.float32)


def profile(n_layers):
    """The planted signal strength of each layer: a Gaussian bump at two thirds of the depth."""
    peak = (2 * (n_layers - 1)) // 3
    width = max(n_layers / 6, 1.0)
    return peak, 1.5 * np.exp(-0.5 * ((np.arange(n_layers) - peak) / width) ** 2)


class Simulated:
    """Layers generated on demand (seeded per layer) and responses with a planted profile."""

    def __init__(self, n, p, t, n_layers, n_runs=5, seed=0, latent=16):
        self.n, self.p, self.t, self.seed, self.latent = n, p, t, seed, latent
        self.peak, self.strength = profile(n_layers)
        rng = np.random.default_rng(seed)
        self.Z = smooth(rng, n, latent)
        W = rng.standard_normal((latent, t), dtype=np.float32)
        W /= np.linalg.norm(W, axis=0, keepdims=True)
        Y = 0.5 * self.Z @ W
        for start in range(0, t, 5000):  # in chunks: the generation's own peak stays small
            cols = slice(start, min(start + 5000, t))
            Y[:, cols] += smooth(rng, n, Y[:, cols].shape[1])
            Y[:, cols] -= Y[:, cols].mean(0)
            Y[:, cols] /= Y[:, cols].std(0)
        self.Y = Y
        self.groups = np.repeat(np.arange(n_runs), -(-n // n_runs))[:n]

    def layer(self, j):
        rng = np.random.default_rng([self.seed, j + 1])
        M = rng.standard_normal((self.latent, self.p), dtype=np.float32) / np.sqrt(self.latent)
        X = smooth(rng, self.n, self.p)
        X += np.float32(self.strength[j]) * (self.Z @ M)
        X -= X.mean(0)
        X /= X.std(0)
        return X


# ---------------------------------------------------------------------- measures
def gemm_rate(dtype, size=2048, repeats=3):
    """Best GFLOP/s of a size x size matrix product in ``dtype`` (benchmarks/ridge.py's measure)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ridge import matmul_rate

    return matmul_rate(dtype, size=size, repeats=repeats)


def rss_gib(field="VmHWM"):
    """Resident set size of this process in GiB: its peak since :func:`reset_peak` (``VmHWM``) or
    now (``VmRSS``), from /proc; elsewhere the peak of the process (``ru_maxrss``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def reset_peak():
    """Start the peak RSS afresh (Linux: ``5`` into /proc/self/clear_refs resets ``VmHWM``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


# ---------------------------------------------------------------------- one size (child process)
def sweep_size(n, t, n_layers, p, permutations, memory, seed, cv=None, groups=None, data=None):
    from neuroenc.encoding import LayerSweep
    from neuroenc.encoding._ridge import record_phases
    from neuroenc.encoding.designs import LayerDesigns

    rates = {"float32": gemm_rate(np.float32), "float64": gemm_rate(np.float64)}
    data = data or Simulated(n, p, t, n_layers, seed=seed)
    groups = data.groups if groups is None else groups
    rss_inputs = rss_gib("VmRSS")
    reset_peak()
    designs = LayerDesigns(list(range(n_layers)), data.layer, groups=groups)
    sweep = LayerSweep(alphas=ALPHAS, cv=cv or "runs", inner_cv=4 if cv is None else 5, dtype="float32",
                       backend="numpy", n_permutations=permutations,
                       permutation="refit" if permutations else "auto", compare=False, refit=False,
                       memory=memory, verbose=False)
    t0 = time.perf_counter()
    with warnings.catch_warnings(), record_phases() as phases:
        warnings.simplefilter("ignore")
        sweep.fit(designs, data.Y, groups=groups)
    wall = time.perf_counter() - t0
    mean_r = np.nanmean(sweep.r_, 1)
    out = {"n": n, "t": t, "layers": n_layers, "p": p, "permutations": permutations, "memory": memory,
           "wall": wall, "flops": sweep.flops_, "phases": phases, "rates": rates, "rss_inputs": rss_inputs,
           "rss_peak": rss_gib(), "form": sweep.forms_[0], "peak": int(data.peak),
           "best_layer": int(np.argmax(mean_r)), "mean_r": mean_r.tolist(),
           "batch": sweep.budget_.n_targets_batch if sweep.budget_ is not None else None}
    if sweep.r_.size <= 10**5:  # small enough to compare runs target by target
        out["r"] = np.asarray(sweep.r_, dtype=float).tolist()
    return out


def himalaya_size(n, t, n_layers, p, seed):
    """neuroenc and a himalaya loop on the same layers, folds and penalties, back to back."""
    from himalaya.backend import set_backend
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV
    from himalaya.scoring import correlation_score

    from neuroenc.encoding import LayerSweep
    from neuroenc.encoding.cv import inner_splits, make_cv

    data = Simulated(n, p, t, n_layers, seed=seed)
    groups = data.groups
    outer = make_cv("runs", groups, n, 5, 5)
    inner = [inner_splits(tr, groups, 4, 5) for tr, _ in outer]
    layers = [data.layer(j) for j in range(n_layers)]
    t0 = time.perf_counter()
    ours = LayerSweep(alphas=ALPHAS, cv=outer, gap=5, inner_cv=4, dtype="float32", backend="numpy",
                      n_permutations=0, refit=False, verbose=False).fit(layers, data.Y, groups=groups)
    t_ours = time.perf_counter() - t0
    backend = set_backend("numpy")
    params = dict(n_targets_batch=500, n_alphas_batch=5, n_targets_batch_refit=100)
    r = np.zeros((len(outer), n_layers, t))
    best = np.zeros_like(r)
    t0 = time.perf_counter()
    for j, X in enumerate(layers):
        for k, ((train, test), inn) in enumerate(zip(outer, inner)):
            pos = np.full(n, -1)
            pos[train] = np.arange(train.size)
            cv = [(pos[a], pos[b]) for a, b in inn]
            Est = KernelRidgeCV if X.shape[1] > train.size else RidgeCV
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = Est(alphas=ALPHAS, cv=cv, solver_params=params).fit(X[train], data.Y[train])
                r[k, j] = backend.to_numpy(correlation_score(data.Y[test], model.predict(X[test])))
                best[k, j] = backend.to_numpy(model.best_alphas_)
    t_him = time.perf_counter() - t0
    diff = np.abs(r - ours.fold_r_)
    same = np.isclose(best, ours.fold_alphas_, rtol=1e-5)
    return {"n": n, "t": t, "layers": n_layers, "p": p, "ours": t_ours, "himalaya": t_him,
            "estimator": Est.__name__, "max_r_diff": float(np.nanmax(np.where(same, diff, 0.0))),
            "alphas_differ": int((~same).sum()), "pairs": int(same.size),
            "max_r_diff_all": float(np.nanmax(diff)), "flops": ours.flops_,
            "rates": {"float32": gemm_rate(np.float32)}}


def lebel_costs(targets, permutations, seed, losses="auto"):
    """One layer at LeBel's size, 2 of 84 leave-one-story-out folds, at ``targets`` targets.

    ``losses="qr"``: the validation losses from the QR factors of the held-out projections
    (``_ridge.qr_losses``) whatever the targets (their factorisation, which pays off from about
    2,000 targets at this size, counted as free in the choice); ``"predictions"``: from every
    penalty's predictions, the QR path switched off, for the side-by-side reference."""
    from contextlib import nullcontext
    from unittest import mock

    from neuroenc.encoding import _ridge
    from neuroenc.encoding.cv import make_cv

    runs, run_len = 84, 334
    n = runs * run_len
    data = Simulated(n, 2304, targets, 1, n_runs=runs, seed=seed)
    outer = make_cv("runs", data.groups, n, 5, 5)[:2]
    force = {"predictions": mock.patch.object(_ridge, "validation_flops", lambda *a, **k: (0.0, 1.0, 1.0)),
             "qr": mock.patch.object(_ridge, "QR_WEIGHT", 0.0)}.get(losses, nullcontext())
    with force:
        out = sweep_size(n, targets, 1, 2304, permutations, None, seed, cv=outer, data=data)
    out["losses"] = losses
    return out


# ---------------------------------------------------------------------- printing
def _child(kind, **kw):
    """Run one measurement in a fresh process (its own peak RSS); returns its JSON."""
    cmd = [sys.executable, __file__, "--child", json.dumps({"kind": kind, **kw})]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} {kw} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_size(m):
    tot = m["flops"]
    print(f"\n{m['n']} samples x {m['t']} targets, {m['layers']} layer(s) x {m['p']} columns ({m['form']} form), "
          f"{m['permutations']} refit-null draws, memory={m['memory']}"
          + (f" (batches of {m['batch']} targets)" if m["batch"] else ""))
    print(f"  {'phase':<16}{'s':>9}{'GFLOP':>12}{'GFLOP/s':>10}{'share':>8}")
    for name in PHASES:
        ph = m["phases"].get(name)
        if ph:
            rate = ph["flops"] / max(ph["seconds"], 1e-9) / 1e9
            print(f"  {name:<16}{ph['seconds']:9.1f}{ph['flops'] / 1e9:12.1f}{rate:10.1f}"
                  f"{ph['flops'] / max(tot, 1):8.1%}")
    solver = sum(ph["seconds"] for ph in m["phases"].values())
    rate = tot / m["wall"] / 1e9
    print(f"  {'total':<16}{m['wall']:9.1f}{tot / 1e9:12.1f}{rate:10.1f}   "
          f"(solver phases {solver:.1f} s; the rest: generating layers, nulls' p-values)")
    print(f"  matrix product here: {m['rates']['float32']:.1f} GFLOP/s float32, {m['rates']['float64']:.1f} float64: "
          f"the sweep did {rate / m['rates']['float32']:.0%} of float32's (its dtype), "
          f"{rate / m['rates']['float64']:.0%} of float64's")
    print(f"  peak RSS during the fit {m['rss_peak']:.2f} GiB (before the fit: {m['rss_inputs']:.2f} GiB)")
    print(f"  profile: best layer by mean r = {m['best_layer']} (planted peak {m['peak']})"
          f"{'' if m['best_layer'] == m['peak'] else '  <-- NOT RECOVERED'}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", default="1000,3000,9000", help="comma-separated sample counts")
    parser.add_argument("--targets", default="10000,80000", help="comma-separated target counts")
    parser.add_argument("--layers", type=int, default=31)
    parser.add_argument("--features", type=int, default=2304)
    parser.add_argument("--permutations", type=int, default=100, help="refit-null draws (0: none)")
    parser.add_argument("--memory", default=None, help="a memory budget for each fit, e.g. 4GB")
    parser.add_argument("--himalaya", default="1000x2000x2",
                        help="samples x targets x layers of the himalaya comparison ('' to skip)")
    parser.add_argument("--no-sizes", action="store_true", help="only the himalaya / LeBel parts")
    parser.add_argument("--lebel", default="", help="LeBel-size cost measurement at these targets, e.g. 100,200")
    parser.add_argument("--lebel-reference", action="store_true",
                        help="with --lebel, the validation losses from QR factors and from every "
                             "penalty's predictions, side by side")
    parser.add_argument("--quick", action="store_true", help="a run of about 2 minutes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        kind = spec.pop("kind")
        fn = {"sweep": sweep_size, "himalaya": himalaya_size, "lebel": lebel_costs}[kind]
        print(json.dumps(fn(**spec)))
        return 0
    if args.quick:
        args.samples, args.targets, args.layers, args.permutations = "1000", "1500", 3, 20
        args.himalaya = "1000x1000x1"
    print(f"voxelwise benchmark: {args.layers} layers x {args.features} columns, 5 runs, leave-one-run-out, "
          f"4 inner folds, {ALPHAS.size} penalties, float32, numpy backend")
    if not args.no_sizes:
        for n in [int(x) for x in args.samples.split(",") if x]:
            for t in [int(x) for x in args.targets.split(",") if x]:
                print_size(_child("sweep", n=n, t=t, n_layers=args.layers, p=args.features,
                                  permutations=args.permutations, memory=args.memory, seed=args.seed))
                sys.stdout.flush()
    if args.himalaya:
        n, t, L = (int(x) for x in args.himalaya.split("x"))
        h = _child("himalaya", n=n, t=t, n_layers=L, p=args.features, seed=args.seed)
        rate = h["flops"] / h["ours"] / 1e9
        print(f"\nvs himalaya, {n} samples x {t} targets x {L} layer(s) x {args.features} columns, no permutations: "
              f"neuroenc {h['ours']:.1f} s ({rate:.1f} GFLOP/s, {rate / h['rates']['float32']:.0%} of the float32 "
              f"matrix product), himalaya {h['estimator']} loop {h['himalaya']:.1f} s: "
              f"{h['himalaya'] / h['ours']:.2f}x faster; largest |r| difference {h['max_r_diff']:.1e} where the "
              f"chosen penalties agree; they differ in {h['alphas_differ']} of {h['pairs']} (fold, target) pairs "
              f"(float32 near-ties of the CV loss), largest |r| difference there {h['max_r_diff_all']:.1e}")
    if args.lebel:
        counts = [int(x) for x in args.lebel.split(",")]
        per_target, runs = {}, {}
        for losses in ("qr", "predictions") if args.lebel_reference else ("auto",):
            got = runs[losses] = [_child("lebel", targets=c, permutations=args.permutations, seed=args.seed,
                                         losses=losses) for c in counts]
            for m in got:
                print_size(m)
            if len(got) >= 2:
                per_target[losses] = lebel_per_target(got[0], got[-1], losses)
        if len(runs) == 2:  # the same data: each target's r, both ways
            diff = max(float(np.nanmax(np.abs(np.subtract(a["r"], b["r"]))))
                       for a, b in zip(runs["qr"], runs["predictions"]))
            print(f"\nLargest difference of a target's r between the two: {diff:.1e}")
        if len(per_target) == 2:
            new, old = per_target["qr"], per_target["predictions"]
            print("\nLeBel size, per target and fold, side by side (QR losses vs every penalty's predictions):")
            for name in PHASES:
                if name in new and name in old and old[name][0] > 0:
                    print(f"  {name:<16} {new[name][0] / 1e6:9.1f} vs {old[name][0] / 1e6:9.1f} MFLOP "
                          f"({old[name][0] / max(new[name][0], 1):.2f}x), {new[name][1] * 1e3:8.2f} vs "
                          f"{old[name][1] * 1e3:8.2f} ms ({old[name][1] / max(new[name][1], 1e-12):.2f}x)")
            tot_new = sum(v[0] for v in new.values())
            tot_old = sum(v[0] for v in old.values())
            sec_new = sum(v[1] for v in new.values())
            sec_old = sum(v[1] for v in old.values())
            print(f"  {'all phases':<16} {tot_new / 1e6:9.1f} vs {tot_old / 1e6:9.1f} MFLOP "
                  f"({tot_old / tot_new:.2f}x), {sec_new * 1e3:8.2f} vs {sec_old * 1e3:8.2f} ms "
                  f"({sec_old / sec_new:.2f}x)")
    return 0


def lebel_per_target(a, b, label):
    """Print and return each phase's fixed and per-target FLOPs (and seconds) per fold, from two
    LeBel-size runs at different target counts (2 folds each): ``{phase: (flops, seconds)}`` per target."""
    dt = b["t"] - a["t"]
    print(f"\nLeBel size, per fold (2 folds measured), validation losses {label}: fixed + per target, by phase")
    out = {}
    for name in PHASES:
        fa, fb = a["phases"].get(name), b["phases"].get(name)
        if fa and fb:
            per = (fb["flops"] - fa["flops"]) / dt / 2
            sec = (fb["seconds"] - fa["seconds"]) / dt / 2
            fixed = (fa["flops"] - per * a["t"] * 2) / 2
            print(f"  {name:<16} {fixed / 1e9:10.1f} GFLOP + {per / 1e6:10.2f} MFLOP per target ({sec * 1e3:.2f} ms)")
            out[name] = (per, sec)
    return out


if __name__ == "__main__":
    sys.exit(main())
