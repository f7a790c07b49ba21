"""Brain data files, format by format: the data, where the targets are, and the stored TR.

Each reader returns ``(data, space, stored_tr)``: ``data`` of shape (n_volumes, n_targets),
its :class:`~neuroenc.responses.space.TargetSpace`, and the sampling period stored in the file
(:class:`StoredTR`: in **seconds**, or ``None``, and where it came from, for messages).

- NIfTI (``.nii``, ``.nii.gz``, 4-D): voxels through a mask with nilearn
  (:func:`nilearn.masking.apply_mask`: the mask's non-zero voxels in C order); the TR from
  ``pixdim[4]`` in the unit of ``xyzt_units`` (ms and µs converted to s).
- GIfTI (``.gii``): one data array per volume (fMRIPrep's ``.func.gii``), or one
  (n_vertices, n_volumes) array; the hemisphere from ``AnatomicalStructurePrimary`` (or a
  ``hemi-L``/``hemi-R`` file name), the mesh from the vertex count (fsaverage3-7), the TR
  from FreeSurfer's ``TimeStep`` metadata, which is in milliseconds.
- CIFTI-2 dense time series (``.dtseries.nii``): grayordinates from the brain-model axis
  (cortical vertices and subcortical voxels); the TR from the series axis (its ``step`` in
  seconds).
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import DatasetError, check_content
from .space import CompositeSpace, SurfaceSpace, TargetSpace, VolumeSpace, concat_spaces, mesh_from_vertices

logger = logging.getLogger(__name__)

#: Seconds per unit of the NIfTI time dimension (``xyzt_units``).
NIFTI_TIME_UNITS = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6, "unknown": 1.0}
_HEMI_STRUCTURES = {"cortexleft": "left", "cortex_left": "left", "cortexright": "right",
                    "cortex_right": "right"}


@dataclass(frozen=True)
class StoredTR:
    """The TR a file stores.

    Attributes
    ----------
    seconds : float | None
        In seconds (converted from the file's unit); None when the file stores none.
    source : str
        Where it was read, for messages (``"pixdim[4] (xyzt_units 'msec')"``).
    reliable : bool
        False for a NIfTI header whose time unit is unset (tools often leave ``pixdim[4]`` at 1
        then): a disagreement with a given TR is only a warning.
    """

    seconds: float | None
    source: str
    reliable: bool = True


def file_kind(path: str | os.PathLike) -> str:
    """``"cifti"``, ``"nifti"``, ``"gifti"`` or ``""`` from a file name."""
    name = Path(path).name.lower()
    if name.endswith((".dtseries.nii", ".dtseries.nii.gz")):
        return "cifti"
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    if name.endswith(".gii"):
        return "gifti"
    return ""


# ---------------------------------------------------------------------- NIfTI
def nifti_tr(img: Any) -> tuple[float | None, str]:
    """The TR stored in a NIfTI header, in seconds, and the header's time unit.

    ``pixdim[4]`` is converted from ``xyzt_units`` (``"msec"``: / 1000, ``"usec"``: / 1e6);
    an ``"unknown"`` unit is read as seconds (old tools leave it unset). ``(None, unit)`` when
    the header has no time step, or a time unit that is not a time (Hz, ppm, rad/s).
    """
    zooms = img.header.get_zooms()
    try:
        unit = img.header.get_xyzt_units()[1]
    except Exception:  # Analyze headers have no units
        unit = "unknown"
    if len(zooms) < 4 or not zooms[3] or unit not in NIFTI_TIME_UNITS:
        return None, unit
    return float(zooms[3]) * NIFTI_TIME_UNITS[unit], unit


def load_nifti(path: str | os.PathLike, what: str = "BOLD file") -> Any:
    """A 4-D NIfTI image (header read, data not loaded); clear errors for anything else."""
    import nibabel as nib

    path = check_content(path, what)
    try:
        img = nib.load(str(path))
    except Exception as err:
        raise DatasetError(f"could not read {str(path)!r} as NIfTI: {type(err).__name__}: {err}") from err
    if len(img.shape) != 4:
        raise DatasetError(
            f"{str(path)!r} has {len(img.shape)} dimensions (shape {img.shape}); expected a 4-D "
            "image (x, y, z, time)."
        )
    return img


def load_mask(mask: Any, shape: tuple[int, ...], affine: np.ndarray, path: Path) -> tuple[Any, str | None]:
    """A 3-D mask image on the grid of ``path`` (shape and affine checked), and its file name."""
    import nibabel as nib

    mask_path = None
    if isinstance(mask, (str, os.PathLike)):
        mask_path = str(check_content(mask, "mask file"))
        mask = nib.load(mask_path)
    if not hasattr(mask, "affine"):  # an array of bool on the image's grid
        mask = nib.Nifti1Image(np.asarray(mask).astype(np.uint8), affine)
    if tuple(mask.shape[:3]) != tuple(shape) or len(mask.shape) != 3:
        raise DatasetError(
            f"mask shape {tuple(mask.shape)} does not match the volumes of {str(path)!r} "
            f"{tuple(shape)}; use a mask in the same space and resolution (resample it first)."
        )
    if not np.allclose(mask.affine, affine, atol=1e-3):
        raise DatasetError(
            f"the mask {mask_path or 'image'!r} and {str(path)!r} have different affines; resample "
            "the mask to the image first."
        )
    if not np.any(np.asarray(mask.dataobj)):
        raise DatasetError(f"the mask {mask_path or 'image'!r} selects no voxel.")
    return mask, mask_path


def read_nifti(path: str | os.PathLike, mask: Any, dtype: Any = np.float64,
               ) -> tuple[np.ndarray, VolumeSpace, StoredTR]:
    """The voxels of a 4-D NIfTI inside ``mask`` (path, image or boolean array), in C order."""
    from nilearn.masking import apply_mask

    path = Path(path)
    img = load_nifti(path)
    mask_img, mask_path = load_mask(mask, img.shape[:3], img.affine, path)
    data = np.asarray(apply_mask(img, mask_img, dtype=None), dtype=dtype)
    space = VolumeSpace.from_mask(mask_img, mask=mask_path)
    tr, unit = nifti_tr(img)
    return np.ascontiguousarray(data), space, StoredTR(tr, f"pixdim[4] (xyzt_units {unit!r})", unit != "unknown")


# ---------------------------------------------------------------------- GIfTI
def _counts(side: str, n_vertices: int) -> dict[str, int]:
    """Vertices per hemisphere: both for an fsaverage mesh (symmetric), else the one known."""
    if mesh_from_vertices(n_vertices) is not None:
        return {"left": n_vertices, "right": n_vertices}
    return {side: n_vertices}


def _gifti_hemi(img: Any, path: Path) -> str | None:
    structure = str(img.meta.get("AnatomicalStructurePrimary", "")).lower() if img.meta else ""
    if structure in _HEMI_STRUCTURES:
        return _HEMI_STRUCTURES[structure]
    match = re.search(r"(?:^|[_.])hemi-([LR])(?:[_.]|$)", path.name) or re.match(r"^([lr])h\.", path.name)
    if match:
        return "left" if match.group(1).upper() == "L" else "right"
    return None


def _gifti_tr(img: Any) -> float | None:
    for darray in img.darrays[:1]:
        value = darray.meta.get("TimeStep") if darray.meta else None
        try:
            step = float(value) if value is not None else 0.0
        except ValueError:
            return None
        if step > 0:
            return step / 1000.0  # FreeSurfer writes the TR in milliseconds
    return None


def read_gifti(path: str | os.PathLike, dtype: Any = np.float64, hemi: str | None = None,
               ) -> tuple[np.ndarray, SurfaceSpace, StoredTR]:
    """A GIfTI time series: (n_volumes, n_vertices), every vertex of one hemisphere."""
    import nibabel as nib

    path = check_content(path, "GIfTI file")
    try:
        img = nib.load(str(path))
    except Exception as err:
        raise DatasetError(f"could not read {str(path)!r} as GIfTI: {type(err).__name__}: {err}") from err
    arrays = [np.asarray(d.data) for d in img.darrays]
    if not arrays:
        raise DatasetError(f"GIfTI file {str(path)!r} has no data arrays.")
    if arrays[0].ndim == 1:  # one array per volume (fMRIPrep)
        data = np.stack(arrays, axis=0).astype(dtype)
    else:  # one (n_vertices, n_volumes) array
        data = np.asarray(arrays[0], dtype=dtype).T
    n_vertices = data.shape[1]
    side = hemi or _gifti_hemi(img, path) or "left"
    space = SurfaceSpace(np.arange(n_vertices), side, _counts(side, n_vertices),
                         mesh=mesh_from_vertices(n_vertices))
    return data, space, StoredTR(_gifti_tr(img), "TimeStep metadata, in ms")


# ---------------------------------------------------------------------- CIFTI
def _structure_hemi(name: str) -> str | None:
    name = name.upper()
    if name == "CIFTI_STRUCTURE_CORTEX_LEFT":
        return "left"
    if name == "CIFTI_STRUCTURE_CORTEX_RIGHT":
        return "right"
    return None


def read_cifti(path: str | os.PathLike, dtype: Any = np.float64,
               ) -> tuple[np.ndarray, TargetSpace, list[str], StoredTR]:
    """A CIFTI-2 dense time series: grayordinates (cortical vertices, subcortical voxels).

    Returns ``(data, space, names, stored_tr)``; vertices are named ``L<vertex>`` /
    ``R<vertex>``, voxels ``<structure>:<i>_<j>_<k>``.
    """
    import nibabel as nib
    from nibabel.cifti2 import cifti2_axes

    path = check_content(path, "CIFTI file")
    try:
        img = nib.load(str(path))
        axes = [img.header.get_axis(i) for i in range(img.ndim)]
    except Exception as err:
        raise DatasetError(f"could not read {str(path)!r} as CIFTI-2: {type(err).__name__}: {err}") from err
    if len(axes) != 2 or not isinstance(axes[0], cifti2_axes.SeriesAxis) \
            or not isinstance(axes[1], cifti2_axes.BrainModelAxis):
        raise DatasetError(
            f"{str(path)!r} is not a dense time series (series × brain models); its axes are "
            f"{[type(a).__name__ for a in axes]}."
        )
    series, models = axes
    data = np.asarray(img.get_fdata(), dtype=dtype)
    parts: list[TargetSpace] = []
    names: list[str] = []
    for structure, _, model in models.iter_structures():
        hemi = _structure_hemi(structure)
        if model.surface_mask.all():
            if hemi is None:
                raise DatasetError(
                    f"{str(path)!r}: surface structure {structure} is not a cortical hemisphere; only "
                    "CORTEX_LEFT/CORTEX_RIGHT surfaces are supported."
                )
            n_vert = int(models.nvertices[structure])
            parts.append(SurfaceSpace(model.vertex, hemi, _counts(hemi, n_vert), mesh=mesh_from_vertices(n_vert)))
            names += [f"{hemi[0].upper()}{v}" for v in model.vertex]
        else:
            index = np.ravel_multi_index(tuple(model.voxel.T), models.volume_shape)
            parts.append(VolumeSpace(models.affine, models.volume_shape, index))
            short = structure.upper().removeprefix("CIFTI_STRUCTURE_")
            names += [f"{short}:{i}_{j}_{k}" for i, j, k in model.voxel]
    space = concat_spaces(parts) if parts else CompositeSpace([])
    tr = float(series.step) if series.unit.upper() == "SECOND" and series.step > 0 else None
    return data, space, names, StoredTR(tr, f"series step, in {series.unit.lower()}s")
