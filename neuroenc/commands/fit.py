"""Fit layer-wise encoding models of one subject from feature files and response files.

Example::

    neuroenc fit --features alice.h5 --responses s18-timecourses.txt --tr 2.0 --start 20.0 \\
        --delays 1,2,3,4 --cv auto --nuisance s18-rate.txt s18-sndpwr.txt --out s18.h5

One features file (from ``neuroenc extract``) per run; the responses files are paired with them
in order and take their run names. Responses: ``.npy``, ``.txt``/``.tsv``/``.csv`` (a header row
names the targets), NIfTI (``--mask`` needed) or an mne ``.fif`` (a time-lagged MEG/EEG design,
``--lags``).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pandas as pd

from ._common import LAYERS_HELP, parse_layers


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_alphas(text: str) -> np.ndarray:
    """``"logspace:-1,7,17"`` (powers of 10) or a comma list of numbers."""
    if text.startswith("logspace:"):
        start, stop, num = _floats(text.split(":", 1)[1])
        return np.logspace(start, stop, int(num))
    return np.asarray(_floats(text))


def parse_cv(text: str):
    return int(text) if text.isdigit() else text


def _nuisance_source(paths, responses, runs):
    """Nuisance regressors as Responses on each run's grid: one file per run, or several for one run."""
    from pathlib import Path

    from ..responses import read_responses

    def read(path, resp):
        return read_responses(path, tr=resp.tr, sfreq=resp.sfreq, start=resp.start, run=resp.run)

    if len(paths) == len(runs):
        return {resp.run: read(p, resp) for p, resp in zip(paths, responses)}
    if len(runs) == 1:
        parts = [read(p, responses[0]) for p in paths]
        names = [Path(p.info["source"]).stem + ("" if p.n_targets == 1 else f"_{c}")
                 for p in parts for c in range(p.n_targets)]
        return {runs[0]: parts[0].copy(np.hstack([p.data for p in parts]), names=names)}
    raise ValueError(f"--nuisance has {len(paths)} files for {len(runs)} runs; give one per run.")


def best_lines(results, max_targets: int = 20) -> str:
    """Per target: the best layer, the layers not reliably worse than it, r, baseline r and p,
    each p said against what it was tested."""
    table = results.best()
    lines = []
    if results.pvalues_best is not None:
        lines.append("  p: the best layer's r against chance, corrected for choosing it (max over layers)")
    if results.comparison is not None:
        c = results.comparison
        lines.append(f"  best set: layers not reliably worse than the best, tested against the other layers "
                     f"({c.source} draws, one-sided alpha = {c.alpha:g}, max over layers)")
    for row in table.head(max_targets).itertuples():
        if pd.isna(row.best_layer):
            lines.append(f"  {row.target:>12}  no finite score")
            continue
        text = f"  {row.target:>12}  best layer {int(row.best_layer):>3}"
        if "best_set" in table:
            text += f"  best set {row.best_set:<12}"
        text += f"  r={row.r:.3f}  baseline r={row.baseline_r:.3f}  p={row.p:.4f}"
        if "delta_last" in table and row.best_layer != row.last_layer:
            text += f"  vs last {row.delta_last:+.3f} [{row.delta_last_low:+.3f}, {row.delta_last_high:+.3f}]"
        lines.append(text)
    if results.n_targets > max_targets:
        lines.append("  ...")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--features", nargs="+", required=True, metavar="F.h5",
                        help="feature files, one per run (neuroenc extract)")
    parser.add_argument("--responses", nargs="+", required=True, metavar="PATH",
                        help="response files, one per features file, in the same order")
    parser.add_argument("--tr", type=float, default=None, help="repetition time in seconds (fMRI)")
    parser.add_argument("--sfreq", type=float, default=None, help="sampling rate in Hz (MEG/EEG arrays)")
    parser.add_argument("--start", type=_floats, default=[0.0],
                        help="stimulus time of row 0 in seconds, one for all runs or one per run (default 0)")
    parser.add_argument("--mask", default=None, help="brain mask for NIfTI responses")
    parser.add_argument("--target-names", type=lambda t: [x.strip() for x in t.split(",")], default=None,
                        help="names of the response columns, e.g. LATL,RATL,LPTL (default: from the file)")
    parser.add_argument("--layers", type=parse_layers, default="all", help=LAYERS_HELP)
    parser.add_argument("--delays", type=_ints, default=[1, 2, 3, 4], help="FIR delays in TRs (default 1,2,3,4)")
    parser.add_argument("--hrf", default=None, choices=("glover", "spm"), help="convolve with a canonical HRF")
    parser.add_argument("--method", default="lanczos", choices=("lanczos", "sinc", "rect", "nearest"),
                        help="resampling to the TR grid (default lanczos)")
    parser.add_argument("--trim", type=_ints, default=[0, 0], help="TRs dropped at the start,end of every run")
    parser.add_argument("--lags", type=_floats, default=[-0.1, 0.6], help="MEG/EEG lags tmin,tmax in seconds")
    parser.add_argument("--nuisance", nargs="+", default=None, metavar="PATH",
                        help="baseline regressors on the response grid (e.g. word rate, sound power): "
                             "one file per run, or several files for a single run")
    parser.add_argument("--cv", type=parse_cv, default="auto",
                        help="'auto' (leave-one-run-out, or blocks for one run), 'runs', 'blocks' or a number of folds")
    parser.add_argument("--n-blocks", type=int, default=5, help="blocks for a single run (default 5)")
    parser.add_argument("--gap", type=int, default=None, help="samples dropped around test blocks (default: longest delay + 1)")
    parser.add_argument("--inner-cv", type=int, default=5, help="inner folds for the penalties (default 5)")
    parser.add_argument("--alphas", type=parse_alphas, default=None,
                        help="ridge penalties: 'logspace:-1,7,17' (default) or a comma list")
    parser.add_argument("--n-permutations", type=int, default=1000, help="permutations for p-values (default 1000)")
    parser.add_argument("--permutation", default="auto", choices=("auto", "refit", "circular", "block"),
                        help="null of the permutation test: refit (calibrated), circular or block (fixed "
                        "predictions: cheaper, p too small), auto (refit unless too costly; default)")
    parser.add_argument("--backend", default="auto", choices=("auto", "numpy", "torch", "torch_cuda"))
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "float64"))
    parser.add_argument("--n-targets-batch", type=int, default=None, help="targets per batch (memory)")
    parser.add_argument("--subject", default=None, help="subject id, for the results' provenance")
    parser.add_argument("--dataset", default=None, help="data set name, for the results' provenance")
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--out", required=True, help="the results file to write (.h5)")


