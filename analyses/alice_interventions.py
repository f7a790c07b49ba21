# Interventions on smollm2-135m and brain prediction in the Alice fMRI ROIs
#
# Which parts of a language model carry what the brain tracks? We extract smollm2-135m features
# of the Alice story (Brennan et al. 2016) with the intact model and with its middle third
# (blocks 10-19) or upper third (blocks 20-29) skipped or stripped of attention (MLP only), the
# two thirds swapped, and the previous tokens' states frozen from the start of either third
# ("Attend first, consolidate later", Ben-Artzy & Schwartz 2024). For every
# condition we fit a ridge encoding model per layer to the group-mean time course of each of the
# 6 ROIs (blocked CV, nested penalties) and compare held-out r per ROI and layer. Layers below
# the first changed block are identical to the intact model's, so the main table averages the
# change of r over the layers an intervention changes.
#
# Every condition reads the same strided chunks as the intact model; freeze-context reads them in
# paired passes (neuroenc.features.paired_context: every word the current token, with the chunk's
# earlier tokens as its frozen context; exactly one pass per word, at most twice an intact pass).
#
# Run from the repository root:  python analyses/alice_interventions.py
# (about 10 min on 2 free CPU cores; features are cached, so a second run takes about 2 min).
# Writes OUT_DIR/interventions.csv (tidy: intervention, target, layer, relative_depth, r, r2),
# OUT_DIR/intervention_effects.csv, OUT_DIR/intervention_mean_change.csv and two figures;
# prints the tables of the changes.
from __future__ import annotations

import os
import time
from pathlib import Path

# ----------------------------------------------------------------------------- parameters
MODEL = "smollm2-135m"
CONTEXT_TOKENS, STRIDE = 128, 64          # strided extraction (every condition)
DELAYS = (1, 2, 3, 4)                     # FIR delays in TRs
N_BLOCKS = 5                              # outer CV: contiguous blocks of the single run
OUT_DIR = Path("neuroenc-demo") / "layer-science"
CACHE_DIR = Path(".neuroenc_cache") / "features"
TORCH_THREADS, BLAS_THREADS = 2, 1        # one BLAS thread: multi-threaded BLAS on tiny ridge
                                          # problems only slows down a shared machine
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def conditions(n_blocks: int) -> list[tuple[str, str | None]]:
    """(name, intervention spec) for the middle and upper thirds."""
    third = n_blocks // 3
    mid = (third, 2 * third - 1)
    up = (2 * third, n_blocks - 1)
    out = [("intact", None)]
    for name, (i, j) in (("middle", mid), ("upper", up)):
        out += [(f"skip {name}", f"skip:{i}-{j}"), (f"no-attention {name}", f"no-attention:{i}-{j}")]
    out.append(("swap middle/upper", f"swap:{mid[0]}-{mid[1]},{up[0]}-{up[1]}"))
    for name, (i, _) in (("middle", mid), ("upper", up)):
        out.append((f"freeze-context {name}", f"freeze-context:{i}"))
    return out


def first_changed_layer(spec: str, n_blocks: int) -> int:
    """The first hidden state an intervention can change (hidden state p + 1 is block p's output)."""
    from neuroenc.features.interventions import parse_intervention

    iv = parse_intervention(spec)
    first = iv.blocks(n_blocks)[0] + 1
    # Frozen from block k, block k still reads the intact context: hidden state k + 1 of the
    # current word is unchanged (random-context would change it).
    return first + 1 if iv.kind == "freeze-context" else first


