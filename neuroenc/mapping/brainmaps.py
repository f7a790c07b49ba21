"""Brain maps of the mapping: per-target values back into voxel or vertex space (nilearn).

Where the targets live (the convention between the pipeline and the report)
---------------------------------------------------------------------------
The results' provenance says what the targets are. In order of precedence:

1. A mask image passed explicitly (``mask_img=``, ``neuroenc report --mask PATH``): the
   targets are the mask's non-zero voxels in nilearn's order (``NiftiMasker``: C order of the
   3-D array), so there are exactly as many targets as mask voxels.
2. ``provenance["target_space"]``: the geometry of the targets, written from the responses'
   :class:`~neuroenc.responses.space.TargetSpace` (:meth:`~neuroenc.responses.TargetSpace.to_dict`):
   voxels of a grid (affine, shape, the voxel of each target), vertices of a mesh (the
   hemisphere and vertex of each target; drawn on fsaverage meshes), parcels of an atlas (its
   labels image), or ROIs/sensors (no geometry: the keys below are consulted, then no map).
   Nothing is read from the target names.
3. Results written before target spaces, from their other provenance keys and target names:

   - ``provenance["mask"]``: a path to a 3-D NIfTI mask (absolute, or relative to the results
     file's folder), as in 1;
   - ``provenance["affine"]`` (4 x 4) and ``provenance["shape"]`` (the 3-D volume shape), with
     targets named ``v<flat index>`` (the C-order index of the voxel in that volume);
   - ``provenance["mesh"]`` (e.g. ``"fsaverage5"``), or ``provenance["space"]`` naming an
     fsaverage mesh (``"fsaverage6"``), or ``"surface"`` (fsaverage5): vertices. Targets named
     ``L<vertex>`` / ``R<vertex>`` go to that vertex of the left / right hemisphere (any
     subset); otherwise the targets are all vertices, left then right
     (``provenance["hemi"] = "both"``, the default) or of one hemisphere (``"left"`` /
     ``"right"``).

4. Anything else (``"roi"``, ``"sensor"``, a space without a mask, affine or mesh, or no
   key): named regions or sensors; no brain map, the report shows charts labelled with the
   target names. ``provenance["space"] = "volume"`` without a mask or affine is an error.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import _check_option, _preview
from ..encoding.results import EncodingResults
from ..responses.space import (
    CompositeSpace,
    ParcelSpace,
    RoiSpace,
    SensorSpace,
    SurfaceSpace,
    TargetSpace,
    VolumeSpace,
    space_from_dict,
)

logger = logging.getLogger(__name__)

MESHES = ("fsaverage3", "fsaverage4", "fsaverage5", "fsaverage6", "fsaverage7", "fsaverage")
HEMIS = ("both", "left", "right")
_VOXEL_NAME = re.compile(r"^v(\d+)$")
_VERTEX_NAME = re.compile(r"^([LR])(\d+)$")


def _load_mask(mask: Any, base_dir: str | None = None):
    import nibabel as nib

    if isinstance(mask, nib.spatialimages.SpatialImage):
        img = mask
    else:
        path = Path(os.fspath(mask)).expanduser()
        if not path.is_absolute() and base_dir is not None and (Path(base_dir) / path).exists():
            path = Path(base_dir) / path
        if not path.exists():
            raise FileNotFoundError(
                f"mask image not found: {str(path)!r}; pass the mask used to extract the responses "
                "(neuroenc report --mask PATH)."
            )
        img = nib.load(str(path))
    if len(img.shape) != 3:
        raise ValueError(f"the mask must be a 3-D image, got shape {img.shape}.")
    return img


def voxel_indices(targets: Sequence[str]) -> np.ndarray | None:
    """Flat voxel indices of targets named ``v<index>``; None unless every name has that form."""
    matches = [_VOXEL_NAME.match(str(t)) for t in targets]
    if not matches or not all(matches):
        return None
    return np.array([int(m.group(1)) for m in matches], dtype=np.int64)


def _vertex_indices(targets: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Per hemisphere: (positions among the targets, vertex indices) for names ``L<i>``/``R<i>``."""
    matches = [_VERTEX_NAME.match(str(t)) for t in targets]
    if not matches or not all(matches):
        return None
    out = {}
    for letter, hemi in (("L", "left"), ("R", "right")):
        pos = np.array([i for i, m in enumerate(matches) if m.group(1) == letter], dtype=np.int64)
        if pos.size:
            out[hemi] = (pos, np.array([int(matches[i].group(2)) for i in pos], dtype=np.int64))
    return out


