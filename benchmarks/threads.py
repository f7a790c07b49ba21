"""Thread-pool benchmark: neuroenc's thread setting vs the BLAS defaults, beside a busy process.

A layer sweep with statistics (:func:`neuroenc.encoding.fit_encoding` on simulated layers,
:func:`neuroenc.encoding.simulate.simulate_layers`: 4 layers of 100 features, 800 samples in
5 runs, 500 targets, 100 permutations; about 20 s of CPU on one core) runs while one other
CPU-bound process spins (a numpy matrix product in a loop, one thread, as another job on the
machine would). Compared, side by side in one run, each in a fresh process (so that the BLAS
defaults are the libraries' own, not this shell's ``OMP_NUM_THREADS``):

- ``neuroenc``: the fit inside :func:`neuroenc._threads.thread_limits` with its default (the
  cores this process may use, capped by the machine's idle cores; see ``docs/scaling.md``);
- ``BLAS defaults``: the same fit with every pool at the libraries' default (one thread per CPU:
  :func:`threadpoolctl.threadpool_limits` and :func:`torch.set_num_threads` with
  ``os.cpu_count()``).

The two alternate (``--repeats`` times each) so that a change in the machine's load hits both.
Prints each run's seconds and threads, the medians and their ratio. The numbers depend on
what else runs on the machine: give its load (printed) with them.

Run ``python benchmarks/threads.py --quick`` for a smoke run (seconds).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SPIN = "import numpy as np\na = np.random.rand(300, 300)\nwhile True:\n    a = np.tanh(a @ a)\n"
POOL_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NEUROENC_THREADS")


def child(args) -> dict:
    """One fit in this process, under ``args.child`` (``neuroenc`` or ``defaults``)."""
    import contextlib

    import numpy as np
    import torch
    from threadpoolctl import threadpool_limits

    from neuroenc._threads import current_threads, thread_limits
    from neuroenc.encoding import fit_encoding
    from neuroenc.encoding.simulate import simulate_layers

    layers, Y = simulate_layers(n_samples=args.samples, n_features=args.features, n_targets=args.targets,
                                noise=(1.0,) * args.layers, random_state=0)
    groups = np.repeat(np.arange(args.runs), args.samples // args.runs + 1)[:args.samples]
    if args.child == "neuroenc":
        context = thread_limits()
    else:
        n = os.cpu_count() or 1
        torch.set_num_threads(n)
        context = threadpool_limits(limits=n)
    setting = None
    with context as entered:
        if args.child == "neuroenc":
            setting = entered.to_dict()
        pools = current_threads()
        started = time.perf_counter()
        with contextlib.redirect_stderr(open(os.devnull, "w")):
            results = fit_encoding(layers, Y, groups=groups, n_permutations=args.permutations, verbose=False)
        seconds = time.perf_counter() - started
    return {"mode": args.child, "seconds": seconds, "pools": pools, "setting": setting,
            "r_mean": float(np.nanmean(results.r))}


def run_child(args, mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in POOL_VARS}
    cmd = [sys.executable, __file__, "--child", mode, "--samples", str(args.samples), "--features",
           str(args.features), "--layers", str(args.layers), "--targets", str(args.targets), "--runs",
           str(args.runs), "--permutations", str(args.permutations)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=800)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--targets", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--busy", type=int, default=1, help="CPU-bound processes spinning beside the fit")
    parser.add_argument("--quick", action="store_true", help="a small problem, one repeat")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.samples, args.features, args.layers, args.targets, args.permutations, args.repeats = \
            400, 40, 3, 100, 20, 1
    if args.child:
        print(json.dumps(child(args)))
        return
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {os.cpu_count()} CPUs, affinity {affinity}, load {os.getloadavg()[0]:.2f} before the "
          f"spinners; {args.busy} busy process(es) beside the fit")
    print(f"problem: {args.layers} layers x {args.features} features, {args.samples} samples in {args.runs} runs, "
          f"{args.targets} targets, {args.permutations} permutations")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN], env=env) for _ in range(args.busy)]
    rows = []
    try:
        time.sleep(2.0)
        for _ in range(args.repeats):
            for mode in ("neuroenc", "defaults"):
                row = run_child(args, mode)
                rows.append(row)
                how = (f"{row['setting']['threads']} ({row['setting']['source']}, load "
                       f"{row['setting']['load']})" if row["setting"] else "-")
                print(f"  {mode:9s} {row['seconds']:8.2f} s  pools {row['pools']}  neuroenc setting {how}  "
                      f"mean r {row['r_mean']:.4f}", flush=True)
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    med = {mode: statistics.median(r["seconds"] for r in rows if r["mode"] == mode)
           for mode in ("neuroenc", "defaults")}
    print(f"median: neuroenc {med['neuroenc']:.2f} s, BLAS defaults {med['defaults']:.2f} s; "
          f"defaults / neuroenc = {med['defaults'] / med['neuroenc']:.2f}x; load after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
