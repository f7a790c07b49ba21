"""Extract per-word, per-layer language-model features of a transcript into an HDF5 file.

Examples::

    neuroenc extract --model smollm2-135m --transcript story.TextGrid --tier word \\
        --context-tokens 256 --stride 128 --pooling last --layers all --out features.h5
    neuroenc extract --model minilm-l6 --transcript events.tsv --layers 0,3,6 \\
        --policy window --right-context 4 --cache-dir features/
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path


def _parse_layers(text: str):
    """``all``, or comma-separated layer indices (ints) and relative depths (floats)."""
    text = text.strip()
    if text == "all":
        return "all"
    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        if re.fullmatch(r"-?\d+", item):
            out.append(int(item))
        else:
            try:
                out.append(float(item))
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"invalid layer {item!r}: use 'all' or indices/relative depths like 0,6,12 or 0.5,1.0"
                ) from None
    if not out:
        raise argparse.ArgumentTypeError("no layers given: use 'all' or e.g. 0,6,12")
    return out


def _parse_batch(text: str):
    return "auto" if text == "auto" else int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="alias (smollm2-135m, minilm-l6), hub id, local folder or .gguf file")
    parser.add_argument("--transcript", required=True,
                        help="transcript file: .TextGrid, events .tsv, aligner .json or .txt")
    parser.add_argument("--tier", default=None, help="TextGrid tier holding the words (default: 'word(s)')")
    parser.add_argument("--name", default=None, help="run/story name (default: the file's stem)")
    parser.add_argument("--layers", type=_parse_layers, default="all",
                        help="'all' or comma-separated indices / relative depths (default: all)")
    parser.add_argument("--context-tokens", type=int, default=256,
                        help="left context in tokens (default: 256)")
    parser.add_argument("--stride", type=int, default=None,
                        help="step between strided chunks (default: context-tokens // 2)")
    parser.add_argument("--policy", default="strided", choices=["strided", "window"],
                        help="context policy (default: strided)")
    parser.add_argument("--pooling", default="last", choices=["last", "mean", "first"],
                        help="which of a word's tokens gives its feature (default: last)")
    parser.add_argument("--right-context", type=int, default=0,
                        help="masked models: tokens of right context (default: 0)")
    parser.add_argument("--intervention", default=None,
                        help="model intervention, e.g. skip:10-14 (see neuroenc.features.interventions)")
    parser.add_argument("--batch-size", type=_parse_batch, default="auto",
                        help="sequences per forward pass, or 'auto' (default)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default: auto)")
    parser.add_argument("--dtype", default="auto", help="auto, float32, float16, bfloat16 (default: auto)")
    parser.add_argument("--revision", default=None, help="hub revision (or a label for a local folder)")
    parser.add_argument("--gguf-file", default=None, help="GGUF file inside --model (a folder or hub repo)")
    parser.add_argument("--out", default=None, help="output HDF5 file")
    parser.add_argument("--cache-dir", default=None,
                        help="feature cache folder (content-hashed files, reused when complete)")


def run(args: argparse.Namespace) -> int:
    from ..features import FeatureExtractor, save_features
    from ..stimuli import read_transcript

    if args.out is None and args.cache_dir is None:
        raise ValueError("give --out FILE.h5 (or --cache-dir DIR) to say where the features go.")
    kwargs = {}
    if args.tier is not None and Path(args.transcript).suffix.lower() == ".textgrid":
        kwargs["tier"] = args.tier
    if args.name is not None:
        kwargs["name"] = args.name
    transcript = read_transcript(args.transcript, **kwargs)
    extractor = FeatureExtractor(
        args.model, layers=args.layers, context_tokens=args.context_tokens, stride=args.stride,
        policy=args.policy, pooling=args.pooling, right_context=args.right_context,
        batch_size=args.batch_size, device=args.device, dtype=args.dtype, revision=args.revision,
        gguf_file=args.gguf_file, cache_dir=args.cache_dir, intervention=args.intervention,
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