def main() -> None:
    import pandas as pd
    import torch
    from threadpoolctl import threadpool_limits

    from neuroenc.align import make_fmri_design
    from neuroenc.datasets import load_alice
    from neuroenc.encoding import fit_encoding
    from neuroenc.features import extract_features, load_model
    from neuroenc.pipeline.loaders import add_group_mean
    from neuroenc.report.figures import plot_intervention_profiles
    from neuroenc.report.sections import intervention_effects

    torch.set_num_threads(TORCH_THREADS)
    threadpool_limits(BLAS_THREADS, user_api="blas")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    # The story and the group-mean ROI time courses (the 27 valid subjects averaged).
    alice = load_alice()
    transcript = alice.transcripts["alice"]
    subjects = sorted(alice.responses)
    add_group_mean(alice)  # the mean of the subjects' z-scored responses, as `neuroenc run` fits
    group = alice.responses["group"]["alice"]
    lm = load_model(MODEL)
    n_blocks = lm.n_layers - 1
    print(f"{len(transcript)} words, {len(subjects)} subjects, {MODEL}: {n_blocks} blocks "
          f"({time.time() - t0:.0f} s)")

    rows = []
    for name, spec in conditions(n_blocks):
        t = time.time()
        features = extract_features(transcript, lm, context_tokens=CONTEXT_TOKENS, stride=STRIDE, pooling="last",
                                    intervention=spec, cache_dir=CACHE_DIR)
        t_feat = time.time() - t
        design = make_fmri_design(features, group, delays=DELAYS)
        results = fit_encoding(design, targets=list(group.names), n_blocks=N_BLOCKS, n_permutations=0,
                               backend="numpy")
        table = results.to_frame()[["layer", "relative_depth", "target", "r", "r2"]]
        rows.append(table.assign(intervention=name, spec=spec or "none"))
        print(f"{name:24s} {spec or '-':22s} features {t_feat:5.0f} s, fit {time.time() - t - t_feat:4.0f} s, "
              f"best r {table.groupby('target').r.max().round(3).to_dict()}")

    scores = pd.concat(rows, ignore_index=True)
    scores.to_csv(OUT_DIR / "interventions.csv", index=False)

    # Changes against the intact model (the same chunks).
    effects = intervention_effects(scores, reference="intact")
    effects.to_csv(OUT_DIR / "intervention_effects.csv", index=False)

    frozen = scores.spec.str.startswith("freeze-context")
    fig = plot_intervention_profiles(scores[~frozen], title="Held-out r per layer: structural interventions")
    fig.savefig(OUT_DIR / "interventions_structural.png", dpi=120)
    fig = plot_intervention_profiles(scores[frozen | (scores.spec == "none")],
                                     title="Held-out r per layer: frozen context (paired passes)")
    fig.savefig(OUT_DIR / "interventions_freeze_context.png", dpi=120)

    # Mean change of r over the layers each intervention changes, against the intact model, per ROI.
    ref_r = scores[scores.intervention == "intact"].set_index(["target", "layer"]).r
    changes = []
    for (name, spec), sub in scores.groupby(["intervention", "spec"], sort=False):
        if spec == "none":
            continue
        first = first_changed_layer(spec, n_blocks)
        sub = sub[sub.layer >= first].set_index(["target", "layer"]).r
        diff = (sub - ref_r.loc[sub.index]).groupby("target").mean()
        changes.append(diff.rename(name))
    mean_change = pd.DataFrame(changes)
    mean_change["mean"] = mean_change.mean(axis=1)
    mean_change = mean_change.sort_values("mean")
    mean_change.to_csv(OUT_DIR / "intervention_mean_change.csv")
    delta_best = effects.pivot(index="intervention", columns="target", values="delta_best").loc[mean_change.index]
    intact_best = effects[effects.intervention == "intact"].pivot(
        index="intervention", columns="target", values="r")
    pd.set_option("display.width", 160)
    print("\nBest-layer r of the intact model:")
    print(intact_best.round(3).to_string())
    print("\nMean change of r over the layers the intervention changes (most harmful first):")
    print(mean_change.round(3).to_string())
    print("\nChange of the best-layer r (the best layer may lie below the intervention):")
    print(delta_best.round(3).to_string())
    worst = mean_change.drop(columns="mean").idxmin()
    print("\nMost harmful intervention per ROI (mean change over changed layers):")
    print(pd.DataFrame({"intervention": worst, "mean change of r": mean_change.drop(columns="mean").min()})
          .round(3).to_string())
    print(f"\nwrote {OUT_DIR}/interventions.csv, intervention_effects.csv, intervention_mean_change.csv "
          f"and 2 figures "
          f"({time.time() - t0:.0f} s in all)")


if __name__ == "__main__":
    main()
