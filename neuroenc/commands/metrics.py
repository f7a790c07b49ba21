"""Compute per-layer representation metrics (entropy, curvature, intrinsic dimension, rank) of a features file."""
from __future__ import annotations

import argparse

from ._common import LAYERS_HELP, parse_layers


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..features.metrics_layers import METRICS

    parser.add_argument("--features", required=True, help="features HDF5 file written by `neuroenc extract`")
    parser.add_argument("--out", required=True, help="output metrics HDF5 file")
    parser.add_argument("--metrics", default="all",
                        help=f"comma-separated metric names or 'all' (default); among {', '.join(METRICS)}")
    parser.add_argument("--layers", type=parse_layers, default="all", help=LAYERS_HELP)
    parser.add_argument("--window", type=int, default=32,
                        help="words per window for prompt entropy and curvature (default: 32)")
    parser.add_argument("--step", type=int, default=None,
                        help="words between window starts (default: the window, non-overlapping)")
    parser.add_argument("--alpha", type=float, default=1.0,
                        help="order of the matrix-based Rényi entropies (default: 1, Shannon)")
    parser.add_argument("--center", action="store_true", help="centre states before entropies and rank")
    parser.add_argument("--id-method", choices=("fit", "mle"), default="fit",
                        help="TwoNN estimator (default: fit, as Facco et al. 2017)")
    parser.add_argument("--discard-fraction", type=float, default=0.1,
                        help="fraction of the largest TwoNN ratios left out of the fit (default: 0.1)")


def run(args: argparse.Namespace) -> int:
    from ..features.metrics_layers import layer_metrics
    from ._common import check_out

    check_out(args.out, [args.features], example="metrics.h5")
    metrics = "all" if args.metrics.strip().lower() == "all" else [m.strip() for m in args.metrics.split(",")]
    result = layer_metrics(
        args.features,
        metrics,
        layers=args.layers,
        window=args.window,
        step=args.step,
        alpha=args.alpha,
        center=args.center,
        id_method=args.id_method,
        discard_fraction=args.discard_fraction,
    )
    path = result.save(args.out)
    table = result.to_frame().pivot(index="layer", columns="metric", values="value")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {path}")
    return 0
