"""Calibration of the permutation null over stimuli, on null data with group structure.

Stimulus-level null data (:func:`simulate`: features and responses independent) are fitted in
two settings, side by side: with groups (each series with a random offset per group, as
passages share a topic) and ``cv="group-kfold:5"``, where the refit null permutes the stimuli
within groups; and without groups, ``cv="kfold:5"``, where it permutes all stimuli. Printed:
the share of p-values below 0.05 and 0.01 over all simulated targets (should be 0.05 and
0.01), and the seconds per fit. Run::

    python benchmarks/stimulus_null_calibration.py [--reps 20]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from neuroenc.encoding import LayerSweep


def simulate(rng, n_groups=16, per_group=6, n_features=20, n_targets=50, group_effect=0.7):
    n = n_groups * per_group
    g = np.repeat(np.arange(n_groups), per_group)
    X = rng.standard_normal((n, n_features)) + group_effect * rng.standard_normal((n_groups, n_features))[g]
    Y = rng.standard_normal((n, n_targets)) + group_effect * rng.standard_normal((n_groups, n_targets))[g]
    return X, Y, g


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--n-permutations", type=int, default=199)
    args = parser.parse_args()
    settings = {"group-kfold, within groups": ("group-kfold:5", 0.7), "kfold, all stimuli": ("kfold:5", 0.0)}
    out = {k: [] for k in settings}
    seconds = {k: 0.0 for k in settings}
    for rep in range(args.reps):
        for label, (cv, effect) in settings.items():
            X, Y, g = simulate(np.random.default_rng(rep), group_effect=effect)
            sweep = LayerSweep(alphas=np.logspace(-1, 4, 11), cv=cv, inner_cv=4,
                               n_permutations=args.n_permutations, refit=False, compare=False,
                               backend="numpy", random_state=rep)
            t0 = time.perf_counter()
            sweep.fit(X, Y, groups=g if cv.startswith("group") else None)
            seconds[label] += time.perf_counter() - t0
            out[label].append(sweep.pvalues_[0])
    n = args.reps * 50
    print(f"{n} null targets per setting ({args.reps} data sets x 50), {args.n_permutations} permutations")
    print(f"{'setting':28}{'p < 0.05':>10}{'p < 0.01':>10}{'s per fit':>11}")
    for label, ps in out.items():
        p = np.concatenate(ps)
        print(f"{label:28}{np.mean(p < 0.05):10.3f}{np.mean(p < 0.01):10.3f}{seconds[label] / args.reps:11.2f}")


if __name__ == "__main__":
    main()
