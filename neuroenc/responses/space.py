"""Where the targets of a response live: voxels, surface vertices, atlas parcels, ROIs or sensors.

A :class:`~neuroenc.responses.Response` has one column per target; its ``space`` says what each
column is, as an object (never encoded in the target names):

- :class:`VolumeSpace`: voxels of a 3-D grid (affine, shape, the flat C-order index of each
  target's voxel; optionally the mask file they came from). Masks and images go both ways
  through nilearn's :class:`~nilearn.maskers.NiftiMasker`.
- :class:`SurfaceSpace`: vertices of a mesh (the hemisphere and vertex index of each target,
  the number of vertices per hemisphere, the mesh name when known, e.g. ``"fsaverage5"``).
- :class:`ParcelSpace`: parcels of an atlas (the label value of each target in a labels image).
- :class:`RoiSpace`: named regions or any targets without geometry (the names are the
  response's).
- :class:`SensorSpace`: MEG/EEG channels (their types; the mne ``Info`` when read from mne).
- :class:`CompositeSpace`: several of these side by side (a CIFTI file: cortical vertices and
  subcortical voxels).

Every space writes itself as a JSON-serialisable dict (:meth:`TargetSpace.to_dict`, compact:
long index arrays are delta-encoded and compressed) and reads itself back
(:func:`space_from_dict`); the results' provenance carries that dict under ``"target_space"``,
and :mod:`neuroenc.mapping.brainmaps` turns it back into brain maps.
"""
from __future__ import annotations

import base64
import logging
import os
import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .._validation import _check_option

logger = logging.getLogger(__name__)

#: The hemispheres of a surface, in the order their codes (0, 1) are stored.
HEMISPHERES = ("left", "right")
#: Vertices per hemisphere of the fsaverage meshes (FreeSurfer's icosahedron orders 3-7).
FSAVERAGE_VERTICES = {642: "fsaverage3", 2562: "fsaverage4", 10242: "fsaverage5",
                      40962: "fsaverage6", 163842: "fsaverage7"}
_PLAIN_MAX = 16  # arrays up to this size are stored as plain JSON lists


# ---------------------------------------------------------------------- compact arrays
def pack_array(values: Any, *, delta: bool = True) -> list[int] | dict[str, Any]:
    """A compact JSON form of an integer array: a list when short, else compressed bytes.

    Long arrays are stored as ``{"encoding": "zlib-delta-int32" | "zlib-int32", "size": n,
    "data": base64}``: the differences of consecutive values (``delta=True``, for sorted
    indices, which then compress to almost nothing), as little-endian int32, zlib-compressed.
    :func:`unpack_array` reverses it exactly.
    """
    values = np.asarray(values).reshape(-1)
    if values.size and not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"pack_array needs integers, got dtype {values.dtype}.")
    values = values.astype(np.int64)
    if values.size <= _PLAIN_MAX:
        return values.tolist()
    stored = np.diff(values, prepend=0) if delta else values
    if stored.size and (stored.min() < np.iinfo(np.int32).min or stored.max() > np.iinfo(np.int32).max):
        raise ValueError("pack_array: values out of the int32 range.")
    raw = zlib.compress(stored.astype("<i4").tobytes(), 6)
    return {"encoding": "zlib-delta-int32" if delta else "zlib-int32", "size": int(values.size),
            "data": base64.b64encode(raw).decode("ascii")}


def unpack_array(packed: Any) -> np.ndarray:
    """The int64 array stored by :func:`pack_array` (a list or the compressed dict)."""
    if isinstance(packed, dict):
        encoding = packed.get("encoding")
        _check_option("encoding", encoding, ("zlib-delta-int32", "zlib-int32"), "of a packed array")
        stored = np.frombuffer(zlib.decompress(base64.b64decode(packed["data"])), dtype="<i4")
        if stored.size != int(packed["size"]):
            raise ValueError(f"a packed array says it has {packed['size']} values but holds {stored.size}.")
        stored = stored.astype(np.int64)
        return np.cumsum(stored) if encoding == "zlib-delta-int32" else stored
    return np.asarray(packed, dtype=np.int64).reshape(-1)


def _as_index(name: str, values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name!r} must be a 1-D array of integers, got {arr.dtype} with shape {arr.shape}.")
    if arr.min() < 0:
        raise ValueError(f"{name!r} has negative values (first: {int(arr.min())}).")
    return arr.astype(np.int64)


