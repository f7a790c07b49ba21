"""Fit layer-wise encoding models of one subject from feature files and response files.

Example::

    neuroenc fit --features alice.h5 --responses s18-timecourses.txt --tr 2.0 --start 20.0 \\
        --delays 1,2,3,4 --cv auto --nuisance s18-rate.txt s18-sndpwr.txt --out s18.h5
    neuroenc fit --features alice.h5 --responses s18-timecourses.txt --tr 2.0 --start 20.0 \\
        --hrf glover --out s18-hrf.h5          # the HRF carries the lag: delay 0

One features file (from ``neuroenc extract``) per run; the responses files are paired with them
in order and take their run names. Responses: ``.npy``, ``.txt``/``.tsv``/``.csv`` (a header row
names the targets), NIfTI (``--mask`` needed) or an mne ``.fif`` (a time-lagged MEG/EEG design,
``--tmin``/``--tmax``).

Stimulus-level features (``neuroenc extract --stimuli``; one row per sentence or passage, no
time)::

    neuroenc fit --features f.h5 --responses responses.csv --id-column id \\
        --response-columns all --cv group-kfold:5 --out res.h5

The responses are matched to the stimuli by id (CSV/TSV rows, ``.npy`` or a 4-D NIfTI with
``--row-ids``, or a NIfTI pattern with ``{id}`` and ``--mask``); several responses files (or
``--subject-column`` in one long table) are subjects: their mean is fitted, with a split-half
noise ceiling. Each file is a subject named by its file name, or where file names repeat by the
end of its path that tells it apart (``subA/bold.csv`` and ``subB/bold.csv``: ``subA_bold.csv``
and ``subB_bold.csv``). No ``--tr``: there is no time. ``--cv auto`` is ``group-kfold:5`` when the
stimuli have groups, else ``kfold:5``.

The design and fit options are the parameters of :func:`~neuroenc.align.make_fmri_design`
(:func:`~neuroenc.align.make_meg_design`) and :func:`~neuroenc.encoding.fit_encoding` (for
stimulus-level features :func:`~neuroenc.encoding.stimulus_fit.fit_stimuli`, which takes no design and no
timing option), with their defaults: an option not given is not passed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._common import LAYERS_HELP, parse_layers


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


#: Options of the design that the command line names otherwise or not at all: ``sfreq`` (the
#: rate of array responses here, ``--sfreq``) and MEG's event ``kind`` (``--event-kind``).
OPTION_NAMES = {"kind": "--event-kind"}


def design_settings() -> dict:
    """The design's options: :func:`~neuroenc.align.make_fmri_design`'s and
    :func:`~neuroenc.align.make_meg_design`'s parameters, as the run config's ``alignment``
    section has them (less ``sfreq``, which names the responses' rate here)."""
    from ..pipeline.config import section_settings

    return {k: v for k, v in section_settings("alignment").items() if k != "sfreq"}


#: The fits of the two kinds of features, for messages.
STORY, STIMULI = "word-timed features", "stimulus-level features"


def encoding_settings(kind: str | None = None) -> dict:
    """The fit's options, as the run config's ``encoding`` section has them (less its
    config-only keys).

    Parameters
    ----------
    kind : {"story", "stimuli"} | None
        ``"story"``: :func:`~neuroenc.encoding.fit_encoding`'s parameters; ``"stimuli"``:
        :func:`~neuroenc.encoding.stimulus_fit.fit_stimuli`'s; None: both, as the command line has them
        (:func:`~neuroenc._settings.union_settings`).
    """
    from .._settings import union_settings
    from ..pipeline.config import ENCODING_ONLY, section_settings

    if kind is None:
        return union_settings({STORY: encoding_settings("story"), STIMULI: encoding_settings("stimuli")})
    return {k: v for k, v in section_settings("encoding", kind).items() if k not in ENCODING_ONLY}


def _nuisance_source(paths, responses, runs):
    """Nuisance regressors as Responses on each run's grid: one file per run, or several for one run."""
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
        text += f"  r={row.r:.3f}" + ("" if pd.isna(row.baseline_r) else f"  baseline r={row.baseline_r:.3f}")
        text += f"  p={row.p:.4f}"
        if "at_chance" in table and row.at_chance:
            text += "  at chance (no margins: the best layer's r is not above chance)"
        elif "delta_last" in table and row.best_layer != row.last_layer:
            text += f"  vs last {row.delta_last:+.3f} [{row.delta_last_low:+.3f}, {row.delta_last_high:+.3f}]"
        lines.append(text)
    if results.n_targets > max_targets:
        lines.append("  ...")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .._settings import add_options

    parser.add_argument("--features", nargs="+", required=True, metavar="F.h5",
                        help="feature files, one per run (neuroenc extract)")
    parser.add_argument("--responses", nargs="+", required=True, metavar="PATH",
                        help="response files, one per features file, in the same order")
    parser.add_argument("--tr", type=float, default=None, help="repetition time in seconds (fMRI)")
    parser.add_argument("--sfreq", type=float, default=None, help="sampling rate in Hz (MEG/EEG arrays)")
    parser.add_argument("--start", type=_floats, default=None,
                        help="stimulus time of row 0 in seconds, one for all runs or one per run (default 0)")
    parser.add_argument("--mask", default=None, help="brain mask for NIfTI responses")
    parser.add_argument("--target-names", type=lambda t: [x.strip() for x in t.split(",")], default=None,
                        help="names of the response columns, e.g. LATL,RATL,LPTL (default: from the file)")
    parser.add_argument("--layers", type=parse_layers, default="all", help=LAYERS_HELP)
    parser.add_argument("--nuisance", nargs="+", default=None, metavar="PATH",
                        help="baseline regressors on the response grid (e.g. word rate, sound power): "
                             "one file per run, or several files for a single run; stimulus-level "
                             "features: tables of regressors per stimulus, matched by id")
    parser.add_argument("--baseline", type=lambda t: [x.strip() for x in t.split(",") if x.strip()], default=None,
                        metavar="NAMES",
                        help="baseline regressors computed from the words of the features files, aligned "
                             "as a one-column layer and fitted together and each alone, e.g. "
                             "word_rate,length,log_frequency,position,story_position,surprisal; names of "
                             "--nuisance columns (file stems) may be listed too")
    parser.add_argument("--phones", nargs="+", default=None, metavar="TEXTGRID",
                        help="Praat TextGrids with a phones tier, one per features file, for the "
                             "phoneme_rate baseline regressor (--baseline ...,phoneme_rate)")
    parser.add_argument("--subject", default=None, help="subject id, for the results' provenance")
    parser.add_argument("--dataset", default=None, help="data set name, for the results' provenance")
    stim = parser.add_argument_group("stimulus-level features (neuroenc extract --stimuli)")
    stim.add_argument("--id-column", default=None,
                      help="the column of stimulus ids in .csv/.tsv responses (default: id)")
    stim.add_argument("--response-columns", default=None,
                      help="the response columns, comma-separated, or 'all' (default: every column but the ids)")
    stim.add_argument("--subject-column", default=None,
                      help="long tables: the column naming each row's subject (the subjects' mean is fitted)")
    stim.add_argument("--row-ids", default=None,
                      help=".npy or 4-D NIfTI responses: a text file of the stimulus id of each row (default: "
                           "the rows follow the features' stimulus order)")
    parser.add_argument("--out", required=True, help="the results file to write (.h5)")
    # The library's parameters: defaults, allowed values and help from its signatures and
    # docstrings; an option not given is not passed, so the library's default applies.
    add_options(parser.add_argument_group(
        "design (neuroenc.align.make_fmri_design; tmin, tmax, decim, event kind, resample method: "
        "make_meg_design, for MEG/EEG responses)"), design_settings(), names=OPTION_NAMES)
    story, stimuli = encoding_settings("story"), encoding_settings("stimuli")
    add_options(parser.add_argument_group(
        "encoding (neuroenc.encoding.fit_encoding; stimulus-level features: fit_stimuli)"), encoding_settings(),
        helps={name: f"({STORY} only)" for name in story if name not in stimuli})


def _design_options(args: argparse.Namespace, make) -> dict:
    """The design options given, for ``make``; one that does not apply to the responses is an
    error (never silently ignored)."""
    import inspect

    from .._settings import given, option_name

    options = given(args, design_settings())
    accepted = set(inspect.signature(make).parameters)
    wrong = [k for k in options if k not in accepted]
    if wrong:
        kind = "MEG/EEG" if make.__name__ == "make_meg_design" else "fMRI"
        flags = ", ".join(OPTION_NAMES.get(k, option_name(k)) for k in wrong)
        raise ValueError(f"{flags} do(es) not apply to {kind} responses ({make.__name__}); drop {flags}.")
    return options


#: Timing options of word-timed (story) fits that are not library settings (the responses'
#: reader's: flag, attribute); the design's (:func:`design_settings`) and the fit's
#: ``_TIMED_FIT`` are timing options too.
_TIMED_ONLY = (("--tr", "tr"), ("--sfreq", "sfreq"), ("--start", "start"), ("--target-names", "target_names"),
               ("--baseline", "baseline"), ("--phones", "phones"))
_TIMED_FIT = ("n_blocks", "gap", "block_size")
#: Options of stimulus-level fits only (flag, attribute).
_STIMULI_ONLY = (("--id-column", "id_column"), ("--response-columns", "response_columns"),
                 ("--subject-column", "subject_column"), ("--row-ids", "row_ids"))


def _wrong(args: argparse.Namespace, options) -> list[str]:
    return [flag for flag, attr in options if getattr(args, attr, None) is not None]


def _stimulus_responses(args: argparse.Namespace, ids: list[str]):
    """The responses of a stimulus fit: one set, or one per subject (files or --subject-column).

    Each file is a subject, named by its file name, or where file names repeat by its path
    (:func:`~neuroenc.stimuli.responses.subject_keys`); a subject in two files is an error."""
    from ..stimuli.responses import add_subject, read_stimulus_responses, subject_keys

    columns = "all" if args.response_columns in (None, "all") else \
        [c.strip() for c in args.response_columns.split(",") if c.strip()]
    row_ids = args.row_ids
    if row_ids is None and any(str(p).lower().endswith((".npy", ".nii", ".nii.gz")) and "{id}" not in str(p)
                               for p in args.responses):
        row_ids = ids  # arrays carry no ids: their rows follow the features' stimulus order
        print("note: the rows of the array responses are taken in the features' stimulus order "
              "(give --row-ids to match them by id)", file=sys.stderr)
    out: dict = {}
    for path, key in zip(args.responses, subject_keys(args.responses)):
        read = read_stimulus_responses(path, id_column=args.id_column or "id", columns=columns,
                                       subject_column=args.subject_column, ids=row_ids if "{id}" not in str(path)
                                       else ids, mask=args.mask, subject=key)
        for subject, responses in (read.items() if isinstance(read, dict) else [(key, read)]):
            add_subject(out, subject, responses)
    if len(out) == 1:
        return next(iter(out.values()))
    return out


def _run_stimuli(args: argparse.Namespace) -> int:
    from .._settings import given, option_name
    from .._validation import _sha256_file
    from ..encoding.stimulus_fit import fit_stimuli
    from ..features import load_stimulus_features
    from ..stimuli.responses import read_stimulus_responses
    from ._common import options_for

    wrong = _wrong(args, _TIMED_ONLY)
    wrong += [OPTION_NAMES.get(k, option_name(k)) for k in given(args, design_settings())]
    options = given(args, encoding_settings())
    wrong += [option_name(k) for k in options if k in _TIMED_FIT]
    if wrong:
        raise ValueError(f"{', '.join(wrong)}: the features are stimulus-level (one row per stimulus, no "
                         "time); drop the timing options.")
    options = options_for(options, encoding_settings("stimuli"), encoding_settings("story"), STIMULI, STORY)
    if len(args.features) != 1:
        raise ValueError(f"give one stimulus-level features file, got {len(args.features)}.")
    features = load_stimulus_features(args.features[0], layers=args.layers)
    responses = _stimulus_responses(args, features.ids)
    baseline = None
    if args.nuisance:
        import pandas as pd

        parts = []
        for path in args.nuisance:
            table = read_stimulus_responses(path, id_column=args.id_column or "id", columns="all")
            table = table.match(features.ids, "the stimuli (baseline regressors)")
            parts.append(pd.DataFrame(table.data, columns=table.names))
        baseline = pd.concat(parts, axis=1)
    provenance = {"subject": args.subject, "dataset": args.dataset,
                  "features_files": {"stimuli": str(args.features[0])},
                  "features_sha256": {"stimuli": _sha256_file(args.features[0])}, "command": " ".join(sys.argv)}
    results = fit_stimuli(features, responses, baseline=baseline, provenance=provenance, **options)
    path = results.save(args.out)
    return _print_results(args, results, path, f", {features.n_stimuli} stimuli, cv {results.settings.get('cv')}")


def run(args: argparse.Namespace) -> int:
    from .._settings import given
    from .._validation import _sha256_file
    from ..align import make_fmri_design, make_meg_design
    from ..encoding import fit_encoding
    from ..features import load_features
    from ..features.stimulus_features import is_stimulus_file
    from ..pipeline.preflight import check_writable
    from ..responses import read_responses
    from ._common import check_out, options_for

    check_out(args.out, [*args.features, *args.responses, *(args.nuisance or []), args.mask])
    check_writable(Path(args.out).expanduser().parent, "--out")
    if len(args.features) >= 1 and all(is_stimulus_file(p) for p in args.features):
        return _run_stimuli(args)
    wrong = _wrong(args, _STIMULI_ONLY)
    if wrong:
        raise ValueError(f"{', '.join(wrong)} appl{'ies' if len(wrong) == 1 else 'y'} to stimulus-level "
                         "features (neuroenc extract --stimuli) only.")
    options = options_for(given(args, encoding_settings()), encoding_settings("story"), encoding_settings("stimuli"),
                          STORY, STIMULI)
    start = [0.0] if args.start is None else args.start
    if len(args.features) != len(args.responses):
        raise ValueError(f"{len(args.features)} features files but {len(args.responses)} responses files; "
                         "give one responses file per features file, in the same order.")
    starts = start * len(args.features) if len(start) == 1 else start
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
    make = make_meg_design if kinds == {"meg"} else make_fmri_design
    design = make(features, responses, **_design_options(args, make))
    nuisance = None
    baseline_sources: dict[str, str] = {}
    if args.baseline:
        from ..align.regressors import baseline_bands

        confounds = _nuisance_source(args.nuisance, responses, runs) if args.nuisance else None
        names = list(args.baseline)
        if confounds:  # every --nuisance column is in the baseline, as without --baseline
            names += [n for n in next(iter(confounds.values())).names if n not in names]
        phones = None
        if args.phones:
            from ..align.regressors import phone_onsets

            if len(args.phones) != len(runs):
                raise ValueError(f"--phones has {len(args.phones)} files for {len(runs)} runs; give one TextGrid "
                                 "per features file, in the same order.")
            phones = {run: phone_onsets(p) for run, p in zip(runs, args.phones)}
        nuisance, left_out, baseline_sources = baseline_bands(design, dict(zip(runs, features)), names, confounds,
                                                              phones=phones)
        design.warnings.extend(left_out)
        nuisance = nuisance or None
    elif args.nuisance:
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
    if baseline_sources:
        provenance["baseline_sources"] = baseline_sources
    for key in ("mask", "affine", "shape"):
        if key in responses[0].info:
            provenance[key] = responses[0].info[key]
    if args.baseline:
        options.setdefault("baseline_models", True)
    results = fit_encoding(design, nuisance=nuisance, provenance=provenance,
                           settings={"alignment": design.settings}, **options)
    path = results.save(args.out)
    return _print_results(args, results, path)


def _print_results(args: argparse.Namespace, results: Any, path: Path, detail: str = "") -> int:
    """Where the results went, their best layers, their warnings (and with -vvv their settings)."""
    print(f"Results written to {path.resolve()} ({results.n_layers} layers x {results.n_targets} targets{detail})")
    if results.weights is not None:
        from ..encoding.weights import format_bytes

        kinds = results.weights.kinds()
        print(f"Weights saved: {format_bytes(results.weights.nbytes)} ({kinds['primal']} layer(s) primal, "
              f"{kinds['dual']} dual with the training design); predict with neuroenc predict --results {path}")
    print(best_lines(results))
    hints = getattr(args, "hints", None) or (lambda message: message)  # the CLI's: --tr 2, not tr=2
    for message in results.warnings:
        print(f"warning: {hints(message)}", file=sys.stderr)
    if args.verbose >= 3:
        print(json.dumps(results.settings, default=str, indent=1))
    return 0
