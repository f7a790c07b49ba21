"""The report's sensor section (MEG/EEG results only): topomaps of scores per band of layers.

Layers are grouped into bands of relative depth (early, middle, late thirds of the model,
:data:`DEPTH_BANDS`); each band's map is the mean score over its layers and over subjects, drawn
on the channels' positions with :func:`mne.viz.plot_topomap` (from the results' ``mne.Info``).
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .sections import ReportSection

logger = logging.getLogger(__name__)

#: Bands of relative depth (label, low, high); a layer is in a band when low <= depth < high
#: (the last band includes 1).
DEPTH_BANDS = (("early", 0.0, 1 / 3), ("middle", 1 / 3, 2 / 3), ("late", 2 / 3, 1.0))


def layer_bands(layers: Any, relative_depth: Any) -> list[tuple[str, np.ndarray]]:
    """The non-empty depth bands of ``layers``: (label naming the layers, boolean row mask)."""
    layers = np.asarray(layers).reshape(-1)
    depth = np.asarray(relative_depth, dtype=np.float64).reshape(-1)
    out = []
    for i, (name, low, high) in enumerate(DEPTH_BANDS):
        last = i == len(DEPTH_BANDS) - 1
        mask = (depth >= low) & ((depth <= high) if last else (depth < high))
        if mask.any():
            span = layers[mask]
            which = f"layer {span[0]}" if span.size == 1 else f"layers {span.min()}-{span.max()}"
            out.append((f"{name} ({which})", mask))
    return out


def sensor_band_maps(results: list[Any], score: str = "r") -> pd.DataFrame:
    """The mean ``score`` per band of layers and channel, over subjects on the same channels.

    Returns
    -------
    maps : DataFrame
        Rows: bands (labelled as :func:`layer_bands`); columns: channels. ``attrs["n_subjects"]``:
        the subjects averaged (those with the first subject's channels and layers).
    """
    first = results[0]
    same = [r for r in results if r.targets == first.targets and np.array_equal(r.layers, first.layers)]
    values = np.mean([getattr(r, score) for r in same], axis=0)  # (n_layers, n_channels)
    bands = layer_bands(first.layers, first.relative_depth)
    table = pd.DataFrame([values[mask].mean(axis=0) for _, mask in bands], index=[b for b, _ in bands],
                         columns=first.targets)
    table.attrs["n_subjects"] = len(same)
    return table


def plot_sensor_topomaps(maps: pd.DataFrame, info: Any, *, title: str | None = None, cmap: str = "RdBu_r",
                         vlim: tuple[float, float] | None = None) -> Figure:
    """One topomap per row of ``maps`` (columns: the channels of ``info``), on one colour scale.

    Parameters
    ----------
    maps : DataFrame
        Rows: maps (their index is the panel title); columns: channel names.
    info : mne.Info
        The channels, with positions (one channel type).
    title : str | None
    cmap : str
    vlim : (float, float) | None
        Colour range; default symmetric around 0 at the largest absolute value.

    Returns
    -------
    fig : Figure
    """
    import matplotlib.pyplot as plt
    import mne

    missing = [c for c in maps.columns if c not in info["ch_names"]]
    if missing:
        raise ValueError(f"the maps have channels that the Info lacks: {missing[:5]}; pass the results' Info.")
    info = mne.pick_info(info, [info["ch_names"].index(c) for c in maps.columns], verbose="error")
    values = maps.to_numpy(np.float64)
    if vlim is None:
        top = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
        vlim = (-top, top) if top > 0 else (-1.0, 1.0)
    n = len(maps)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n + 0.8, 2.8), squeeze=False)
    im = None
    for ax, (label, row) in zip(axes[0], maps.iterrows()):
        im, _ = mne.viz.plot_topomap(np.nan_to_num(row.to_numpy(np.float64)), info, axes=ax, show=False,
                                     cmap=cmap, vlim=vlim, sensors=True, contours=0)
        ax.set_title(str(label), fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _has_positions(info: Any) -> bool:
    pos = np.array([ch["loc"][:3] for ch in info["chs"]])
    return bool(np.all(np.isfinite(pos)) and not np.allclose(pos, 0.0))


def sensor_section(mapping: Any) -> ReportSection:
    """The report section of sensor results: band topomaps of r (and of r minus the baseline's r).

    The maps need the channels' ``mne.Info`` (kept by results of responses read with mne, see
    :mod:`neuroenc.encoding.sensors`); without it, or without channel positions, the section
    says so and draws nothing.
    """
    results = list(mapping.results)
    score = mapping.score
    info = next((r.sensor_info for r in results if r.sensor_info is not None), None)
    maps = sensor_band_maps(results, score)
    n_sub = maps.attrs["n_subjects"]
    text = (f"Held-out {score} per channel, averaged over the layers of each band of relative depth (early, "
            f"middle and late thirds of the model) and over {n_sub} subject(s) on the same channels.")
    section = ReportSection("Sensors", text=text)
    rows = [{"band": band, f"mean {score}": float(np.nanmean(vals)), f"max {score}": float(np.nanmax(vals)),
             "best channel": str(vals.idxmax()) if np.isfinite(vals).any() else ""}
            for band, vals in maps.iterrows()]
    section.tables.append((f"{score} per band of layers (over channels)", pd.DataFrame(rows)))
    if info is None or not _has_positions(info):
        why = "carry no mne Info" if info is None else "have no channel positions"
        section.text += (f"\n\nNo topomaps: these results {why} (fit them from responses read with mne, e.g. "
                         "Response.from_mne, whose Info has the sensor positions).")
        return section
    info = mne_pick(info, maps.columns)
    baseline = [r for r in results if "r" in r.baseline and r.targets == results[0].targets]
    for ch_type in sorted(set(info.get_channel_types())):
        chans = [c for c, t in zip(info["ch_names"], info.get_channel_types()) if t == ch_type]
        fig = plot_sensor_topomaps(maps[chans], info, title=f"{score} by layer band ({ch_type})")
        section.figures.append((f"Mean held-out {score} per channel, one map per band of layers ({ch_type}).", fig))
        if score == "r" and baseline and len(baseline) == n_sub:
            base = np.mean([r.baseline["r"] for r in baseline], axis=0)
            delta = maps - pd.Series(base, index=results[0].targets)
            fig = plot_sensor_topomaps(delta[chans], info, title=f"r - baseline r by layer band ({ch_type})")
            section.figures.append((f"Mean r minus the baseline model's r per channel, per band ({ch_type}).", fig))
    return section


def mne_pick(info: Any, channels: Any) -> Any:
    """``info`` picked to ``channels``, in their order."""
    import mne

    return mne.pick_info(info, [info["ch_names"].index(c) for c in channels], verbose="error")
