# The claims of three layer-science papers, measured on smollm2-135m
#
# neuroenc's layer science rests on three papers. For each of their claims this script puts
# the claim in one line beside what SmolLM2-135M-Instruct (the `smollm2-135m` alias: Q4_1
# de-quantised to float32) does, with paired standard errors, and a verdict computed by one
# stated rule (VERDICT_RULE below), never written by hand:
#
# - Sun et al. 2024, "Transformer Layers as Painters": the model's own loss (bits per word on
#   the first LM_WORDS words of Natural Stories story 3, neuroenc.features.lm_quality) when
#   blocks are skipped (by depth and by number), run in parallel, reversed, shuffled, or
#   replaced by copies of the middle block; and the similarity of the layers' hidden states
#   (raw cosine and linear CKA, jackknife SE over chunks of tokens).
# - Ben-Artzy & Schwartz 2024, "Attend First, Consolidate Later": the loss when the previous
#   tokens' states are frozen, randomised or swapped for another text's from several depths
#   (every token read as the current one with all the text before it as context, in one paired
#   pass: neuroenc.features.paired_context, exactly one pass per token), on the same words as
#   the Painters runs, and when the upper or lower blocks lose attention.
# - Skean et al. 2025, "Layer by Layer": each representation metric per layer
#   (layer_metrics(preset="skean2025"), on the Alice word features) beside the per-layer
#   brain scores (the Alice group mean, 6 ROIs) and reading-time scores (Natural Stories),
#   taken from results files when given (--brain-results, --rt-results), else fitted here.
#
# The bridge (issue 21, item 5): for a few interventions (skip the middle third, run it in
# parallel, freeze the context from 2/3 depth) the change of LM loss beside the change of the
# per-layer brain and reading-time profiles (features under the intervention, the same fit).
# To stay cheap it fits the Alice group mean only (not the 27 subjects), every LAYER_STEP-th
# layer, no permutations, and refits only the layers an intervention changed (a layer below the
# first changed block has the reference's features, checked equal, hence the reference's fit).
# Every condition, freeze-context included (paired passes), reads the intact model's chunks.
#
# Cost (2 torch threads, 1 BLAS thread, 2 idle cores, 2026-12-07), cold feature cache: 10 min 8 s
# wall, 970 CPU-s. Wall / CPU seconds: load 15/14, LM runs 88/173 (the context kinds in paired
# passes: one pass per run, at most twice an intact pass), layer similarity 13/14, intact features
# 76/146, intact fits 64/64, layer metrics 10/10, the bridge 336/548 (extracting the Alice and
# reading-time features under three interventions, then refitting the changed layers). Features are
# cached (CACHE_DIR), so a second run skips the extraction.
#
# Standard errors: LM checks are paired over words (compare the same words under two
# conditions; neighbouring words are not independent, so the SEs are somewhat small); the
# similarity checks use a jackknife over chunks of tokens; the compression valley pairs prompts;
# "best minus last layer" pairs CV folds (the best layer is chosen on the same data: biased up);
# the metric-vs-profile checks are Fisher z of Spearman's rho across layers (neighbouring
# layers are alike, so these are optimistic too). The verdicts inherit these caveats.
#
# Run from the repository root:  python analyses/layer_science_papers.py [--quick] [--threads 1]
# Writes OUT_DIR/claims.csv, claims.json, checks.csv, lm_runs.csv, bridge.csv, claims.md and
# claims.html (a report section), and a figure; prints the claims table and the time taken.
from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# ----------------------------------------------------------------------------- parameters
MODEL = "smollm2-135m"
MODEL_NOTE = "SmolLM2-135M-Instruct (alias smollm2-135m), Q4_1 de-quantised to float32"
OUT_DIR = Path("neuroenc-demo") / "layer-science-papers"
CACHE_DIR = Path(".neuroenc_cache") / "features"
TORCH_THREADS, BLAS_THREADS = 2, 1      # torch threads: 2 on 2 idle cores; 1 on a busy machine, where
                                        # two threads wait on each other at every op (--threads 1)
#: A check supports a claim when its estimate is at least Z_CRIT standard errors in the
#: direction the paper predicts.
Z_CRIT = 2.0
#: The context kinds' reference: the intact model read the same way (paired), frozen from the last block.
REF_CONTEXT = "intact (paired)"
VERDICT_RULE = (
    f"Each claim is tested by one or more checks, each an estimate in the direction the paper "
    f"predicts with its standard error (SE); a check passes when estimate / SE >= {Z_CRIT:g}. "
    "Verdict: 'holds' when every check passes, 'not on this model' when none does, 'partly' "
    "otherwise."
)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
logger = logging.getLogger("layer_science_papers")