def run(args: argparse.Namespace) -> int:
    from .._validation import _sha256_file
    from ..align import make_fmri_design, make_meg_design
    from ..encoding import fit_encoding
    from ..responses import read_responses
    from ..features import load_features

    if len(args.features) != len(args.responses):
        raise ValueError(f"{len(args.features)} features files but {len(args.responses)} responses files; "
                         "give one responses file per features file, in the same order.")
    starts = args.start * len(args.features) if len(args.start) == 1 else args.start
    if len(starts) != len(args.features):
        raise ValueError(f"--start has {len(starts)} values for {len(args.features)} runs.")
    features = [load_features(path, layers=args.layers) for path in args.features]
    runs = [fs.run for fs in features]
    if len(set(runs)) != len(runs):
        raise ValueError(f"The features files hold runs {runs}; each file must be a different run.")
    responses = [read_responses(path, tr=args.tr, sfreq=args.sfreq, start=start, mask=args.mask, run=run,
                                subject=args.subject, names=args.target_names)
                 for path, start, run in zip(args.responses, starts, runs)]
    kinds = {r.kind for r in responses}
    if kinds == {"meg"}:
        tmin, tmax = args.lags
        design = make_meg_design(features, responses, tmin=tmin, tmax=tmax)
    else:
        design = make_fmri_design(features, responses, method=args.method, trim=tuple(args.trim),
                                  delays=tuple(args.delays), hrf=args.hrf)
    nuisance = None
    if args.nuisance:
        nuisance = design.nuisance(_nuisance_source(args.nuisance, responses, runs))
    first = features[0]
    provenance = {
        "subject": args.subject, "dataset": args.dataset, "model": first.model,
        "n_model_layers": first.n_model_layers, "runs": runs,
        "features_files": {run: str(p) for run, p in zip(runs, args.features)},
        "features_sha256": {run: _sha256_file(p) for run, p in zip(runs, args.features)},
        "responses_files": {run: str(p) for run, p in zip(runs, args.responses)},
        "responses_sha256": {r.run: r.info["sha256"] for r in responses},
        "command": " ".join(sys.argv),
    }
    for key in ("mask", "affine", "shape"):
        if key in responses[0].info:
            provenance[key] = responses[0].info[key]
    results = fit_encoding(
        design, nuisance=nuisance, alphas=args.alphas, cv=args.cv, n_blocks=args.n_blocks, gap=args.gap,
        inner_cv=args.inner_cv, backend=args.backend, dtype=args.dtype, n_targets_batch=args.n_targets_batch,
        n_permutations=args.n_permutations, permutation=args.permutation, random_state=args.random_state,
        provenance=provenance, settings={"alignment": design.settings}, verbose=True,
    )
    path = results.save(args.out)
    print(f"Results written to {path.resolve()} ({results.n_layers} layers x {results.n_targets} targets)")
    print(best_lines(results))
    for message in results.warnings:
        print(f"warning: {message}", file=sys.stderr)
    if args.verbose >= 3:
        print(json.dumps(results.settings, default=str, indent=1))
    return 0
