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


def extractor_settings() -> dict:
    """The extractor's options: :class:`~neuroenc.features.FeatureExtractor`'s parameters
    (signature, constraints, numpydoc), as the run config's ``model`` section has them."""
    from .._settings import settings_of
    from ..features import FeatureExtractor

    return settings_of(FeatureExtractor, exclude=("model", "verbose"))


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
    parser.add_argument("--transcript", required=True,
                        help="transcript file: .TextGrid, events .tsv, aligner .json or .txt")
    parser.add_argument("--tier", default=None,
                        help="TextGrid only: the tier holding the words (default: 'word(s)')")
    parser.add_argument("--word-column", default=None,
                        help="events .tsv only: the column holding the words (default: 'word', else 'trial_type')")
    parser.add_argument("--words-per-second", type=_positive_float, default=None,
                        help="plain text .txt only: speech rate giving the word times (default: 2.5)")
    parser.add_argument("--encoding", default=None,
                        help="the transcript's text encoding when it is not UTF-8, e.g. cp1252, latin-1")
    parser.add_argument("--name", default=None, help="run/story name (default: the file's stem)")
    parser.add_argument("--out", default=None, help="output HDF5 file")
    # FeatureExtractor's parameters: defaults, allowed values and help from the library; an
    # option not given is not passed, so the extractor's default applies.
    add_options(parser.add_argument_group("extraction (neuroenc.features.FeatureExtractor)"),
                extractor_settings(), types={"layers": parse_layers},
                helps={"layers": "Command line: " + LAYERS_HELP + "."},
                metavars={"layers": "LAYERS"})


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
    from .._settings import effective
    from ..pipeline.preflight import check_device, check_model_source
    from ._common import check_out

    opts = argparse.Namespace(**effective(args, extractor_settings()))
    if args.out is None and opts.cache_dir is None:
        raise ValueError("give --out FILE.h5 (or --cache-dir DIR) to say where the features go.")
    check_out(args.out, [args.transcript, args.model], example="features.h5")
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


def run(args: argparse.Namespace) -> int:
    from .._settings import given
    from ..features import FeatureExtractor, save_features
    from ..stimuli import read_transcript

    _check_combinations(args)
    transcript = read_transcript(args.transcript, **_reader_options(args))
    extractor = FeatureExtractor(args.model, **given(args, extractor_settings()))
    features = extractor.transform(transcript)
    path = features.attrs.get("path")
    if args.out is not None:
        path = save_features(features, args.out)
    n_fwd = features.attrs.get("n_token_forwards")
    print(
        f"{features.n_words} words x {len(features)} layers x {features.n_features()} features "
        f"({features.model}, {extractor.policy}, context {extractor.context_tokens}"
        + (f", {n_fwd / features.n_words:.2f} token-forwards/word" if n_fwd else "")
        + f") -> {path}"
    )
    return 0