@dataclass
class Settings:
    """What the analysis reads and how much of it (the defaults: the full run)."""

    model: Any = MODEL
    lm_story: int = 3                  # Natural Stories story read by the LM side
    lm_words: int = 500                # its first words
    lm_context: Any = "full"           # structural kinds: the whole text in one pass
    context_depths: tuple = (1 / 6, 1 / 3, 2 / 3)   # where freeze/random/swap-context start
    swap_story: int = 1                # the source text of swap-context (another story)
    skip_step: int = 3                 # single-block skips every skip_step blocks (+ the last)
    skip_counts: tuple = (1, 2, 4, 8)  # middle blocks skipped together
    similarity_chunks: int = 10        # jackknife chunks of tokens for the similarity SEs
    alice_context: int = 128           # Alice features: strided chunks (as the other analyses)
    alice_stride: int = 64
    delays: tuple = (1, 2, 3, 4)
    n_cv_blocks: int = 5
    layer_step: int = 2                # brain / reading-time fits on every layer_step-th layer
    rt_stories: tuple = tuple(range(1, 11))
    rt_context: int = 128              # reading times: each word after its story (strided)
    rt_cv_words: int = 200             # reading-time CV: blocks of this many words held out
    metric_window: int = 32            # words per prompt for the Skean metrics
    bridge: bool = True
    brain: bool = True                 # False: the LM side only (Painters, Attend first)
    torch_threads: int = TORCH_THREADS
    brain_results: Any = None          # results files of the intact fits (skip those fits)
    rt_results: Any = None
    cache_dir: Any = CACHE_DIR
    out_dir: Any = OUT_DIR
    data_dir: Any = None
    extra: dict = field(default_factory=dict)


#: --quick: the same analysis on less (to measure and extrapolate the run time).
QUICK = dict(lm_words=200, context_depths=(1 / 6, 2 / 3), skip_step=6, skip_counts=(1, 4),
             layer_step=5, rt_stories=(1, 2, 3))


# ----------------------------------------------------------------------------- the rule
def verdict(z: Any, z_crit: float = Z_CRIT) -> str:
    """The verdict of a claim from the z-values of its checks (see :data:`VERDICT_RULE`)."""
    z = np.asarray(z, dtype=float).reshape(-1)
    if z.size == 0:
        raise ValueError("verdict needs at least one check.")
    passed = np.isfinite(z) & (z >= z_crit)
    if passed.all():
        return "holds"
    if not passed.any():
        return "not on this model"
    return "partly"


@dataclass
class Check:
    """One test of a claim: an estimate in the predicted direction and its SE."""

    label: str
    estimate: float
    se: float

    @property
    def z(self) -> float:
        if not np.isfinite(self.se) or self.se <= 0:
            return np.inf * np.sign(self.estimate) if self.estimate != 0 else np.nan
        return self.estimate / self.se


def claim_row(paper: str, claim_id: str, claim: str, checks: list[Check], unit: str = "") -> dict:
    """A row of the claims table (and its checks) with the verdict computed by :func:`verdict`."""
    z = [c.z for c in checks]
    measured = "; ".join(f"{c.label}: {c.estimate:+.3g} ± {c.se:.2g}" for c in checks)
    return {
        "paper": paper, "claim_id": claim_id, "claim": claim, "measured": measured, "unit": unit,
        "n_checks": len(checks), "n_pass": int(sum(np.isfinite(v) and v >= Z_CRIT for v in z)),
        "min_z": float(np.nanmin(z)) if np.isfinite(z).any() else np.nan,
        "verdict": verdict(z),
        "checks": [dict(asdict(c), z=c.z) for c in checks],
    }


# ----------------------------------------------------------------------------- LM side
def contrast(runs: dict, weights: dict[str, float], label: str) -> Check:
    """Per-word ``sum_k w_k * surprisal_k`` over the words scored in every run: mean and paired SE."""
    arrays = [np.asarray(runs[name].word_surprisal, dtype=float) for name in weights]
    n = {a.size for a in arrays}
    if len(n) != 1:
        raise ValueError(f"contrast {label!r}: the runs read different numbers of words ({sorted(n)}).")
    ok = np.logical_and.reduce([np.isfinite(a) for a in arrays])
    d = sum(w * a[ok] for w, a in zip(weights.values(), arrays))
    if d.size < 2:
        raise ValueError(f"contrast {label!r} needs at least 2 words scored in every run, got {d.size}.")
    return Check(label, float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size)))


