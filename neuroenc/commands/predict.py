"""Predict brain responses to new stimuli with the encoders saved in a results file.

Examples::

    neuroenc fit --features alice.h5 --responses s18.txt --tr 2.0 --save-weights --out s18.h5
    neuroenc predict --results s18.h5 --features new-story.h5 --out pred.h5
    neuroenc predict --results s18.h5 --features new-story.h5 --layer 6 --n-trs 300 --start 20 --out pred.h5
    neuroenc predict --results res.h5 --features new-sentences.h5 --out pred.h5   # stimulus-level

The results must come from a fit with --save-weights (encoding.save_weights: true in a run
config). Word-timed features (neuroenc extract; one file per run) are put on a TR grid and
aligned with the fit's own settings (resampling, delays, HRF, trimming; features z-scored per
run); the grid has --tr (default the fit's), --start (default 0) and --n-trs TRs (default:
enough to cover the words and the delays after them). Stimulus-level features (neuroenc extract
--stimuli) give one row per stimulus, z-scored with the training stimuli's statistics. The
features must come from the same model and extraction settings as the fit's.

The predictions file holds /predictions (rows x targets, in the training responses' z-score
units), /targets, /layers (the layer of each target) and the rows: /rows/run and /rows/time
(stories) or /rows/id (stimuli).
"""
from __future__ import annotations

import argparse
from pathlib import Path


def _layer(text: str) -> int | str:
    if text == "best":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--layer must be a layer index or 'best', got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", required=True, metavar="RES.h5",
                        help="results file of a fit with --save-weights")
    parser.add_argument("--features", nargs="+", required=True, metavar="F.h5",
                        help="features of the new stimuli (neuroenc extract): one file per run, or one "
                             "stimulus-level file")
    parser.add_argument("--out", required=True, help="the predictions file to write (.h5)")
    parser.add_argument("--layer", type=_layer, default="best",
                        help="the layer to predict from, or 'best': each target's best layer (default)")
    parser.add_argument("--tr", type=float, default=None, help="word features: TR of the new grid in seconds "
                                                               "(default: the fit's)")
    parser.add_argument("--start", type=float, default=0.0,
                        help="word features: stimulus time of the first TR of each run, in seconds (default 0)")
    parser.add_argument("--n-trs", type=int, default=None,
                        help="word features: TRs of each run's grid (default: enough to cover the words and the "
                             "delays after them)")


def run(args: argparse.Namespace) -> int:
    from .._validation import _sha256_file
    from ..encoding import EncodingResults
    from ..encoding.predict import predict_responses, results_weights, save_predictions
    from ..features.kinds import features_kind, load_feature_file
    from ._common import check_out

    check_out(args.out, [args.results, *args.features], example="pred.h5")
    results = EncodingResults.load(args.results)
    results_weights(results)  # the error for a file without weights, before reading features
    stimuli = [features_kind(p) == "stimuli" for p in args.features]
    if any(stimuli):
        if len(args.features) != 1:
            raise ValueError(f"give one stimulus-level features file, got {len(args.features)}.")
        source = load_feature_file(args.features[0])
        grid_given = [flag for flag, value in (("--tr", args.tr), ("--n-trs", args.n_trs)) if value is not None]
        if grid_given or args.start:
            raise ValueError(f"{', '.join(grid_given or ['--start'])}: the features are stimulus-level (no time); "
                             "drop the TR grid options.")
    else:
        source = [load_feature_file(p) for p in args.features]
        runs = [fs.run for fs in source]
        if len(set(runs)) != len(runs):
            raise ValueError(f"The features files hold runs {runs}; each file must be a different run.")
    prediction = predict_responses(results, source, args.layer, tr=args.tr, n_trs=args.n_trs, start=args.start)
    provenance = {"results_file": str(args.results), "results_sha256": _sha256_file(args.results),
                  "features_files": [str(p) for p in args.features],
                  "features_sha256": [_sha256_file(p) for p in args.features],
                  "subject": results.subject, "model": results.model,
                  "units": results.weights.info.get("responses")}
    path = save_predictions(prediction, args.out, provenance)
    layers = sorted(set(prediction.layers.tolist()))
    print(f"Predictions written to {Path(path).resolve()} ({prediction.values.shape[0]} rows x "
          f"{len(prediction.targets)} targets, layer(s) {', '.join(map(str, layers))})")
    return 0