def target_space(results: EncodingResults, *, mask_img: Any = None) -> dict[str, Any]:
    """Where the targets of ``results`` live, from the provenance (see the module docstring).

    Returns
    -------
    space : dict
        ``{"kind": "volume", "mask_img": img, "voxel_index": ndarray | None}`` (with
        ``"parcels"``: a :class:`~neuroenc.responses.space.ParcelSpace` for atlas parcels),
        ``{"kind": "surface", "mesh": str, "hemi": str, "names": list}`` (with ``"surface"``:
        the :class:`~neuroenc.responses.SurfaceSpace`, when stored), or
        ``{"kind": "roi" | "sensor", "space": <provenance space>}``.
    """
    prov = results.provenance
    if mask_img is not None:
        return _explicit_mask(results, mask_img, prov.get("results_dir"))
    stored = prov.get("target_space")
    if stored is not None:
        ts = space_from_dict(stored)
        if ts.n_targets != results.n_targets:  # e.g. fitted on other responses than the design's
            logger.warning(
                "the results' target space describes %d targets but the results have %d; it is "
                "ignored (the responses fitted were not those of the design).", ts.n_targets,
                results.n_targets)
        elif not isinstance(ts, RoiSpace):  # ROIs carry no geometry: the older keys may
            return _from_target_space(ts, results)
    return _from_legacy_provenance(results)


def _explicit_mask(results: EncodingResults, mask: Any, base_dir: str | None) -> dict[str, Any]:
    img = _load_mask(mask, base_dir)
    n_vox = int(np.count_nonzero(np.asarray(img.dataobj)))
    if n_vox != results.n_targets:
        raise ValueError(
            f"the mask has {n_vox} voxels but the results have {results.n_targets} targets; "
            "pass the mask used to extract the responses."
        )
    return {"kind": "volume", "mask_img": img, "voxel_index": None}


def _from_target_space(ts: TargetSpace, results: EncodingResults) -> dict[str, Any]:
    """The brain-map space of a stored :class:`TargetSpace` (no target name is read)."""
    prov = results.provenance
    if isinstance(ts, VolumeSpace):
        return {"kind": "volume", "mask_img": ts.mask_img(), "voxel_index": ts.voxel_index}
    if isinstance(ts, SurfaceSpace):
        mesh = ts.mesh or prov.get("mesh")
        if mesh not in MESHES:
            return {"kind": "roi", "space": f"surface ({ts.n_targets} vertices of a mesh that is not "
                                            "fsaverage)"}
        return {"kind": "surface", "mesh": mesh, "hemi": "both", "names": list(results.targets),
                "surface": ts}
    if isinstance(ts, ParcelSpace) and ts.labels_img is not None:
        img = ts.load_labels(prov.get("results_dir"))
        return {"kind": "volume", "mask_img": img, "voxel_index": None,
                "parcels": ParcelSpace(ts.labels, img)}
    if isinstance(ts, SensorSpace):
        return {"kind": "sensor", "space": prov.get("space")}
    what = "composite" if isinstance(ts, CompositeSpace) else ts.kind
    return {"kind": "roi", "space": prov.get("space") or what}