def block_ranges(n_blocks: int) -> dict[str, tuple[int, int]]:
    """The lower, middle and upper thirds of the blocks (inclusive ranges)."""
    third = max(n_blocks // 3, 1)
    return {"lower": (0, third - 1), "middle": (third, 2 * third - 1), "upper": (2 * third, n_blocks - 1)}


def depth_block(depth: float, n_blocks: int) -> int:
    return int(min(max(round(depth * n_blocks), 1), n_blocks - 1))


def structural_specs(n_blocks: int, s: Settings) -> dict[str, str | None]:
    """name -> spec of every run read in one pass per chunk (intact and structural kinds)."""
    r = block_ranges(n_blocks)
    i, j = r["middle"]
    centre = (i + j) // 2
    mid_block = n_blocks // 2
    specs: dict[str, str | None] = {"intact": None}
    for k in sorted(set(range(0, n_blocks, s.skip_step)) | {mid_block, n_blocks - 1}):
        specs[f"skip block {k}"] = f"skip:{k}"
    for n in s.skip_counts:
        a = min(max(mid_block - n // 2, 1), n_blocks - 1 - n)
        specs[f"skip {n} middle"] = f"skip:{a}-{a + n - 1}"
    specs["skip middle third"] = f"skip:{i}-{j}"
    specs["parallel middle third"] = f"parallel:{i}-{j}"
    specs["reverse middle third"] = f"reverse:{i}-{j}"
    specs["shuffle middle third"] = f"shuffle:{i}-{j}:seed=0"
    order = list(range(i)) + [centre] * (j - i + 1) + list(range(j + 1, n_blocks))
    specs["middle repeat"] = "order:" + ",".join(map(str, order))
    for name in ("lower", "upper"):
        a, b = r[name]
        specs[f"no-attention {name} third"] = f"no-attention:{a}-{b}"
    return specs


def context_specs(n_blocks: int, s: Settings) -> dict[str, str]:
    """name -> spec of the context kinds (paired passes); the reference is exactly intact, read
    the same way: frozen from the last block, the last block still reads the intact context."""
    specs = {REF_CONTEXT: f"freeze-context:{n_blocks - 1}"}
    for d in s.context_depths:
        k = depth_block(d, n_blocks)
        specs[f"freeze-context from {k}"] = f"freeze-context:{k}"
        specs[f"random-context from {k}"] = f"random-context:{k}"
        specs[f"swap-context from {k}"] = f"swap-context:{k}:stimulus=other"
    return specs


def same_blocks_key(spec: str | None, n_blocks: int) -> str:
    """One key for the specs that run the same blocks: the ``order:`` form of an alias."""
    from neuroenc.features.interventions import ORDER_ALIASES, parse_intervention

    iv = parse_intervention(spec)
    if iv is None:
        return "none"
    return str(iv.as_order(n_blocks) if iv.kind in ORDER_ALIASES else iv)


def run_lm(lm: Any, words: list[str], swap_text: str, s: Settings) -> tuple[dict, dict, pd.DataFrame]:
    """Every LM run: (structural runs, context runs, a tidy table of their numbers)."""
    from neuroenc.features.quality import compare_quality, lm_quality

    n_blocks = lm.n_layers - 1
    rows, structural, contextual = [], {}, {}
    done: dict[str, str] = {}  # the same blocks under another name (skip:15 and skip:15-15) are read once
    for name, spec in structural_specs(n_blocks, s).items():
        t = time.time()
        key = same_blocks_key(spec, n_blocks)
        if key in done:
            structural[name] = replace(structural[done[key]], intervention=spec)
        else:
            structural[name] = lm_quality(words, lm, intervention=spec, context_tokens=s.lm_context)
            done[key] = name
        rows.append(dict(run=name, spec=spec or "none", words=len(words), seconds=time.time() - t))
    for name, spec in context_specs(n_blocks, s).items():
        t = time.time()
        contextual[name] = lm_quality(words, lm, intervention=spec, context_tokens=s.lm_context,
                                      sources={"other": swap_text})
        rows.append(dict(run=name, spec=spec, words=len(words), seconds=time.time() - t))
    table = pd.DataFrame(rows)
    out = []
    for row in rows:
        runs, ref = (structural, "intact") if row["run"] in structural else (contextual, REF_CONTEXT)
        q = runs[row["run"]]
        d = compare_quality(runs[ref], q) if row["run"] != ref else None
        out.append(dict(bits_per_word=q.bits_per_word, accuracy=q.accuracy,
                        delta_bits=np.nan if d is None else d.mean, se=np.nan if d is None else d.se))
    return structural, contextual, pd.concat([table, pd.DataFrame(out)], axis=1)


def painters_claims(runs: dict, n_blocks: int, s: Settings, similarity: dict) -> list[dict]:
    paper = "Sun et al. 2024 (Painters)"
    mid_block = n_blocks // 2
    first, last, mid = "skip block 0", f"skip block {n_blocks - 1}", f"skip block {mid_block}"
    rows = [claim_row(paper, "P1", "The first and last blocks are critical; a middle block can be skipped "
                                   "at small cost",
                      [contrast(runs, {first: 1, mid: -1}, f"skip 0 - skip {mid_block}"),
                       contrast(runs, {last: 1, mid: -1}, f"skip {n_blocks - 1} - skip {mid_block}")],
                      "bits/word")]
    counts = list(s.skip_counts)
    checks = [contrast(runs, {f"skip {b} middle": 1, f"skip {a} middle": -1}, f"skip {b} - skip {a}")
              for a, b in zip(counts, counts[1:])]
    if checks:
        rows.append(claim_row(paper, "P2", "Loss grows steadily with the number of middle blocks skipped",
                              checks, "bits/word"))
    rows.append(claim_row(paper, "P3", "Running the middle blocks in parallel costs less than skipping them",
                          [contrast(runs, {"skip middle third": 1, "parallel middle third": -1}, "skip - parallel")],
                          "bits/word"))
    rows.append(claim_row(paper, "P4", "Layer order matters (reversing or shuffling the middle costs loss), "
                                       "and a random order costs less than the reverse order",
                          [contrast(runs, {"reverse middle third": 1, "intact": -1}, "reverse - intact"),
                           contrast(runs, {"shuffle middle third": 1, "intact": -1}, "shuffle - intact"),
                           contrast(runs, {"reverse middle third": 1, "shuffle middle third": -1},
                                    "reverse - shuffle")],
                          "bits/word"))
    rows.append(claim_row(paper, "P5", "Repeating the middle block in place of the middle blocks is worse than "
                                       "skipping them",
                          [contrast(runs, {"middle repeat": 1, "skip middle third": -1}, "middle repeat - skip")],
                          "bits/word"))
    for cid, name in (("P6", "cosine"), ("P7", "linear CKA")):
        rows.append(claim_row(paper, cid, f"The middle layers share a representation space ({name}): they are more "
                                          "alike than the first and last layers are to them",
                              similarity[name], name))
    return rows


def attend_first_claims(ctx: dict, runs: dict, n_blocks: int, s: Settings) -> list[dict]:
    paper = "Ben-Artzy & Schwartz 2024 (Attend first)"
    ks = [depth_block(d, n_blocks) for d in s.context_depths]
    rows = []
    for cid, kind in (("A1", "freeze-context"), ("A2", "random-context"), ("A3", "swap-context")):
        what = {"freeze-context": "frozen", "random-context": "randomised",
                "swap-context": "swapped for another text's"}[kind]
        checks = [contrast(ctx, {f"{kind} from {a}": 1, f"{kind} from {b}": -1}, f"from {a} - from {b}")
                  for a, b in zip(ks, ks[1:])]
        lo, hi, ref = f"{kind} from {ks[0]}", f"{kind} from {ks[-1]}", REF_CONTEXT
        checks.append(contrast(ctx, {lo: 0.25, hi: -1, ref: 0.75},
                               f"cost from {ks[-1]} < 1/4 of cost from {ks[0]}"))
        rows.append(claim_row(paper, cid, f"Previous tokens' states {what} in the upper blocks cost little, "
                                          "in lower blocks much", checks, "bits/word"))
    lo, hi = "no-attention lower third", "no-attention upper third"
    rows.append(claim_row(paper, "A4", "Removing attention from the upper blocks costs little, from the lower "
                                       "blocks much",
                          [contrast(runs, {lo: 1, hi: -1}, "lower - upper"),
                           contrast(runs, {lo: 0.25, hi: -1, "intact": 0.75}, "cost upper < 1/4 of cost lower")],
                          "bits/word"))
    return rows


# ----------------------------------------------------------------------------- similarity
def _jackknife(values: np.ndarray) -> tuple[float, float]:
    """Mean of the leave-one-chunk-out estimates' source and the jackknife SE."""
    k = values.size
    return float(values.mean()), float(np.sqrt((k - 1) / k * ((values - values.mean()) ** 2).sum()))


def layer_similarity(states: list[np.ndarray], n_chunks: int = 10) -> tuple[dict, pd.DataFrame]:
    """Raw cosine and linear CKA between the hidden states of every pair of layers.

    ``states``: one (n_tokens, dim) array per hidden state (0 = embeddings). Returns the checks
    of the Painters similarity claims (middle-vs-middle minus first/last-vs-middle, jackknife SE
    over ``n_chunks`` contiguous chunks of tokens) and a tidy table of both matrices.
    """
    X = [np.asarray(x, dtype=np.float64) for x in states]
    n_tok = X[0].shape[0]
    L = len(X)
    chunks = np.array_split(np.arange(n_tok), n_chunks)
    unit = [x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12) for x in X]
    grams = np.stack([x @ x.T for x in X])  # uncentred Grams; centred on each subset below

    def matrices(keep: np.ndarray) -> dict[str, np.ndarray]:
        U = np.stack([u[keep] for u in unit])  # (L, n, d)
        cos = np.einsum("ind,jnd->ij", U, U) / keep.size
        G = grams[:, keep][:, :, keep]
        G = G - G.mean(axis=1, keepdims=True) - G.mean(axis=2, keepdims=True) + G.mean(axis=(1, 2), keepdims=True)
        flat = G.reshape(L, -1)
        inner = flat @ flat.T
        norm = np.sqrt(np.diag(inner))
        return {"cosine": cos, "linear CKA": inner / np.outer(norm, norm)}

    n_blocks = L - 1
    r = block_ranges(n_blocks)
    middle = np.arange(r["middle"][0] + 1, r["middle"][1] + 2)  # outputs of the middle blocks
    off = ~np.eye(middle.size, dtype=bool)

    def stats(m: np.ndarray) -> np.ndarray:
        within = m[np.ix_(middle, middle)][off].mean()
        return np.array([within - m[1, middle].mean(), within - m[n_blocks, middle].mean()])

    full = matrices(np.arange(n_tok))
    checks = {}
    for name, m in full.items():
        loo = np.array([stats(matrices(np.setdiff1d(np.arange(n_tok), c))[name]) for c in chunks])
        est = stats(m)
        se = [_jackknife(loo[:, q])[1] for q in range(2)]
        checks[name] = [Check(f"middle-middle - first-middle ({name})", float(est[0]), se[0]),
                        Check(f"middle-middle - last-middle ({name})", float(est[1]), se[1])]
    tidy = pd.concat([
        pd.DataFrame({"measure": name, "layer_a": np.repeat(np.arange(L), L), "layer_b": np.tile(np.arange(L), L),
                      "value": m.ravel()})
        for name, m in full.items()], ignore_index=True)
    return checks, tidy


def hidden_state_rows(lm: Any, words: list[str]) -> list[np.ndarray]:
    """Every hidden state of the words' tokens (the prefix special tokens left out), one pass."""
    import torch

    from neuroenc.features.models import sequence_prefix
    from neuroenc.features.tokens import align_tokens

    al = align_tokens(words, lm.tokenizer)
    prefix = sequence_prefix(lm, "auto")
    ids = torch.tensor([list(prefix) + al.input_ids.tolist()], device=lm.device)
    with torch.inference_mode():
        states = lm.hidden_states(ids)
    return [h[0, len(prefix):].float().cpu().numpy() for h in states]


# ----------------------------------------------------------------------------- brain side
def fit_layers(n_model_layers: int, step: int) -> list[int]:
    return sorted(set(range(0, n_model_layers, step)) | {n_model_layers - 1})


def alice_fit(features: Any, group: Any, s: Settings, layers: list[int]) -> Any:
    from neuroenc.align import make_fmri_design
    from neuroenc.encoding import fit_encoding

    design = make_fmri_design(features, group, layers=layers, delays=s.delays)
    return fit_encoding(design, targets=list(group.names), n_blocks=s.n_cv_blocks, n_permutations=0,
                        backend="numpy")


def rt_fit(features: Any, rt: Any, layers: list[int], block_words: int) -> Any:
    """Reading times fitted per layer; CV folds hold out contiguous blocks of ``block_words``
    words of a story (the features keep the context they were read with)."""
    from neuroenc.encoding.stimulus_fit import fit_stimuli

    fs = features.select(layers)
    seen: dict[str, int] = {}
    blocks = []
    for g in fs.groups:
        blocks.append(f"{g}/{seen.get(g, 0) // block_words}")
        seen[g] = seen.get(g, 0) + 1
    fs.groups = blocks
    return fit_stimuli(fs, rt, cv="group-kfold:5", n_permutations=0, backend="numpy")


def profile(results: Any) -> pd.DataFrame:
    """Per layer: r averaged over targets, and its per-fold values (for paired SEs)."""
    fold = results.fold_r.mean(axis=2) if results.fold_r is not None else None  # (n_folds, n_layers)
    return pd.DataFrame({"layer": results.layers, "relative_depth": results.relative_depth,
                         "r": results.r.mean(axis=1),
                         **({f"fold{f}": fold[f] for f in range(fold.shape[0])} if fold is not None else {})})


def best_vs_last(prof: pd.DataFrame, what: str) -> Check:
    """r of the best layer minus r of the last layer (per fold, SE over folds)."""
    folds = [c for c in prof.columns if c.startswith("fold")]
    best = int(np.argmax(prof["r"].to_numpy()))
    label = f"{what}: best layer {int(prof['layer'].iloc[best])} - last layer {int(prof['layer'].iloc[-1])}"
    if not folds:
        return Check(label, float(prof["r"].iloc[best] - prof["r"].iloc[-1]), np.nan)
    d = prof[folds].iloc[best].to_numpy(float) - prof[folds].iloc[-1].to_numpy(float)
    return Check(label, float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else np.nan)


def rank_check(metric: pd.Series, prof: pd.DataFrame, what: str) -> Check:
    """Spearman rho across layers (either sign), as a Fisher z: atanh(|rho|) with SE 1/sqrt(n-3)."""
    from scipy import stats

    common = [int(x) for x in prof["layer"] if int(x) in metric.index]
    rho = stats.spearmanr(metric.loc[common].to_numpy(float), prof.set_index("layer").loc[common, "r"]).statistic
    n = len(common)
    return Check(f"|rho| with {what} ({n} layers, rho {rho:+.2f})", float(np.arctanh(min(abs(rho), 0.999999))),
                 1.0 / np.sqrt(n - 3) if n > 3 else np.nan)


def layer_by_layer_claims(features: Any, brain: pd.DataFrame, rt: pd.DataFrame,
                          s: Settings) -> tuple[list[dict], pd.DataFrame]:
    from neuroenc.features.metrics import normalize_prompts, prompt_entropy, sliding_windows
    from neuroenc.features.metrics_layers import layer_metrics

    paper = "Skean et al. 2025 (Layer by layer)"
    lm_ = layer_metrics(features, preset="skean2025", window=s.metric_window)
    tidy = lm_.to_frame()
    rows = []
    # the compression valley, paired over prompts (windows of words)
    layers = list(lm_.layers)
    per_window = np.stack([prompt_entropy(normalize_prompts(sliding_windows(np.asarray(features[i], dtype=float),
                                                                            s.metric_window)), clamp=True)
                           for i in layers])  # (n_layers, n_windows)
    inner = int(np.argmin(per_window[1:-1].mean(axis=1))) + 1

    def paired(a: int, b: int, label: str) -> Check:
        d = per_window[a] - per_window[b]
        return Check(label, float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size)))

    rows.append(claim_row(paper, "L1", "Prompt entropy has a compression valley: an intermediate layer lower than "
                                       "the first and the last",
                          [paired(0, inner, f"layer {layers[0]} - layer {layers[inner]}"),
                           paired(-1, inner, f"layer {layers[-1]} - layer {layers[inner]}")], "nats"))
    rows.append(claim_row(paper, "L2", "Intermediate layers give better representations than the last layer "
                                       "(brain and reading times)",
                          [best_vs_last(brain, "Alice brain r"), best_vs_last(rt, "reading-time r")], "r"))
    for k, name in enumerate(lm_.metric_names):
        metric = pd.Series(lm_[name], index=lm_.layers)
        rows.append(claim_row(paper, f"L{3 + k}", f"{name} per layer tracks how useful the layer is (brain, "
                                                 "reading times)",
                              [rank_check(metric, brain, "Alice brain r"), rank_check(metric, rt, "reading-time r")],
                              "Fisher z"))
    return rows, tidy


