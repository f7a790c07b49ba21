"""Figures of the report. Each takes a tidy table (or an image) and returns a matplotlib Figure.

None calls ``plt.show()``; the caller saves or embeds the figure and closes it.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .._validation import _check_option, _preview
from ..encoding.best import best_index
from ..mapping.summary import parse_layer_set

#: Colour of the main score line, and of the baseline.
_C_SCORE = "#1f5fa8"
_C_BASE = "#8a8a8a"
_C_CEIL = "#c0392b"
_C_SET = "#e6a019"
_C_UNIQUE = "#2e8b57"


def _set_spans(best_set: str, layers: np.ndarray, depth: np.ndarray) -> list[tuple[float, float]]:
    """Depth intervals covering the layers of ``best_set`` (``"3, 12–30"``), each layer widened by
    half the distance to its neighbours, contiguous layers merged."""
    members = set(parse_layer_set(best_set))
    order = np.argsort(depth)
    layers, depth = np.asarray(layers)[order], np.asarray(depth, dtype=float)[order]
    half = np.diff(depth) / 2 if depth.size > 1 else np.array([0.02])
    left = depth - np.concatenate([[half[0]], half])
    right = depth + np.concatenate([half, [half[-1]]])
    spans: list[tuple[float, float]] = []
    for i, layer in enumerate(layers):
        if int(layer) not in members:
            continue
        if spans and np.isclose(spans[-1][1], left[i]):
            spans[-1] = (spans[-1][0], right[i])
        else:
            spans.append((left[i], right[i]))
    return spans


def require_columns(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise unless ``table`` is a non-empty DataFrame with ``columns`` (``what`` names it)."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(table).__name__}.")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {_preview(missing)}; it has {_preview(list(table.columns))}.")
    if table.empty:
        raise ValueError(f"{what} is empty; nothing to plot.")


def _grid(n: int, ncols: int, panel: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def plot_layer_profiles(
    profiles: pd.DataFrame,
    group: pd.DataFrame | None = None,
    *,
    score: str = "r",
    ncols: int = 3,
    title: str | None = None,
) -> Figure:
    """One panel per target: mean score against relative depth, with its bootstrap interval.

    Parameters
    ----------
    profiles : DataFrame
        From :func:`~neuroenc.mapping.layer_profiles`: ``target, layer, relative_depth, mean,
        ci_low, ci_high``.
    group : DataFrame | None
        From :func:`~neuroenc.mapping.group.group_summary`: marks the best layer (dashed line) and the
        baseline (grey line) of each target, and, with a ``best_set`` column (e.g.
        ``"12–30"``), shades the layers not reliably worse than the best.
    score : str
        The score's name, for the axis label.
    ncols : int
        Panels per row.
    title : str | None
        Figure title.

    Returns
    -------
    fig : Figure
    """
    require_columns(profiles, ("target", "relative_depth", "mean", "ci_low", "ci_high"), "the profiles table")
    targets = list(pd.unique(profiles["target"]))
    fig, axes = _grid(len(targets), ncols, (3.4, 2.5))
    info = group.set_index("target") if group is not None else None
    unit = str(profiles["unit"].iloc[0]) if "unit" in profiles else "unit"
    for ax, target in zip(axes, targets):
        p = profiles[profiles["target"] == target].sort_values("relative_depth")
        x = p["relative_depth"].to_numpy(float)
        ax.fill_between(x, p["ci_low"].to_numpy(float), p["ci_high"].to_numpy(float),
                        color=_C_SCORE, alpha=0.2, linewidth=0)
        ax.plot(x, p["mean"].to_numpy(float), color=_C_SCORE, marker="o", markersize=2.5, linewidth=1.5)
        if info is not None and target in info.index:
            row = info.loc[target]
            best_set = row.get("best_set")
            if isinstance(best_set, str) and best_set:
                for lo, hi in _set_spans(best_set, p["layer"].to_numpy(int), x):
                    ax.axvspan(lo, hi, color=_C_SET, alpha=0.18, linewidth=0)
            if np.isfinite(row.get("best_depth", np.nan)):
                ax.axvline(row["best_depth"], color=_C_SCORE, linestyle="--", linewidth=1)
            base = row.get(f"baseline_{score}", np.nan)
            if np.isfinite(base):
                ax.axhline(base, color=_C_BASE, linestyle=":", linewidth=1.2)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_title(str(target), fontsize=10)
        ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel("relative depth", fontsize=8)
        ax.set_ylabel(f"mean {score}", fontsize=8)
        ax.tick_params(labelsize=7)
    if title is None:
        title = f"Layer profiles (band: bootstrap interval over {unit}s; dashed: best layer; dotted: baseline"
        shaded = info is not None and "best_set" in info
        title += "; shaded: layers not reliably worse than the best)" if shaded else ")"
    fig.suptitle(title, fontsize=10)
    return fig


def plot_unique_profiles(
    profiles: pd.DataFrame,
    unique: pd.DataFrame,
    group: pd.DataFrame | None = None,
    *,
    score: str = "r",
    max_targets: int = 12,
    title: str | None = None,
) -> Figure:
    """Per target, the raw layer profile (left) beside the unique contribution beyond the
    baseline (right), each with its interval and its best-layer set shaded.

    Parameters
    ----------
    profiles : DataFrame
        The raw profiles (:func:`~neuroenc.mapping.layer_profiles`: ``target, layer,
        relative_depth, mean, ci_low, ci_high``).
    unique : DataFrame
        The unique contributions (:func:`~neuroenc.mapping.unique.unique_layers`: ``target,
        layer, relative_depth, delta_r2, delta_r2_low, delta_r2_high``).
    group : DataFrame | None
        One row per target with ``best_set`` and ``best_depth`` (the raw set and best layer) and
        ``unique_best_set`` and ``unique_best_layer`` (those by unique contribution), shaded and
        marked; without it nothing is shaded.
    score : str
        The raw score's name, for the axis label.
    max_targets : int
        Draw the first this many targets found in both tables.
    title : str | None
        Figure title.

    Returns
    -------
    fig : Figure
    """
    require_columns(profiles, ("target", "layer", "relative_depth", "mean", "ci_low", "ci_high"),
                    "the profiles table")
    require_columns(unique, ("target", "layer", "relative_depth", "delta_r2", "delta_r2_low", "delta_r2_high"),
                    "the unique-contribution table")
    have = set(profiles["target"].astype(str))
    targets = [t for t in pd.unique(unique["target"].astype(str)) if t in have][:max_targets]
    if not targets:
        raise ValueError("the profiles and the unique-contribution tables have no target in common; "
                         f"the unique table has {_preview(list(pd.unique(unique['target'])))}.")
    fig = Figure(figsize=(6.8, 2.3 * len(targets)), layout="constrained")
    axes = fig.subplots(len(targets), 2, squeeze=False)
    info = group.set_index(group["target"].astype(str)) if group is not None else None
    panels = (("mean", "ci_low", "ci_high", "best_set", "best_depth", f"mean {score}", _C_SCORE),
              ("delta_r2", "delta_r2_low", "delta_r2_high", "unique_best_set", "unique_best_layer",
               "Δr² beyond baseline", _C_UNIQUE))
    for row_axes, target in zip(axes, targets):
        for ax, table, (col, lo, hi, set_col, best_col, label, color) in zip(row_axes, (profiles, unique), panels):
            p = table[table["target"].astype(str) == target].sort_values("relative_depth")
            x = p["relative_depth"].to_numpy(float)
            ax.fill_between(x, p[lo].to_numpy(float), p[hi].to_numpy(float), color=color, alpha=0.2, linewidth=0)
            ax.plot(x, p[col].to_numpy(float), color=color, marker="o", markersize=2.5, linewidth=1.5)
            if info is not None and target in info.index:
                r = info.loc[target]
                best_set = r.get(set_col)
                if isinstance(best_set, str) and best_set:
                    for a, b in _set_spans(best_set, p["layer"].to_numpy(int), x):
                        ax.axvspan(a, b, color=_C_SET, alpha=0.18, linewidth=0)
                best = r.get(best_col)
                depths = dict(zip(p["layer"].to_numpy(int).tolist(), x.tolist()))
                if best is not None and not pd.isna(best):  # raw: a depth; unique: a layer
                    depth = float(best) if best_col == "best_depth" else depths.get(int(best))
                    if depth is not None:
                        ax.axvline(depth, color=color, linestyle="--", linewidth=1)
            ax.axhline(0, color="black", linewidth=0.5)
            ax.set_title(f"{target}: {'raw' if table is profiles else 'unique'}", fontsize=9)
            ax.set_xlim(-0.02, 1.02)
            ax.set_xlabel("relative depth", fontsize=8)
            ax.set_ylabel(label, fontsize=8)
            ax.tick_params(labelsize=7)
    if title is None:
        title = ("Raw profile (left) and unique contribution beyond the baseline (right); bands: intervals; "
                 "dashed: best layer; shaded: best-layer set")
    fig.suptitle(title, fontsize=9)
    return fig


def plot_best_layers(group: pd.DataFrame, *, score: str = "r", title: str | None = None) -> Figure:
    """Per target (labelled with its name): best-layer score vs baseline and ceiling, and best depth.

    Parameters
    ----------
    group : DataFrame
        From :func:`~neuroenc.mapping.group.group_summary` (or :func:`best_layers` of one subject):
        ``target, best_depth, <score>`` and optionally ``<score>_sem``, ``baseline_<score>``,
        ``noise_ceiling``, ``preference_index``.

    Returns
    -------
    fig : Figure
    """
    require_columns(group, ("target", "best_depth", score), "the group table")
    names = group["target"].astype(str).tolist()
    y = np.arange(len(names))
    fig = Figure(figsize=(9, 1.2 + 0.32 * len(names)), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    err = group[f"{score}_sem"].to_numpy(float) if f"{score}_sem" in group else None
    ax1.barh(y, group[score].to_numpy(float), xerr=err, color=_C_SCORE, alpha=0.8, label=f"best-layer {score}")
    if f"baseline_{score}" in group:
        ax1.scatter(group[f"baseline_{score}"], y, marker="|", s=200, color="black", label="baseline", zorder=3)
    if "noise_ceiling" in group and score == "r" and np.isfinite(group["noise_ceiling"]).any():
        ax1.scatter(group["noise_ceiling"], y, marker="d", s=25, color=_C_CEIL, label="noise ceiling", zorder=3)
    ax1.axvline(0, color="black", linewidth=0.5)
    ax1.set_yticks(y, names, fontsize=8)
    ax1.invert_yaxis()
    ax1.set_xlabel(score)

    ax2.barh(y, group["best_depth"].to_numpy(float), color="#5b8c5a", alpha=0.8, label="best layer")
    if "preference_index" in group:
        ax2.scatter(group["preference_index"], y, marker="o", s=20, color="black", label="preference index", zorder=3)
    ax2.set_xlim(0, 1.02)
    ax2.set_xlabel("relative depth")
    handles = ax1.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.suptitle(title or "Best layer per target", fontsize=10)
    return fig


def plot_subject_best_layers(best: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Each subject's best-layer depth per target (dots), with the median (bar)."""
    require_columns(best, ("target", "best_depth"), "the best-layer table")
    names = list(pd.unique(best["target"].astype(str)))
    fig = Figure(figsize=(9, 0.9 + 0.32 * len(names)), layout="constrained")
    ax = fig.subplots()
    jitter = np.random.default_rng(0)  # fixed jitter: the figure is the same on every run
    for i, name in enumerate(names):
        d = best.loc[best["target"].astype(str) == name, "best_depth"].to_numpy(float)
        d = d[np.isfinite(d)]
        ax.scatter(d, i + jitter.uniform(-0.15, 0.15, d.size), s=12, color=_C_SCORE, alpha=0.7)
        if d.size:
            ax.plot([np.median(d)] * 2, [i - 0.3, i + 0.3], color="black", linewidth=2)
    ax.set_yticks(np.arange(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("best layer (relative depth) of each subject; black: median")
    fig.suptitle(title or "Best layer per subject", fontsize=10)
    return fig


def plot_best_layer_stability(shares: pd.DataFrame, summary: pd.DataFrame | None = None, *,
                              title: str | None = None) -> Figure:
    """How often each layer is the best of a random half of the subjects, per target (heat map).

    Parameters
    ----------
    shares : DataFrame
        From :func:`~neuroenc.mapping.split_half_stability`: ``target, layer, share_best``.
    summary : DataFrame | None
        Its per-target summary (or the group table): ``split_half_distance`` is written beside
        each target's name.

    Returns
    -------
    fig : Figure
    """
    require_columns(shares, ("target", "layer", "share_best"), "the stability table")
    mat = shares.pivot_table(index="target", columns="layer", values="share_best", sort=False, dropna=False)
    mat = mat.loc[list(pd.unique(shares["target"]))]
    labels = [str(t) for t in mat.index]
    if summary is not None and "split_half_distance" in summary:
        dist = summary.set_index("target")["split_half_distance"]
        labels = [f"{t} (median move {dist.get(t, np.nan):.0f})" if np.isfinite(dist.get(t, np.nan)) else str(t)
                  for t in mat.index]
    fig = Figure(figsize=(max(5.0, 0.22 * mat.shape[1] + 3.0), 1.2 + 0.35 * mat.shape[0]), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(mat.to_numpy(float), aspect="auto", cmap="Greens", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks(np.arange(mat.shape[0]), labels, fontsize=8)
    step = max(1, mat.shape[1] // 16)
    ax.set_xticks(np.arange(0, mat.shape[1], step), [str(c) for c in mat.columns[::step]], fontsize=7)
    ax.set_xlabel("layer")
    fig.colorbar(im, ax=ax, label="share of halves where best")
    fig.suptitle(title or "Split-half stability of the best layer: how often each layer is the best of a random "
                 "half of the subjects", fontsize=9)
    return fig


def plot_score_matrix(profiles: pd.DataFrame, *, score: str = "r", title: str | None = None) -> Figure:
    """Heat map of the mean score per (layer, target), from the profiles table."""
    require_columns(profiles, ("target", "layer", "mean"), "the profiles table")
    mat = profiles.pivot_table(index="layer", columns="target", values="mean", sort=False, dropna=False)
    mat = mat[list(pd.unique(profiles["target"]))].sort_index()
    fig = Figure(figsize=(max(4.5, 0.7 * mat.shape[1] + 2.5), max(3.0, 0.18 * mat.shape[0] + 1.5)),
                 layout="constrained")
    ax = fig.subplots()
    values = mat.to_numpy(float)
    lim = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0
    im = ax.imshow(values, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_xticks(np.arange(mat.shape[1]), [str(c) for c in mat.columns], rotation=45, ha="right", fontsize=8)
    step = max(1, mat.shape[0] // 16)
    ax.set_yticks(np.arange(0, mat.shape[0], step), [str(v) for v in mat.index[::step]], fontsize=7)
    ax.set_ylabel("layer")
    best, valid = best_index(values, axis=0)
    ax.scatter(np.arange(mat.shape[1])[valid], best[valid], marker="*", color="gold", edgecolor="black", s=60, zorder=3)
    fig.colorbar(im, ax=ax, label=f"mean {score}")
    fig.suptitle(title or f"Mean {score} per layer and target (star: best layer)", fontsize=10)
    return fig


def plot_depth_histogram(table: pd.DataFrame, *, column: str = "best_depth", title: str | None = None) -> Figure:
    """Histogram over targets of a depth column (best layer or preference index), for many targets."""
    require_columns(table, (column,), "the table")
    vals = table[column].to_numpy(float)
    vals = vals[np.isfinite(vals)]
    fig = Figure(figsize=(5, 3), layout="constrained")
    ax = fig.subplots()
    ax.hist(vals, bins=np.linspace(0, 1, 21), color=_C_SCORE, alpha=0.8)
    ax.set_xlabel(column.replace("_", " ") + " (relative depth)")
    ax.set_ylabel("targets")
    fig.suptitle(title or f"{column.replace('_', ' ')} across {vals.size} targets", fontsize=10)
    return fig


def plot_brain_map(
    img: Any,
    *,
    title: str = "",
    kind: str = "glass",
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
) -> Figure:
    """A volume map as a glass brain or an orthogonal stat map (nilearn).

    Parameters
    ----------
    img : Nifti1Image
        E.g. from :func:`~neuroenc.mapping.volume_image`.
    title : str
    kind : "glass" | "stat"
        ``plot_glass_brain`` (maximum-intensity projections) or ``plot_stat_map`` (slices).
    cmap, vmin, vmax
        Colour scale.

    Returns
    -------
    fig : Figure
    """
    from nilearn import plotting

    _check_option("kind", kind, ("glass", "stat"))
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(7.5, 2.8))
    common = {"figure": fig, "title": title or None, "colorbar": True, "cmap": cmap, "vmin": vmin, "vmax": vmax}
    if kind == "glass":
        plotting.plot_glass_brain(img, plot_abs=False, **common)
    else:
        plotting.plot_stat_map(img, display_mode="ortho", draw_cross=False, **common)
    return fig


def plot_surface_map(
    values: Mapping[str, np.ndarray],
    *,
    mesh: str = "fsaverage5",
    title: str = "",
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
) -> Figure:
    """Per-vertex values on the inflated fsaverage surface, lateral views (nilearn).

    Parameters
    ----------
    values : dict
        ``{"left": ndarray, "right": ndarray}`` (or one hemisphere), from
        :func:`~neuroenc.mapping.brainmaps.surface_values`.
    mesh : str
        The fsaverage mesh the values live on.
    title, cmap, vmin, vmax
        Title and colour scale.

    Returns
    -------
    fig : Figure
    """
    import matplotlib.pyplot as plt
    from nilearn import datasets, plotting

    from ..mapping.brainmaps import load_mesh

    surf = load_mesh(mesh)
    sulc = datasets.load_fsaverage_data(mesh, mesh_type="inflated", data_type="sulcal")
    hemis = [h for h in ("left", "right") if h in values]
    if not hemis:
        raise ValueError("values must have a 'left' and/or a 'right' hemisphere.")
    finite = np.concatenate([np.asarray(values[h], float) for h in hemis])
    finite = finite[np.isfinite(finite)]
    vmin = float(finite.min()) if vmin is None and finite.size else vmin
    vmax = float(finite.max()) if vmax is None and finite.size else vmax
    fig, axes = plt.subplots(1, len(hemis), figsize=(4.2 * len(hemis), 3.2), subplot_kw={"projection": "3d"})
    for ax, hemi in zip(np.atleast_1d(axes), hemis):
        plotting.plot_surf_stat_map(
            surf_mesh=surf["inflated"].parts[hemi],
            stat_map=np.nan_to_num(np.asarray(values[hemi], float), nan=0.0),
            bg_map=sulc.data.parts[hemi],
            hemi=hemi,
            view="lateral",
            axes=ax,
            figure=fig,
            colorbar=hemi == hemis[-1],
            cmap=cmap,
            vmin=vmin,
            vmax=vmax,
            symmetric_cbar=False,
        )
        ax.set_title(hemi, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_metric_profiles(metrics: pd.DataFrame, *, ncols: int = 3, title: str | None = None) -> Figure:
    """Per-layer representation metrics (one panel per metric) against relative depth.

    Parameters
    ----------
    metrics : DataFrame
        Tidy: ``metric, layer, value`` and optionally ``relative_depth`` (else ``layer / max``).
    """
    require_columns(metrics, ("metric", "layer", "value"), "the metrics table")
    metrics = with_relative_depth(metrics)
    names = list(pd.unique(metrics["metric"].astype(str)))
    fig, axes = _grid(len(names), ncols, (3.2, 2.4))
    for ax, name in zip(axes, names):
        m = metrics[metrics["metric"].astype(str) == name].groupby("relative_depth", as_index=False)["value"].mean()
        ax.plot(m["relative_depth"], m["value"], color="#6a3d9a", marker="o", markersize=2.5)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("relative depth", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title or "Representation metrics per layer", fontsize=10)
    return fig


def plot_intervention_profiles(
    interventions: pd.DataFrame, *, score: str = "r", ncols: int = 3, title: str | None = None
) -> Figure:
    """Brain score against depth per target (panels), one line per intervention.

    Parameters
    ----------
    interventions : DataFrame
        Tidy: ``intervention, target, layer, <score>`` (rows of several subjects are averaged),
        optionally ``relative_depth``.
    """
    require_columns(interventions, ("intervention", "target", "layer", score), "the interventions table")
    interventions = with_relative_depth(interventions)
    targets = list(pd.unique(interventions["target"].astype(str)))
    fig, axes = _grid(len(targets), ncols, (3.4, 2.5))
    names = list(pd.unique(interventions["intervention"].astype(str)))
    colours = dict(zip(names, [f"C{i % 10}" for i in range(len(names))]))
    for ax, target in zip(axes, targets):
        sub = interventions[interventions["target"].astype(str) == target]
        for name in names:
            m = sub[sub["intervention"].astype(str) == name].groupby("relative_depth", as_index=False)[score].mean()
            ax.plot(m["relative_depth"], m[score], color=colours[name], linewidth=1.3, label=name)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_title(target, fontsize=10)
        ax.set_xlabel("relative depth", fontsize=8)
        ax.set_ylabel(f"mean {score}", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=6)
    fig.suptitle(title or f"Brain {score} per layer under each intervention", fontsize=10)
    return fig


def with_relative_depth(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a ``relative_depth`` column (``layer / max(layer)`` when it has none)."""
    if "relative_depth" in table.columns:
        return table
    top = max(int(table["layer"].max()), 1)
    return table.assign(relative_depth=table["layer"].astype(float) / top)
