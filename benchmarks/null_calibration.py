"""Benchmark: calibration and cost of the permutation nulls of cross-validated encoding models.

Under the null (features and responses independent, both autocorrelated as fMRI is), a
calibrated test puts 5 % of p-values below 0.05. Measured side by side in one run, on the same
simulated data and the same fits (:class:`neuroenc.encoding.LayerSweep`, one run cut into 5
contiguous folds with a gap, nested CV of the penalty):

- ``refit``: each run's response is shifted circularly and the held-out predictions of every
  outer fold are refitted with the penalties chosen on the real responses (the default when
  affordable);
- ``circular``: each test fold's response is shifted against fixed predictions;
- ``block``: each test fold's blocks are shuffled against fixed predictions.

Printed: the share of p-values below 0.05 and 0.01 for single layers and for the best layer
(corrected by the maximum over layers), and each scheme's fit time relative to ``circular``.

Run: ``python benchmarks/null_calibration.py`` (``--help`` for sizes).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from neuroenc.encoding import LayerSweep


def smooth_noise(rng: np.random.Generator, n: int, t: int, width: int) -> np.ndarray:
    """Moving average of white noise: autocorrelated over ``width`` samples."""
    x = rng.standard_normal((n + width, t))
    c = np.cumsum(x, 0)
    return (c[width:] - c[:-width])[:n] / np.sqrt(width)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=360, help="TRs in the run (default 360)")
    parser.add_argument("--features", type=int, default=40, help="columns per layer (default 40)")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--targets", type=int, default=500)
    parser.add_argument("--permutations", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3, help="independent data sets (default 3)")
    parser.add_argument("--width", type=int, default=6, help="autocorrelation width in samples")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    rates: dict[str, list] = {m: [] for m in ("refit", "circular", "block")}
    times: dict[str, float] = {m: 0.0 for m in rates}
    for rep in range(args.repeats):
        layers = [smooth_noise(rng, args.samples, args.features, args.width) for _ in range(args.layers)]
        Y = smooth_noise(rng, args.samples, args.targets, args.width)
        for method in rates:
            start = time.perf_counter()
            sweep = LayerSweep(alphas=np.logspace(-1, 4, 8), permutation=method, refit=False,
                               n_permutations=args.permutations, random_state=rep).fit(layers, Y)
            times[method] += time.perf_counter() - start
            rates[method].append([np.mean(sweep.pvalues_ < 0.05), np.mean(sweep.pvalues_ < 0.01),
                                  np.mean(sweep.pvalues_best_ < 0.05), np.mean(sweep.pvalues_best_ < 0.01)])
    n_p = args.repeats * args.targets
    print(f"{args.repeats} null data sets x {args.targets} targets, {args.samples} samples, "
          f"{args.layers} layers x {args.features} columns, {args.permutations} permutations")
    print(f"(one share has a standard error of about {np.sqrt(0.05 * 0.95 / n_p):.3f} at 0.05 "
          f"for the best layer)")
    print(f"{'null':>9}  {'p<.05 layer':>11}  {'p<.01 layer':>11}  {'p<.05 best':>10}  {'p<.01 best':>10}  "
          f"{'time vs circular':>16}")
    for method, values in rates.items():
        v = np.mean(values, 0)
        print(f"{method:>9}  {v[0]:>11.3f}  {v[1]:>11.3f}  {v[2]:>10.3f}  {v[3]:>10.3f}  "
              f"{times[method] / times['circular']:>15.1f}x")


if __name__ == "__main__":
    main()