# ----------------------------------------------------------------------------- the bridge
def profile_change(ref: pd.DataFrame, new: pd.DataFrame, first_changed: int) -> dict:
    """Mean change of r over the changed layers, and the best layer before and after."""
    a, b = ref.set_index("layer")["r"], new.set_index("layer")["r"]
    changed = [x for x in a.index if x >= first_changed and x in b.index]
    return {"delta_r_changed_layers": float((b.loc[changed] - a.loc[changed]).mean()) if changed else np.nan,
            "best_layer_before": int(a.idxmax()), "best_layer_after": int(b.idxmax()),
            "delta_best_r": float(b.max() - a.max())}


def refit_changed(fit: Any, features: Any, ref_features: Any, ref_profile: pd.DataFrame, layers: list[int],
                  first_changed: int) -> pd.DataFrame:
    """The profile of ``features`` fitted on ``layers``, refitting only the layers that changed.

    A layer below ``first_changed`` whose features equal the reference's exactly gets the same
    fit (the ridge fits are per layer and deterministic: same rows, same folds, same alphas),
    so its row is taken from ``ref_profile``; every other layer is fitted with ``fit(features,
    layers)``. The profile is the one fitting every layer gives, for less time.
    """
    same = [x for x in layers if x < first_changed and x in ref_features and x in features
            and np.array_equal(features[x], ref_features[x])]
    todo = [x for x in layers if x not in same]
    new = profile(fit(features, todo)) if todo else ref_profile.iloc[:0]
    kept = ref_profile[ref_profile["layer"].isin(same)]
    return pd.concat([kept, new], ignore_index=True).sort_values("layer", ignore_index=True)


