"""The self-contained HTML report: :func:`make_report` and :func:`render_report`.

One HTML file, nothing outside it: figures are embedded as base64 PNG, the CSS is inline and
there is no script, so the page opens offline in any browser. Every number in a table is shown
rounded and carries its exact value in a ``data-value`` attribute (``repr`` of the float), so
the page can be checked against the results files.
"""
from __future__ import annotations

import base64
import datetime as _dt
import io
import json
import logging
import math
import os
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from .._io import atomic_path
from .._owned import check_replace
from .._validation import _check_positive
from ..encoding.compare import describe_comparison
from ..encoding.contribution import delta_formula
from ..encoding.results import P_MAX_OVER_LAYERS, EncodingResults
from ..encoding.stats import describe_null
from ..mapping import LayerMapping, map_layers
from ..mapping.brainmaps import mapping_maps, target_space
from . import figures as F
from .sections import ReportSection, layer_science_section
from .sensors import sensor_section

logger = logging.getLogger(__name__)

#: Table columns: label and number format ("f3": 3 decimals, "f2", "p": p-value, "d": integer, "g": general).
COLUMNS: dict[str, tuple[str, str]] = {
    "subject": ("subject", "s"),
    "target": ("target", "s"),
    "n_subjects": ("n", "d"),
    "best_layer": ("best layer", "d"),
    "best_depth": ("depth", "f2"),
    "preference_index": ("pref. index", "f2"),
    "r": ("r", "f3"),
    "r_sem": ("± sem", "f3"),
    "r2": ("R²", "f3"),
    "r2_sem": ("± sem", "f3"),
    "r_last": ("r last layer", "f3"),
    "r2_last": ("R² last layer", "f3"),
    "last_layer": ("last layer", "d"),
    "gain_over_last": ("gain vs last", "f3"),
    "baseline_r": ("baseline r", "f3"),
    "baseline_r2": ("baseline R²", "f3"),
    "gain_over_baseline": ("gain vs baseline", "f3"),
    "noise_ceiling": ("noise ceiling", "f3"),
    "ceiling_fraction": ("r / ceiling", "f2"),
    "loso_effect": ("LOSO effect", "f3"),
    "t": ("t", "f2"),
    "p_t": ("p (t-test)", "p"),
    "p": ("p", "p"),
    "q": ("q", "p"),
    "p_max": ("p vs chance (max over layers)", "p"),
    "q_max": ("q vs chance (max over layers)", "p"),
    "p_layer": ("p vs chance (this layer only)", "p"),
    "q_layer": ("q vs chance (this layer only)", "p"),
    "p_vs_baseline": ("p vs baseline (sign flips)", "p"),
    "q_vs_baseline": ("q vs baseline", "p"),
    "best_set": ("best-layer set (vs other layers)", "s"),
    "n_in_set": ("layers in set", "d"),
    "set_span": ("set span (depth)", "f2"),
    "delta_last": ("Δr best − last", "f3"),
    "delta_last_ci": ("95% CI", "s"),
    "mid_layer": ("best intermediate layer", "d"),
    "delta_mid": ("Δr best − intermediate", "f3"),
    "delta_mid_ci": ("95% CI", "s"),
    "split_half_distance": ("split-half move (layers)", "g"),
    "split_half_agreement": ("halves agree", "f2"),
    "verdict": ("in words", "s"),
    "subjects_best_median": ("subjects' best layer (median)", "g"),
    "subjects_best_iqr": ("IQR", "s"),
    "subjects_best": ("each subject's best layer", "s"),
    "subjects_in_group_set": ("subjects in the group set", "s"),
    "p_method": ("p-value", "s"),
    "alpha": ("alpha", "g"),
    "layer": ("layer", "d"),
    "relative_depth": ("depth", "f2"),
    "mean": ("mean", "f3"),
    "ci_low": ("CI low", "f3"),
    "ci_high": ("CI high", "f3"),
}
#: Targets above which the report summarises (histograms, top rows) instead of listing all.
MANY_TARGETS = 24


# ---------------------------------------------------------------- formatting
def format_number(value: Any, fmt: str) -> tuple[str, str | None]:
    """Display text and exact ``data-value`` of one table cell."""
    if value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return "–", "nan" if fmt != "s" else None
    if fmt == "s" or isinstance(value, str) or not isinstance(value, (int, float, np.integer, np.floating)):
        return str(value), None
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)), None
    if fmt == "d" or (isinstance(value, (int, np.integer)) and fmt == "g"):
        return str(int(value)), str(int(value))
    v = float(value)
    exact = repr(v)
    if math.isinf(v):
        return ("∞" if v > 0 else "-∞"), exact
    if fmt == "f3":
        return f"{v:.3f}", exact
    if fmt == "f2":
        return f"{v:.2f}", exact
    if fmt == "p":
        return (f"{v:.3g}" if v >= 1e-3 else f"{v:.2e}"), exact
    return f"{v:.4g}", exact


def _auto_fmt(series: pd.Series) -> str:
    if pd.api.types.is_integer_dtype(series):
        return "d"
    if pd.api.types.is_float_dtype(series):
        return "g"
    return "s"


