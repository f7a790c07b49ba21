"""Benchmark: the unique contribution of each layer beyond a baseline, on simulations with a known answer.

Issue 20's acceptance, measured on :func:`neuroenc.encoding.simulate.simulate_baseline_layers`
(layers that all carry the baseline, responses autocorrelated over time, runs z-scored), with
:func:`neuroenc.encoding.fit_encoding` and a ``nuisance`` (the joint [baseline + layer] models
and their residual-draw tests, :mod:`neuroenc.encoding.contribution`). Each target is one
simulated response (its own weights and noise); a fit holds several.

Printed:

- **baseline only** (the responses are driven by the baseline, which every layer carries): the
  raw r profile, and the share of responses whose unique-contribution 95 % interval covers 0
  for *every* layer (target: >= 95 %);
- **one layer beyond the baseline** (driven by a latent only layer ``L`` carries): the share
  of responses whose unique best-layer set contains ``L`` (target: >= 90 %), and how often
  ``L`` is the best layer by unique contribution;
- **calibration**: the share of unique p-values below 0.05 per layer, under "the layer adds
  nothing" (baseline only) and under pure noise, with its standard error
  ``sqrt(0.05 * 0.95 / n)`` (calibrated: within 0.05 +- 2 SE; the responses of one fit share
  its layers, so the p-values are not quite independent and the SE is a little small),
  overall and, as a breakdown, where the layer entered the joint model in at least one fold
  (elsewhere the inner CV switched it off and the delta is exactly 0; its draws apply the
  same rule, so such a layer's p is large, and the share among the layers that entered is
  above 0.05 by as much as the overall share needs);
- **cost**: the fit time of a demo-sized fit (one run of 362 TRs, 2304 columns per layer, six
  targets, 1000 permutations, 8 baseline columns) with and without the unique contributions.

Run: ``python benchmarks/unique_calibration.py`` (``--help`` for sizes; the default takes a few
minutes on one core).
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from neuroenc.encoding import fit_encoding
from neuroenc.encoding.simulate import simulate_baseline_layers

ALPHAS = np.logspace(-1, 5, 7)


def fit(seed: int, args, driven: int | None = None, baseline_signal: float = 0.8):
    layers, N, Y, groups = simulate_baseline_layers(
        n_samples=args.samples, n_runs=args.runs, n_features=args.features, n_layers=args.layers,
        n_targets=args.targets, driven_layer=driven, baseline_signal=baseline_signal, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_encoding(layers, Y, groups, nuisance=N, n_permutations=args.draws, gap=3, alphas=ALPHAS,
                            random_state=seed)


def rate(p: np.ndarray) -> str:
    p = p[np.isfinite(p)]
    se = np.sqrt(0.05 * 0.95 / p.size)
    share = np.mean(p < 0.05)
    verdict = "calibrated" if abs(share - 0.05) <= 2 * se else ("conservative" if share < 0.05 else "liberal")
    return f"{share:.3f} +- {se:.3f} (n = {p.size}, {verdict})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sims", type=int, default=20, help="fits per scenario (default 20)")
    parser.add_argument("--targets", type=int, default=10, help="responses per fit (default 10)")
    parser.add_argument("--samples", type=int, default=240)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--draws", type=int, default=200, help="residual draws (n_permutations, default 200)")
    parser.add_argument("--no-cost", action="store_true", help="skip the demo-sized timing")
    args = parser.parse_args()
    driven = args.layers // 2
    started = time.time()
    covered, raw, p_h0, p_noise, in_set, best, on_h0, on_noise = [], [], [], [], [], [], [], []
    for s in range(args.sims):
        res = fit(s, args)
        u = res.unique
        covered.append(((u.ci_low <= 0) & (u.ci_high >= 0)).all(0))
        raw.append(res.r)
        p_h0.append(u.pvalues)
        on_h0.append((u.fold_delta_r2 != 0).any(0))
        res = fit(1000 + s, args, driven=driven)
        in_set.append(res.unique.in_best_set[driven])
        best.append(res.unique.best(res.layers)["best_layer"].to_numpy(float) == driven)
        u = fit(2000 + s, args, baseline_signal=0.0).unique
        p_noise.append(u.pvalues)
        on_noise.append((u.fold_delta_r2 != 0).any(0))
    n = args.sims * args.targets
    print(f"{args.sims} fits x {args.targets} responses per scenario ({n} responses), {args.layers} layers, "
          f"{args.samples} samples in {args.runs} runs, {args.draws} residual draws ({time.time() - started:.0f} s)")
    print(f"baseline only: raw r per layer {np.round(np.mean(raw, (0, 2)), 3).tolist()}; "
          f"unique 95 % interval covers 0 for every layer in {np.mean(covered):.3f} of responses (target >= 0.95)")
    print(f"layer {driven} beyond the baseline: in the unique best-layer set in {np.mean(in_set):.3f} of responses "
          f"(target >= 0.90); the best by unique contribution in {np.mean(best):.3f}")
    p_h0, p_noise = np.concatenate(p_h0, 1), np.concatenate(p_noise, 1)
    on_h0, on_noise = np.concatenate(on_h0, 1), np.concatenate(on_noise, 1)
    print("unique p < 0.05 under 'the layer adds nothing' (baseline only), all layers: " + rate(p_h0.ravel()))
    print("  per layer: " + ", ".join(f"{np.mean(p_h0[j] < 0.05):.3f}" for j in range(args.layers)))
    print(f"  where the layer entered the joint model in some fold ({np.mean(on_h0):.2f} of cases; elsewhere "
          "delta = 0 exactly and p large): " + rate(p_h0[on_h0]))
    print("unique p < 0.05 on pure noise, all layers: " + rate(p_noise.ravel()))
    print(f"  where the layer entered the joint model in some fold ({np.mean(on_noise):.2f} of cases): "
          + rate(p_noise[on_noise]))
    if args.no_cost:
        return
    rng = np.random.default_rng(0)
    layers = [rng.standard_normal((362, 2304)) for _ in range(3)]
    N, Y = rng.standard_normal((362, 8)), rng.standard_normal((362, 6))
    seconds = {}
    for unique in (False, True):
        t0 = time.time()
        fit_encoding(layers, Y, nuisance=N, n_permutations=1000, alphas=np.logspace(0, 7, 15), unique=unique,
                     backend="numpy")
        seconds[unique] = time.time() - t0
    print(f"cost (3 layers x 362 TRs x 2304 columns, 6 targets, 1000 draws): {seconds[False]:.1f} s without, "
          f"{seconds[True]:.1f} s with the unique contributions (x{seconds[True] / seconds[False]:.2f})")


if __name__ == "__main__":
    main()
