"""Reading BOLD data files (NIfTI volumes, GIfTI surfaces) into (n_volumes, n_targets) arrays."""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._base import DatasetError, check_content

logger = logging.getLogger(__name__)


def _nifti_tr(img: Any) -> float | None:
    """The TR stored in a NIfTI header (seconds), or ``None`` when the header has none."""
    zooms = img.header.get_zooms()
    if len(zooms) < 4 or not zooms[3]:
        return None
    tr = float(zooms[3])
    try:
        unit = img.header.get_xyzt_units()[1]
    except Exception:  # some headers (Analyze) have no units
        unit = "unknown"
    if unit == "msec":
        tr /= 1000.0
    elif unit == "usec":
        tr /= 1e6
    return tr


def n_volumes(path: str | os.PathLike) -> int:
    """The number of volumes of a 4-D NIfTI (reads the header only)."""
    import nibabel as nib

    path = check_content(path, "BOLD file")
    img = nib.load(str(path))
    return int(img.shape[3]) if len(img.shape) == 4 else 1


def _mask_array(mask: Any, shape: tuple[int, ...], path: Path) -> np.ndarray:
    import nibabel as nib

    if isinstance(mask, (str, os.PathLike)):
        mask = nib.load(str(check_content(mask, "mask file")))
    if hasattr(mask, "get_fdata"):
        mask = np.asanyarray(mask.dataobj)
    mask = np.asarray(mask).astype(bool)
    if mask.shape != tuple(shape):
        raise DatasetError(
            f"mask shape {mask.shape} does not match the volumes of {str(path)!r} {tuple(shape)}; "
            "use a mask in the same space and resolution."
        )
    return mask


def read_bold(
    path: str | os.PathLike,
    mask: Any = None,
    dtype: Any = np.float32,
) -> tuple[np.ndarray, float | None, dict[str, Any]]:
    """Read a BOLD run as a 2-D array.

    Parameters
    ----------
    path : path-like
        A 4-D NIfTI (``.nii``/``.nii.gz``) or a GIfTI time series (``.func.gii``, one data
        array per volume, as fMRIPrep writes them).
    mask : path-like | nibabel image | array of bool | None
        For NIfTI: the voxels to keep (same 3-D shape). ``None`` keeps every voxel whose time
        course is not constant in this run (drops the zero background); for the runs of one
        subject use :func:`read_subject_bold`, which keeps the same voxels in every run.
        Ignored for GIfTI.
    dtype : numpy dtype
        Output dtype.

    Returns
    -------
    data : ndarray, shape (n_volumes, n_targets)
    tr : float | None
        The TR in the file's header (NIfTI ``pixdim[4]``), ``None`` for GIfTI.
    info : dict
        ``names`` (``v<flat index>`` for voxels, ``<i>`` for vertices), ``shape`` (volume shape)
        and ``affine`` (NIfTI) for mapping results back to the brain.
    """
    import nibabel as nib

    path = check_content(path, "BOLD file")
    name = path.name
    if name.endswith(".gii"):
        img = nib.load(str(path))
        arrays = [np.asarray(d.data) for d in img.darrays]
        if not arrays:
            raise DatasetError(f"GIfTI file {str(path)!r} has no data arrays.")
        if arrays[0].ndim == 1:  # one array per volume (fMRIPrep)
            data = np.stack(arrays, axis=0).astype(dtype)
        else:  # one (n_vertices, n_volumes) array
            data = np.asarray(arrays[0], dtype=dtype).T
        names = [str(i) for i in range(data.shape[1])]
        return data, None, {"names": names, "n_vertices": data.shape[1]}
    try:
        img = nib.load(str(path))
    except Exception as err:
        raise DatasetError(f"could not read {str(path)!r} as NIfTI: {type(err).__name__}: {err}") from err
    if len(img.shape) != 4:
        raise DatasetError(f"{str(path)!r} is not a 4-D BOLD series: its shape is {img.shape}.")
    vol = np.asarray(img.dataobj, dtype=dtype)
    shape = vol.shape[:3]
    flat = vol.reshape(-1, vol.shape[3]).T  # (n_volumes, n_voxels)
    if mask is None:
        keep = np.ptp(flat, axis=0) > 0
    else:
        keep = _mask_array(mask, shape, path).reshape(-1)
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        raise DatasetError(
            f"{str(path)!r}: no voxels left (every time course is constant or the mask is empty)."
        )
    info = {"names": [f"v{i}" for i in idx], "shape": tuple(int(s) for s in shape),
            "affine": np.asarray(img.affine), "voxel_index": idx}
    return np.ascontiguousarray(flat[:, idx]), _nifti_tr(img), info


def read_subject_bold(
    paths: Sequence[str | os.PathLike],
    mask: Any = None,
    dtype: Any = np.float32,
    subject: str = "",
) -> list[tuple[np.ndarray, float | None, dict[str, Any]]]:
    """Read the BOLD runs of one subject with the same targets in every run.

    Parameters
    ----------
    paths : sequence of path-like
        The subject's runs (see :func:`read_bold`).
    mask : path-like | nibabel image | array of bool | None
        Voxels to keep in every run. ``None`` (NIfTI): the subject-level mask, the voxels
        whose time course varies in *every* run given; a voxel that is constant in one run
        (outside the brain, or cut by that run's field of view) is dropped from all of them,
        and the number dropped is logged. GIfTI runs keep every vertex.
    dtype : numpy dtype
        Output dtype.
    subject : str
        The subject's label, for messages.

    Returns
    -------
    runs : list of (data, tr, info)
        As :func:`read_bold` returns them, in the order of ``paths``; with ``mask=None`` all
        NIfTI runs share ``info["names"]`` and ``info["voxel_index"]``.
    """
    runs = [read_bold(p, mask=mask, dtype=dtype) for p in paths]
    if mask is not None:
        return runs
    volumes = [k for k, (_, _, info) in enumerate(runs) if "voxel_index" in info]
    if len(volumes) < 2:
        return runs
    who = f"sub-{subject}" if subject else "subject"
    shapes = {runs[k][2]["shape"] for k in volumes}
    if len(shapes) > 1:
        raise DatasetError(
            f"{who}: the runs have different volume shapes {sorted(shapes)} "
            f"({[str(paths[k]) for k in volumes]}); they are not in one space, so they cannot "
            "share a voxel mask. Resample them to one space, or pass mask=."
        )
    indices = [runs[k][2]["voxel_index"] for k in volumes]
    common = indices[0]
    for idx in indices[1:]:
        common = np.intersect1d(common, idx, assume_unique=True)
    union = np.unique(np.concatenate(indices))
    if common.size == 0:
        raise DatasetError(
            f"{who}: no voxel varies in every run ({len(volumes)} runs: "
            f"{[str(paths[k]) for k in volumes]}). Check that the runs are in one space, or pass mask=."
        )
    n_dropped = union.size - common.size
    if n_dropped:
        logger.info(
            "%s: kept the %d voxels that vary in all %d runs; dropped %d that are constant in "
            "some run (subject-level mask).", who, common.size, len(volumes), n_dropped,
        )
    names = [f"v{i}" for i in common]
    for k in volumes:
        data, tr, info = runs[k]
        cols = np.searchsorted(info["voxel_index"], common)
        info = {**info, "names": list(names), "voxel_index": common}
        runs[k] = (np.ascontiguousarray(data[:, cols]), tr, info)
    return runs
