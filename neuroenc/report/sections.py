"""Extra report sections: a generic container, the group-mean section and the layer-science section.

Any analysis can add a section to the report: a :class:`ReportSection` holds a title, plain
text, figures and tables, and :func:`~neuroenc.report.make_report` renders it after the
mapping sections. :func:`group_mean_section` builds the section of a group-mean fit (the
subjects' mean response fitted as one more subject); :func:`layer_science_section` builds one
from the tidy tables of the layer-science analyses.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from .._validation import _check_option, _preview
from ..encoding.compare import describe_comparison
from ..encoding.results import P_MAX_OVER_LAYERS, EncodingResults
from ..encoding.stats import describe_null
from ..mapping import map_layers
from ..mapping.summary import group_best_table, parse_layer_set
from .figures import (
    plot_intervention_profiles,
    plot_layer_profiles,
    plot_metric_profiles,
    plot_unique_profiles,
    require_columns,
    with_relative_depth,
)


@dataclass
class ReportSection:
    """A section of the HTML report.

    Parameters
    ----------
    title : str
        The section heading.
    text : str
        Plain text (escaped in the HTML); blank lines separate paragraphs.
    figures : list of (caption, Figure)
        Embedded as PNG, in order.
    tables : list of (caption, DataFrame)
        Rendered as HTML tables (numbers formatted, exact values in ``data-value``).
    """

    title: str
    text: str = ""
    figures: list[tuple[str, Figure]] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.title, str) or not self.title.strip():
            raise ValueError(f"a report section needs a non-empty title, got {self.title!r}.")
        for caption, fig in self.figures:
            if not hasattr(fig, "savefig"):
                raise TypeError(
                    f"figure {caption!r} of section {self.title!r} is a {type(fig).__name__}; "
                    "pass matplotlib Figures."
                )
        for caption, table in self.tables:
            if not isinstance(table, pd.DataFrame):
                raise TypeError(
                    f"table {caption!r} of section {self.title!r} is a {type(table).__name__}; "
                    "pass pandas DataFrames."
                )


def _subjects_best(mapping: Any, targets: list[str], best_set: pd.Series | None) -> pd.DataFrame:
    """Per target: the individual subjects' best layers beside the group-mean fit's."""
    best = mapping.best
    rows = []
    for target in targets:
        layers = best.loc[best["target"] == target, "best_layer"].dropna().astype(int).to_numpy()
        if layers.size == 0:
            rows.append({"target": target})
            continue
        q1, med, q3 = np.percentile(layers, [25, 50, 75])
        row = {"target": target, "subjects_best_median": med, "subjects_best_iqr": f"{q1:.0f}–{q3:.0f}",
               "subjects_best": ", ".join(f"{k}×{v}" if v > 1 else str(k)
                                          for k, v in zip(*np.unique(layers, return_counts=True)))}
        if best_set is not None and isinstance(best_set.get(target), str):
            allowed = parse_layer_set(best_set[target])
            row["subjects_in_group_set"] = f"{np.isin(layers, allowed).sum()} of {layers.size}"
        rows.append(row)
    return pd.DataFrame(rows)


def group_mean_section(results: EncodingResults, mapping: Any = None, *, random_state: Any = 0) -> ReportSection:
    """The report section of a group-mean fit (the subjects' mean response fitted as one subject).

    Profiles with intervals over the CV folds and the best-layer set, the best layer per target
    with what each p-value tests (:func:`~neuroenc.mapping.summary.group_best_table`), and, with
    the subjects' own mapping, their best layers beside the group-mean fit's.

    Parameters
    ----------
    results : EncodingResults
        The group-mean fit (``provenance["group_members"]``: the subjects averaged).
    mapping : LayerMapping | None
        The individual subjects' mapping (:func:`~neuroenc.mapping.map_layers`); with two or
        more subjects, a table of their best layers is added.
    random_state : None | int | numpy Generator
        Seeds the bootstrap of the profiles.

    Returns
    -------
    section : ReportSection
    """
    table = group_best_table(results)
    members = results.provenance.get("group_members") or []
    corrected = bool((table["p_method"] == P_MAX_OVER_LAYERS).any())
    if corrected:
        p_text = (
            f"p, q (against chance, max over layers): the permutation p-value of the best layer's r "
            f"against the maximum over all {results.n_layers} layers of the permutation null (the same "
            "permutations for every layer), so it is corrected for choosing the best layer, and "
            "its Benjamini-Hochberg q-value across targets; p_layer, q_layer: that layer's own, "
            "uncorrected values. They test the best layer against chance, not against the other layers."
        )
        table = table.rename(columns={"p": "p_max", "q": "q_max"})
    else:
        p_text = (
            "p, q: the best layer's own permutation p-value against chance and its q-value, not "
            f"corrected for choosing the best of the {results.n_layers} layers (these results have no "
            "max-over-layers p-values), so they are optimistic."
        )
    comp = results.comparison
    c_text = ""
    if comp is not None:
        c_text = (
            " Against the other layers: " + describe_comparison(comp.source, results.n_layers, comp.n_draws, comp.alpha)
            + " The band on each profile marks that set. delta_last, delta_mid: the best layer's r minus "
            f"the last layer's and minus the best intermediate layer's (depth 1/3–2/3), with {comp.ci:.0%} "
            "intervals from the same draws; the best layer is chosen on these data, so they are optimistic. "
            "They compare held-out r, which can be negative; where the best layer is not above chance, "
            "the verdict says \"at chance\" and gives no margins."
        )
    text = (
        f"The mean of the {len(members)} subjects' z-scored responses, fitted as one more "
        "subject (same features, delays, cross-validation and permutation test). Averaging "
        "removes most subject-specific noise, so its scores are higher than a single "
        "subject's; its noise ceiling is that of the group mean. Bands: 95% bootstrap "
        "intervals over the outer CV folds. The best-layer r is the maximum over layers, so it "
        f"is optimistically biased. {p_text}{c_text} {describe_null(results.settings)}"
    ).strip()
    own = map_layers(results, profile_unit="fold" if results.fold_r is not None else "auto",
                     random_state=random_state)
    figure = plot_layer_profiles(own.profiles, own.group, title="Group-mean response: held-out r per layer "
                                 "(band: bootstrap over CV folds; shaded: best-layer set)")
    figures = [("Layer profiles of the group-mean fit", figure)]
    if own.unique is not None:
        text += (f" Beyond the baseline ({own.group['unique_baseline'].iloc[0]}): each layer's held-out "
                 "Δr² = R²(baseline + layer) − R²(baseline) on the same folds, with the fit's own p (Δr² > 0), "
                 "interval and best-layer set (the unique_* columns); it can be negative.")
        if set(own.profiles["target"]) & set(own.unique["target"]):  # not a mean over many targets
            figures.append(("Raw profile and unique contribution beyond the baseline of the group-mean fit "
                            "(shaded: each one's best-layer set)",
                            plot_unique_profiles(own.profiles, own.unique, own.group)))
    tables = [("Best layer per target (group-mean fit)", table)]
    if mapping is not None and mapping.n_subjects > 1:
        sets = table.set_index("target")["best_set"] if "best_set" in table else None
        tables.append((
            "The individual subjects' best layers beside the group-mean fit (median, interquartile "
            "range, each layer with its count, and how many fall in the group-mean fit's best-layer set)",
            _subjects_best(mapping, list(results.targets), sets),
        ))
    return ReportSection("Group-mean response", text, figures=figures, tables=tables)


def _model_key(name: Any) -> str:
    """A model id compared by its last path part, lower-cased (``facebook/opt-30b`` -> ``opt-30b``)."""
    return str(name).rstrip("/").rsplit("/", 1)[-1].lower()


def published_note(protocol: str, subjects: Sequence[str], model: str | None, run_values: dict[str, float],
                   published: Sequence[dict[str, Any]]) -> tuple[str, pd.DataFrame | None]:
    """What the published results of a protocol say beside a run's numbers.

    Parameters
    ----------
    protocol : str
        The run's ``cv`` (e.g. ``"holdout:wheretheressmoke"``).
    subjects : sequence of str
        The run's subjects.
    model : str | None
        The run's model id.
    run_values : dict of str -> float
        The run's number per subject, in the score the entries give (mean r over targets at the
        best layer).
    published : sequence of dict
        Entries with ``source``, ``url``, ``protocol``, ``subjects``, ``models``, ``score``,
        ``values`` (``{model: {subject: number}}``, numbers stated in the source's text) and
        ``note`` (e.g. :data:`neuroenc.datasets.lebel2023.LEBEL_PUBLISHED`).

    Returns
    -------
    text : str
        One paragraph: the sources of the same protocol, what they state, and whether a number
        is comparable with this run (same protocol, subject and model) or not.
    table : DataFrame | None
        Per comparable (source, subject): the published number beside the run's; None when no
        published number matches the run's settings.
    """
    same = [e for e in published if e.get("protocol") == protocol]
    if not same:
        return "", None
    key = _model_key(model) if model else None
    rows = []
    for entry in same:
        for name, per_subject in (entry.get("values") or {}).items():
            if key is None or _model_key(name) != key:
                continue
            for subject in subjects:
                if subject in per_subject and subject in run_values:
                    rows.append({"source": entry["source"].split(".")[0], "subject": subject, "model": name,
                                 "score": entry.get("score", "r"), "published": float(per_subject[subject]),
                                 "this run": float(run_values[subject])})
    parts = [f"Published results of this protocol ({protocol}):"]
    for entry in same:
        models = ", ".join(entry.get("models") or []) or "models not listed"
        parts.append(f"{entry['source']} ({entry.get('url', '')}; subjects {', '.join(entry.get('subjects', []))}; "
                     f"models: {models}): {entry.get('note', '')}")
    if rows:
        parts.append("The published numbers stated for this run's protocol, subject and model are shown beside "
                     "the run's in the table below.")
        return "\n\n".join(parts), pd.DataFrame(rows)
    parts.append(f"No comparable published number: none is stated for this model ({model}) on these subjects "
                 f"({', '.join(subjects)}) under this protocol, so this run's numbers stand alone.")
    return "\n\n".join(parts), None


def holdout_section(results: Sequence[EncodingResults], published: Sequence[dict[str, Any]] = (),
                    model: str | None = None) -> ReportSection | None:
    """The section of a fixed train/test protocol (``cv: holdout:<run>``, LeBel et al. 2023 /
    Antonello et al. 2023): per subject and layer the mean over targets of the held-out r,
    r·|r| and cc_norm (:meth:`~neuroenc.encoding.EncodingResults.holdout_scores`), and the
    published numbers of the same protocol beside the run's where the settings match
    (:func:`published_note`). None when the results were not fitted with ``holdout:<run>``.
    """
    from ..encoding.cv import parse_holdout_cv

    results = list(results)
    if not results:
        return None
    cv = results[0].settings.get("cv")
    run = parse_holdout_cv(cv)
    if run is None:
        return None
    rows, best_r = [], {}
    for res in results:
        table = res.holdout_scores()
        by_layer = table.groupby("layer", sort=True)
        means = by_layer[["r", "r_abs_r", "cc_norm"]].mean()
        totals = by_layer["r_abs_r"].sum()
        for layer, row in means.iterrows():
            rows.append({"subject": res.subject, "layer": int(layer), "mean r": row["r"],
                         "mean r·|r|": row["r_abs_r"], "total r·|r|": totals[layer],
                         "mean cc_norm": row["cc_norm"]})
        best_r[str(res.subject)] = float(np.nanmax(means["r"].to_numpy()))
    first = results[0]
    folds = first.settings.get("cv_folds") or [[np.nan, np.nan]]
    repeats = first.provenance.get("holdout_repeats")
    test = (f"the mean of its {repeats} repeated presentations" if repeats else "its response as loaded")
    text = (
        f"Fixed train/test protocol (cv: {cv}), as LeBel et al. 2023 and Antonello et al. 2023 score their "
        f"models: each model is trained on every run but {run!r} ({int(folds[0][0])} samples) and tested once on "
        f"{run!r} ({int(folds[0][1])} samples), against {test}. Each target's ridge penalty is chosen by inner "
        "cross-validation over the training runs only. r: Pearson r of the prediction with the test response; "
        "r·|r|: its signed square; cc_norm: r divided by the noise ceiling CC_max computed from the repeats "
        "(Schoppe et al. 2016), NaN without repeats or where the repeats share no signal (CC_max 0); its mean "
        "is over the targets that have a ceiling. total r·|r|: the sum over targets, the \"Total r2\" the "
        "authors' code prints (HuthLab/deep-fMRI-dataset)."
    )
    note, compared = published_note(cv, [str(r.subject) for r in results], model or first.model, best_r, published)
    if note:
        text += "\n\n" + note
    tables = [("Held-out scores per subject and layer (mean over targets)", pd.DataFrame(rows))]
    if compared is not None:
        tables.append(("Published numbers beside this run's (best layer, mean r over targets)", compared))
    return ReportSection("Fixed train/test protocol", text, tables=tables)


def stimulus_rows_section(results: EncodingResults, baselines: pd.DataFrame | None = None,
                          timings: dict[str, float] | None = None) -> ReportSection | None:
    """The section that says what a fit's rows were when they were stimuli (one response per
    stimulus, no time): the data, the CV by stimulus, r beside r_pooled per layer, and the
    baseline models (``baselines``: one row per model and target, see
    :func:`~neuroenc.encoding.fit_encoding`'s ``baseline_models``). None for rows that are
    samples in time (their design is described by the other sections)."""
    s = results.settings
    if s.get("rows", s.get("null_unit")) not in ("stimuli",):
        return None
    prov = results.provenance
    groups = prov.get("groups") or []
    text = (
        f"{prov.get('n_stimuli')} stimuli ({prov.get('stimuli')}) with one response each, "
        f"{len(groups)} group(s); features pooled over each stimulus's tokens ({prov.get('pooling')}), "
        f"context: {prov.get('context')}. Cross-validation by stimulus: {s.get('cv')} "
        + ("(whole groups held out, so no group is on both sides of a split). " if "group" in str(s.get('cv'))
           else "(stimuli shuffled into folds). ")
        + "Features and responses are z-scored over all stimuli; each target's ridge penalty is chosen by "
        "inner CV of the same kind inside each training set. r: the Pearson r of the held-out predictions "
        "within each fold, mean over folds (as in the other sections); r_pooled: one r over the held-out "
        "predictions of all folds pooled. The permutation null permutes the stimuli"
        + (" within groups" if s.get("null_within_groups") else "")
        + " and refits the model, the same draws for every layer."
    )
    table = pd.DataFrame({"layer": results.layers, "relative_depth": results.relative_depth})
    for j, target in enumerate(results.targets[:6]):
        table[f"r {target}"] = results.r[:, j]
        if results.r_pooled is not None:
            table[f"r_pooled {target}"] = results.r_pooled[:, j]
        if results.pvalues is not None:
            table[f"p {target}"] = results.pvalues[:, j]
    tables = [("Held-out r per layer (mean over folds, and pooled over folds)", table)]
    if baselines is not None and len(baselines):
        tables.append(("Baseline models, fitted with the same folds, penalties and permutations "
                       "(each regressor alone, and all together)", baselines))
    if timings:
        text += "\n\nTimings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()) + "."
    return ReportSection("Stimulus-level encoding", text, tables=tables)


def metric_brain_correlations(
    metrics: pd.DataFrame, profiles: pd.DataFrame, *, method: str = "spearman"
) -> pd.DataFrame:
    """Rank correlation across layers between each metric and each target's mean brain score.

    Parameters
    ----------
    metrics : DataFrame
        Tidy: ``metric, layer, value`` (several rows per (metric, layer) are averaged).
    profiles : DataFrame
        From :func:`~neuroenc.mapping.layer_profiles`: ``target, layer, mean``.
    method : "spearman" | "kendall"

    Returns
    -------
    table : DataFrame
        One row per (metric, target): ``rho``, ``p`` and ``n_layers`` (layers in both tables).
    """
    _check_option("method", method, ("spearman", "kendall"))
    require_columns(metrics, ("metric", "layer", "value"), "the metrics table")
    require_columns(profiles, ("target", "layer", "mean"), "the profiles table")
    per_metric = metrics.groupby(["metric", "layer"], sort=False)["value"].mean()
    func = stats.spearmanr if method == "spearman" else stats.kendalltau
    rows = []
    for metric in pd.unique(metrics["metric"]):
        m = per_metric.loc[metric]
        for target in pd.unique(profiles["target"]):
            p = profiles[profiles["target"] == target].set_index("layer")["mean"]
            common = np.intersect1d(m.index.to_numpy(), p.index.to_numpy())
            x, y = m.loc[common].to_numpy(float), p.loc[common].to_numpy(float)
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() >= 3 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0:
                res = func(x[ok], y[ok])
                rho, pval = float(res.statistic), float(res.pvalue)
            else:
                rho = pval = np.nan
            rows.append({"metric": metric, "target": target, "rho": rho, "p": pval, "n_layers": int(ok.sum())})
    return pd.DataFrame(rows)


def intervention_effects(
    interventions: pd.DataFrame, *, score: str = "r", reference: str = "intact"
) -> pd.DataFrame:
    """Per (intervention, target): best layer and score, and the change from the intact model.

    Parameters
    ----------
    interventions : DataFrame
        Tidy: ``intervention, target, layer, <score>``; rows of several subjects are averaged.
    score : str
        The score column.
    reference : str
        The intervention name of the intact model; ``delta_best`` (best score minus the
        reference's best score) and ``mean_delta`` (mean over layers of the score minus the
        reference's score at the same layer) are NaN when it is absent. With a ``policy``
        column (features read with different context policies, e.g. ``window``), each policy's
        conditions are compared with the intact model of that policy: the one named
        ``reference``, or whose name starts with it (``"intact (window)"``).

    Returns
    -------
    table : DataFrame
        ``intervention, target, best_layer, best_depth, <score>, delta_best, mean_delta``.
    """
    require_columns(interventions, ("intervention", "target", "layer", score), "the interventions table")
    if "policy" in interventions.columns and interventions["policy"].nunique() > 1:
        # compare each condition with the intact model extracted the same way (same policy)
        parts = []
        for _, sub in interventions.groupby("policy", sort=False):
            names = [str(n) for n in dict.fromkeys(sub["intervention"])]
            ref = next((n for n in names if n == reference), None) or next(
                (n for n in names if n.startswith(reference)), reference)
            parts.append(intervention_effects(sub.drop(columns="policy"), score=score, reference=ref))
        return pd.concat(parts, ignore_index=True)
    mean = (
        with_relative_depth(interventions)
        .groupby(["intervention", "target", "layer"], sort=False)[[score, "relative_depth"]]
        .mean()
        .reset_index()
    )
    has_ref = reference in set(mean["intervention"].astype(str))
    rows = []
    for (name, target), sub in mean.groupby(["intervention", "target"], sort=False):
        sub = sub.sort_values("layer")
        vals = sub[score].to_numpy(float)
        if not np.isfinite(vals).any():
            continue
        i = int(np.nanargmax(vals))
        row = {"intervention": name, "target": target, "best_layer": int(sub["layer"].iloc[i]),
               "best_depth": float(sub["relative_depth"].iloc[i]), score: float(vals[i]),
               "delta_best": np.nan, "mean_delta": np.nan}
        if has_ref:
            ref = mean[(mean["intervention"].astype(str) == reference) & (mean["target"] == target)]
            ref = ref.set_index("layer")[score]
            if len(ref):
                row["delta_best"] = float(vals[i] - np.nanmax(ref.to_numpy(float)))
                common = np.intersect1d(sub["layer"].to_numpy(), ref.index.to_numpy())
                diffs = sub.set_index("layer").loc[common, score].to_numpy(float) - ref.loc[common].to_numpy(float)
                row["mean_delta"] = float(np.nanmean(diffs)) if np.isfinite(diffs).any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def layer_science_section(
    metrics: pd.DataFrame | None = None,
    interventions: pd.DataFrame | None = None,
    *,
    profiles: pd.DataFrame | None = None,
    score: str = "r",
    reference: str = "intact",
    title: str = "Layer science",
) -> ReportSection:
    """The report section of the layer-science analyses (per-layer metrics, interventions).

    Parameters
    ----------
    metrics : DataFrame | LayerMetrics | None
        Tidy per-layer representation metrics: ``metric, layer, value`` (+ ``relative_depth``),
        or an object with ``to_frame()`` giving that table (``neuroenc.features.metrics_layers.LayerMetrics``).
    interventions : DataFrame | None
        Tidy brain scores under interventions: ``intervention, target, layer, <score>``
        (+ ``subject``, ``relative_depth``); the intact model is named ``reference``.
    profiles : DataFrame | None
        The mapping's layer profiles; with ``metrics``, adds the rank correlations between each
        metric and each target's brain-score profile across layers.
    score, reference, title
        The score column, the name of the intact model, the section title.

    Returns
    -------
    section : ReportSection
    """
    if metrics is None and interventions is None:
        raise ValueError("layer_science_section needs a metrics table, an interventions table, or both.")
    # Result objects of the layer-science code (e.g. LayerMetrics) give their tidy table.
    if hasattr(metrics, "to_frame") and not isinstance(metrics, pd.DataFrame):
        metrics = metrics.to_frame()
    if hasattr(interventions, "to_frame") and not isinstance(interventions, pd.DataFrame):
        interventions = interventions.to_frame()
    section = ReportSection(title=title)
    text = []
    if metrics is not None:
        require_columns(metrics, ("metric", "layer", "value"), "the metrics table")
        names = list(pd.unique(metrics["metric"].astype(str)))
        text.append(f"Representation metrics per layer: {', '.join(names)}.")
        section.figures.append(("Representation metrics against relative depth.", plot_metric_profiles(metrics)))
        if profiles is not None:
            section.tables.append((
                "Spearman rank correlation across layers between each metric and the mean brain "
                "score of each target.",
                metric_brain_correlations(metrics, profiles),
            ))
    if interventions is not None:
        effects = intervention_effects(interventions, score=score, reference=reference)
        names = list(pd.unique(interventions["intervention"].astype(str)))
        text.append(
            f"Brain {score} per layer under {len(names)} conditions ({_preview(names, n=8)}); "
            f"changes are relative to the {reference!r} model."
        )
        section.figures.append((
            f"Mean {score} against relative depth under each intervention.",
            plot_intervention_profiles(interventions, score=score),
        ))
        section.tables.append((
            f"Best layer and {score} per intervention and target; delta_best: best {score} minus "
            f"the intact model's; mean_delta: mean change over layers.",
            effects,
        ))
    section.text = "\n\n".join(text)
    return section
