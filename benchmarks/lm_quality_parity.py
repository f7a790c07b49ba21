"""Benchmark: lm_quality under interventions against a plain ``transformers`` loop, on real text.

neuroenc's :func:`~neuroenc.features.lm_quality` reads a text under an intervention through
its own patching code (:mod:`neuroenc.features.interventions_patch`). Here the same numbers
are computed a second way, written out in this script with nothing from neuroenc's
intervention code: the model's own modules (embeddings, rotary embeddings, decoder blocks,
final norm, tied output head) are called one by one in a plain loop, the blocks in the order
each intervention names, on tokens this script maps to words itself.

Printed, on the first ``--words`` words of Natural Stories story 3 (default 500) read by
``--model`` (default ``smollm2-135m``: SmolLM2-135M-Instruct, Q4_1 de-quantised to float32):

1. For the intact model and four structural interventions (``skip:10-14``, Sun et al.'s middle
   repeat ``order:0-13,14,14,14,17-29``, ``reverse:10-19``, ``parallel:10-19``), one forward
   pass over BOS + the whole text: neuroenc's bits/word, the hand-run loop's bits/word,
   their |difference| and the largest per-word |difference| (acceptance: <= 1e-4).
2. For ``freeze-context:22`` (blocks 22 to the last: the previous tokens keep their hidden
   state 22): neuroenc's bits/word, a reference with one unbatched forward pass per predicted
   token (the blocks run by hand; in each block from 22 on, every position but the last is fed
   its hidden state 22 again), their difference with its paired standard error over words, the
   largest per-word |difference|, and the cost of the intervention (freeze - intact, paired SE)
   for scale (acceptance: the difference within 2 standard errors). Each token is predicted
   from ``--context-tokens`` tokens before its word plus its word's earlier tokens, as
   ``lm_quality(context_tokens=N)`` reads the context kinds; ``full`` reads all of them
   (neuroenc: one paired pass, :mod:`neuroenc.features.paired_context`; the reference: one
   pass per token over the whole text so far, quadratic, slow on a CPU: use fewer ``--words``).

Run: ``python benchmarks/lm_quality_parity.py`` (``--help`` for the options). With the
defaults, on one torch thread of a shared 2-core machine: about 40 s to load the model, 10-20 s
per structural run, then about 100 s for neuroenc's freeze-context run, 300 s for the unbatched
reference and 100 s for the intact run it is compared with (about 12 minutes in all). The
block numbers in ``STRUCTURAL`` are for a 30-block model such as SmolLM2.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from neuroenc.datasets import load_naturalstories_rt
from neuroenc.features import load_model
from neuroenc.features.quality import lm_quality

STRUCTURAL = {
    "intact": None,
    "skip:10-14": list(range(10)) + list(range(15, 30)),
    "order:0-13,14,14,14,17-29": list(range(14)) + [14, 14, 14] + list(range(17, 30)),  # middle repeat
    "reverse:10-19": list(range(10)) + list(range(19, 9, -1)) + list(range(20, 30)),
    "parallel:10-19": list(range(10)) + [tuple(range(10, 20))] + list(range(20, 30)),  # a tuple: averaged
}


def word_spans(words, tokenizer):
    """Token ids of the words joined by spaces, and the word of each token (its last non-space
    character's word; -1 for a token of spaces only)."""
    text = " ".join(words)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    char_word = np.full(len(text), -1)
    pos = 0
    for w, word in enumerate(words):
        char_word[pos:pos + len(word)] = w
        pos += len(word) + 1
    token_word = []
    for b, e in enc["offset_mapping"]:
        chars = [c for c in range(b, e) if not text[c].isspace()]
        token_word.append(int(char_word[chars[-1]]) if chars else -1)
    return list(enc["input_ids"]), np.array(token_word)


class HandRun:
    """The model's pieces called one by one (plain transformers modules, no neuroenc code)."""

    def __init__(self, base):
        self.base = base
        self.layers = base.layers
        self.W = base.embed_tokens.weight  # SmolLM2 ties its output head to the input embeddings

    def prepare(self, ids):
        x = torch.tensor([ids])
        n = x.shape[1]
        pos = torch.arange(n)[None]
        h = self.base.embed_tokens(x)
        pe = self.base.rotary_emb(h, position_ids=pos)
        mask = torch.full((n, n), float("-inf")).triu(1)[None, None]
        return h, dict(attention_mask=mask, position_ids=pos, position_embeddings=pe)

    def block(self, k, h, kw):
        out = self.layers[k](h, **kw)
        return out[0] if isinstance(out, tuple) else out

    def log2_probs(self, h):
        return torch.log_softmax((self.base.norm(h) @ self.W.T).double(), dim=-1) / math.log(2)


def hand_structural(run, ids, order):
    """Bits of every token of ``ids[1:]`` (BOS first), the blocks run in ``order`` (a tuple: run
    on the same input and averaged)."""
    with torch.no_grad():
        h, kw = run.prepare(ids)
        for step in (range(len(run.layers)) if order is None else order):
            if isinstance(step, tuple):
                h = torch.stack([run.block(k, h, kw) for k in step]).mean(0)
            else:
                h = run.block(step, h, kw)
        logp = run.log2_probs(h[0])
    target = torch.tensor(ids[1:])
    return -logp[:-1].gather(1, target[:, None])[:, 0].numpy()


def hand_freeze_context(run, ids, token_word, K, context_tokens):
    """Bits of every token of the text (``ids`` without BOS), one unbatched pass per token: the
    context is BOS + the ``context_tokens`` tokens before the token's word (all with "full") +
    the word's earlier tokens; blocks K.. see the previous positions' hidden state K."""
    bos = run.base.config.bos_token_id
    first = {}
    for t, w in enumerate(token_word):
        first.setdefault(int(w), t)
    bits = np.full(len(ids), np.nan)
    with torch.no_grad():
        for t, w in enumerate(token_word):
            if w < 0:
                continue
            f = first[int(w)]
            start = 0 if context_tokens == "full" else max(0, f - int(context_tokens))
            h, kw = run.prepare([bos] + ids[start:t])
            for k in range(K):
                h = run.block(k, h, kw)
            frozen = h
            current = h[:, -1:]
            for k in range(K, len(run.layers)):
                current = run.block(k, torch.cat([frozen[:, :-1], current], dim=1), kw)[:, -1:]
            bits[t] = -float(run.log2_probs(current[0, 0])[ids[t]])
    return bits


def per_word(bits, token_word, n_words):
    out = np.zeros(n_words)
    np.add.at(out, token_word[token_word >= 0], bits[token_word >= 0])
    return out


def paired(a, b):
    d = np.asarray(a) - np.asarray(b)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=500, help="first words of Natural Stories story 3")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--context-tokens", default="32",
                        help="freeze-context: tokens of context before each word, or 'full' (default 32)")
    parser.add_argument("--freeze", type=int, default=22, help="freeze-context from this block (default 22)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a shared machine)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    C = "full" if args.context_tokens == "full" else int(args.context_tokens)

    words = list(load_naturalstories_rt(stories=[3], download=False).stimuli.texts[: args.words])
    t0 = time.time()
    lm = load_model(args.model)
    run = HandRun(lm.model)
    ids, token_word = word_spans(words, lm.tokenizer)
    bos = lm.model.config.bos_token_id
    print(f"{lm.name}: {len(run.layers)} blocks; {len(words)} words of Natural Stories story 3, {len(ids)} tokens "
          f"(+ BOS {bos}); torch threads {args.threads}; model loaded in {time.time() - t0:.0f} s")

    print("\n1. Intact and structural interventions, one pass over BOS + the text (bits/word)")
    print(f"{'spec':<28}{'neuroenc':>12}{'hand-run':>12}{'|diff|':>10}{'max word |diff|':>17}{'s':>6}")
    intact = None
    for spec, order in STRUCTURAL.items():
        t = time.time()
        q = lm_quality(words, lm, intervention=None if spec == "intact" else spec)
        ref = per_word(np.concatenate([[np.nan], hand_structural(run, [bos] + ids, order)])[1:], token_word,
                       len(words))
        if q.settings["prefix_ids"] != [bos] or q.token_word.tolist() != token_word.tolist():
            raise RuntimeError(f"{spec}: neuroenc read other tokens than this script (prefix "
                               f"{q.settings['prefix_ids']}); the comparison would not be paired.")
        intact = q if spec == "intact" else intact
        print(f"{spec:<28}{q.bits_per_word:12.6f}{ref.mean():12.6f}{abs(q.bits_per_word - ref.mean()):10.1e}"
              f"{np.abs(q.word_surprisal - ref).max():17.1e}{time.time() - t:6.0f}")

    spec = f"freeze-context:{args.freeze}"
    how = "one paired pass" if C == "full" else "one pass per predicted token"
    print(f"\n2. {spec} (blocks {args.freeze}-{len(run.layers) - 1}), neuroenc: {how}, context_tokens={C}")
    t = time.time()
    q = lm_quality(words, lm, intervention=spec, context_tokens=C)
    t_neuroenc = time.time() - t
    t = time.time()
    ref = per_word(hand_freeze_context(run, ids, token_word, args.freeze, C), token_word, len(words))
    t_ref = time.time() - t
    base = lm_quality(words, lm, intervention=f"freeze-context:{len(run.layers) - 1}", context_tokens=C)  # intact
    diff, se = paired(q.word_surprisal, ref)
    cost, cost_se = paired(q.word_surprisal, base.word_surprisal)
    ref_se = float(ref.std(ddof=1) / np.sqrt(ref.size))
    print(f"neuroenc lm_quality       {q.bits_per_word:.6f} bits/word ({q.settings['n_forward_passes']} passes, "
          f"{t_neuroenc:.0f} s)")
    print(f"one pass per position     {ref.mean():.6f} ± {ref_se:.4f} bits/word (SE over words; "
          f"{int((token_word >= 0).sum())} passes, {t_ref:.0f} s)")
    print(f"difference                {diff:+.2e} (paired SE of the difference {se:.1e}; max word |diff| "
          f"{np.abs(q.word_surprisal - ref).max():.1e})")
    print(f"cost of {spec} vs intact (same context): {cost:+.4f} ± {cost_se:.4f} bits/word (paired SE)")
    print(f"within 2 SE of the reference's bits/word: {abs(diff) <= 2 * ref_se} (|diff| / SE = "
          f"{abs(diff) / ref_se:.1e}); of the cost's paired SE: {abs(diff) <= 2 * cost_se} "
          f"(|diff| / SE = {abs(diff) / cost_se:.1e})")
    print("(neuroenc takes the log-softmax in float32, this script in float64: the differences above are that "
          "rounding, ~1e-5 bits per token)")

if __name__ == "__main__":
    main()
