"""Compute per-layer representation metrics (entropy, curvature, intrinsic dimension, rank) of a
features file, and/or a language model's quality (surprisal, perplexity, accuracy) on a text
under an intervention."""
from __future__ import annotations

import argparse

from ._common import LAYERS_HELP, parse_layers

#: lm_quality's options on the command line (declared on the library function).
QUALITY_OPTIONS = ("intervention", "context_tokens", "stride", "prepend_bos", "batch_size", "device", "dtype")


def _quality_settings() -> dict:
    from .._settings import settings_of
    from ..features.quality import lm_quality

    return settings_of(lm_quality, include=QUALITY_OPTIONS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .._settings import add_options
    from ..features.metrics_layers import CURVATURES, FIRST_TOKEN, METRICS, PRESETS

    parser.add_argument("--features", default=None,
                        help="features HDF5 file written by `neuroenc extract` (needed unless --quality is given)")
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
    parser.add_argument("--preset", choices=PRESETS, default="default",
                        help="'skean2025': the authors' code (centre and L2-normalise each prompt's rows, "
                             "clamp the Gram at 0); see neuroenc.features.layer_metrics")
    parser.add_argument("--curvature", choices=CURVATURES, default=None,
                        help="curvature variant (default: 'paper'; 'abs-angles' with --preset skean2025)")
    parser.add_argument("--first-token", choices=FIRST_TOKEN, default="keep",
                        help="keep or drop the first position of each prompt (the attention sink)")
    parser.add_argument("--id-method", choices=("fit", "mle"), default="fit",
                        help="TwoNN estimator (default: fit, as Facco et al. 2017)")
    parser.add_argument("--discard-fraction", type=float, default=0.1,
                        help="fraction of the largest TwoNN ratios left out of the fit (default: 0.1)")
    quality = parser.add_argument_group("LM quality (neuroenc.features.lm_quality)")
    quality.add_argument("--quality", default=None, metavar="TEXTFILE",
                         help="a UTF-8 text file: write the model's surprisal, perplexity and top-1 accuracy "
                              "on it (under --intervention) into the metrics file's 'quality' group")
    quality.add_argument("--model", default=None, help="--quality only: the causal language model (alias, hub "
                                                       "id, local folder or .gguf file)")
    add_options(quality, _quality_settings())


def run(args: argparse.Namespace) -> int:
    from .._settings import given
    from ._common import check_out

    if args.features is None and args.quality is None:
        raise ValueError("neuroenc metrics needs --features FILE (layer metrics) or --quality TEXTFILE (LM "
                         "quality), or both.")
    options = given(args, _quality_settings())
    if args.quality is None and options:
        raise ValueError(f"{', '.join('--' + k.replace('_', '-') for k in options)} apply to --quality only; "
                         "give --quality TEXTFILE --model MODEL.")
    if args.quality is not None and args.model is None:
        raise ValueError("--quality needs --model (a causal language model, e.g. smollm2-135m).")
    check_out(args.out, [args.features, args.quality], example="metrics.h5")
    if args.features is not None:
        _layer_metrics(args)
    if args.quality is not None:
        _quality(args, options)
    print(f"wrote {args.out}")
    return 0


def _layer_metrics(args: argparse.Namespace) -> None:
    from ..features.metrics_layers import layer_metrics

    metrics = "all" if args.metrics.strip().lower() == "all" else [m.strip() for m in args.metrics.split(",")]
    result = layer_metrics(
        args.features,
        metrics,
        layers=args.layers,
        window=args.window,
        step=args.step,
        alpha=args.alpha,
        center=args.center,
        preset=args.preset,
        curvature=args.curvature,
        first_token=args.first_token,
        id_method=args.id_method,
        discard_fraction=args.discard_fraction,
    )
    result.save(args.out)
    table = result.to_frame().pivot(index="layer", columns="metric", values="value")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))


def _quality(args: argparse.Namespace, options: dict) -> None:
    from .._validation import _check_path_exists
    from ..features.quality import lm_quality

    path = _check_path_exists(args.quality, "--quality text file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"--quality {str(path)!r} is not UTF-8 text ({err}); convert it to UTF-8.") from err
    quality = lm_quality(text, args.model, **options)
    quality.save(args.out)
    for key, value in quality.summary().items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
