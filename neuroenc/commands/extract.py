"""Extract per-word (or per-stimulus), per-layer language-model features into an HDF5 file.

Examples::

    neuroenc extract --model smollm2-135m --transcript story.TextGrid --tier word \\
        --context-tokens 256 --stride 128 --pooling last --layers all --out features.h5
    neuroenc extract --model minilm-l6 --transcript events.tsv --word-column word --layers 0,3,6 \\
        --policy window --right-context 4 --cache-dir features/
    neuroenc extract --model smollm2-135m --transcript story.txt --words-per-second 2.5 \\
        --layers 0.5,-1 --out features.h5
    neuroenc extract --model smollm2-135m --transcript story.TextGrid --context-tokens full \\
        --prepend-bos auto --last-layer pre-norm --out features.h5
    neuroenc extract --model smollm2-135m --stimuli sentences.csv --text-column sentence \\
        --group-column passage --pooling mean --out features.h5

``--stimuli`` reads a stimulus set (a CSV/TSV table, or a BIDS events.tsv whose rows carry text)
and writes one row per stimulus (``--pooling mean``, ``last`` or ``last-word``), each stimulus
read alone (``--context none``, default) or after the earlier stimuli of its group
(``--context group``).

The extraction options are the parameters of :class:`~neuroenc.features.FeatureExtractor`
(``--transcript``) and :class:`~neuroenc.features.StimulusExtractor` (``--stimuli``), with
their defaults, allowed values and help (:mod:`neuroenc._settings`): an option not given is not
passed, so the extractor's own default applies. An option both take accepts either one's
values and its help names each one's default (``--pooling``: last for a transcript, mean for
stimuli); the extractor that runs takes only what is its own.

Options of one transcript format (``--tier`` for TextGrid, ``--word-column`` for events .tsv,
``--words-per-second`` for plain text), of one path (``--policy`` for transcripts,
``--context`` for stimuli), values of the other path (``--pooling last-word`` with a
transcript) and ``--stride`` (``--policy strided`` with a number of ``--context-tokens``) are
errors elsewhere, never silently ignored.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ._common import LAYERS_HELP, parse_layers

#: Reader options of one transcript format: reader argument -> (file suffix, format name, flag).
_FORMAT_OPTIONS = {
    "tier": (".textgrid", "TextGrid", "--tier"),
    "word_column": (".tsv", "events .tsv", "--word-column"),
    "words_per_second": (".txt", "plain text .txt", "--words-per-second"),
    "strip_codes": (".textgrid", "TextGrid", "--strip-codes/--keep-codes"),
}
#: The two paths of the command: what they read (the option naming the file) and the extractor
#: that reads it.
PATHS = {"transcript": "--transcript", "stimuli": "--stimuli"}
#: Reader options of one path (flag, attribute): a transcript's, and a stimulus set's.
_TRANSCRIPT_READER = (("--tier", "tier"), ("--word-column", "word_column"),
                      ("--words-per-second", "words_per_second"), ("--name", "name"),
                      ("--encoding", "encoding"))
_STIMULI_READER = (("--text-column", "text_column"), ("--id-column", "id_column"),
                   ("--group-column", "group_column"), ("--query", "query"))


def extractor_settings(path: str | None = None) -> dict:
    """The extraction options, as the run config's ``model`` section has them.

    Parameters
    ----------
    path : {"transcript", "stimuli"} | None
        ``"transcript"``: :class:`~neuroenc.features.FeatureExtractor`'s parameters
        (signature, constraints, numpydoc); ``"stimuli"``:
        :class:`~neuroenc.features.StimulusExtractor`'s; None: both, as the command line has
        them (:func:`~neuroenc._settings.union_settings`: an option both take with different
        defaults or values accepts either's, and its help names each default).
    """
    from .._settings import settings_of, union_settings
    from ..features import FeatureExtractor, StimulusExtractor

    if path == "transcript":
        return settings_of(FeatureExtractor, exclude=("model", "verbose"))
    if path == "stimuli":
        return settings_of(StimulusExtractor, exclude=("model", "verbose"), docs=(FeatureExtractor,))
    if path is not None:
        raise KeyError(path)
    return union_settings({flag: extractor_settings(p) for p, flag in PATHS.items()})


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .._settings import add_options

    parser.add_argument("--model", required=True,
                        help="alias (smollm2-135m, minilm-l6), hub id, local folder or .gguf file")
    parser.add_argument("--transcript", default=None,
                        help="transcript file: .TextGrid, events .tsv, aligner .json or .txt")
    parser.add_argument("--stimuli", default=None,
                        help="instead of --transcript: a stimulus table (.csv/.tsv, one row per stimulus) "
                             "or a BIDS *_events.tsv whose rows carry text")
    parser.add_argument("--text-column", default=None, help="--stimuli only: the column holding each stimulus's text")
    parser.add_argument("--id-column", default=None,
                        help="--stimuli only: the column of stimulus ids (default: 'id' for tables; the "
                             "line number for events files)")
    parser.add_argument("--group-column", default=None,
                        help="--stimuli only: the column of each stimulus's group (passage, topic)")
    parser.add_argument("--query", default=None,
                        help="--stimuli events files only: rows to keep, e.g. \"trial_type == 'sentence'\"")
    parser.add_argument("--tier", default=None,
                        help="TextGrid only: the tier holding the words (default: 'word(s)')")
    codes = parser.add_mutually_exclusive_group()
    codes.add_argument("--strip-codes", dest="strip_codes", action="store_const", const=True, default=None,
                       help="TextGrid only: drop annotation codes from the labels ('IF / 1.1' -> 'IF')")
    codes.add_argument("--keep-codes", dest="strip_codes", action="store_const", const=False,
                       help="TextGrid only: keep coded labels as they are, without the warning")
    parser.add_argument("--word-column", default=None,
                        help="events .tsv only: the column holding the words (default: 'word', else 'trial_type')")
    parser.add_argument("--words-per-second", type=_positive_float, default=None,
                        help="plain text .txt only: speech rate giving the word times (default: 2.5)")
    parser.add_argument("--encoding", default=None,
                        help="--transcript only: the transcript's text encoding when it is not UTF-8, e.g. cp1252, "
                             "latin-1")
    parser.add_argument("--name", default=None, help="--transcript only: run/story name (default: the file's stem)")
    parser.add_argument("--out", default=None, help="output HDF5 file")
    # FeatureExtractor's and StimulusExtractor's parameters: defaults, allowed values and help
    # from the library; an option not given is not passed, so the extractor's default applies.
    settings = extractor_settings()
    own = {p: extractor_settings(p) for p in PATHS}
    helps = {name: f"({PATHS[p]} only)" for name in settings for p in PATHS
             if name in own[p] and not any(name in own[q] for q in PATHS if q != p)}
    helps["layers"] = "Command line: " + LAYERS_HELP + "."
    add_options(parser.add_argument_group(
        "extraction (neuroenc.features.FeatureExtractor; with --stimuli, StimulusExtractor)"),
        settings, types={"layers": parse_layers}, helps=helps, metavars={"layers": "LAYERS"})


def _reader_options(args: argparse.Namespace) -> dict:
    """The transcript reader's keyword arguments; an option of another format is an error."""
    suffix = Path(args.transcript).suffix.lower()
    kwargs = {}
    for key, (wanted, fmt, flag) in _FORMAT_OPTIONS.items():
        value = getattr(args, key)
        if value is None:
            continue
        if suffix != wanted:
            raise ValueError(
                f"{flag} applies to {fmt} transcripts only, but --transcript {args.transcript!r} is a "
                f"{suffix or 'suffix-less'} file; drop {flag} (or pass a {fmt} transcript)."
            )
        kwargs[key] = value
    if args.name is not None:
        kwargs["name"] = args.name
    if args.encoding is not None:
        kwargs["encoding"] = args.encoding
    return kwargs


def extractor_options(args: argparse.Namespace, path: str) -> dict:
    """The extraction options given on the command line, for ``path``'s extractor.

    An option the extractor does not take, or a value only the other path's extractor
    takes, is an error that says so (never silently dropped).
    """
    from .._settings import given
    from ._common import options_for

    other = next(p for p in PATHS if p != path)
    return options_for(given(args, extractor_settings()), extractor_settings(path), extractor_settings(other),
                       PATHS[path], PATHS[other])


def _check_source(args: argparse.Namespace) -> str:
    """Which path the arguments ask for (``"transcript"`` or ``"stimuli"``); a reader option of
    the other path is an error."""
    if (args.transcript is None) == (args.stimuli is None):
        raise ValueError("give either --transcript (a story's words with times) or --stimuli (a table of "
                         "sentences or passages), not both.")
    path = "stimuli" if args.stimuli is not None else "transcript"
    other = _TRANSCRIPT_READER if path == "stimuli" else _STIMULI_READER
    wrong = [flag for flag, attr in other if getattr(args, attr) is not None]
    if wrong:
        owner = PATHS["transcript" if path == "stimuli" else "stimuli"]
        raise ValueError(f"{', '.join(wrong)} appl{'ies' if len(wrong) == 1 else 'y'} to {owner} only; drop "
                         f"{'it' if len(wrong) == 1 else 'them'} with {PATHS[path]}.")
    return path


def _check_combinations(args: argparse.Namespace, options: dict) -> None:
    from .._settings import effective
    from ..pipeline.preflight import check_device, check_model_source
    from ._common import check_out

    opts = argparse.Namespace(**effective(argparse.Namespace(**options), extractor_settings("transcript")))
    if args.out is None and opts.cache_dir is None:
        raise ValueError("give --out FILE.h5 (or --cache-dir DIR) to say where the features go.")
    check_out(args.out, [args.transcript, args.model], example="features.h5")
    _check_writable(args.out, opts.cache_dir)
    check_device(opts.device)
    check_model_source(args.model, opts.gguf_file)
    if opts.stride is not None and opts.policy != "strided":
        raise ValueError(
            f"--stride applies to --policy strided only; --policy {opts.policy} runs one forward "
            "pass per word. Drop --stride, or use --policy strided."
        )
    if opts.stride is not None and opts.context_tokens == "full":
        raise ValueError(
            "--stride applies to a number of --context-tokens; --context-tokens full puts the whole "
            "run in one forward pass. Drop --stride, or give --context-tokens a number."
        )


def _check_stimuli(args: argparse.Namespace, options: dict) -> None:
    from .._settings import effective
    from ..pipeline.preflight import check_device, check_model_source
    from ._common import check_out

    opts = argparse.Namespace(**effective(argparse.Namespace(**options), extractor_settings("stimuli")))
    if args.text_column is None:
        raise ValueError("--stimuli needs --text-column, the column holding each stimulus's text.")
    if opts.context == "none":
        wrong = [f for f, k in (("--context-tokens", "context_tokens"), ("--stride", "stride")) if k in options]
        if wrong:
            raise ValueError(f"{', '.join(wrong)} appl{'ies' if len(wrong) == 1 else 'y'} to --context group with "
                             "--stimuli (each stimulus after the earlier stimuli of its group); drop "
                             f"{'it' if len(wrong) == 1 else 'them'}, or pass --context group.")
    elif opts.stride is not None and opts.context_tokens in (None, "full"):
        raise ValueError(
            "--stride applies to a number of --context-tokens; --context-tokens full (the default with "
            "--context group) reads each group in one forward pass. Drop --stride, or give --context-tokens "
            "a number."
        )
    if args.out is None and opts.cache_dir is None:
        raise ValueError("give --out FILE.h5 (or --cache-dir DIR) to say where the features go.")
    check_out(args.out, [args.stimuli, args.model], example="features.h5")
    _check_writable(args.out, opts.cache_dir)
    check_device(opts.device)
    check_model_source(args.model, opts.gguf_file)


def _check_writable(out: str | None, cache_dir: str | None) -> None:
    """The folders of ``--out`` and ``--cache-dir`` must be writable before the model runs."""
    from ..pipeline.preflight import check_writable

    if out is not None:
        check_writable(Path(out).expanduser().parent, "--out")
    if cache_dir is not None:
        check_writable(cache_dir, "--cache-dir")


def _run_stimuli(args: argparse.Namespace, options: dict) -> int:
    from ..features import StimulusExtractor
    from ..features.stimulus_features import save_stimulus_features
    from ..stimuli import read_stimuli
    from ..stimuli.stimulus_set import read_stimuli_events

    _check_stimuli(args, options)
    if args.stimuli.lower().endswith("_events.tsv"):
        stimuli = read_stimuli_events(args.stimuli, text_column=args.text_column, id_column=args.id_column,
                                      group_column=args.group_column, query=args.query)
    else:
        if args.query is not None:
            raise ValueError("--query applies to BIDS *_events.tsv files; filter the table first.")
        stimuli = read_stimuli(args.stimuli, text_column=args.text_column, id_column=args.id_column or "id",
                               group_column=args.group_column)
    extractor = StimulusExtractor(args.model, **options)
    if extractor.context == "group" and not stimuli.has_groups:
        raise ValueError("--context group reads each stimulus after the earlier stimuli of its group, but the "
                         "stimuli have no groups: give --group-column.")
    features = extractor.transform(stimuli)
    path = features.attrs.get("path")
    if args.out is not None:
        path = save_stimulus_features(features, args.out)
    print(f"{features.n_stimuli} stimuli x {len(features)} layers x {features.n_features()} features "
          f"({features.model}, pooling {extractor.pooling}, context {extractor.context}) -> {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..features import FeatureExtractor
    from ..features.featureset import save_features
    from ..stimuli import read_transcript

    path = _check_source(args)
    options = extractor_options(args, path)
    if path == "stimuli":
        return _run_stimuli(args, options)
    _check_combinations(args, options)
    transcript = read_transcript(args.transcript, **_reader_options(args))
    extractor = FeatureExtractor(args.model, **options)
    features = extractor.transform(transcript)
    path = features.attrs.get("path")
    if args.out is not None:
        path = save_features(features, args.out)
    n_fwd = features.attrs.get("n_token_forwards")
    print(
        f"{features.n_words} words x {len(features)} layers x {features.n_features()} features "
        f"({features.model}, {extractor.policy}, context {extractor.context_tokens}"
        + (f", {n_fwd / features.n_words:.2f} token-forwards/word" if n_fwd else "")
        + (f", surprisal {float(np.nanmean(features.attrs['surprisal'])):.2f} bits/word"
           if features.attrs.get("surprisal") is not None else "")
        + f") -> {path}"
    )
    return 0