def first_changed_layer(spec: str, n_blocks: int) -> int:
    from neuroenc.features.interventions import parse_intervention

    iv = parse_intervention(spec)
    first = iv.blocks(n_blocks)[0] + 1
    return first + 1 if iv.kind == "freeze-context" else first


# ----------------------------------------------------------------------------- the run
@dataclass
class Data:
    """What the analysis reads: the LM text, the Alice story and group-mean ROI time courses,
    and the reading times."""

    words: list            # the LM text (words)
    swap_text: str         # the source of swap-context
    transcript: Any        # the Alice transcript
    group: Any             # the Alice group-mean response
    rt: tuple              # (StimulusSet, Response) of the reading times


def _stories(data_dir: Any, stories: tuple) -> tuple[Any, Any]:
    """The words of some Natural Stories and their mean reading times."""
    from neuroenc.datasets import load_naturalstories_rt

    ds = load_naturalstories_rt(data_dir, stories=stories, download=False)
    return ds.stimuli, ds.responses["readers"]


def load_data(s: Settings) -> Data:
    """The real data sets (from ``s.data_dir``, else ``$NEUROENC_DATA``; never downloaded)."""
    from neuroenc.datasets import load_alice
    from neuroenc.pipeline.loaders import add_group_mean

    words = _stories(s.data_dir, (s.lm_story,))[0].texts[: s.lm_words]
    swap = _stories(s.data_dir, (s.swap_story,))[0].texts[: 2 * s.lm_words]  # as long as any context
    alice = load_alice(s.data_dir, download=False)
    add_group_mean(alice)
    return Data(list(words), " ".join(swap), alice.transcripts["alice"], alice.responses["group"]["alice"],
                _stories(s.data_dir, s.rt_stories))


