"""Benchmark: calibration and power of the layer comparisons (the confidence set of best layers).

neuroenc tests every layer against the other layers (H0: "this layer is one of the best"), with
the studentized maximum over the other layers, and keeps in the *best-layer set* the layers it
cannot reject at alpha = 0.05 (:mod:`neuroenc.encoding.compare`). Measured here, on simulated
data with a known answer (:func:`neuroenc.encoding.simulate.simulate_layers`: layers carrying a
shared latent signal with more or less noise, responses driven by it, all autocorrelated):

1. One response per fit (a subject, or the group-mean response): the residual draws (the best
   layer's held-out prediction plus circularly shifted residuals, every layer refitted).
   - null data (no signal, three equal layers): the share of layers called reliably worse,
     which must stay at alpha or below;
   - two equally good layers and a layer without signal: how often the two are together in the
     set, and how often the signal-less layer is excluded;
   - two equally good layers and a noisier (weaker) layer;
   - how conservative the draws are: the spread of the difference between two layers' r across
     independent data sets (the truth), against the spread the null draws give.
2. Several subjects: sign flips of the subjects' paired differences; null and power, the same way.

Run: ``python benchmarks/layer_comparison.py`` (``--help`` for sizes; about 5 minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from neuroenc.encoding import LayerSweep
from neuroenc.encoding.compare import compare_layers_across_units
from neuroenc.encoding.simulate import simulate_layers


def sweep(layers, Y, permutations, seed, keep=None):
    """Fit with a refit null; ``keep`` receives the centred null draws."""
    import neuroenc.encoding.sweep as module

    original = module.compare_layers

    def spy(observed, draws, **kwargs):
        if keep is not None:
            keep.append(np.asarray(draws))
        return original(observed, draws, **kwargs)

    module.compare_layers = spy
    try:
        return LayerSweep(alphas=np.logspace(-1, 4, 8), permutation="refit", refit=False,
                          n_permutations=permutations, random_state=seed).fit(layers, Y)
    finally:
        module.compare_layers = original


def single_response(args) -> None:
    n, t, P = args.samples, args.targets, args.permutations
    print(f"1. One response per fit: {args.repeats} data sets ({args.null_repeats} null) x {t} targets, "
          f"{n} samples (one run, 5 blocks), 3 layers x 40 columns, {P} residual draws")
    scenarios = [
        ("null (3 equal layers, no signal)", (1.0, 1.0, 1.0), 0.0),
        ("equal pair + layer without signal", (1.0, 1.0, np.inf), 1.0),
        ("equal pair + noisier layer", (1.0, 1.0, 3.0), 1.0),
    ]
    print(f"{'scenario':>36}  {'mean r per layer':>22}  {'pair together':>13}  {'A in':>6}  {'B in':>6}  "
          f"{'C excluded':>10}  {'fit s':>6}")
    for name, noise, signal in scenarios:
        rows, start = [], time.perf_counter()
        repeats = args.null_repeats if signal == 0.0 else args.repeats
        for rep in range(repeats):
            layers, Y = simulate_layers(n_samples=n, n_targets=t, noise=noise, signal=signal, random_state=100 + rep)
            fit = sweep(layers, Y, P, rep)
            c = fit.comparison_
            rows.append([np.mean(c.in_best_set[0] & c.in_best_set[1]), np.mean(c.in_best_set[0]),
                         np.mean(c.in_best_set[1]), np.mean(~c.in_best_set[2])] + list(np.mean(fit.r_, 1)))
        elapsed = (time.perf_counter() - start) / repeats
        v = np.mean(rows, 0)
        r_text = " ".join(f"{x:+.2f}" for x in v[4:])
        print(f"{name:>36}  {r_text:>22}  {v[0]:>13.3f}  {v[1]:>6.3f}  {v[2]:>6.3f}  {v[3]:>10.3f}  "
              f"{elapsed:>6.1f}")
        if signal == 0.0:
            # every layer is (one of) the best: the share called reliably worse, per data set
            per_set = [1 - np.mean([row[1], row[2], 1 - row[3]]) for row in rows]
            rate = float(np.mean(per_set))
            se_sets = float(np.std(per_set, ddof=1) / np.sqrt(len(per_set)))
            print(f"{'':>36}  null rate of calling a layer reliably worse: {rate:.3f} (alpha 0.05; "
                  f"standard error {se_sets:.3f} across the {len(per_set)} data sets, whose targets share "
                  "their layers)")
    # how conservative: spread across independent data sets vs the draws' spread, same targets
    diffs, spreads = [], []
    for rep in range(args.sd_repeats):
        layers, Y = simulate_layers(n_samples=n, n_targets=20, noise=(1.0, 1.0, 3.0), signal=1.0,
                                    random_state=np.random.default_rng([7, rep]))
        kept: list = []
        fit = sweep(layers, Y, P, rep, keep=kept)
        draws = kept[0]
        diffs.append([fit.r_[0] - fit.r_[2], fit.r_[0] - fit.r_[1]])
        spreads.append([np.std(draws[:, 0] - draws[:, 2], 0), np.std(draws[:, 0] - draws[:, 1], 0)])
    diffs, spreads = np.asarray(diffs), np.asarray(spreads)
    for i, pair in enumerate(("A - C (weaker layer)", "A - B (equal layers)")):
        truth = diffs[:, i].std(0).mean()
        drawn = spreads[:, i].mean()
        print(f"   sd of r({pair}) across {args.sd_repeats} data sets {truth:.3f}; from the comparison draws "
              f"{drawn:.3f} ({drawn / truth:.2f}x: >1 is conservative)")


def subjects(args) -> None:
    S, L, T = args.subjects, 8, args.targets
    print(f"\n2. Several subjects: {S} subjects x {L} layers x {T} targets x {args.repeats} data sets, "
          "sign flips (2000)")
    rng = np.random.default_rng(0)
    null_rates, together, out = [], [], []
    for rep in range(args.repeats):
        # null: every layer equal; subjects' scores share a subject effect and correlate across layers
        subject = rng.standard_normal((S, 1, T)) * 0.05
        values = 0.2 + subject + rng.standard_normal((S, L, T)) * 0.04
        c = compare_layers_across_units(values, random_state=rep)
        null_rates.append(np.mean(~c.in_best_set))
        truth = np.array([0.20, 0.25, 0.30, 0.30, 0.28, 0.25, 0.20, 0.10])  # layers 2 and 3 best
        values = truth[None, :, None] + subject + rng.standard_normal((S, L, T)) * 0.04
        c = compare_layers_across_units(values, random_state=rep)
        together.append(np.mean(c.in_best_set[2] & c.in_best_set[3]))
        out.append(np.mean(~c.in_best_set[[0, 6, 7]]))
    se = np.sqrt(0.05 * 0.95 / (args.repeats * L * T))
    print(f"   null (all layers equal): share of layers called reliably worse {np.mean(null_rates):.3f} "
          f"(alpha 0.05, standard error {se:.3f})")
    print(f"   two equal best layers together in the set {np.mean(together):.3f}; layers 0.1-0.2 below "
          f"excluded {np.mean(out):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--targets", type=int, default=120)
    parser.add_argument("--permutations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="independent data sets per scenario")
    parser.add_argument("--null-repeats", type=int, default=30, help="independent null data sets")
    parser.add_argument("--sd-repeats", type=int, default=12, help="data sets for the spread check")
    parser.add_argument("--subjects", type=int, default=20)
    args = parser.parse_args()
    single_response(args)
    subjects(args)


if __name__ == "__main__":
    main()
