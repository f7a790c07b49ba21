"""Reading BOLD data files (NIfTI volumes, GIfTI surfaces) into (n_volumes, n_targets) arrays."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._base import DatasetError

logger = logging.getLogger(__name__)


def check_content(path: str | os.PathLike, what: str = "data file") -> Path:
    """``path`` as a Path; a clear error if it is missing, a dangling annex link or empty."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise FileNotFoundError(
            f"{what} {str(path)!r} is a git-annex link whose content is not here; fetch it with "
            f"'datalad get {path.name}' (or openneuro-py) first."
        )
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {str(path)!r}.")
    if path.stat().st_size == 0:
        raise DatasetError(
            f"{what} {str(path)!r} is empty (0 bytes): a placeholder, or a download that did "
            "not finish. Fetch it again."
        )
    return path


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
        course is not constant (drops the zero background). Ignored for GIfTI.
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