def run(s: Settings, lm: Any = None, data: Data | None = None, on_partial: Any = None) -> dict[str, Any]:
    """The whole analysis; returns its tables (claims, checks, lm_runs, bridge, metrics, ...).

    ``on_partial(tables)`` (optional) is called with the tables so far once the claims are done
    and after each bridge condition, so a long run leaves its results behind as it goes."""
    from neuroenc.encoding.results import EncodingResults
    from neuroenc.features import StimulusExtractor, extract_features, load_model

    t0, c0 = time.time(), time.process_time()
    times: dict[str, float] = {}
    cpu: dict[str, float] = {}  # CPU seconds of this process (all threads): the work, whatever the load
    lm = load_model(s.model) if lm is None else lm
    n_blocks = lm.n_layers - 1
    data = load_data(s) if data is None else data
    words = list(data.words)
    times["load model and data"] = time.time() - t0
    cpu["load model and data"] = time.process_time() - c0

    # ---------------------------------------------------------------- LM side
    t, c = time.time(), time.process_time()
    structural, contextual, lm_runs = run_lm(lm, words, data.swap_text, s)
    times["LM runs"] = time.time() - t
    cpu["LM runs"] = time.process_time() - c
    logger.info("LM runs: %.0f s (%.0f s CPU)", times["LM runs"], cpu["LM runs"])
    t, c = time.time(), time.process_time()
    sim_checks, similarity = layer_similarity(hidden_state_rows(lm, words), s.similarity_chunks)
    times["layer similarity"] = time.time() - t
    cpu["layer similarity"] = time.process_time() - c
    claims = painters_claims(structural, n_blocks, s, sim_checks)
    claims += attend_first_claims(contextual, structural, n_blocks, s)

    if not s.brain:
        times["total"], cpu["total"] = time.time() - t0, time.process_time() - c0
        return _tables(claims, lm_runs, pd.DataFrame(), pd.DataFrame(columns=["metric", "layer", "value"]),
                       similarity, pd.DataFrame(columns=["layer", "relative_depth", "r"]),
                       pd.DataFrame(columns=["layer", "relative_depth", "r"]), times, cpu, s, lm)

    # ---------------------------------------------------------------- brain and reading times
    t, c = time.time(), time.process_time()
    transcript, group = data.transcript, data.group
    layers = fit_layers(lm.n_layers, s.layer_step)
    kw = dict(context_tokens=s.alice_context, stride=s.alice_stride, pooling="last", cache_dir=s.cache_dir)
    alice_features = extract_features(transcript, lm, **kw)
    rt_set, rt_resp = data.rt
    rt_kw = dict(context="group", context_tokens=s.rt_context, pooling="last", cache_dir=s.cache_dir)
    rt_features = StimulusExtractor(lm, **rt_kw).transform(rt_set)
    times["features (intact)"] = time.time() - t
    cpu["features (intact)"] = time.process_time() - c
    logger.info("features (intact): %.0f s (%.0f s CPU)", times["features (intact)"], cpu["features (intact)"])
    t, c = time.time(), time.process_time()
    brain_res = (EncodingResults.load(s.brain_results) if s.brain_results
                 else alice_fit(alice_features, group, s, layers))
    rt_res = (EncodingResults.load(s.rt_results) if s.rt_results
              else rt_fit(rt_features, rt_resp, layers, s.rt_cv_words))
    brain, rt = profile(brain_res), profile(rt_res)
    times["fits (intact)"] = time.time() - t
    cpu["fits (intact)"] = time.process_time() - c
    logger.info("fits (intact): %.0f s (%.0f s CPU)", times["fits (intact)"], cpu["fits (intact)"])
    t, c = time.time(), time.process_time()
    lbl, metrics = layer_by_layer_claims(alice_features, brain, rt, s)
    claims += lbl
    times["layer metrics"] = time.time() - t
    cpu["layer metrics"] = time.process_time() - c
    logger.info("layer metrics: %.0f s (%.0f s CPU)", times["layer metrics"], cpu["layer metrics"])

    # ---------------------------------------------------------------- the bridge
    bridge = pd.DataFrame()
    if on_partial is not None:  # the claims are done: write them before the (slow) bridge
        on_partial(_tables(claims, lm_runs, bridge, metrics, similarity, brain, rt, times, cpu, s, lm))
    if s.bridge:
        t, c = time.time(), time.process_time()
        r = block_ranges(n_blocks)
        i, j = r["middle"]
        k = depth_block(2 / 3, n_blocks)
        # intact references fitted the same way as each condition (not from results files)
        ref_brain = profile(alice_fit(alice_features, group, s, layers)) if s.brain_results else brain
        ref_rt = profile(rt_fit(rt_features, rt_resp, layers, s.rt_cv_words)) if s.rt_results else rt
        conditions = [("skip middle third", f"skip:{i}-{j}", structural, "intact"),
                      ("parallel middle third", f"parallel:{i}-{j}", structural, "intact"),
                      (f"freeze-context from {k}", f"freeze-context:{k}", contextual, REF_CONTEXT)]
        from neuroenc.features.quality import compare_quality, lm_quality

        rows = []
        for name, spec, runs, ref in conditions:
            if name not in runs:  # a depth the LM side did not read
                runs[name] = lm_quality(words, lm, intervention=spec, context_tokens=s.lm_context)
            d = compare_quality(runs[ref], runs[name])
            # the intact model's chunks; a context kind reads them in paired passes (exact)
            fa = extract_features(transcript, lm, intervention=spec, **kw)
            fr = StimulusExtractor(lm, intervention=spec, **rt_kw).transform(rt_set)
            first = first_changed_layer(spec, n_blocks)
            cb = profile_change(ref_brain, refit_changed(lambda f, ls: alice_fit(f, group, s, ls), fa,
                                                         alice_features, ref_brain, layers, first), first)
            cr = profile_change(ref_rt, refit_changed(lambda f, ls: rt_fit(f, rt_resp, ls, s.rt_cv_words),
                                                      fr, rt_features, ref_rt, layers, first), first)
            rows.append({"intervention": name, "spec": spec, "policy": "strided", "delta_bits_per_word": d.mean,
                         "se": d.se, **{f"brain_{a}": v for a, v in cb.items()},
                         **{f"rt_{a}": v for a, v in cr.items()}})
            if on_partial is not None:
                on_partial(_tables(claims, lm_runs, pd.DataFrame(rows), metrics, similarity, brain, rt, times, cpu,
                                   s, lm))
        bridge = pd.DataFrame(rows)
        times["bridge"] = time.time() - t
        cpu["bridge"] = time.process_time() - c
    times["total"] = time.time() - t0
    cpu["total"] = time.process_time() - c0
    return _tables(claims, lm_runs, bridge, metrics, similarity, brain, rt, times, cpu, s, lm)


