"""Benchmark: a sentence-set stimulus fit, inner CV by eigendecomposition vs from the outer spectrum.

A Pereira-size stimulus fit (issue 23, item 4): 627 stimuli x 576 features x 31 layers (the
shape of smollm2-135m's hidden states over a sentence set), one simulated target
(:func:`neuroenc.encoding.simulate.simulate_layers`, a latent signal carried by the layers with
more or less noise), ``cv="kfold:10"`` with 5 inner folds, 1,000 permutations (the refit null:
stimuli permuted) and the default layer comparisons. Compared side by side in one run, in one
process, on the same data:

- ``direct``: as before, each inner split's losses from its own eigendecomposition
  (``inner_path="direct"``, the reference), and the layer comparisons' refits from another
  eigendecomposition of each outer training set: 10 x (5 + 1 + 1) = 70 eigendecompositions of
  ~450-564 square kernels per layer (and 10 more for the best layer's final refit);
- ``auto``: the inner losses from the outer split's eigendecomposition by the group-deletion
  identity (:class:`neuroenc.encoding._ridge.Deletion`), chosen per outer fold when it needs
  fewer floating-point operations, and the comparisons' refits of the few penalties used from
  Cholesky solves (:class:`neuroenc.encoding._ridge.SolveSplit`): 10 eigendecompositions per
  layer (the final refit's CV from the spectrum of all samples).

Prints each path's seconds and counted floating-point operations, their ratios, and the largest
difference of the results (r, p-values, penalties). ``--busy`` also runs both with one other
CPU-bound process spinning beside them (as another job on the machine would). The numbers
depend on the machine's load: give it (printed) with them. Run::

    python benchmarks/sentence_fit.py [--layers 31] [--busy]
"""
from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import time

import numpy as np

from neuroenc._threads import thread_limits
from neuroenc.encoding import _ridge, fit_encoding
from neuroenc.encoding.simulate import simulate_layers

SPIN = "import numpy as np\na = np.random.rand(300, 300)\nwhile True:\n    a = np.tanh(a @ a)\n"


def data(n_layers: int, n_stimuli: int, n_features: int, seed: int = 0):
    """Simulated layers (z-scored columns) and one target driven by the layers' latent signal."""
    noise = tuple(np.r_[np.linspace(3.0, 0.8, n_layers // 2), np.linspace(0.8, 3.0, n_layers - n_layers // 2)])
    layers, Y = simulate_layers(n_samples=n_stimuli, n_features=n_features, n_targets=1, noise=noise,
                                signal=0.5, width=1, random_state=seed)
    return [(x - x.mean(0)) / x.std(0) for x in layers], Y


def _decompose(B, gram, train, test, *args):
    return _ridge.decompose(B, gram, train, test)


def fit(layers, Y, path: str, n_permutations: int, threads):
    """One fit with ``inner_path=path`` (``"direct"``: and the comparisons' refits from
    eigendecompositions, as before): (seconds, results)."""
    original, refit_split, plan_inner = _ridge.fit_layer_cv, _ridge.refit_split, _ridge.plan_inner
    _ridge.fit_layer_cv = functools.partial(original, inner_path=path)
    if path == "direct":  # the final refit's CV too
        _ridge.refit_split, _ridge.plan_inner = _decompose, lambda *a, **k: "direct"
    try:
        with thread_limits(threads):
            t0 = time.perf_counter()
            res = fit_encoding(layers, Y, cv="kfold:10", inner_cv=5, n_permutations=n_permutations,
                               backend="numpy", dtype="float64", random_state=0)
            return time.perf_counter() - t0, res
    finally:
        _ridge.fit_layer_cv, _ridge.refit_split, _ridge.plan_inner = original, refit_split, plan_inner


def compare(layers, Y, args, label: str) -> None:
    runs = {}
    for path in ("direct", "auto"):
        runs[path] = fit(layers, Y, path, args.permutations, args.threads)
    (t_old, old), (t_new, new) = runs["direct"], runs["auto"]
    f_old, f_new = old.provenance["flops"], new.provenance["flops"]
    diff = {name: float(np.nanmax(np.abs(getattr(new, name) - getattr(old, name))))
            for name in ("r", "pvalues", "alphas", "fold_r")}
    print(f"{label}  load {os.getloadavg()[0]:.1f}, threads {new.provenance['threads']}")
    print(f"{'':10}{'seconds':>9}{'GFLOP':>9}{'s/layer':>9}")
    for path, (t, res) in runs.items():
        print(f"{path:10}{t:9.1f}{res.provenance['flops'] / 1e9:9.1f}{t / len(layers):9.2f}")
    print(f"ratio direct/auto: time {t_old / t_new:.2f}x, flops {f_old / f_new:.2f}x; "
          f"max |diff| " + ", ".join(f"{k} {v:.1e}" for k, v in diff.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=31)
    parser.add_argument("--stimuli", type=int, default=627)
    parser.add_argument("--features", type=int, default=576)
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--threads", default=None, help="threads (default: neuroenc's setting)")
    parser.add_argument("--busy", action="store_true", help="also run beside one CPU-bound process")
    args = parser.parse_args()
    args.threads = int(args.threads) if args.threads else None
    layers, Y = data(args.layers, args.stimuli, args.features)
    print(f"{args.stimuli} stimuli x {args.features} features x {args.layers} layers, 1 target, kfold:10 "
          f"(inner 5), {args.permutations} permutations, {os.cpu_count()} CPUs")
    compare(layers, Y, args, "as the machine is")
    if args.busy:
        spin = subprocess.Popen([sys.executable, "-c", SPIN],
                                env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
        try:
            time.sleep(1.0)
            compare(layers, Y, args, "beside one CPU-bound process")
        finally:
            spin.kill()
            spin.wait()


if __name__ == "__main__":
    main()
