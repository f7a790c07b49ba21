"""Benchmark: resampling word features to a TR grid, vectorised vs reference loops.

A realistic story: 3,000 words (irregular onsets, ~0.34 s apart as in Alice), 30 layers ×
1,000 features (float32, as cached), TR 2 s. Measured side by side in one run:

- ``neuroenc``: ``resample(stack, times, tr_times, axis=1)``: one sparse Lanczos matrix for the
  run (built once), applied to all 30 layers;
- ``neuroenc, one layer at a time``: ``filter_matrix`` once, then ``matrix @ layer`` for each
  layer as it is read (what ``Design.X`` does, one layer per call);
- ``Huth per layer``: the published ``lanczosinterp2D`` (dense matrix rebuilt per call, dense
  product), called once per layer as the original scripts do;
- ``per column``: the same reference called column by column, as ``np.interp``-style code
  does. Too slow to run in full: a subset of columns is timed and extrapolated (said so).

Run: ``python benchmarks/align.py`` (``--help`` for sizes).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from neuroenc.align import resample
from neuroenc.align.resample import filter_matrix


def lanczosfun(cutoff, t, window=3):
    """Huth et al.'s Lanczos function (the published reference)."""
    t = t * cutoff
    with np.errstate(divide="ignore", invalid="ignore"):
        val = window * np.sin(np.pi * t) * np.sin(np.pi * t / window) / (np.pi**2 * t**2)
    val[t == 0] = 1.0
    val[np.abs(t) > window] = 0.0
    return val


def lanczosinterp2D(data, oldtime, newtime, window=3, cutoff_mult=1.0):
    """Huth et al.'s ``lanczosinterp2D``: dense sinc matrix, unnormalised rows."""
    cutoff = 1 / np.mean(np.diff(newtime)) * cutoff_mult
    sincmat = np.zeros((len(newtime), len(oldtime)))
    for ndi in range(len(newtime)):
        sincmat[ndi, :] = lanczosfun(cutoff, newtime[ndi] - oldtime, window)
    return np.dot(sincmat, data)


def _timed(fn, repeat=1):
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=3000)
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--dims", type=int, default=1000)
    parser.add_argument("--tr", type=float, default=2.0)
    parser.add_argument("--subset", type=int, default=40,
                        help="columns timed for the per-column loop (then extrapolated)")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    times = 10.0 + np.cumsum(rng.gamma(1.2, 0.34 / 1.2, args.words))
    grid = np.arange(0.0, times[-1] + 10.0, args.tr)
    stack = rng.standard_normal((args.layers, args.words, args.dims), dtype=np.float32)
    n_cols = args.layers * args.dims
    print(f"{args.words} words over {times[-1]:.0f} s → {grid.size} TRs of {args.tr:g} s; "
          f"{args.layers} layers × {args.dims} features = {n_cols} columns "
          f"({stack.nbytes / 1e6:.0f} MB float32)")

    t_matrix, matrix = _timed(lambda: filter_matrix(times, grid), repeat=3)
    t_vec, out = _timed(lambda: resample(stack, times, grid, axis=1), repeat=2)

    def per_layer():
        m = filter_matrix(times, grid, dtype=np.float32)
        return np.stack([m @ stack[i] for i in range(args.layers)])

    t_layer, out_layer = _timed(per_layer, repeat=2)
    t_huth, out_huth = _timed(
        lambda: np.stack([lanczosinterp2D(stack[i], times, grid) for i in range(args.layers)]))

    cols = rng.choice(n_cols, size=min(args.subset, n_cols), replace=False)
    flat = np.moveaxis(stack, 1, 0).reshape(args.words, n_cols)

    def per_column():
        return np.column_stack([lanczosinterp2D(flat[:, j], times, grid) for j in cols])

    t_cols, out_cols = _timed(per_column)
    t_col_full = t_cols / cols.size * n_cols

    flat_out = np.moveaxis(out, 1, 0).reshape(grid.size, n_cols)
    scale = np.abs(out_huth).max()
    err_huth = np.abs(out - out_huth).max() / scale
    err_layer = np.abs(out - out_layer).max() / scale
    err_cols = np.abs(flat_out[:, cols] - out_cols).max() / scale

    rows = [
        ("neuroenc resample (all layers, one call)", t_vec, "", err_huth),
        ("neuroenc, filter matrix once, layer by layer", t_layer, "", err_layer),
        ("Huth lanczosinterp2D per layer (dense)", t_huth, "", 0.0),
        ("reference per column (np.interp-style loop)", t_col_full,
         f"extrapolated from {cols.size} columns ({t_cols:.2f} s)", err_cols),
    ]
    print(f"\nfilter matrix: {matrix.shape[0]} × {matrix.shape[1]}, {matrix.nnz} non-zeros "
          f"({100 * matrix.nnz / np.prod(matrix.shape):.1f} %), built in {t_matrix * 1e3:.1f} ms")
    print(f"\n{'method':<52} {'time (s)':>10} {'× slower':>10}  {'max rel. diff':>13}  note")
    for name, t, note, err in rows:
        print(f"{name:<52} {t:>10.3f} {t / t_vec:>10.1f}  {err:>13.1e}  {note}")
    print(f"\nratio per-column loop / vectorised: {t_col_full / t_vec:.0f}×; "
          f"Huth per layer / vectorised: {t_huth / t_vec:.1f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