def _tables(claims, lm_runs, bridge, metrics, similarity, brain, rt, times, cpu, s, lm) -> dict[str, Any]:
    table = pd.DataFrame(claims)
    checks = pd.DataFrame([dict(claim_id=c["claim_id"], **chk) for c in claims for chk in c["checks"]])
    return {"claims": table.drop(columns="checks"), "checks": checks, "lm_runs": lm_runs, "bridge": bridge,
            "metrics": metrics, "similarity": similarity, "brain_profile": brain, "rt_profile": rt,
            "times": times, "cpu_times": cpu, "settings": s, "model": getattr(lm, "name", str(s.model))}


def plot_overview(out: dict) -> Any:
    """Three panels: loss vs skipped block, loss vs the depth of a context manipulation, and the
    brain and reading-time profiles (each scaled to its maximum) against relative depth."""
    import matplotlib.pyplot as plt

    runs = out["lm_runs"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), layout="constrained")
    single = runs[runs.run.str.match(r"skip block \d+$")]
    blocks = single.run.str.extract(r"(\d+)$")[0].astype(int)
    axes[0].errorbar(blocks, single.delta_bits, yerr=2 * single.se, fmt="o-")
    axes[0].set(xlabel="skipped block", ylabel="Δ bits/word (±2 SE)", title="Painters: one block skipped")
    for kind in ("freeze-context", "random-context", "swap-context"):
        sub = runs[runs.run.str.startswith(kind + " from")]
        depth = sub.run.str.extract(r"(\d+)$")[0].astype(int)
        axes[1].errorbar(depth, sub.delta_bits, yerr=2 * sub.se, fmt="o-", label=kind)
    axes[1].set(xlabel="first manipulated block", ylabel="Δ bits/word (±2 SE)", title="Attend first: context")
    axes[1].legend(fontsize=8)
    for name, prof in (("Alice brain r", out["brain_profile"]), ("reading-time r", out["rt_profile"])):
        r = prof["r"].to_numpy(float)
        if not np.isfinite(r).any():  # the LM side only
            continue
        axes[2].plot(prof["relative_depth"], r / np.nanmax(np.abs(r)), "o-", label=name)
    axes[2].set(xlabel="relative depth", ylabel="r / max r", title="Layer by layer: per-layer scores")
    if axes[2].lines:
        axes[2].legend(fontsize=8)
    fig.suptitle(f"{out['model']}: the papers' interventions and per-layer scores")
    return fig