def _selection(index: Any, n: int) -> np.ndarray:
    """Integer positions from indices or a boolean mask, checked against ``n`` targets."""
    index = np.asarray(index)
    if index.dtype == bool:
        if index.size != n:
            raise ValueError(f"a boolean selection has {index.size} values for {n} targets.")
        return np.flatnonzero(index)
    index = index.astype(np.int64).reshape(-1)
    if index.size and (index.min() < -n or index.max() >= n):
        raise IndexError(f"target index out of range for {n} targets: {int(index.max())}.")
    return np.where(index < 0, index + n, index)


# ---------------------------------------------------------------------- the spaces
class TargetSpace(ABC):
    """What the columns of a response are. Subclasses give the geometry of each kind.

    Every space has ``kind``, ``n_targets``, :meth:`select` (a subset of its targets, in a
    new order if asked), :meth:`to_dict` (JSON) and equality by value.
    """

    kind: ClassVar[str] = ""

    @property
    @abstractmethod
    def n_targets(self) -> int:
        """Number of targets."""

    @abstractmethod
    def select(self, index: Any) -> TargetSpace:
        """The space of a subset of the targets (positions or a boolean mask), in that order."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict that :func:`space_from_dict` reads back."""

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:  # mutable arrays inside: identity hash, equality by value
        return id(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} | {self.n_targets} targets>"


class RoiSpace(TargetSpace):
    """Targets without geometry: named regions (their names are the response's), or anything
    whose place in the brain is not known (e.g. voxels of a volume that was not given).

    Parameters
    ----------
    n_targets : int
    """

    kind = "roi"

    def __init__(self, n_targets: int) -> None:
        if isinstance(n_targets, bool) or not isinstance(n_targets, (int, np.integer)) or n_targets < 0:
            raise ValueError(f"'n_targets' must be an int >= 0, got {n_targets!r}.")
        self._n = int(n_targets)

    @property
    def n_targets(self) -> int:
        return self._n

    def select(self, index: Any) -> RoiSpace:
        return RoiSpace(_selection(index, self._n).size)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_targets": self._n}


class SensorSpace(TargetSpace):
    """MEG/EEG channels: one type per target (``"mag"``, ``"grad"``, ``"eeg"``...).

    Parameters
    ----------
    ch_types : sequence of str
        The type of each channel (``"misc"`` when unknown).
    info : mne.Info | None
        The measurement info of exactly these channels, when read from mne (kept in memory;
        not written to results).
    """

    kind = "sensor"

    def __init__(self, ch_types: Sequence[str], info: Any = None) -> None:
        self.ch_types = [str(t) for t in ch_types]
        if info is not None and len(info["ch_names"]) != len(self.ch_types):
            raise ValueError(
                f"the mne Info has {len(info['ch_names'])} channels but {len(self.ch_types)} types were given."
            )
        self.info = info

    @classmethod
    def from_info(cls, info: Any) -> SensorSpace:
        """The space of every channel of an ``mne.Info``."""
        return cls(info.get_channel_types(), info=info)

    @property
    def n_targets(self) -> int:
        return len(self.ch_types)

    def select(self, index: Any) -> SensorSpace:
        idx = _selection(index, self.n_targets)
        info = None
        if self.info is not None:
            import mne

            info = mne.pick_info(self.info, idx.tolist(), verbose="error")
        return SensorSpace([self.ch_types[i] for i in idx], info=info)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "ch_types": list(self.ch_types)}


