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

``--plan N`` times the planning instead (tokenising and planning the forward sequences of N
sentences, repeated from the Natural Stories, before any forward pass): the per-unit algorithm
that :func:`~neuroenc.features.stimulus_plan.plan_stimuli` replaced (one tokenizer call and one
plan per stimulus or group) against plan_stimuli (one tokenizer call for all), side by side,
with ``context="none"`` and ``context="group"``, checking that both give the same plan, and the
time of that one tokenizer call alone (the floor)::

    NEUROENC_DATA=../shared/data HF_HUB_OFFLINE=1 python benchmarks/stimuli.py --plan 100000
"""
from __future__ import annotations

import argparse
import re
import time

import numpy as np
import torch

from neuroenc.datasets import load_naturalstories_rt
from neuroenc.features import StimulusExtractor, load_model
from neuroenc.features.context import FULL, ContextPlan, plan_contexts
from neuroenc.features.stimulus_plan import plan_stimuli
from neuroenc.features.tokens import TokenAlignment, align_tokens
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


def per_unit_plan(stimuli: StimulusSet, lm, context: str, context_tokens=None) -> tuple:
    """The planning plan_stimuli replaced: each unit (a stimulus, or a group) tokenised and
    planned on its own. Returns (input_ids, seq_start, seq_stop, context_start, context_len)."""
    units = [[i] for i in range(len(stimuli))] if context == "none" else \
        [list(u) for u in stimuli.group_indices()]
    n = len(stimuli)
    ctx_start, ctx_len = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    ids, seq_start, seq_stop, offset = [], [], [], 0
    for unit in units:
        words_of = [stimuli.texts[i].split() for i in unit]
        al = align_tokens([w for ws in words_of for w in ws], lm.tokenizer)
        counts = np.asarray([len(ws) for ws in words_of])
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        a, b = al.word_start[first], al.word_stop[first + counts - 1]
        if context == "none":
            plan = ContextPlan(a.copy(), b.copy(), np.zeros(1, dtype=np.int64), a.copy(), b - a)
        else:
            spans = TokenAlignment(al.input_ids, al.offsets, al.token_word, a, b, al.text)
            policy = "strided" if lm.kind == "causal" else "window"
            plan = plan_contexts(spans, policy, context_tokens, 1, 0, lm.kind)
        ctx_start[unit], ctx_len[unit] = plan.context_start, plan.context_len
        ids.append(al.input_ids)
        seq_start.append(plan.seq_start + offset)
        seq_stop.append(plan.seq_stop + offset)
        offset += al.n_tokens
    return np.concatenate(ids), np.concatenate(seq_start), np.concatenate(seq_stop), ctx_start, ctx_len


def bench_plan(lm, n: int) -> None:
    """Time the per-unit planning against plan_stimuli on ``n`` sentences (see the docstring)."""
    base = sentences(2000)
    k = np.arange(n) % len(base)
    stimuli = StimulusSet([f"s{i}" for i in range(n)], [base.texts[j] for j in k],
                          [f"{base.groups[j]}-{i // len(base)}" for i, j in enumerate(k)])
    n_tok = sum(len(lm.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in stimuli.texts[:2000])
    print(f"{n} sentences (~{n_tok / min(n, 2000):.1f} tokens each), {len(set(stimuli.groups))} groups, "
          f"tokenizer of {lm.name}")
    print(f"{'context':10}{'per unit (s)':>14}{'plan_stimuli (s)':>18}{'us/stimulus':>13}{'speed-up':>10}"
          f"{'tokenizer alone (s)':>21}  same plan")
    for context in ("none", "group"):
        t0 = time.perf_counter()
        ref = per_unit_plan(stimuli, lm, context, FULL)
        t_ref = time.perf_counter() - t0
        t0 = time.perf_counter()
        got = plan_stimuli(stimuli, lm, context, FULL if context == "group" else None)
        t_new = time.perf_counter() - t0
        # the floor: one tokenizer call on the units' texts, which plan_stimuli makes
        units = stimuli.texts if context == "none" else \
            [" ".join(stimuli.texts[i] for i in unit) for unit in stimuli.group_indices()]
        t0 = time.perf_counter()
        lm.tokenizer(units, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        t_tok = time.perf_counter() - t0
        same = all(np.array_equal(x, y) for x, y in zip(ref, (got.input_ids, got.plan.seq_start, got.plan.seq_stop,
                                                             got.context_start, got.context_len)))
        print(f"{context:10}{t_ref:14.2f}{t_new:18.2f}{t_new / n * 1e6:13.1f}{t_ref / t_new:9.1f}x"
              f"{t_tok:21.2f}  {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n", type=int, default=256, help="sentences (default 256)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--plan", type=int, default=None, metavar="N",
                        help="time the planning of N sentences instead (per-unit vs plan_stimuli)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lm = load_model(args.model, device="cpu", dtype="float32")
    if args.plan is not None:
        bench_plan(lm, args.plan)
        return
    stimuli = sentences(args.n)
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