def write_outputs(out: dict, out_dir: Path) -> list[Path]:
    """The tables (CSV, JSON), the Markdown table and the report section (HTML)."""
    from neuroenc.report.claims import claims_markdown, papers_claims_section, section_html

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in ("claims", "checks", "lm_runs", "bridge", "metrics", "brain_profile", "rt_profile"):
        p = out_dir / f"{name}.csv"
        out[name].to_csv(p, index=False)
        paths.append(p)
    meta = {"model": out["model"], "model_note": MODEL_NOTE, "verdict_rule": VERDICT_RULE,
            "z_crit": Z_CRIT, "times_s": out["times"], "cpu_s": out["cpu_times"], "settings": asdict(out["settings"])}
    p = out_dir / "claims.json"
    p.write_text(json.dumps({"meta": meta, "claims": json.loads(out["claims"].to_json(orient="records")),
                             "checks": json.loads(out["checks"].to_json(orient="records")),
                             "bridge": json.loads(out["bridge"].to_json(orient="records"))},
                            indent=1, default=str))
    paths.append(p)
    fig = plot_overview(out)
    p = out_dir / "overview.png"
    fig.savefig(p, dpi=110)
    paths.append(p)
    import matplotlib.pyplot as plt

    plt.close(fig)
    p = out_dir / "claims.md"
    p.write_text(claims_markdown(out["claims"], bridge=out["bridge"], rule=VERDICT_RULE, model=MODEL_NOTE))
    paths.append(p)
    section = papers_claims_section(out["claims"], bridge=out["bridge"], rule=VERDICT_RULE, model=MODEL_NOTE)
    p = out_dir / "claims.html"
    p.write_text(section_html(section))
    paths.append(p)
    return paths


def parse_args(argv: list[str] | None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="the same analysis on less (to time it)")
    parser.add_argument("--brain-results", default=None, help="EncodingResults file of the Alice group-mean fit")
    parser.add_argument("--rt-results", default=None, help="EncodingResults file of the reading-time fit")
    parser.add_argument("--no-bridge", action="store_true", help="leave out the bridge (item 5)")
    parser.add_argument("--lm-only", action="store_true",
                        help="the LM side only (Painters, Attend first): no brain, reading times or bridge")
    parser.add_argument("--out-dir", default=str(OUT_DIR))
    parser.add_argument("--threads", type=int, default=TORCH_THREADS, help="torch threads (1 on a busy machine)")
    args = parser.parse_args(argv)
    s = Settings(brain_results=args.brain_results, rt_results=args.rt_results,
                 bridge=not (args.no_bridge or args.lm_only), brain=not args.lm_only, out_dir=Path(args.out_dir),
                 torch_threads=args.threads)
    if args.quick:
        s = replace(s, **QUICK)
    return s, args


def main(argv: list[str] | None = None, *, lm: Any = None, settings: Settings | None = None,
         data: Data | None = None) -> dict[str, Any]:
    """Run the analysis (``settings`` overrides the command line) and write its outputs."""
    import torch
    from threadpoolctl import threadpool_limits

    s = settings if settings is not None else parse_args(argv)[0]
    torch.set_num_threads(s.torch_threads)
    with threadpool_limits(BLAS_THREADS, user_api="blas"):
        out = run(s, lm, data, on_partial=lambda partial: write_outputs(partial, Path(s.out_dir)))
    out["paths"] = write_outputs(out, Path(s.out_dir))
    return out


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    logger.setLevel(logging.INFO)
    result = main()
    pd.set_option("display.width", 200, "display.max_colwidth", 120)
    print(result["claims"][["claim_id", "verdict", "claim", "measured"]].to_string(index=False))
    if len(result["bridge"]):
        print("\nBridge:")
        print(result["bridge"].round(3).to_string(index=False))
    print("\nSeconds (wall / CPU): " + ", ".join(f"{k} {v:.0f}/{result['cpu_times'][k]:.0f}"
                                                 for k, v in result["times"].items()))
    print(f"wrote {', '.join(str(p) for p in result['paths'])}")
