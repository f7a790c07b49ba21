"""Extract per-word, per-layer language-model features of a transcript into an HDF5 file.

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

Options of one transcript format (``--tier`` for TextGrid, ``--word-column`` for events .tsv,
``--words-per-second`` for plain text) and ``--stride`` (``--policy strided`` with a number of
``--context-tokens``) are errors elsewhere, never silently ignored.
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
}


def _parse_batch(text: str):
    if text == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid batch size {text!r}: use 'auto' or a number of sequences") from None


def _parse_context(text: str):
    if text == "full":
        return "full"
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"invalid context {text!r}: use a number of tokens (>= 0) or 'full' (the whole run)")
    return value


_BOS = {"true": True, "false": False, "auto": "auto"}


def _parse_bos(text: str):
    try:
        return _BOS[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"invalid choice {text!r}: use true, false or auto") from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument("--context", default=None, choices=["none", "group"],
                        help="--stimuli only: each stimulus alone (none, default) or after the earlier "
                             "stimuli of its group (group)")
    parser.add_argument("--padding-side", default="right", choices=["right", "left"],
                        help="--stimuli only: where a batch's shorter sequences are padded (default right)")
    parser.add_argument("--tier", default=None,
                        help="TextGrid only: the tier holding the words (default: 'word(s)')")
    parser.add_argument("--word-column", default=None,
                        help="events .tsv only: the column holding the words (default: 'word', else 'trial_type')")
    parser.add_argument("--words-per-second", type=_positive_float, default=None,
                        help="plain text .txt only: speech rate giving the word times (default: 2.5)")
    parser.add_argument("--encoding", default=None,
                        help="the transcript's text encoding when it is not UTF-8, e.g. cp1252, latin-1")
    parser.add_argument("--name", default=None, help="run/story name (default: the file's stem)")
    parser.add_argument("--layers", type=parse_layers, default="all", help=LAYERS_HELP)
    parser.add_argument("--context-tokens", type=_parse_context, default=None,
                        help="left context in tokens (default: 256), or 'full': all of the run before "
                             "each word (the whole run in one forward pass; an error if it does not fit "
                             "the model); with --stimuli --context group: tokens of the group before each "
                             "stimulus (default full)")
    parser.add_argument("--stride", type=int, default=None,
                        help="--policy strided with a number of --context-tokens only: step between "
                             "chunks (default: context-tokens // 2)")
    parser.add_argument("--policy", default=None, choices=["strided", "window"],
                        help="context policy (default: strided)")
    parser.add_argument("--pooling", default=None, choices=["last", "mean", "first", "last-word"],
                        help="which of a word's tokens gives its feature (default: last; first: words "
                             "only); --stimuli: mean (default) or last of the stimulus's tokens, or "
                             "last-word (the mean of its last word's tokens)")
    parser.add_argument("--right-context", type=int, default=0,
                        help="masked models: tokens of right context (default: 0)")
    parser.add_argument("--prepend-bos", type=_parse_bos, default=None, metavar="{true,false,auto}",
                        help="put the model's BOS token before every forward sequence, so that no word "
                             "sits at position 0 (the attention sink); auto: where the model is causal "
                             "and its tokenizer has one (default: false, the tokenizer's own special "
                             "tokens only; --stimuli: auto)")
    parser.add_argument("--last-layer", default="normed", choices=["normed", "pre-norm"],
                        help="the last layer after the model's final norm, as transformers gives it "
                             "(normed, default), or the last block's output before it (pre-norm)")
    parser.add_argument("--intervention", default=None,
                        help="model intervention, e.g. skip:10-14 (see neuroenc.features.interventions)")
    parser.add_argument("--batch-size", type=_parse_batch, default="auto",
                        help="sequences per forward pass, or 'auto' (default)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default: auto)")
    parser.add_argument("--dtype", default="auto", help="auto, float32, float16, bfloat16 (default: auto)")
    parser.add_argument("--revision", default=None,
                        help="hub revision (branch, tag or commit; recorded as the commit it resolves to), "
                             "or a label for a local folder (provenance only)")
    parser.add_argument("--gguf-file", default=None, help="GGUF file inside --model (a folder or hub repo)")
    parser.add_argument("--out", default=None, help="output HDF5 file")
    parser.add_argument("--cache-dir", default=None,
                        help="feature cache folder (content-hashed files, reused when complete)")


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


def _check_combinations(args: argparse.Namespace) -> None:
    from ..pipeline.preflight import check_device, check_model_source
    from ._common import check_out

    if args.out is None and args.cache_dir is None:
        raise ValueError("give --out FILE.h5 (or --cache-dir DIR) to say where the features go.")
    check_out(args.out, [args.transcript, args.model], example="features.h5")
    check_device(args.device)
    check_model_source(args.model, args.gguf_file)
    if args.stride is not None and args.policy != "strided":
        raise ValueError(
            f"--stride applies to --policy strided only; --policy {args.policy} runs one forward "
            "pass per word. Drop --stride, or use --policy strided."
        )
    if args.stride is not None and args.context_tokens == "full":
        raise ValueError(
            "--stride applies to a number of --context-tokens; --context-tokens full puts the whole "
            "run in one forward pass. Drop --stride, or give --context-tokens a number."
        )


#: Options of --transcript only, and of --stimuli only (flag, attribute).
_WORD_ONLY = (("--policy", "policy"), ("--stride", "stride"), ("--right-context", "right_context"),
              ("--intervention", "intervention"), ("--tier", "tier"), ("--word-column", "word_column"),
              ("--words-per-second", "words_per_second"), ("--name", "name"))
_STIMULI_ONLY = (("--text-column", "text_column"), ("--id-column", "id_column"),
                 ("--group-column", "group_column"), ("--query", "query"), ("--context", "context"))


def _given(args: argparse.Namespace, attr: str) -> bool:
    value = getattr(args, attr)
    return value is not None and not (attr == "right_context" and value == 0)


def _check_source(args: argparse.Namespace) -> None:
    if (args.transcript is None) == (args.stimuli is None):
        raise ValueError("give either --transcript (a story's words with times) or --stimuli (a table of "
                         "sentences or passages), not both.")
    if args.stimuli is not None:
        wrong = [flag for flag, attr in _WORD_ONLY if _given(args, attr)]
        if wrong:
            raise ValueError(f"{', '.join(wrong)} appl{'ies' if len(wrong) == 1 else 'y'} to --transcript "
                             "only; drop it with --stimuli.")
        if args.text_column is None:
            raise ValueError("--stimuli needs --text-column, the column holding each stimulus's text.")
        if args.pooling == "first":
            raise ValueError("--pooling first applies to words; with --stimuli use mean, last or last-word.")
        if args.context in (None, "none") and args.context_tokens is not None:
            raise ValueError("--context-tokens applies to --context group with --stimuli (each stimulus after "
                             "the earlier stimuli of its group); drop it, or pass --context group.")
        if args.out is None and args.cache_dir is None:
            raise ValueError("give --out FILE.h5 (or --cache-dir DIR) to say where the features go.")
        return
    wrong = [flag for flag, attr in _STIMULI_ONLY if _given(args, attr)]
    if args.padding_side != "right":
        wrong.append("--padding-side")
    if wrong:
        raise ValueError(f"{', '.join(wrong)} appl{'ies' if len(wrong) == 1 else 'y'} to --stimuli only; "
                         "drop it with --transcript.")
    if args.pooling == "last-word":
        raise ValueError("--pooling last-word applies to --stimuli; a word's feature is its last, mean or "
                         "first token.")
    # the story defaults
    args.context_tokens = 256 if args.context_tokens is None else args.context_tokens
    args.policy = args.policy or "strided"
    args.pooling = args.pooling or "last"
    args.prepend_bos = False if args.prepend_bos is None else args.prepend_bos


def _run_stimuli(args: argparse.Namespace) -> int:
    from ..features import StimulusExtractor, save_stimulus_features
    from ..stimuli import read_stimuli, read_stimuli_events

    if args.stimuli.lower().endswith("_events.tsv"):
        stimuli = read_stimuli_events(args.stimuli, text_column=args.text_column, id_column=args.id_column,
                                      group_column=args.group_column, query=args.query)
    else:
        if args.query is not None:
            raise ValueError("--query applies to BIDS *_events.tsv files; filter the table first.")
        stimuli = read_stimuli(args.stimuli, text_column=args.text_column, id_column=args.id_column or "id",
                               group_column=args.group_column)
    context = args.context or "none"
    if context == "group" and not stimuli.has_groups:
        raise ValueError("--context group reads each stimulus after the earlier stimuli of its group, but the "
                         "stimuli have no groups: give --group-column.")
    extractor = StimulusExtractor(
        args.model, layers=args.layers, pooling=args.pooling or "mean", context=context,
        context_tokens=args.context_tokens, prepend_bos="auto" if args.prepend_bos is None else args.prepend_bos,
        last_layer=args.last_layer, batch_size=args.batch_size, padding_side=args.padding_side,
        device=args.device, dtype=args.dtype, revision=args.revision, gguf_file=args.gguf_file,
        cache_dir=args.cache_dir,
    )
    features = extractor.transform(stimuli)
    path = features.attrs.get("path")
    if args.out is not None:
        path = save_stimulus_features(features, args.out)
    print(f"{features.n_stimuli} stimuli x {len(features)} layers x {features.n_features()} features "
          f"({features.model}, pooling {extractor.pooling}, context {context}) -> {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    from ..features import FeatureExtractor, save_features
    from ..stimuli import read_transcript

    _check_source(args)
    if args.stimuli is not None:
        return _run_stimuli(args)
    _check_combinations(args)
    transcript = read_transcript(args.transcript, **_reader_options(args))
    extractor = FeatureExtractor(
        args.model, layers=args.layers, context_tokens=args.context_tokens, stride=args.stride,
        policy=args.policy, pooling=args.pooling, right_context=args.right_context,
        prepend_bos=args.prepend_bos, last_layer=args.last_layer, batch_size=args.batch_size,
        device=args.device, dtype=args.dtype, revision=args.revision, gguf_file=args.gguf_file,
        cache_dir=args.cache_dir, intervention=args.intervention,
    )
    features = extractor.transform(transcript)
    path = features.attrs.get("path")
    if args.out is not None:
        path = save_features(features, args.out)
    n_fwd = features.attrs.get("n_token_forwards")
    print(
        f"{features.n_words} words x {len(features)} layers x {features.n_features()} features "
        f"({features.model}, {args.policy}, context {args.context_tokens}"
        + (f", {n_fwd / features.n_words:.2f} token-forwards/word" if n_fwd else "")
        + f") -> {path}"
    )
    return 0