def _table_block(
    df: pd.DataFrame,
    *,
    table_id: str,
    caption: str,
    columns: Sequence[str] | None = None,
    max_rows: int | None = None,
    sort_by: str | None = None,
    collapsed: bool = False,
    note: str = "",
    cls: str = "numbers",
    formats: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A table for the template; ``formats`` (column -> format) overrides :data:`COLUMNS`."""
    formats = formats or {}
    columns = [c for c in (columns if columns is not None else df.columns) if c in df.columns]
    shown = df
    if max_rows is not None and len(df) > max_rows:
        if sort_by is not None and sort_by in df:
            shown = df.sort_values(sort_by, ascending=False, na_position="last")
        shown = shown.head(max_rows)
        extra = f"Showing {max_rows} of {len(df)} rows"
        extra += f" (highest {sort_by} first)." if sort_by is not None else "."
        note = f"{note} {extra}".strip()
    fmts = {c: formats.get(c) or (COLUMNS[c][1] if c in COLUMNS else _auto_fmt(df[c])) for c in columns}
    rows = []
    for record in shown[columns].itertuples(index=False, name=None):
        row = []
        for col, value in zip(columns, record):
            text, exact = format_number(value, fmts[col])
            cell_cls = "num" if exact is not None else ""
            if col in ("q", "q_max", "q_vs_baseline") and exact not in (None, "nan") and float(exact) < 0.05:
                cell_cls += " sig"
            row.append({"col": col, "text": text, "value": exact, "cls": cell_cls.strip()})
        rows.append(row)
    return {
        "kind": "table",
        "table_id": table_id,
        "caption": caption,
        "columns": [{"name": c, "label": COLUMNS[c][0] if c in COLUMNS and c not in formats else c}
                    for c in columns],
        "rows": rows,
        "collapsed": collapsed,
        "note": note,
        "cls": cls,
    }


def _kv_block(items: Iterable[tuple[str, Any]], *, table_id: str, caption: str, collapsed: bool = False) -> dict:
    df = pd.DataFrame([(k, _show(v)) for k, v in items], columns=["key", "value"])
    block = _table_block(df, table_id=table_id, caption=caption, collapsed=collapsed, cls="kv")
    for col in block["columns"]:
        col["label"] = ""
    return block


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, sort_keys=True)


def _png_size(data: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def figure_data_uri(fig: Any, *, dpi: int = 96) -> tuple[str, int, int]:
    """A figure as a ``data:image/png;base64,...`` URI, with its pixel width and height."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    data = buf.getvalue()
    width, height = _png_size(data)
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii"), width, height


def _figure_block(fig: Any, caption: str, *, close: bool = True) -> dict[str, Any]:
    uri, width, height = figure_data_uri(fig)
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return {"kind": "figure", "uri": uri, "caption": caption, "width": width, "height": height}


def _text_block(text: str) -> dict[str, Any]:
    return {"kind": "text", "paragraphs": [p.strip() for p in text.split("\n\n") if p.strip()]}


# ---------------------------------------------------------------- sections
def _common(dicts: Sequence[dict[str, Any]]) -> tuple[list[tuple[str, Any]], list[str]]:
    """Keys with one value across subjects, and keys whose value varies."""
    keys: list[str] = []
    for d in dicts:
        keys += [k for k in d if k not in keys]
    same, varies = [], []
    for k in keys:
        values = [_show(d.get(k)) for d in dicts]
        if len(set(values)) == 1:
            same.append((k, dicts[0].get(k)))
        else:
            varies.append(k)
    return same, varies


def _runs_fact(prov: list[dict[str, Any]]) -> str:
    """The runs/stories the subjects' fits used, as named in their provenance."""
    runs: list[str] = []
    for p in prov:
        runs += [str(r) for r in p.get("runs", []) if str(r) not in runs]
    return f"{len(runs)}: " + ", ".join(runs) if runs else "not recorded"


def _model_fact(model: str | None) -> str:
    """The model's name, with what a built-in alias is (e.g. which SmolLM2 and its precision)."""
    from ..features.models import MODEL_ALIASES

    if not model:
        return "unknown"
    alias = MODEL_ALIASES.get(str(model))
    return f"{model}: {alias['description']}" if alias else str(model)


def _data_section(mapping: LayerMapping, space: dict[str, Any]) -> dict[str, Any]:
    results = mapping.results
    prov = [r.provenance for r in results]
    dataset = prov[0].get("dataset", "unknown")
    targets = mapping.targets
    facts = [
        ("data set", dataset),
        ("model", _model_fact(mapping.model)),
        ("subjects", f"{mapping.n_subjects}: " + ", ".join(mapping.subjects)),
        ("runs", _runs_fact(prov)),
        ("layers", f"{mapping.layers.size} (indices {int(mapping.layers.min())}–{int(mapping.layers.max())}; "
                   "0 = embeddings)"),
        ("targets", f"{len(targets)} ({space['kind']})" + (": " + ", ".join(targets) if len(targets) <= 30 else "")),
        ("score", {"r": "held-out Pearson r (mean over outer CV folds)", "r2": "held-out R²"}[mapping.score]),
        ("mapping", mapping.params),
    ]
    blocks = [_kv_block(facts, table_id="facts", caption="Data set, subjects and model")]
    settings_same, settings_vary = _common([r.settings for r in results])
    if settings_same or settings_vary:
        items = settings_same + [(k, "varies across subjects (see below)") for k in settings_vary]
        blocks.append(_kv_block(items, table_id="settings", caption="Encoding settings", collapsed=True))
    prov_same, prov_vary = _common(prov)
    prov_same = [(k, v) for k, v in prov_same if k not in ("results_dir",)]
    blocks.append(_kv_block(prov_same, table_id="provenance", caption="Provenance (common to all subjects)",
                             collapsed=True))
    per_subject = [k for k in settings_vary + prov_vary if k not in ("results_dir",)]
    if per_subject:
        rows = []
        for label, r in zip(mapping.subjects, results):
            merged = {**r.settings, **r.provenance}
            rows.append({"subject": label, **{k: _show(merged.get(k)) for k in per_subject}})
        blocks.append(_table_block(
            pd.DataFrame(rows), table_id="per-subject", caption="Provenance per subject", collapsed=True,
        ))
    return {"id": "data", "title": "Data, model and settings", "blocks": blocks}


def _profiles_section(mapping: LayerMapping) -> dict[str, Any]:
    prof, score = mapping.profiles, mapping.score
    unit = str(prof["unit"].iloc[0])
    n_units = int(prof["n"].max()) if len(prof) else 0
    ci = mapping.params.get("ci", 0.95)
    text = (
        f"Mean held-out {score} of each layer, from the embeddings (depth 0) to the last layer "
        f"(depth 1). The band is the {ci:.0%} percentile bootstrap interval over {n_units} {unit}s "
        f"({mapping.params.get('n_boot')} resamples); the dashed line marks the best layer of the "
        "mean profile, the dotted line the baseline model, and the shaded band the best-layer set: "
        "the layers not reliably worse than the best (tested against the other layers; see Best layers)."
    )
    if n_units < 2:
        text = (
            f"Mean held-out {score} of each layer (depth 0 = embeddings, 1 = last layer). With one "
            f"{unit} there is no interval."
        )
    blocks = [_text_block(text)]
    group = mapping.group if prof["target"].iloc[0] in set(mapping.group["target"]) else None
    blocks.append(_figure_block(F.plot_layer_profiles(prof, group, score=score), "Layer profile per target."))
    n_targets = prof["target"].nunique()
    if 1 < n_targets <= MANY_TARGETS:
        blocks.append(_figure_block(F.plot_score_matrix(prof, score=score), f"Mean {score} per layer and target."))
    if n_targets <= 12:
        wide = prof.pivot_table(index="layer", columns="target", values="mean", sort=False, dropna=False)
        wide = wide[list(pd.unique(prof["target"]))].sort_index().reset_index()
        wide.insert(1, "relative_depth", mapping.relative_depth[np.searchsorted(mapping.layers, wide["layer"])])
        wide.columns = [str(c) for c in wide.columns]
        blocks.append(_table_block(
            wide, table_id="profiles", caption=f"Mean {score} per layer (rows) and target (columns)",
            collapsed=True, formats={str(t): "f3" for t in wide.columns[2:]},
        ))
    return {"id": "profiles", "title": "Layer profiles", "blocks": blocks}


def _p_columns(df: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Show ``p``/``q`` as "max over layers" columns when every p-value of the table is one.

    With a mix (some results corrected for the choice of layer, some not), ``p``/``q`` keep their
    plain labels and the ``p_method`` column says which is which.
    """
    if "p_method" not in df.columns or "p" not in df.columns:
        return df, columns
    methods = df.loc[df["p"].notna(), "p_method"]
    if len(methods) and (methods == P_MAX_OVER_LAYERS).all():
        swap = {"p": "p_max", "q": "q_max"}
        return df.rename(columns=swap), [swap.get(c, c) for c in columns]
    if (methods == P_MAX_OVER_LAYERS).any() and "q" in columns:
        i = columns.index("q") + 1
        columns = columns[:i] + ["p_method"] + columns[i:]
    return df, columns


def _with_ci_text(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``delta_last_ci`` / ``delta_mid_ci`` ("[low, high]") beside the margins; "at chance"
    instead where the best layer does not predict above chance (``at_chance``), whose margins
    are no evidence."""
    df = df.copy()
    at_chance = (df["at_chance"].fillna(False).to_numpy(bool) if "at_chance" in df
                 else np.zeros(len(df), dtype=bool))
    for name in ("delta_last", "delta_mid"):
        if f"{name}_low" in df:
            df[f"{name}_ci"] = [
                "at chance" if chance else
                f"[{lo:+.3f}, {hi:+.3f}]" if np.isfinite(lo) and np.isfinite(hi) else "–"
                for lo, hi, chance in zip(df[f"{name}_low"].to_numpy(float), df[f"{name}_high"].to_numpy(float),
                                          at_chance)
            ]
    return df


def _comparison_text(mapping: LayerMapping) -> str:
    """What the best-layer sets and margins test, in words."""
    comp = mapping.comparison
    if comp is None:
        return ("These results have no layer comparisons (no permutation draws, or the layers were fitted "
                "apart), so no layer is tested against the best one: read the best layer as a point estimate.")
    text = ("Best-layer set (tested against the other layers, not against chance): "
            + describe_comparison(comp.source, mapping.layers.size, comp.n_draws, comp.alpha))
    if mapping.n_subjects > 1:
        text += (" Δr best − last and Δr best − intermediate: for each subject, the best layer (and the best "
                 "intermediate layer, relative depth 1/3–2/3) of the other subjects' mean profile "
                 "(leave-one-subject-out), so the choice does not inflate them; the mean over subjects of "
                 f"that subject's r there minus its r at the last (or that intermediate) layer, with a {comp.ci:.0%} "
                 "interval from the same sign flips.")
    else:
        text += (f" Δr best − last and Δr best − intermediate: the best layer's r minus the last layer's and "
                 f"minus the best intermediate layer's (relative depth 1/3–2/3), with {comp.ci:.0%} intervals "
                 "from the same draws; the best layer is chosen on these data, so they are optimistic.")
    text += (" The margins compare held-out r, which can be negative; where even the best layer does not "
             "predict above chance (its p against chance above alpha) they are no evidence, and the table "
             "and the verdict say \"at chance\" instead.")
    return text


def _best_section(mapping: LayerMapping, max_rows: int) -> dict[str, Any]:
    score, g = mapping.score, _with_ci_text(mapping.group)
    many = len(g) > MANY_TARGETS
    who = f"the mean over {mapping.n_subjects} subjects" if mapping.n_subjects > 1 else f"subject {mapping.subjects[0]}"
    blocks = [_text_block(
        f"Best layer of {who} per target: the layer with the highest mean {score}, as an index and "
        "as a relative depth, the layer-preference index (score-weighted mean depth, negative "
        f"scores count as zero), and the gain of the best layer over the last layer and over the "
        f"baseline model. The best-layer {score} and the gains are maxima over "
        f"{mapping.layers.size} layers of noisy held-out scores, so they are optimistically biased "
        "(the more so the more layers and the noisier the target)"
        + ("; the group test of the significance section, which chooses each subject's layer from "
           "the other subjects (leave-one-subject-out), is not." if mapping.n_subjects > 1 else ".")
    ), _text_block(_comparison_text(mapping))]
    if many:
        blocks.append(_figure_block(F.plot_depth_histogram(g, column="best_depth"), "Best-layer depth across targets."))
        blocks.append(_figure_block(F.plot_depth_histogram(g, column="preference_index"),
                                    "Layer-preference index across targets."))
    else:
        blocks.append(_figure_block(F.plot_best_layers(g, score=score),
                                    f"Best-layer {score} (with baseline and noise ceiling) and best depth per target."))
    cols = ["target", "best_layer", "best_set", "delta_last", "delta_last_ci", "mid_layer", "delta_mid",
            "delta_mid_ci", "split_half_distance", "best_depth", "preference_index", score, f"{score}_sem",
            f"{score}_last", f"baseline_{score}", "gain_over_baseline"]
    blocks.append(_table_block(
        g, table_id="group", caption=f"Best layer per target ({who})", columns=cols, max_rows=max_rows, sort_by=score,
    ))
    if "verdict" in g and not many:
        blocks.append(_table_block(g, table_id="verdicts", caption="The best layers in words",
                                   columns=["target", "verdict"], cls="text"))
    if mapping.stability is not None and len(mapping.stability) and not many:
        blocks.append(_figure_block(
            F.plot_best_layer_stability(mapping.stability, g),
            f"Split-half stability ({mapping.params.get('n_splits')} random splits of the {mapping.n_subjects} "
            "subjects into halves): how often each layer is the best of a half's mean profile; beside each target, "
            "the median distance between the two halves' best layers.",
        ))
    if mapping.n_subjects > 1:
        if mapping.n_subjects >= 3 and not many:
            blocks.append(_figure_block(F.plot_subject_best_layers(mapping.best), "Best layer of each subject."))
        cols = ["subject", "target", "best_layer", "best_depth", "preference_index", score, "p", "q",
                f"baseline_{score}", "gain_over_baseline", "gain_over_last", "noise_ceiling"]
        shown, cols = _p_columns(mapping.best, cols)
        blocks.append(_table_block(
            shown, table_id="best", caption="Best layer per subject and target", columns=cols,
            max_rows=max_rows if many else None, sort_by=score if many else None, collapsed=True,
        ))
    else:
        cols = ["subject", "target", "best_layer", "best_depth", score, "r2", "p", "q", "alpha"]
        shown, cols = _p_columns(mapping.best, cols)
        blocks.append(_table_block(
            shown, table_id="best", caption="Scores at the best layer", columns=cols,
            max_rows=max_rows, sort_by=score,
        ))
    return {"id": "best", "title": "Best layers", "blocks": blocks}


def _unique_section(mapping: LayerMapping, max_rows: int) -> dict[str, Any] | None:
    """What each layer adds beyond the baseline (the fits' unique contributions); None without."""
    u = mapping.unique
    if u is None:
        return None
    g = mapping.group.copy()
    names = str(g["unique_baseline"].iloc[0]) if "unique_baseline" in g and len(g) else "the baseline"
    ci = mapping.params.get("ci", 0.95)
    if mapping.n_subjects > 1:
        how = (f"Per layer, the mean Δr² over the {mapping.n_subjects} subjects, its one-sided sign-flip p-value "
               f"(Δr² > 0) and its {ci:.0%} sign-flip interval. The best layer by unique contribution is that "
               "of the mean Δr² profile, and its set holds the layers not reliably worse than it, tested "
               "against the other layers by the same sign flips. The best layer is chosen on these data, so "
               "its Δr² and p are optimistic; unique_loso_p chooses each subject's layer from the other "
               "subjects (leave-one-subject-out) and is not.")
    else:
        how = ("Per layer, the fit's own p-value (Δr² > 0), interval and best-layer set of the unique "
               "contribution, from the same kind of draws as its layer comparisons.")
    score = str(g["unique_score"].iloc[0]) if "unique_score" in g and len(g) else "squared-r"
    text = (f"What each layer adds beyond the baseline ({names}): the held-out Δr² = {delta_formula(score)}, "
            "the baseline and the layer fitted together (a banded ridge, one penalty per band) "
            "and the baseline alone, on the same folds. A layer that only re-encodes the baseline (word rate, "
            "length, frequency, position, surprisal) adds nothing, however high its raw r. Δr² is held out, so "
            f"it can be negative (the added band costs more than it brings). {how} The margins compare "
            "held-out r, which can be negative.")
    blocks = [_text_block(text)]
    if set(mapping.profiles["target"]) & set(u["target"]):  # not a mean over many targets
        n = u["target"].nunique()
        blocks.append(_figure_block(
            F.plot_unique_profiles(mapping.profiles, u, mapping.group, score=mapping.score),
            "Raw profile and unique contribution per target, each with its best-layer set shaded"
            + (f" (the first 12 of {n} targets)." if n > 12 else "."),
        ))
    g["unique_delta_r2_ci"] = [f"[{lo:+.4f}, {hi:+.4f}]" if np.isfinite(lo) and np.isfinite(hi) else "–"
                               for lo, hi in zip(g["unique_delta_r2_low"].to_numpy(float),
                                                 g["unique_delta_r2_high"].to_numpy(float))]
    cols = ["target", "best_layer", "best_set", "unique_best_layer", "unique_delta_r2", "unique_delta_r2_ci",
            "unique_p", "unique_best_set", "unique_differs", "unique_loso_effect", "unique_loso_p"]
    blocks.append(_table_block(g, table_id="unique", caption="Best layer by unique contribution beside the raw best",
                               columns=[c for c in cols if c in g], max_rows=max_rows, sort_by="unique_delta_r2",
                               formats={"unique_delta_r2": "g", "unique_loso_effect": "g", "unique_p": "p",
                                        "unique_loso_p": "p"}))
    if u["target"].nunique() <= 12:
        blocks.append(_table_block(u, table_id="unique-layers", caption="Unique contribution per layer and target",
                                   collapsed=True, formats={"p": "p", **{c: "g" for c in ("delta_r2", "delta_r2_low",
                                                                                       "delta_r2_high", "delta_r")}}))
    return {"id": "unique", "title": "Beyond the baseline", "blocks": blocks}


def _significance_section(mapping: LayerMapping, max_rows: int) -> dict[str, Any]:
    score, g = mapping.score, mapping.group
    test = str(g["test"].iloc[0])
    n_sig = int((g["q"] < 0.05).sum())
    if mapping.n_subjects > 1:
        text = (
            f"Group test ({test}). For each subject, the layer is chosen from the mean profile of the "
            "other subjects (leave-one-subject-out), so the test does not reuse the data that chose "
            f"the layer; LOSO effect is the mean over subjects of that {score} minus the baseline "
            "(or minus zero without a baseline). p vs baseline: one-sided sign-flip permutation test "
            "of that effect; p (t-test): one-sample t-test; q: Benjamini-Hochberg FDR across targets. "
            "These p-values test the best layer against the baseline model, not against the other "
            "layers (for that, see the best-layer sets of the Best layers section)."
        )
    elif (g.get("p_method", pd.Series(dtype=object)) == P_MAX_OVER_LAYERS).any():
        text = (
            f"p (max over layers): the encoding model's permutation p-value of {score} at the best "
            f"layer, against the maximum over all {mapping.layers.size} layers of the permutation "
            "null (the same permutations for every layer), so it is corrected for choosing the "
            "best of the layers; q: its Benjamini-Hochberg FDR across targets (both from the "
            "results file)."
        )
    else:
        text = (
            f"p: the encoding model's permutation p-value of {score} at the best layer, for that "
            f"layer alone: it is not corrected for choosing the best of the {mapping.layers.size} "
            "layers (these results have no max-over-layers p-values, e.g. because the layers were "
            "fitted apart), so it is optimistic; q: its Benjamini-Hochberg FDR across targets "
            "(both from the results file)."
        )
    if mapping.n_subjects == 1 and mapping.results:
        null = describe_null(mapping.results[0].settings)
        text += f" {null}" if null else ""
    text += f"\n\n{n_sig} of {len(g)} targets have q < 0.05."
    if "noise_ceiling" in g and np.isfinite(np.asarray(g["noise_ceiling"], dtype=float)).any():
        text += (
            " The noise ceiling is the highest r the subjects' responses allow, from their "
            "reliability (e.g. repeated presentations); r / ceiling is the share of the explainable "
            "signal the best layer reaches."
        )
    else:
        text += (
            " Individual subjects have no noise ceiling here: agreement between subjects bounds only "
            "the signal they share, so the inter-subject ceiling is given for the group-mean "
            "response (its own section)."
        )
    cols = ["target", "n_subjects", score, "noise_ceiling", "ceiling_fraction", "loso_effect", "t", "p_t", "p", "q"]
    if mapping.n_subjects > 1:
        # these p-values test the best layer against the baseline model, across subjects
        shown = g.rename(columns={"p": "p_vs_baseline", "q": "q_vs_baseline"})
        cols = [{"p": "p_vs_baseline", "q": "q_vs_baseline"}.get(c, c) for c in cols]
    else:
        shown, cols = _p_columns(g, cols)
    block = _table_block(shown, table_id="significance", caption="Significance and noise ceiling per target",
                         columns=cols, max_rows=max_rows, sort_by=score)
    return {"id": "significance", "title": "Significance and noise ceiling", "blocks": [_text_block(text), block]}


def _brain_section(mapping: LayerMapping, space: dict[str, Any], notes: list[str]) -> dict[str, Any] | None:
    if space["kind"] not in ("volume", "surface"):
        return None
    g = mapping.group
    per_target = {name: g[name].to_numpy(float) for name in ("best_depth", "preference_index", mapping.score)}
    try:
        maps = mapping_maps(per_target, space)
    except FileNotFoundError as err:
        if space["kind"] != "surface":
            raise
        notes.append(f"No surface maps: {err}")  # a mesh that cannot be fetched offline
        logger.warning("no surface maps: %s", err)
        return None
    titles = {"best_depth": "best layer (relative depth)", "preference_index": "layer-preference index",
              mapping.score: f"best-layer {mapping.score}"}
    scales = {"best_depth": ("viridis", 0.0, 1.0), "preference_index": ("viridis", 0.0, 1.0)}
    vals = per_target[mapping.score]
    top = float(np.nanmax(np.abs(vals))) if np.isfinite(vals).any() else 1.0
    scales[mapping.score] = ("RdBu_r", -top, top)
    blocks = [_text_block(
        "Per target (voxel or vertex) values of the group table drawn on the brain: the depth of "
        f"the best layer, the layer-preference index and the best-layer {mapping.score}."
    )]
    for name, img in maps.items():
        cmap, vmin, vmax = scales[name]
        if space["kind"] == "volume":
            fig = F.plot_brain_map(img, title=titles[name], kind="glass", cmap=cmap, vmin=vmin, vmax=vmax)
        else:
            fig = F.plot_surface_map(img, mesh=space["mesh"], title=titles[name], cmap=cmap, vmin=vmin, vmax=vmax)
        view = "glass brain" if space["kind"] == "volume" else space["mesh"]
        blocks.append(_figure_block(fig, f"{titles[name]} ({view})."))
    if space["kind"] == "volume":
        cmap, vmin, vmax = scales[mapping.score]
        fig = F.plot_brain_map(maps[mapping.score], title=titles[mapping.score], kind="stat", cmap=cmap,
                               vmin=vmin, vmax=vmax)
        blocks.append(_figure_block(fig, f"{titles[mapping.score]} (slices)."))
    return {"id": "brain", "title": "Brain maps", "blocks": blocks}


def _split_section(mapping: LayerMapping) -> dict[str, Any] | None:
    """Banded-model split scores (mean over subjects), one table per score name."""
    keys: list[str] = []
    for res in mapping.results:
        keys += [k for k in res.split_scores if k not in keys]
    if not keys:
        return None
    blocks = [_text_block(
        "Split scores of the banded model: the share of the prediction each band (layer, layer "
        "group or nuisance regressor) carries, averaged over the subjects that have it."
    )]
    for key in keys:
        arrays = [np.atleast_2d(res.split_scores[key]) for res in mapping.results if key in res.split_scores]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1 or next(iter(shapes))[1] != len(mapping.targets):
            raise ValueError(
                f"split scores {key!r} have shapes {sorted(shapes)} across subjects; expected "
                f"(n_bands, {len(mapping.targets)}) in every results file."
            )
        mean = np.mean(arrays, axis=0)
        names = mapping.results[0].settings.get("bands")
        if not (isinstance(names, list) and len(names) == mean.shape[0]):
            names = [key] if mean.shape[0] == 1 else [f"band {i}" for i in range(mean.shape[0])]
        table = pd.DataFrame(mean, columns=mapping.targets)
        table.insert(0, "band", [str(n) for n in names])
        blocks.append(_table_block(
            table, table_id=f"split-{key}", caption=f"Split scores {key!r} per band (rows) and target (columns)",
            formats={t: "f3" for t in mapping.targets}, max_rows=None,
        ))
    return {"id": "banded", "title": "Banded model", "blocks": blocks}


def _warnings_section(mapping: LayerMapping, extra: Sequence[str]) -> dict[str, Any]:
    seen: dict[str, list[str]] = {}
    for label, res in zip(mapping.subjects, mapping.results):
        for message in res.warnings:
            seen.setdefault(str(message), []).append(label)
    items = []
    for message, who in seen.items():
        source = "all subjects" if len(who) == mapping.n_subjects and len(who) > 1 else "subject " + ", ".join(who)
        items.append({"message": message, "source": source})
    items += [{"message": m, "source": "report"} for m in extra]
    return {"id": "warnings", "title": f"Warnings ({len(items)})", "blocks": [{"kind": "warnings", "entries": items}]}


def _extra_section(section: ReportSection, index: int) -> dict[str, Any]:
    blocks = [_text_block(section.text)] if section.text else []
    blocks += [_figure_block(fig, caption, close=False) for caption, fig in section.figures]
    blocks += [
        _table_block(table, table_id=f"extra-{index}-{i}", caption=caption)
        for i, (caption, table) in enumerate(section.tables)
    ]
    return {"id": f"extra-{index}", "title": section.title, "blocks": blocks}


_HOW_TO_READ = [
    ("r", "Pearson correlation between the measured and the predicted response on held-out data "
          "(outer cross-validation), averaged over folds. 0 = no prediction."),
    ("Layer, relative depth", "Layer 0 is the embedding layer; relative depth = layer / last layer, so "
                              "models of different depth compare on one axis from 0 to 1."),
    ("Best layer", "The layer with the highest score; for a group, of the mean profile over subjects. "
                   "The best-layer score is the maximum over layers of noisy held-out scores, so it "
                   "is optimistically biased (more so with more layers and noisier targets)."),
    ("Layer-preference index", "Score-weighted mean depth of all layers (negative scores count as zero): "
                               "a smoother summary of where along the depth a target is predicted."),
    ("Gain", "Best-layer score minus the last layer's score, and minus the baseline model's score "
             "(e.g. word rate and sound power). Being differences from a maximum over layers, the "
             "gains are optimistically biased too; the group sign-flip test, which chooses each "
             "subject's layer from the other subjects (leave-one-subject-out), is not."),
    ("Interval", "Percentile bootstrap interval of the mean over subjects (or over CV folds for one subject)."),
    ("Best-layer set", "The layers the data cannot rule out as the best one, tested against the other "
                       "layers (not against chance): a layer leaves the set only when another layer "
                       "beats it reliably (one-sided, alpha = 0.05, corrected for the number of layers "
                       "by the maximum over them). A wide set (more than a third of the depth) means "
                       "the data cannot single out a best layer. Across subjects the test flips the "
                       "signs of the subjects' paired differences; for one response it uses the "
                       "permutation null's draws, which keep the time structure."),
    ("Δr best − last, best − intermediate", "How much the best layer beats the last layer and the best "
                                            "layer of the middle third of the depth, with a 95% interval; "
                                            "an interval that includes 0 means no reliable difference. "
                                            "The margins compare held-out r, which can be negative."),
    ("Unique contribution (Δr²)", "What a layer adds beyond the baseline regressors: the held-out r² (r·|r|, "
                                  "or R² with encoding.unique_score: R2) of the "
                                  "baseline and the layer fitted together minus that of the baseline alone, on "
                                  "the same folds (shown only when the fits have a baseline). It can be "
                                  "negative; its best layer and set can differ from the raw ones."),
    ("Split-half stability", "The subjects are split into random halves many times; how often each layer "
                             "is the best of a half's mean profile, and the median distance (in layers) "
                             "between the two halves' best layers. A best layer that moves a lot between "
                             "halves is not a stable property of the group."),
    ("p, q", "Each p-value says what it was tested against: \"vs chance\" (the encoding model's "
             "permutation test of a layer's score), \"vs baseline\" (the group test of the best "
             "layer against the baseline model, across subjects) or \"vs other layers\" (the "
             "best-layer sets). p-values of the test named in the significance section, and their Benjamini-Hochberg "
             "false discovery rate across targets; q < 0.05 is shown in bold. At a subject's best "
             "layer, \"p (max over layers)\" is the encoding model's permutation p-value of the best "
             "layer's score against the maximum over all layers of the permutation null (the same "
             "permutations for every layer): it is corrected for choosing the best of the layers. "
             "A plain \"p\" there (results without max-over-layers p-values) is the best layer's "
             "own p-value, not corrected for that choice, and so optimistic. The encoding model's "
             "permutation null shifts each run's response circularly and refits the held-out "
             "predictions (unless the results say it shifted test folds against fixed "
             "predictions, whose p-values are too small)."),
    ("Noise ceiling", "The highest r the data allow; r / ceiling is the share reached. For the "
                      "group-mean response it comes from inter-subject agreement (the reliability of "
                      "the mean of N subjects); a single subject's needs repeated presentations."),
]


# ---------------------------------------------------------------- entry points
def render_report(
    mapping: LayerMapping,
    *,
    title: str | None = None,
    mask_img: Any = None,
    sections: Sequence[ReportSection] = (),
    max_table_rows: int = 200,
) -> str:
    """Render the HTML report of a :class:`~neuroenc.mapping.LayerMapping` as a string.

    See :func:`make_report` for the parameters.
    """
    if not isinstance(mapping, LayerMapping):
        raise TypeError(f"render_report needs a LayerMapping (from map_layers), got {type(mapping).__name__}.")
    _check_positive("max_table_rows", max_table_rows, integer=True)
    for s in sections:
        if not isinstance(s, ReportSection):
            raise TypeError(f"sections must be ReportSection objects, got {type(s).__name__}.")
    import jinja2

    space = target_space(mapping.results[0], mask_img=mask_img)
    dataset = mapping.results[0].provenance.get("dataset")
    if title is None:
        title = f"neuroenc report: {mapping.model or 'model'}" + (f" on {dataset}" if dataset else "")
    notes = []
    if space["kind"] == "roi" and space.get("space") not in (None, "roi"):
        notes.append(
            f"The targets are in space {space['space']!r}, but the results name no mask, affine or "
            "fsaverage mesh, so there are no brain maps."
        )
    if mapping.profiles["ci_low"].isna().all():
        notes.append("The layer profiles have no confidence interval (one subject and no fold scores).")
    parts = [
        _data_section(mapping, space),
        _profiles_section(mapping),
        _best_section(mapping, max_table_rows),
        _unique_section(mapping, max_table_rows),
        _brain_section(mapping, space, notes),
        _significance_section(mapping, max_table_rows),
        _split_section(mapping),
        _warnings_section(mapping, notes),
    ]
    if space["kind"] == "sensor":  # MEG/EEG: topomaps per band of layers
        parts.append(_extra_section(sensor_section(mapping), "sensors"))
    parts += [_extra_section(s, i) for i, s in enumerate(sections)]
    parts.append({"id": "how-to-read", "title": "How to read this report",
                  "blocks": [{"kind": "definitions", "entries": _HOW_TO_READ}]})
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("neuroenc.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2").render(
        title=title,
        version=__version__,
        generated=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        summary=mapping.summary(),
        sections=[p for p in parts if p is not None],
    )


def make_report(
    results: LayerMapping | str | os.PathLike | EncodingResults | Iterable[str | os.PathLike | EncodingResults],
    out: str | os.PathLike,
    *,
    title: str | None = None,
    mask_img: Any = None,
    sections: Sequence[ReportSection] = (),
    metrics: pd.DataFrame | None = None,
    interventions: pd.DataFrame | None = None,
    score: str = "r",
    n_boot: int = 1000,
    n_permutations: int = 10000,
    random_state=0,
    max_table_rows: int = 200,
) -> Path:
    """Write the self-contained HTML report of one model's encoding results.

    Parameters
    ----------
    results : LayerMapping | path | EncodingResults | iterable of these
        A mapping from :func:`~neuroenc.mapping.map_layers`, or the results to map: one file
        per subject (files, folders, glob patterns or objects).
    out : path
        The HTML file to write (written atomically; folders are created).
    title : str | None
        Page title; default from the model and data set.
    mask_img : Nifti1Image | path | None
        The mask of voxel targets, when the results' provenance does not name it.
    sections : sequence of ReportSection
        Extra sections, rendered after the mapping sections.
    metrics, interventions : DataFrame | None
        Tidy layer-science tables; when given, a "Layer science" section is added (see
        :func:`~neuroenc.report.sections.layer_science_section`).
    score : "r" | "r2"
        The score to map.
    n_boot, n_permutations, random_state
        Passed to :func:`~neuroenc.mapping.map_layers` (ignored when ``results`` is a mapping).
    max_table_rows : int
        Longest table; longer ones show the highest-scoring rows.

    Returns
    -------
    path : Path
        The report file.

    Raises
    ------
    ForeignFileError
        If ``out`` is a file that neuroenc did not write (a report carries the ``generator``
        meta tag ``neuroenc``; another report of neuroenc's is replaced).
    """
    if isinstance(results, LayerMapping):
        mapping = results
    else:
        mapping = map_layers(results, score=score, n_boot=n_boot, n_permutations=n_permutations,
                             random_state=random_state)
    sections = list(sections)
    if metrics is not None or interventions is not None:
        sections.append(layer_science_section(metrics, interventions, profiles=mapping.profiles, score=mapping.score))
    html = render_report(mapping, title=title, mask_img=mask_img, sections=sections, max_table_rows=max_table_rows)
    out = Path(out).expanduser()
    check_replace(out, "report")  # never over a file neuroenc did not write
    with atomic_path(out) as tmp:
        Path(tmp).write_text(html, encoding="utf-8")
    logger.info("wrote the report to %s (%.1f MB)", out, out.stat().st_size / 1e6)
    return out
