"""Benchmark: batched stimulus extraction (padding + attention masks) vs one stimulus at a time.

Sentences of the Natural Stories texts (Futrell et al. 2021; ``processed_wordinfo.tsv``, cut at
sentence-final punctuation) are extracted with smollm2-135m (all 31 hidden states, mean
pooling, each sentence alone after a BOS token), side by side in one run:

(a) one stimulus per forward pass (``batch_size=1``): no padding, the reference;
(b) batched, right-padded (``batch_size="auto"``: a token budget per device), longest first;
(c) batched, left-padded, with explicit position ids;

and prints stimuli per second, tokens per second, the speed-up of (b) and (c) over (a), and the
largest difference between their features and (a)'s (float32 rounding). Run::

    NEUROENC_DATA=../shared/data HF_HUB_OFFLINE=1 python benchmarks/stimuli.py [--n 256]
"""
from __future__ import annotations

import argparse
import re
import time

import numpy as np
import torch

from neuroenc.datasets import load_naturalstories_rt
from neuroenc.features import StimulusExtractor, load_model
from neuroenc.stimuli import StimulusSet


def sentences(n: int) -> StimulusSet:
    """The first ``n`` sentences of the Natural Stories (words joined, cut after . ! ?)."""
    words = load_naturalstories_rt().stimuli
    out, current = [], []
    for w, g in zip(words.texts, words.groups):
        current.append(w)
        if re.search(r"[.!?][\"')]*$", w):
            out.append((" ".join(current), g))
            current = []
        if len(out) == n:
            break
    return StimulusSet([f"sent-{i}" for i in range(len(out))], [s for s, _ in out], [g for _, g in out],
                       name="naturalstories-sentences")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n", type=int, default=256, help="sentences (default 256)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    stimuli = sentences(args.n)
    lm = load_model(args.model, device="cpu", dtype="float32")
    n_tok = sum(len(lm.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in stimuli.texts)
    print(f"{len(stimuli)} sentences, {n_tok} tokens ({n_tok / len(stimuli):.1f} per sentence), model "
          f"{lm.name}, {torch.get_num_threads()} threads")
    runs = [("one at a time", dict(batch_size=1)), ("batched, right-padded", dict(batch_size="auto")),
            ("batched, left-padded", dict(batch_size="auto", padding_side="left"))]
    StimulusExtractor(lm, batch_size=8).transform(stimuli.select(stimuli.ids[:8]))  # warm-up
    results = {}
    for label, kwargs in runs:
        t0 = time.perf_counter()
        fs = StimulusExtractor(lm, pooling="mean", **kwargs).transform(stimuli)
        results[label] = (time.perf_counter() - t0, fs)
    base_t, base = results["one at a time"]
    print(f"{'':24}{'seconds':>9}{'stimuli/s':>11}{'tokens/s':>10}{'speed-up':>10}{'max |diff|':>12}")
    for label, (t, fs) in results.items():
        diff = max(float(np.abs(fs[k] - base[k]).max()) for k in fs)
        print(f"{label:24}{t:9.2f}{len(stimuli) / t:11.1f}{n_tok / t:10.0f}{base_t / t:9.2f}x{diff:12.2e}")


if __name__ == "__main__":
    main()
