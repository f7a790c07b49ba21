"""Encoding results as labelled arrays: an :mod:`xarray` Dataset, and a NetCDF file.

What the Brain-Score and xarray world reads: every score on ``layer × target`` dimensions, with
the layer indices, their relative depth and the target names as coordinates, per-target values
(baseline, noise ceiling, corrected p-values) on ``target``, the outer folds' scores on
``fold × layer × target``, and the settings and provenance as JSON attributes. xarray is an
optional dependency (``pip install neuroenc[xarray]``, also part of ``neuroenc[brainscore]``);
a NetCDF file is written by the first engine installed (``netCDF4``, ``h5netcdf``, else
SciPy's NetCDF-3 writer).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._io import atomic_path, json_default

if TYPE_CHECKING:
    from .results import EncodingResults

#: The ``format`` attribute of an exported Dataset (the results file's, as NetCDF).
EXPORT_FORMAT = "neuroenc-results-xarray/1"
#: The extra that installs xarray.
EXTRA = "xarray"


def import_xarray() -> Any:
    """xarray, or an ImportError that names the extra that installs it."""
    try:
        import xarray
    except ImportError as err:
        raise ImportError(
            f"exporting encoding results as xarray/NetCDF needs the package 'xarray': pip install "
            f"neuroenc[{EXTRA}] (or pip install xarray)."
        ) from err
    return xarray


def results_to_xarray(results: EncodingResults) -> Any:
    """The results as an :class:`xarray.Dataset`.

    Parameters
    ----------
    results : EncodingResults

    Returns
    -------
    dataset : xarray.Dataset
        Dimensions ``layer`` and ``target`` (and ``fold`` with per-fold scores); coordinates
        ``layer`` (indices, 0 = embeddings), ``relative_depth`` (on ``layer``) and ``target``
        (names). Variables on ``(layer, target)``: ``r``, ``r2`` and, when present,
        ``pvalues``, ``qvalues``, ``alphas``, ``r_pooled``, and the layer comparison's
        ``delta_r`` (with its interval ``delta_r_low``, ``delta_r_high``), ``p_vs_best`` and
        ``in_best_set``; on ``target``: ``pvalues_best``, ``qvalues_best``, ``noise_ceiling``,
        ``baseline_<name>``; on ``(fold, layer, target)``: ``fold_r``, ``fold_r2``; on
        ``(band, target)``: ``split_<name>``; Brain-Score's metric (``scoring="brainscore-linear"``):
        ``r_brainscore`` on ``(layer, target)`` and ``brainscore_split_r`` on ``(split, layer,
        target)``. Attributes: ``settings``, ``provenance`` and
        ``warnings`` (JSON), ``subject``, ``model`` and ``format``.
    """
    xr = import_xarray()
    lt = ("layer", "target")
    variables: dict[str, Any] = {"r": (lt, results.r), "r2": (lt, results.r2)}
    for name in ("pvalues", "qvalues", "alphas", "r_pooled"):
        value = getattr(results, name)
        if value is not None:
            variables[name] = (lt, np.asarray(value, dtype=np.float64))
    comp = results.comparison
    if comp is not None:
        variables["delta_r"] = (lt, comp.delta_r)
        variables["p_vs_best"] = (lt, comp.pvalues)
        variables["in_best_set"] = (lt, np.asarray(comp.in_best_set, dtype=bool))
        variables["delta_r_low"] = (lt, comp.ci_low)
        variables["delta_r_high"] = (lt, comp.ci_high)
    for name in ("pvalues_best", "qvalues_best", "noise_ceiling"):
        value = getattr(results, name)
        if value is not None:
            variables[name] = (("target",), np.asarray(value, dtype=np.float64))
    for name, value in results.baseline.items():
        variables[f"baseline_{name}"] = (("target",), np.asarray(value, dtype=np.float64))
    for name in ("fold_r", "fold_r2"):
        value = getattr(results, name)
        if value is not None:
            variables[name] = (("fold", "layer", "target"), np.asarray(value, dtype=np.float64))
    if results.brainscore_split_r is not None:
        variables["r_brainscore"] = (lt, results.r_brainscore)
        variables["brainscore_split_r"] = (("split", "layer", "target"), results.brainscore_split_r)
    for name, value in results.split_scores.items():
        variables[f"split_{name}"] = ((f"band_{name}", "target"), np.asarray(value, dtype=np.float64))
    coords = {
        "layer": ("layer", results.layers.astype(np.int64)),
        "relative_depth": ("layer", np.asarray(results.relative_depth, dtype=np.float64)),
        "target": ("target", np.asarray(results.targets, dtype=object)),
    }
    attrs = {
        "format": EXPORT_FORMAT,
        "subject": str(results.subject or ""),
        "model": str(results.model or ""),
        "settings": json.dumps(results.settings, default=json_default),
        "provenance": json.dumps(results.provenance, default=json_default),
        "warnings": json.dumps(list(results.warnings)),
    }
    if comp is not None:
        attrs.update({"compare_alpha": float(comp.alpha), "compare_ci": float(comp.ci),
                      "compare_n_draws": int(comp.n_draws), "compare_source": str(comp.source)})
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def results_to_netcdf(results: EncodingResults, path: str | os.PathLike, engine: str | None = None) -> Path:
    """Write the results as a NetCDF file (:func:`results_to_xarray`), atomically.

    Parameters
    ----------
    results : EncodingResults
    path : path-like
        The file (``.nc``). A file that neuroenc did not write is never replaced.
    engine : {"netcdf4", "h5netcdf", "scipy"} | None
        xarray's writer; default the first installed (SciPy writes NetCDF-3, in every install
        with xarray).

    Returns
    -------
    path : Path
    """
    from .._owned import check_replace, record_written

    path = Path(path)
    if not _is_export(path):  # an export of ours (NetCDF-4 is HDF5 with our format attribute)
        check_replace(path, "NetCDF file")  # else: a file neuroenc recorded writing, or none
    dataset = results_to_xarray(results)
    with atomic_path(path) as tmp:
        dataset.to_netcdf(tmp, engine=engine or _default_engine())
    record_written(path)
    return path


def _is_export(path: Path) -> bool:
    """Whether ``path`` is a NetCDF-4 (HDF5) file this module wrote."""
    if path.is_symlink() or not path.is_file():
        return False
    import h5py

    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
    except Exception:  # noqa: BLE001 - not HDF5 (NetCDF-3), unreadable: check_replace decides
        return False
    return (fmt.decode("utf-8", "replace") if isinstance(fmt, bytes) else fmt) == EXPORT_FORMAT


def _default_engine() -> str:
    """The first NetCDF writer installed (SciPy's is always there)."""
    import importlib.util

    for module, engine in (("netCDF4", "netcdf4"), ("h5netcdf", "h5netcdf")):
        if importlib.util.find_spec(module) is not None:
            return engine
    return "scipy"