def _from_legacy_provenance(results: EncodingResults) -> dict[str, Any]:
    """Results written before target spaces: provenance keys and target names."""
    import nibabel as nib

    prov = results.provenance
    space = prov.get("space")
    if prov.get("mask") is not None:
        return _explicit_mask(results, prov["mask"], prov.get("results_dir"))
    if prov.get("affine") is not None and prov.get("shape") is not None:
        affine = np.asarray(prov["affine"], dtype=np.float64)
        shape = tuple(int(s) for s in np.asarray(prov["shape"]).reshape(-1)[:3])
        if affine.shape != (4, 4) or len(shape) != 3:
            raise ValueError(
                f"provenance 'affine' must be 4 x 4 and 'shape' 3 numbers, got {affine.shape} and "
                f"{prov['shape']!r}."
            )
        idx = voxel_indices(results.targets)
        if idx is None:
            raise ValueError(
                "the provenance has an affine and a volume shape, so the targets must be voxels named "
                f"'v<flat index>', but they are {_preview(results.targets)}; pass a mask instead."
            )
        if idx.max(initial=-1) >= np.prod(shape):
            raise ValueError(
                f"voxel index {int(idx.max())} is outside the volume of shape {shape}; the targets and "
                "the provenance 'shape' do not match."
            )
        data = np.zeros(shape, dtype=np.uint8)
        data.reshape(-1)[idx] = 1
        return {"kind": "volume", "mask_img": nib.Nifti1Image(data, affine), "voxel_index": idx}
    mesh = prov.get("mesh")
    if mesh is None and isinstance(space, str) and (space.startswith("fsaverage") or space == "surface"):
        mesh = space if space.startswith("fsaverage") else "fsaverage5"
    if mesh is not None:
        hemi = prov.get("hemi", "both")
        _check_option("provenance['mesh']", mesh, MESHES)
        _check_option("provenance['hemi']", hemi, HEMIS)
        return {"kind": "surface", "mesh": mesh, "hemi": hemi, "names": list(results.targets)}
    if space == "volume":
        raise ValueError(
            "the results are voxels (provenance space 'volume') but name no mask and no affine; pass "
            "the mask image (neuroenc report --mask PATH)."
        )
    return {"kind": space if space in ("roi", "sensor") else "roi", "space": space}


def volume_image(values: np.ndarray, mask_img: Any, voxel_index: np.ndarray | None = None):
    """A NIfTI image with ``values`` in their voxels and 0 elsewhere.

    Parameters
    ----------
    values : ndarray, shape (n_voxels,)
        One value per target voxel; NaN becomes 0 (drawn as empty).
    mask_img : Nifti1Image | path
        The 3-D mask (or, with ``voxel_index``, any image on the target grid).
    voxel_index : ndarray of int | None
        The flat (C-order) index of each value's voxel; ``None``: the values are the mask's
        non-zero voxels in nilearn's order.

    Returns
    -------
    img : Nifti1Image
    """
    import nibabel as nib

    img = _load_mask(mask_img)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if voxel_index is None:
        from nilearn.maskers import NiftiMasker

        n_vox = int(np.count_nonzero(np.asarray(img.dataobj)))
        if values.size != n_vox:
            raise ValueError(
                f"got {values.size} values for a mask of {n_vox} voxels; pass one value per mask voxel."
            )
        masker = NiftiMasker(mask_img=img).fit()
        return masker.inverse_transform(np.nan_to_num(values, nan=0.0).astype(np.float32))
    voxel_index = np.asarray(voxel_index, dtype=np.int64).reshape(-1)
    if voxel_index.size != values.size:
        raise ValueError(f"got {values.size} values for {voxel_index.size} voxel indices; pass one index per value.")
    if voxel_index.size and (voxel_index.min() < 0 or voxel_index.max() >= np.prod(img.shape)):
        raise ValueError(f"voxel indices must lie in [0, {int(np.prod(img.shape))}) for a grid of shape {img.shape}.")
    data = np.zeros(img.shape, dtype=np.float32)
    data.reshape(-1)[voxel_index] = np.nan_to_num(values, nan=0.0)
    return nib.Nifti1Image(data, img.affine)


def load_mesh(mesh: str = "fsaverage5"):
    """nilearn's fsaverage meshes (``load_fsaverage``); a clear error when one cannot be fetched.

    nilearn ships fsaverage5 with the package; the other meshes are downloaded on first use.
    """
    from nilearn import datasets

    _check_option("mesh", mesh, MESHES)
    try:
        return datasets.load_fsaverage(mesh)
    except OSError as err:  # no network (requests' ConnectionError is an OSError)
        raise FileNotFoundError(
            f"the {mesh} mesh is not available: nilearn could not download it ({type(err).__name__}). "
            "nilearn ships fsaverage5 offline; resample the data to fsaverage5 or fetch the mesh once "
            "with network access."
        ) from err