class VolumeSpace(TargetSpace):
    """Voxels of a 3-D grid: the flat (C-order) index of each target's voxel.

    Parameters
    ----------
    affine : array-like, shape (4, 4)
        Voxel to world coordinates.
    shape : sequence of 3 int
        The grid.
    voxel_index : array-like of int, shape (n_targets,)
        ``np.ravel_multi_index((i, j, k), shape)`` of each target's voxel, in target order.
        Sorted indices are nilearn's order (``NiftiMasker`` of :meth:`mask_img`).
    mask : path-like | None
        The mask file the voxels were selected with, for provenance (not needed to map back).
    """

    kind = "volume"

    def __init__(self, affine: Any, shape: Sequence[int], voxel_index: Any, mask: Any = None) -> None:
        affine = np.asarray(affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise ValueError(f"'affine' must be 4 x 4, got shape {affine.shape}.")
        shape = tuple(int(s) for s in np.asarray(shape).reshape(-1))
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"'shape' must be 3 positive ints (the volume grid), got {shape}.")
        index = _as_index("voxel_index", voxel_index)
        n_vox = int(np.prod(shape))
        if index.size and index.max() >= n_vox:
            raise ValueError(
                f"voxel index {int(index.max())} is outside the volume of shape {shape} ({n_vox} voxels)."
            )
        self.affine = affine
        self.shape = shape
        self.voxel_index = index
        self.mask = None if mask is None else str(mask)

    @classmethod
    def from_mask(cls, mask_img: Any, mask: Any = None) -> VolumeSpace:
        """The non-zero voxels of a 3-D mask image, in nilearn's order (C order)."""
        data = np.asarray(mask_img.dataobj)
        if data.ndim != 3:
            raise ValueError(f"a mask must be a 3-D image, got shape {data.shape}.")
        return cls(mask_img.affine, data.shape, np.flatnonzero(data.reshape(-1) != 0), mask=mask)

    @property
    def n_targets(self) -> int:
        return int(self.voxel_index.size)

    @property
    def ijk(self) -> np.ndarray:
        """The (i, j, k) voxel coordinates of each target, shape (n_targets, 3)."""
        return np.stack(np.unravel_index(self.voxel_index, self.shape), axis=1)

    @property
    def in_masker_order(self) -> bool:
        """Whether the targets are the voxels of :meth:`mask_img` in nilearn's (C) order."""
        return bool(np.all(np.diff(self.voxel_index) > 0))

    def mask_img(self) -> Any:
        """A 3-D uint8 NIfTI image, 1 at the targets' voxels."""
        import nibabel as nib

        data = np.zeros(self.shape, dtype=np.uint8)
        data.reshape(-1)[self.voxel_index] = 1
        return nib.Nifti1Image(data, self.affine)

    def masker(self) -> Any:
        """A fitted :class:`nilearn.maskers.NiftiMasker` whose columns are these targets."""
        from nilearn.maskers import NiftiMasker

        if not self.in_masker_order:
            raise ValueError(
                "these voxels are not in nilearn's order (increasing C-order index, no repeats), so "
                "no NiftiMasker has them as its columns; use to_image(), which accepts any order."
            )
        return NiftiMasker(mask_img=self.mask_img()).fit()

    def to_image(self, values: Any) -> Any:
        """A NIfTI image with ``values`` at the targets' voxels and 0 elsewhere (NaN → 0).

        ``values`` has shape (n_targets,) for a 3-D image or (n_images, n_targets) for 4-D.
        """
        values = np.asarray(values, dtype=np.float64)
        if values.shape[-1] != self.n_targets:
            raise ValueError(
                f"got {values.shape[-1]} values per image for a volume space of {self.n_targets} voxels."
            )
        values = np.nan_to_num(values, nan=0.0).astype(np.float32)
        if self.in_masker_order:
            return self.masker().inverse_transform(values)
        import nibabel as nib

        flat = values.reshape(-1, self.n_targets)
        data = np.zeros((int(np.prod(self.shape)), flat.shape[0]), dtype=np.float32)
        data[self.voxel_index] = flat.T
        data = data.reshape(*self.shape, flat.shape[0])
        return nib.Nifti1Image(data[..., 0] if values.ndim == 1 else data, self.affine)

    def select(self, index: Any) -> VolumeSpace:
        idx = _selection(index, self.n_targets)
        return VolumeSpace(self.affine, self.shape, self.voxel_index[idx], mask=self.mask)

    def same_grid(self, other: VolumeSpace) -> bool:
        """Whether ``other`` is on the same grid (shape and affine)."""
        return self.shape == other.shape and np.allclose(self.affine, other.affine, atol=1e-4)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "affine": self.affine.tolist(), "shape": list(self.shape),
                "voxel_index": pack_array(self.voxel_index), "mask": self.mask}

    def __repr__(self) -> str:
        return f"<VolumeSpace | {self.n_targets} voxels of a {'x'.join(map(str, self.shape))} grid>"


