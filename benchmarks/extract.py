"""Benchmark: strided feature extraction vs a naive per-word window vs a bare forward pass.

On the Alice transcript (Brennan et al. 2016, ~2,100 words) with smollm2-135m, side by side
in one run, it prints for

(a) neuroenc ``strided`` extraction (all 31 hidden states, last-token pooling),
(b) a naive per-word sliding window (one forward pass per word over the ``context_tokens``
    tokens before it, ``output_hidden_states=True``), the usual research-script approach;
    it is timed on a sample of words and extrapolated to the whole story from its exact
    token count (the table says so),
(c) a bare forward ``model(input_ids)`` of the same module over exactly the token batches
    of (a), without hidden states, pooling or I/O,

the token-forwards per word, words per second and the ratios; then the per-layer correlation
between ``strided`` and ``window`` features on the sampled words (how much the policy changes
the features). Run::

    NEUROENC_DATA=../shared/data HF_HUB_OFFLINE=1 python benchmarks/extract.py
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from neuroenc.datasets import load_alice
from neuroenc.features import FeatureExtractor, load_model
from neuroenc.features.context import plan_contexts
from neuroenc.features.tokens import align_tokens


def _bare_forward(lm, alignment, plan, batch_size):
    """model(input_ids) over the same batches as the extractor (longest first, right-padded)."""
    P = list(lm.prefix_ids)
    lengths = plan.seq_len + len(P)
    order = np.argsort(-lengths, kind="stable")
    with torch.inference_mode():
        for i in range(0, plan.n_sequences, batch_size):
            seqs = order[i:i + batch_size]
            L = int(lengths[seqs].max())
            ids = np.zeros((len(seqs), L), dtype=np.int64)
            for row, s in enumerate(seqs):
                toks = P + alignment.input_ids[plan.seq_start[s]:plan.seq_stop[s]].tolist()
                ids[row, :len(toks)] = toks
            mask = None
            if (lengths[seqs] != L).any():
                mask = torch.from_numpy(np.arange(L)[None] < lengths[seqs][:, None]).long()
            lm.model(input_ids=torch.from_numpy(ids), attention_mask=mask, use_cache=False)


def _naive_window(lm, alignment, words, context_tokens, layers):
    """One forward pass per word over the context_tokens tokens before it, plus the word."""
    out = np.zeros((len(layers), len(words), lm.hidden_size), dtype=np.float32)
    P = list(lm.prefix_ids)
    with torch.inference_mode():
        for k, w in enumerate(words):
            start = max(0, int(alignment.word_start[w]) - context_tokens)
            stop = int(alignment.word_stop[w])
            ids = torch.tensor([P + alignment.input_ids[start:stop].tolist()])
            states = lm.model(input_ids=ids, output_hidden_states=True, use_cache=False).hidden_states
            for j, layer in enumerate(layers):
                out[j, k] = states[layer][0, -1].float().numpy()
    return out


def _row_corr(a, b):
    """Pearson r between matching rows (words) of two feature matrices."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--context-tokens", type=int, default=512)
    parser.add_argument("--stride", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--window-words", type=int, default=16,
                        help="words timed for the naive window (then extrapolated)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of (a) and (c); the best counts")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared 2-core machine, 2 threads "
                             "under contention are several times slower)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    C, S = args.context_tokens, args.stride

    transcript = load_alice(download=False).transcripts["alice"]
    t0 = time.perf_counter()
    lm = load_model(args.model, device="cpu", dtype="float32")
    load_s = time.perf_counter() - t0
    alignment = align_tokens(transcript, lm.tokenizer)
    n_words, n_tokens = alignment.n_words, alignment.n_tokens
    strided_plan = plan_contexts(alignment, "strided", C, S, kind=lm.kind)
    window_plan = plan_contexts(alignment, "window", C, kind=lm.kind)
    n_special = len(lm.prefix_ids) + len(lm.suffix_ids)

    extractor = FeatureExtractor(lm, context_tokens=C, stride=S, batch_size=args.batch_size)
    _bare_forward(lm, alignment, plan_contexts(alignment, "strided", 16, 16), 4)  # warm-up
    t_a, t_c = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        features = extractor.transform(transcript)
        t_a.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _bare_forward(lm, alignment, strided_plan, args.batch_size)
        t_c.append(time.perf_counter() - t0)
    t_a, t_c = min(t_a), min(t_c)
    fwd_a = features.attrs["n_token_forwards"]
    assert fwd_a == strided_plan.n_token_forwards(n_special)

    # (b) naive window, timed on words with a full context, spread over the story.
    full = np.flatnonzero(alignment.word_start >= C)
    sample = full[np.linspace(0, full.size - 1, args.window_words).round().astype(int)]
    layers = features.layer_indices
    t0 = time.perf_counter()
    window = _naive_window(lm, alignment, sample, C, layers)
    t_sample = time.perf_counter() - t0
    sample_fwd = int((alignment.word_stop[sample] - np.maximum(alignment.word_start[sample] - C, 0)).sum()
                     + n_special * sample.size)
    fwd_b = window_plan.n_token_forwards(n_special)
    t_b = t_sample / sample_fwd * fwd_b  # extrapolated by token count

    print(f"# Feature extraction benchmark: {lm.name} on Alice ({n_words} words, {n_tokens} tokens), "
          f"context {C} tokens, stride {S}, {len(layers)} hidden states, last-token pooling")
    print(f"# CPU, torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch size "
          f"{args.batch_size}, best of {args.repeats}; model load {load_s:.1f} s (not counted)")
    print(f"# (b) timed on {sample.size} words with full context ({sample_fwd} token-forwards, "
          f"{t_sample:.1f} s) and EXTRAPOLATED to all {n_words} words by token count")
    print()
    print(f"| {'method':<42} | {'token-fwd/word':>14} | {'time (s)':>9} | {'words/s':>8} |")
    print(f"|{'-' * 44}|{'-' * 16}:|{'-' * 10}:|{'-' * 9}:|")
    rows = [
        ("(a) neuroenc strided (all layers, pooled)", fwd_a, t_a),
        ("(b) naive per-word window (extrapolated)", fwd_b, t_b),
        ("(c) bare model(input_ids), same batches", fwd_a, t_c),
    ]
    for name, fwd, t in rows:
        print(f"| {name:<42} | {fwd / n_words:>14.2f} | {t:>9.1f} | {n_words / t:>8.1f} |")
    print()
    print(f"token-forwards, window / strided:      {fwd_b / fwd_a:8.1f}x  (target >= 100x)")
    print(f"words/s, strided / window:             {t_b / t_a:8.1f}x")
    print(f"throughput, strided / bare forward:    {t_c / t_a:8.2f}x  (target >= 0.8x)")
    print()
    strided = np.stack([features[layer][sample] for layer in layers])
    print(f"Per-layer agreement of strided vs window features on the {sample.size} sampled words")
    print("(Pearson r across the 576 dimensions of each word, mean and min over words; strided")
    print(f"words see {C}..{C + S - 1} tokens of left context, window words exactly {C}):")
    print()
    print("| layer | mean r   | min r    | max rel. diff |")
    print("|------:|---------:|---------:|--------------:|")
    for j, layer in enumerate(layers):
        r = _row_corr(strided[j].astype(np.float64), window[j].astype(np.float64))
        rel = np.linalg.norm(strided[j] - window[j], axis=1) / np.linalg.norm(window[j], axis=1)
        print(f"| {layer:>5} | {r.mean():8.5f} | {r.min():8.5f} | {rel.max():13.4f} |")


if __name__ == "__main__":
    main()