def surface_values(
    values: np.ndarray,
    *,
    mesh: str = "fsaverage5",
    hemi: str = "both",
    names: Sequence[str] | None = None,
    surface: SurfaceSpace | None = None,
) -> dict[str, np.ndarray]:
    """Per-vertex values of the hemispheres of an fsaverage mesh.

    Parameters
    ----------
    values : ndarray, shape (n_targets,)
        One value per target.
    mesh : str
        The fsaverage mesh (``"fsaverage5"`` ships with nilearn; others are downloaded by nilearn).
    hemi : "both" | "left" | "right"
        Without vertex names: the targets are every vertex, left then right (``"both"``), or
        those of one hemisphere.
    names : sequence of str | None
        Target names of results written before target spaces; when all are ``L<vertex>`` /
        ``R<vertex>``, each value goes to its vertex and the other vertices are NaN.
    surface : SurfaceSpace | None
        The targets' hemispheres and vertices (from the results' ``target_space``): each
        value goes to its vertex, the other vertices are NaN. Takes precedence over ``names``.

    Returns
    -------
    values : dict
        ``{"left": ndarray, "right": ndarray}`` (or one of them), full vertex count each.
    """
    _check_option("mesh", mesh, MESHES)
    _check_option("hemi", hemi, HEMIS)
    surf = load_mesh(mesh)
    n = {h: surf["inflated"].parts[h].n_vertices for h in ("left", "right")}
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    fix = "the targets are not on this mesh"
    named = _vertex_indices(names) if surface is None and names is not None else None
    if named is not None:
        if len(names) != values.size:
            raise ValueError(f"got {values.size} values for {len(names)} target names.")
        vertex_index = np.zeros(len(names), dtype=np.int64)
        hemis = [""] * len(names)
        for side, (pos, vertex) in named.items():
            vertex_index[pos] = vertex
            for p in pos:
                hemis[p] = side
        surface = SurfaceSpace(vertex_index, hemis)
        fix = "set provenance['mesh'] to the mesh of the data"
    if surface is not None:
        for side, (_, vertex) in surface.by_hemisphere().items():
            if vertex.max() >= n[side]:
                raise ValueError(
                    f"vertex {int(vertex.max())} of the {side} hemisphere is outside {mesh} "
                    f"({n[side]} vertices); {fix}."
                )
        return surface.to_vertices(values, n_vertices=n)
    expected = n["left"] + n["right"] if hemi == "both" else n[hemi]
    if values.size != expected:
        raise ValueError(
            f"got {values.size} values for {mesh} ({hemi}), which has {expected} vertices; "
            "pass one value per vertex (left then right for hemi='both') or name the targets "
            "L<vertex>/R<vertex>."
        )
    if hemi == "both":
        return {"left": values[: n["left"]], "right": values[n["left"]:]}
    return {hemi: values}


def mapping_maps(
    per_target: Mapping[str, np.ndarray],
    space: Mapping[str, Any],
) -> dict[str, Any]:
    """Brain maps of per-target values in the space of the targets.

    Parameters
    ----------
    per_target : mapping of str -> ndarray (n_targets,)
        E.g. the ``best_depth``, ``preference_index`` and ``r`` columns of the group table.
    space : dict
        From :func:`target_space`.

    Returns
    -------
    maps : dict
        For a volume, name -> Nifti1Image; for a surface, name -> {hemi: ndarray}; empty for ROI
        or sensor targets.
    """
    kind = space.get("kind")
    if kind == "volume" and space.get("parcels") is not None:
        return {name: space["parcels"].to_image(vals) for name, vals in per_target.items()}
    if kind == "volume":
        return {name: volume_image(vals, space["mask_img"], space.get("voxel_index"))
                for name, vals in per_target.items()}
    if kind == "surface":
        return {
            name: surface_values(vals, mesh=space["mesh"], hemi=space["hemi"], names=space.get("names"),
                                 surface=space.get("surface"))
            for name, vals in per_target.items()
        }
    return {}