class SurfaceSpace(TargetSpace):
    """Vertices of a cortical mesh: each target's hemisphere and vertex index.

    Parameters
    ----------
    vertex_index : array-like of int, shape (n_targets,)
    hemi : "left" | "right" | sequence of them
        Each target's hemisphere (one value for all).
    n_vertices : dict | None
        Vertices per hemisphere of the mesh (``{"left": 10242, "right": 10242}``); default: from
        ``mesh`` for fsaverage meshes.
    mesh : str | None
        The mesh, when known (``"fsaverage5"``; fsaverage meshes are drawn with nilearn).
    """

    kind = "surface"

    def __init__(self, vertex_index: Any, hemi: Any, n_vertices: dict[str, int] | None = None,
                 mesh: str | None = None) -> None:
        index = _as_index("vertex_index", vertex_index)
        if isinstance(hemi, str):
            _check_option("hemi", hemi, HEMISPHERES)
            codes = np.full(index.size, HEMISPHERES.index(hemi), dtype=np.int8)
        else:
            hemi = [str(h) for h in hemi]
            if len(hemi) != index.size:
                raise ValueError(f"'hemi' has {len(hemi)} values for {index.size} vertices.")
            for h in set(hemi):
                _check_option("hemi", h, HEMISPHERES)
            codes = np.array([HEMISPHERES.index(h) for h in hemi], dtype=np.int8)
        if n_vertices is None and mesh is not None:
            counts = {v: k for k, v in FSAVERAGE_VERTICES.items()}
            if mesh in counts:
                n_vertices = {"left": counts[mesh], "right": counts[mesh]}
            elif mesh == "fsaverage":
                n_vertices = {"left": 163842, "right": 163842}
        n_vertices = None if n_vertices is None else {str(k): int(v) for k, v in n_vertices.items()}
        if n_vertices is not None:
            for code, side in enumerate(HEMISPHERES):
                sel = index[codes == code]
                if sel.size and (side not in n_vertices or sel.max() >= n_vertices[side]):
                    raise ValueError(
                        f"vertex {int(sel.max())} of the {side} hemisphere is outside the mesh "
                        f"({n_vertices.get(side, 0)} vertices)."
                    )
        self.vertex_index = index
        self._codes = codes
        self.n_vertices = n_vertices
        self.mesh = None if mesh is None else str(mesh)

    @property
    def n_targets(self) -> int:
        return int(self.vertex_index.size)

    @property
    def hemi(self) -> list[str]:
        """The hemisphere of each target."""
        return [HEMISPHERES[c] for c in self._codes]

    def by_hemisphere(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per hemisphere present: (positions among the targets, vertex indices)."""
        out = {}
        for code, side in enumerate(HEMISPHERES):
            pos = np.flatnonzero(self._codes == code)
            if pos.size:
                out[side] = (pos, self.vertex_index[pos])
        return out

    def to_vertices(self, values: Any, n_vertices: dict[str, int] | None = None) -> dict[str, np.ndarray]:
        """Per hemisphere, one value per mesh vertex (NaN where no target is).

        Parameters
        ----------
        values : array-like, shape (n_targets,)
        n_vertices : dict | None
            Vertices per hemisphere; default the space's own.
        """
        n_vertices = n_vertices or self.n_vertices
        if n_vertices is None:
            raise ValueError("this surface space does not know its mesh's vertex counts; give n_vertices=.")
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.size != self.n_targets:
            raise ValueError(f"got {values.size} values for a surface space of {self.n_targets} vertices.")
        out = {}
        for side, (pos, vertex) in self.by_hemisphere().items():
            if vertex.max() >= n_vertices[side]:
                raise ValueError(
                    f"vertex {int(vertex.max())} of the {side} hemisphere is outside the mesh "
                    f"({n_vertices[side]} vertices)."
                )
            full = np.full(n_vertices[side], np.nan)
            full[vertex] = values[pos]
            out[side] = full
        return out

    def select(self, index: Any) -> SurfaceSpace:
        idx = _selection(index, self.n_targets)
        return SurfaceSpace(self.vertex_index[idx], [self.hemi[i] for i in idx], self.n_vertices, self.mesh)

    def to_dict(self) -> dict[str, Any]:
        sides = np.unique(self._codes)
        hemi: Any = HEMISPHERES[int(sides[0])] if sides.size == 1 else pack_array(self._codes, delta=False)
        return {"kind": self.kind, "mesh": self.mesh, "n_vertices": self.n_vertices, "hemi": hemi,
                "vertex_index": pack_array(self.vertex_index)}

    def __repr__(self) -> str:
        return f"<SurfaceSpace | {self.n_targets} vertices of {self.mesh or 'a mesh'}>"


class ParcelSpace(TargetSpace):
    """Parcels of an atlas: each target is the region with one label value in a labels image.

    Parameters
    ----------
    labels : array-like of int, shape (n_targets,)
        The label value of each target's parcel in ``labels_img``.
    labels_img : path-like | nibabel image | None
        The 3-D labels image (the atlas). An image in memory is embedded (compressed) when
        written to results.
    """

    kind = "parcels"

    def __init__(self, labels: Any, labels_img: Any = None) -> None:
        self.labels = _as_index("labels", labels)
        self.labels_img = None if labels_img is None else (
            str(labels_img) if isinstance(labels_img, (str, os.PathLike)) else labels_img)

    @property
    def n_targets(self) -> int:
        return int(self.labels.size)

    def load_labels(self, base_dir: str | os.PathLike | None = None) -> Any:
        """The labels image (loaded from its path, relative paths against ``base_dir``)."""
        import nibabel as nib

        if self.labels_img is None:
            raise ValueError("this parcel space has no labels image; pass labels_img= to map it.")
        if not isinstance(self.labels_img, str):
            return self.labels_img
        path = Path(self.labels_img).expanduser()
        if not path.is_absolute() and base_dir is not None and (Path(base_dir) / path).exists():
            path = Path(base_dir) / path
        if not path.exists():
            raise FileNotFoundError(f"labels image not found: {str(path)!r}; pass the atlas of the parcels.")
        return nib.load(str(path))

    def to_image(self, values: Any, base_dir: str | os.PathLike | None = None) -> Any:
        """A NIfTI image with each parcel painted with its target's value (0 elsewhere, NaN → 0)."""
        import nibabel as nib

        img = self.load_labels(base_dir)
        values = np.nan_to_num(np.asarray(values, dtype=np.float64).reshape(-1), nan=0.0)
        if values.size != self.n_targets:
            raise ValueError(f"got {values.size} values for {self.n_targets} parcels.")
        labels = np.asarray(img.dataobj).astype(np.int64)
        lookup = np.zeros(max(int(labels.max(initial=0)), int(self.labels.max(initial=0))) + 1)
        lookup[self.labels] = values
        return nib.Nifti1Image(lookup[np.clip(labels, 0, None)].astype(np.float32), img.affine)

    def select(self, index: Any) -> ParcelSpace:
        return ParcelSpace(self.labels[_selection(index, self.n_targets)], self.labels_img)

    def to_dict(self) -> dict[str, Any]:
        img: Any = self.labels_img
        if img is not None and not isinstance(img, str):
            filename = img.get_filename() if hasattr(img, "get_filename") else None
            if filename:
                img = str(filename)
            else:
                data = np.asarray(img.dataobj).astype(np.int64)
                img = {"affine": np.asarray(img.affine).tolist(), "shape": list(data.shape),
                       "data": pack_array(data.reshape(-1), delta=False)}
        return {"kind": self.kind, "labels": pack_array(self.labels, delta=False), "labels_img": img}


class CompositeSpace(TargetSpace):
    """Several spaces side by side: the targets of ``parts[0]``, then ``parts[1]``...

    E.g. a CIFTI grayordinate file: the vertices of both hemispheres, then subcortical voxels.
    """

    kind = "composite"

    def __init__(self, parts: Sequence[TargetSpace]) -> None:
        flat: list[TargetSpace] = []
        for part in parts:
            if not isinstance(part, TargetSpace):
                raise TypeError(f"parts of a CompositeSpace must be TargetSpaces, got {type(part).__name__}.")
            flat.extend(part.parts if isinstance(part, CompositeSpace) else [part])
        self.parts = [p for p in flat if p.n_targets]

    @property
    def n_targets(self) -> int:
        return int(sum(p.n_targets for p in self.parts))

    def select(self, index: Any) -> TargetSpace:
        idx = _selection(index, self.n_targets)
        bounds = np.cumsum([0] + [p.n_targets for p in self.parts])
        which = np.searchsorted(bounds, idx, side="right") - 1
        pieces: list[TargetSpace] = []
        start = 0
        for stop in list(np.flatnonzero(np.diff(which)) + 1) + [idx.size]:
            if stop > start:
                k = int(which[start])
                pieces.append(self.parts[k].select(idx[start:stop] - bounds[k]))
            start = stop
        return concat_spaces(pieces) if pieces else RoiSpace(0)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "parts": [p.to_dict() for p in self.parts]}

    def __repr__(self) -> str:
        return f"<CompositeSpace | {self.n_targets} targets: {', '.join(repr(p) for p in self.parts)}>"


