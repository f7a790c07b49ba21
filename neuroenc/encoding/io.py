"""Read brain responses from files into :class:`~neuroenc.align.Response` objects.

Formats, by extension:

- ``.npy``: an array (n_samples, n_targets) (or (n_samples,));
- ``.txt`` / ``.tsv`` / ``.csv``: numbers in columns (whitespace, tab or comma); a first row of
  non-numbers gives the target names;
- ``.nii`` / ``.nii.gz``: a 4-D image, with a 3-D ``mask`` (voxels where it is non-zero, in
  C order); targets are named ``"i_j_k"`` by voxel index, and the mask and affine go to
  ``info`` for brain maps;
- ``.fif``: an mne Raw, Epochs (averaged) or Evoked (its own ``sfreq``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import _check_path_exists, _sha256_file
from ..align.response import Response

RESPONSE_FORMATS = (".npy", ".txt", ".tsv", ".csv", ".nii", ".nii.gz", ".fif")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for ext in RESPONSE_FORMATS:
        if name.endswith(ext):
            return ext
    return path.suffix.lower()


def _read_table(path: Path) -> tuple[np.ndarray, list[str] | None]:
    import pandas as pd

    sep = {".tsv": "\t", ".csv": ","}.get(_suffix(path), r"\s+")
    first = pd.read_csv(path, sep=sep, header=None, nrows=1, engine="python")
    header = None
    try:
        first.astype(float)
    except ValueError:
        header = 0
    table = pd.read_csv(path, sep=sep, header=header, engine="python")
    names = [str(c) for c in table.columns] if header == 0 else None
    try:
        data = table.to_numpy(dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{str(path)!r} has non-numeric values below its first row: {err}.") from err
    return data, names


def _read_nifti(path: Path, mask: Any) -> tuple[np.ndarray, list[str], dict]:
    import nibabel as nib

    if mask is None:
        raise ValueError(f"{str(path)!r} is a NIfTI image: give a brain mask (mask=..., --mask) to "
                         "select the voxels to model.")
    img = nib.load(str(path))
    if img.ndim != 4:
        raise ValueError(f"{str(path)!r} has {img.ndim} dimensions; expected a 4-D image (x, y, z, time).")
    mask_path = _check_path_exists(mask, "mask image")
    mask_img = nib.load(str(mask_path))
    if mask_img.shape[:3] != img.shape[:3]:
        raise ValueError(
            f"The mask {str(mask_path)!r} has shape {mask_img.shape[:3]} but the image has "
            f"{img.shape[:3]}; resample the mask to the image first."
        )
    if not np.allclose(mask_img.affine, img.affine, atol=1e-3):
        raise ValueError(f"The mask {str(mask_path)!r} and the image have different affines.")
    keep = np.asarray(mask_img.dataobj) != 0
    if not keep.any():
        raise ValueError(f"The mask {str(mask_path)!r} selects no voxel.")
    data = np.asarray(img.dataobj, dtype=np.float64)[keep].T
    ijk = np.argwhere(keep)
    names = [f"{i}_{j}_{k}" for i, j, k in ijk]
    tr = float(img.header.get_zooms()[3]) if len(img.header.get_zooms()) > 3 else None
    info = {"mask": str(mask_path), "affine": img.affine.tolist(), "shape": list(img.shape[:3]),
            "header_tr": tr}
    return data, names, info


def read_responses(path: str | os.PathLike, *, tr: float | None = None, sfreq: float | None = None,
                   start: float = 0.0, mask: Any = None, run: str | None = None,
                   subject: str | None = None, names: Any = None) -> Response:
    """Read one run's responses from a file.

    Parameters
    ----------
    path : path-like
        ``.npy``, ``.txt``/``.tsv``/``.csv``, ``.nii``/``.nii.gz`` (with ``mask``) or ``.fif``.
    tr : float | None
        Repetition time in seconds (fMRI); NIfTI images default to their header's.
    sfreq : float | None
        Sampling rate in Hz (MEG/EEG arrays); ``.fif`` files carry their own.
    start : float
        Stimulus time of row 0, in seconds (e.g. 20.0 for Alice).
    mask : path-like | None
        Brain mask for NIfTI images.
    run : str | None
        Run name (default: the file name without extension); runs are matched to features by
        name.
    subject : str | None
    names : sequence of str | None
        Target names (default: from the file's header, voxel indices, channel names, or
        ``"0", "1", ...``).

    Returns
    -------
    response : Response
        With ``info["source"]`` (path) and ``info["sha256"]``.
    """
    path = _check_path_exists(path, "responses file")
    ext = _suffix(path)
    if run is None:
        run = path.name[: -len(ext)] if ext and path.name.lower().endswith(ext) else path.stem
    info: dict[str, Any] = {"source": str(path), "sha256": _sha256_file(path)}
    if ext == ".fif":
        import mne

        inst = _read_fif(path, mne)
        response = Response.from_mne(inst, run=run, subject=subject)
        response.info.update(info)
        return response
    if ext == ".npy":
        data, file_names = np.load(path, allow_pickle=False), None
    elif ext in (".txt", ".tsv", ".csv"):
        data, file_names = _read_table(path)
    elif ext in (".nii", ".nii.gz"):
        data, file_names, extra = _read_nifti(path, mask)
        info.update(extra)
        if tr is None and sfreq is None:
            tr = extra["header_tr"]
    else:
        raise ValueError(
            f"Unknown responses format {ext!r} for {str(path)!r}; use one of {', '.join(RESPONSE_FORMATS)}."
        )
    if tr is None and sfreq is None:
        raise ValueError(f"Give the sampling of {str(path)!r}: tr= (fMRI, seconds) or sfreq= (Hz).")
    data = np.asarray(data, dtype=np.float64)
    return Response(data, tr=tr, sfreq=sfreq, start=start, names=names or file_names, run=run,
                    subject=subject, info=info)


def _read_fif(path: Path, mne: Any) -> Any:
    name = path.name.lower()
    if "-epo" in name or "_epo" in name:
        return mne.read_epochs(path, verbose="error")
    if "-ave" in name or "_ave" in name:
        return mne.read_evokeds(path, verbose="error")[0]
    return mne.io.read_raw_fif(path, preload=True, verbose="error")
