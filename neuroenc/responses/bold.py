"""BOLD runs of data sets as (n_volumes, n_targets) arrays: NIfTI volumes, GIfTI surfaces, CIFTI.

The data set loaders (:mod:`neuroenc.datasets`) read runs here; the formats themselves are read
by :mod:`neuroenc.responses.formats`, the same readers as :func:`~neuroenc.responses.read_responses`.
What is added for data sets: without a mask, the voxels of a NIfTI run are those whose time
course varies, and :func:`read_subject_bold` keeps the voxels that vary in every run of a subject.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import DatasetError, check_content
from .formats import file_kind, load_nifti, nifti_tr, read_cifti, read_gifti, read_nifti
from .space import VolumeSpace

logger = logging.getLogger(__name__)


def n_volumes(path: str | os.PathLike) -> int:
    """The number of volumes of a 4-D NIfTI (reads the header only)."""
    import nibabel as nib

    path = check_content(path, "BOLD file")
    img = nib.load(str(path))
    return int(img.shape[3]) if len(img.shape) == 4 else 1


def read_bold(
    path: str | os.PathLike,
    mask: Any = None,
    dtype: Any = np.float32,
) -> tuple[np.ndarray, float | None, dict[str, Any]]:
    """Read a BOLD run as a 2-D array.

    Parameters
    ----------
    path : path-like
        A 4-D NIfTI (``.nii``/``.nii.gz``), a GIfTI time series (``.func.gii``, one data
        array per volume, as fMRIPrep writes them) or a CIFTI-2 dense time series
        (``.dtseries.nii``).
    mask : path-like | nibabel image | array of bool | None
        For NIfTI: the voxels to keep (same 3-D grid). ``None`` keeps every voxel whose time
        course is not constant in this run (drops the zero background); for the runs of one
        subject use :func:`read_subject_bold`, which keeps the same voxels in every run.
        Ignored for GIfTI and CIFTI.
    dtype : numpy dtype
        Output dtype.

    Returns
    -------
    data : ndarray, shape (n_volumes, n_targets)
    tr : float | None
        The TR stored in the file, in seconds (NIfTI ``pixdim[4]`` in its time unit, GIfTI
        ``TimeStep``, CIFTI series step), ``None`` if it stores none.
    info : dict
        ``names`` (``v<flat index>`` for voxels, ``<i>`` for GIfTI vertices, ``L<i>``/``R<i>``
        and ``<structure>:<i>_<j>_<k>`` for CIFTI), ``target_space`` (the
        :class:`~neuroenc.responses.space.TargetSpace` of the columns); for NIfTI also
        ``shape``, ``affine`` and ``voxel_index``.
    """
    path = check_content(path, "BOLD file")
    kind = file_kind(path)
    if kind == "gifti":
        data, space, stored = read_gifti(path, dtype=dtype)
        names = [str(i) for i in range(data.shape[1])]
        return data, stored.seconds, {"names": names, "n_vertices": data.shape[1], "target_space": space}
    if kind == "cifti":
        data, space, names, stored = read_cifti(path, dtype=dtype)
        return data, stored.seconds, {"names": names, "target_space": space}
    img = load_nifti(path)
    if mask is not None:
        data, space, stored = read_nifti(path, mask, dtype=dtype)
        tr = stored.seconds
    else:
        vol = np.asarray(img.dataobj, dtype=dtype)
        flat = vol.reshape(-1, vol.shape[3]).T  # (n_volumes, n_voxels)
        idx = np.flatnonzero(np.ptp(flat, axis=0) > 0)
        if idx.size == 0:
            raise DatasetError(
                f"{str(path)!r}: no voxels left (every time course is constant or the mask is empty)."
            )
        space = VolumeSpace(img.affine, vol.shape[:3], idx)
        data = np.ascontiguousarray(flat[:, idx])
        tr = nifti_tr(img)[0]
    info = {"names": [f"v{i}" for i in space.voxel_index], "shape": space.shape,
            "affine": np.asarray(space.affine), "voxel_index": space.voxel_index, "target_space": space}
    return data, tr, info


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
        NIfTI runs share ``info["names"]``, ``info["voxel_index"]`` and ``info["target_space"]``.
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
        info = {**info, "names": list(names), "voxel_index": common,
                "target_space": VolumeSpace(info["affine"], info["shape"], common)}
        runs[k] = (np.ascontiguousarray(data[:, cols]), tr, info)
    return runs