# ---------------------------------------------------------------------- reading, joining
def _volume_from_dict(d: dict[str, Any]) -> VolumeSpace:
    return VolumeSpace(d["affine"], d["shape"], unpack_array(d["voxel_index"]), mask=d.get("mask"))


def _surface_from_dict(d: dict[str, Any]) -> SurfaceSpace:
    index = unpack_array(d["vertex_index"])
    hemi = d["hemi"]
    if not isinstance(hemi, str):
        hemi = [HEMISPHERES[int(c)] for c in unpack_array(hemi)]
    return SurfaceSpace(index, hemi, d.get("n_vertices"), d.get("mesh"))


def _parcels_from_dict(d: dict[str, Any]) -> ParcelSpace:
    img = d.get("labels_img")
    if isinstance(img, dict):
        import nibabel as nib

        data = unpack_array(img["data"]).reshape(tuple(img["shape"]))
        img = nib.Nifti1Image(data.astype(np.int32), np.asarray(img["affine"], dtype=np.float64))
    return ParcelSpace(unpack_array(d["labels"]), img)


_READERS = {
    "roi": lambda d: RoiSpace(int(d["n_targets"])),
    "sensor": lambda d: SensorSpace(d["ch_types"]),
    "volume": _volume_from_dict,
    "surface": _surface_from_dict,
    "parcels": _parcels_from_dict,
    "composite": lambda d: CompositeSpace([space_from_dict(p) for p in d["parts"]]),
}


