# Layer metrics of smollm2-135m against how well each layer predicts the Alice fMRI ROIs
#
# Skean et al. (2025, "Layer by Layer") relate a layer's representation geometry (prompt and
# dataset entropy, curvature, intrinsic dimension, effective rank) to how useful the layer is
# downstream. Here "downstream" is the brain: we compute the metrics of every layer of
# smollm2-135m on the Alice story (Brennan et al. 2016), fit a ridge encoding model per layer
# and subject to the 6 ROI time courses, and rank-correlate (Spearman, across layers) each
# metric with each ROI's mean brain score.
#
# Two views of the story: word-level features (one state per word, the strided extraction the
# encoding models use; prompt entropy and curvature over windows of WINDOW_WORDS consecutive
# words) and token states (one forward pass over the whole story; prompt entropy and curvature
# over windows of WINDOW_TOKENS consecutive tokens, as Skean et al. do within prompts).
#
# Caveat: the layers of one model are not independent samples (neighbouring layers are alike),
# so the p-values of the rank correlations are optimistic; read the rho values.
#
# Run from the repository root:  python analyses/alice_metrics_vs_brain.py
# (about 8 min on 2 free CPU cores; features are cached). Writes OUT_DIR/metrics.csv (tidy:
# metric, layer, relative_depth, value), OUT_DIR/metrics_words.h5, OUT_DIR/brain_profiles.csv,
# OUT_DIR/metric_brain_correlations.csv and two figures; prints the correlation table.
from __future__ import annotations

import os
import time
from pathlib import Path

# ----------------------------------------------------------------------------- parameters
MODEL = "smollm2-135m"
CONTEXT_TOKENS, STRIDE = 128, 64    # the strided extraction (as in alice_interventions.py)
WINDOW_WORDS = 32                   # words per window for word-level prompt entropy / curvature
WINDOW_TOKENS = 64                  # tokens per window for token-level prompt entropy / curvature
ALPHA = 1.0                         # order of the matrix-based Rényi entropies
DELAYS = (1, 2, 3, 4)
N_BLOCKS = 5                        # outer CV blocks of the single run
N_BOOT = 1000                       # bootstrap resamples of subjects for the profiles
OUT_DIR = Path("neuroenc-demo") / "layer-science"
CACHE_DIR = Path(".neuroenc_cache") / "features"
TORCH_THREADS, BLAS_THREADS = 2, 1
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd
    import torch
    from threadpoolctl import threadpool_limits

    from neuroenc.align import make_fmri_design
    from neuroenc.datasets import load_alice
    from neuroenc.encoding import fit_encoding
    from neuroenc.features import extract_features, load_model
    from neuroenc.features.extract import token_states
    from neuroenc.features.metrics_layers import layer_metrics
    from neuroenc.features.tokens import align_tokens
    from neuroenc.mapping import layer_profiles
    from neuroenc.mapping.collect import scores_table
    from neuroenc.report.figures import plot_metric_profiles
    from neuroenc.report.sections import metric_brain_correlations

    torch.set_num_threads(TORCH_THREADS)
    threadpool_limits(BLAS_THREADS, user_api="blas")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    alice = load_alice()
    transcript = alice.transcripts["alice"]
    lm = load_model(MODEL)
    features = extract_features(transcript, lm, context_tokens=CONTEXT_TOKENS, stride=STRIDE,
                                pooling="last", cache_dir=CACHE_DIR)
    print(f"features: {features} ({time.time() - t0:.0f} s)")

    # ------------------------------------------------------------------ layer metrics
    t = time.time()
    words = layer_metrics(features, window=WINDOW_WORDS, alpha=ALPHA)
    words.save(OUT_DIR / "metrics_words.h5")
    ids = align_tokens(transcript, lm.tokenizer).input_ids
    states = token_states(lm, ids, layers="all")
    n_win = len(ids) // WINDOW_TOKENS
    windows = {i: s[: n_win * WINDOW_TOKENS].reshape(n_win, WINDOW_TOKENS, -1) for i, s in states.items()}
    tokens = layer_metrics(windows, ["prompt_entropy", "curvature"], alpha=ALPHA)
    depth = dict(zip(words.layers, words.relative_depth))
    tidy = pd.concat([
        words.to_frame()[["metric", "layer", "relative_depth", "value"]],
        tokens.to_frame()[["metric", "layer", "value"]].assign(
            metric=lambda d: d.metric + " (tokens)", relative_depth=lambda d: d.layer.map(depth)),
    ], ignore_index=True)
    tidy.to_csv(OUT_DIR / "metrics.csv", index=False)
    print(f"metrics of {len(words.layers)} layers: {len(ids)} tokens in {n_win} windows of "
          f"{WINDOW_TOKENS} ({time.time() - t:.0f} s)")

    # ------------------------------------------------------------------ brain scores
    t = time.time()
    results = []
    for subject in sorted(alice.responses):
        response = alice.responses[subject]["alice"]
        design = make_fmri_design(features, response, delays=DELAYS)
        res = fit_encoding(design, targets=list(response.names), n_blocks=N_BLOCKS, n_permutations=0,
                           backend="numpy", provenance={"subject": subject, "model": MODEL})
        results.append(res)
    scores = scores_table(results)
    profiles = layer_profiles(scores, n_boot=N_BOOT, random_state=0)
    profiles.to_csv(OUT_DIR / "brain_profiles.csv", index=False)
    print(f"encoding models of {len(results)} subjects ({time.time() - t:.0f} s)")

    # ------------------------------------------------------------------ rank correlations
    rho = metric_brain_correlations(tidy, profiles)
    rho.to_csv(OUT_DIR / "metric_brain_correlations.csv", index=False)

    fig = plot_metric_profiles(tidy, title=f"{MODEL} on Alice: representation metrics per layer")
    fig.savefig(OUT_DIR / "metrics_per_layer.png", dpi=120)
    table = rho.pivot(index="metric", columns="target", values="rho")
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    im = ax.imshow(table.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(table.shape[1]), table.columns)
    ax.set_yticks(range(table.shape[0]), table.index, fontsize=8)
    for (i, j), v in np.ndenumerate(table.to_numpy()):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, label="Spearman rho across layers")
    ax.set_title("Layer metric vs mean brain r (27 subjects)")
    fig.savefig(OUT_DIR / "metric_brain_correlations.png", dpi=120)
    plt.close("all")

    pd.set_option("display.width", 160)
    best = profiles.loc[profiles.groupby("target")["mean"].idxmax(), ["target", "layer", "mean"]]
    print("\nBest layer per ROI (mean r over subjects):")
    print(best.round(3).to_string(index=False))
    print("\nSpearman rho across layers, metric vs mean brain r:")
    print(table.round(2).to_string())
    strongest = rho.loc[rho.groupby("target").rho.apply(lambda s: s.abs().idxmax()), ["target", "metric", "rho", "p"]]
    print("\nStrongest metric per ROI:")
    print(strongest.round(3).to_string(index=False))
    print(f"\nwrote {OUT_DIR}/metrics.csv, metrics_words.h5, brain_profiles.csv, "
          f"metric_brain_correlations.csv and 2 figures ({time.time() - t0:.0f} s in all)")


if __name__ == "__main__":
    main()