def space_from_dict(d: dict[str, Any]) -> TargetSpace:
    """The space written by :meth:`TargetSpace.to_dict`.

    Raises
    ------
    ValueError
        If ``d`` is not such a dict (unknown ``kind``, missing fields).
    """
    if not isinstance(d, dict):
        raise TypeError(f"a target space is stored as a dict, got {type(d).__name__}.")
    _check_option("kind", d.get("kind"), _READERS, "of a stored target space")
    try:
        return _READERS[d["kind"]](d)
    except KeyError as err:
        raise ValueError(f"the stored {d['kind']!r} target space lacks the field {err.args[0]!r}.") from None


def concat_spaces(spaces: Sequence[TargetSpace]) -> TargetSpace:
    """The space of targets stacked side by side (e.g. target chunks fitted apart).

    Neighbouring spaces of one kind on one grid/mesh/atlas are joined into one space of that
    kind; when more than one space is left, they become a :class:`CompositeSpace`.
    """
    spaces = [p for s in spaces for p in (s.parts if isinstance(s, CompositeSpace) else [s])]
    if not spaces:
        raise ValueError("concat_spaces needs at least one space.")
    groups: list[TargetSpace] = []
    for space in spaces:
        if not space.n_targets and groups:
            continue
        joined = _join(groups[-1], space) if groups else None
        if joined is None:
            groups.append(space)
        else:
            groups[-1] = joined
    return groups[0] if len(groups) == 1 else CompositeSpace(groups)


def _join(a: TargetSpace, b: TargetSpace) -> TargetSpace | None:
    """``a`` and ``b`` as one space, or None when they are not of one kind and grid."""
    if not a.n_targets:
        return b
    if type(a) is not type(b):
        return None
    if isinstance(a, RoiSpace):
        return RoiSpace(a.n_targets + b.n_targets)
    if isinstance(a, SensorSpace):
        return SensorSpace(a.ch_types + b.ch_types)
    if isinstance(a, VolumeSpace) and a.same_grid(b) and a.mask == b.mask:
        return VolumeSpace(a.affine, a.shape, np.concatenate([a.voxel_index, b.voxel_index]), mask=a.mask)
    if isinstance(a, SurfaceSpace) and a.mesh == b.mesh:
        counts = _merged_counts([a.n_vertices, b.n_vertices])
        if counts is not False:
            return SurfaceSpace(np.concatenate([a.vertex_index, b.vertex_index]), a.hemi + b.hemi,
                                counts, a.mesh)
    if isinstance(a, ParcelSpace) and a.to_dict()["labels_img"] == b.to_dict()["labels_img"]:
        return ParcelSpace(np.concatenate([a.labels, b.labels]), a.labels_img)
    return None


def _merged_counts(counts: list[dict[str, int] | None]) -> dict[str, int] | None | bool:
    """The union of per-hemisphere vertex counts; False if two disagree; None if none known."""
    if all(c is None for c in counts):
        return None
    if any(c is None for c in counts):
        return False
    merged: dict[str, int] = {}
    for c in counts:
        for side, n in c.items():
            if merged.setdefault(side, n) != n:
                return False
    return merged


def mesh_from_vertices(n_vertices: int) -> str | None:
    """The fsaverage mesh with ``n_vertices`` per hemisphere, or None."""
    return FSAVERAGE_VERTICES.get(int(n_vertices))
