"""Read brain responses from files into :class:`~neuroenc.responses.Response` objects.

Formats, by extension:

- ``.npy``: an array (n_samples, n_targets) (or (n_samples,));
- ``.txt`` / ``.tsv`` / ``.csv``: numbers in columns (whitespace, tab or comma); a first row of
  non-numbers gives the target names;
- ``.nii`` / ``.nii.gz``: a 4-D image, with a 3-D ``mask`` (the voxels where it is non-zero,
  in C order, as nilearn's maskers take them); targets are named ``"i_j_k"`` by voxel index
  and the response's :class:`~neuroenc.responses.space.VolumeSpace` carries the geometry;
- ``.gii``: a GIfTI time series of one hemisphere (all its vertices, named ``L<i>``/``R<i>``);
- ``.dtseries.nii``: a CIFTI-2 dense time series (cortical vertices and subcortical voxels);
- ``.fif``: an mne Raw, Epochs (averaged) or Evoked (its own ``sfreq``, sensor space).

Images carry their own TR (NIfTI ``pixdim[4]`` in its ``xyzt_units``, GIfTI ``TimeStep``,
CIFTI series step), converted to seconds; a ``tr=`` that disagrees with it is an error naming
both (for a NIfTI whose time unit is unset, a warning: such headers are often left at 1).
"""
from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import _check_finite_number, _check_path_exists, _sha256_file, check_csv_records
from .formats import StoredTR, file_kind, read_cifti, read_gifti, read_nifti
from .response import Response

logger = logging.getLogger(__name__)

RESPONSE_FORMATS = (".npy", ".txt", ".tsv", ".csv", ".nii", ".nii.gz", ".gii", ".dtseries.nii", ".fif")
#: Seconds by which a given ``tr=`` may differ from the file's own.
TR_TOLERANCE = 1e-3


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for ext in sorted(RESPONSE_FORMATS, key=len, reverse=True):
        if name.endswith(ext):
            return ext
    return path.suffix.lower()


def _read_table(path: Path) -> tuple[np.ndarray, list[str] | None]:
    import pandas as pd

    sep = {".tsv": "\t", ".csv": ","}.get(_suffix(path), r"\s+")
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    check_csv_records(text, path, "responses", {r"\s+": " "}.get(sep, sep))
    try:
        first = pd.read_csv(io.StringIO(text), sep=sep, header=None, nrows=1, engine="python")
        header = None
        try:
            first.astype(float)
        except ValueError:
            header = 0
        table = pd.read_csv(io.StringIO(text), sep=sep, header=header, engine="python")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as err:
        raise ValueError(
            f"Could not read responses {str(path)!r} as a table of numbers (separator {sep!r}): "
            f"{' '.join(str(err).split())}. Check that file: one row per sample, a header row of "
            "target names at most, and no quotes (\")."
        ) from None
    names = [str(c) for c in table.columns] if header == 0 else None
    try:
        data = table.to_numpy(dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{str(path)!r} has non-numeric values below its first row: {err}.") from err
    return data, names


def resolve_tr(path: str | os.PathLike, tr: float | None, stored: StoredTR) -> float | None:
    """The TR to use for a file: ``tr`` if given (checked against the file's own), else the file's.

    Parameters
    ----------
    path : path-like
        The file, for messages.
    tr : float | None
        The TR the user gave, in seconds.
    stored : StoredTR
        The TR stored in the file. A disagreement of more than :data:`TR_TOLERANCE` is an
        error naming both, or a logged warning when the file's time unit is unset.
    """
    if tr is None or stored.seconds is None:
        return tr if tr is not None else stored.seconds
    if abs(float(tr) - stored.seconds) > TR_TOLERANCE:
        msg = (f"{str(path)!r} stores a TR of {stored.seconds:g} s (its {stored.source}) but "
               f"tr={float(tr):g} s was given. One of them is wrong: fix the file's header, or pass "
               "the TR it stores.")
        if stored.reliable:
            raise ValueError(msg)
        logger.warning("%s Using tr=%g s, since the header's time unit is not set.", msg, float(tr))
    return float(tr)


def read_responses(path: str | os.PathLike, *, tr: float | None = None, sfreq: float | None = None,
                   start: float = 0.0, mask: Any = None, run: str | None = None,
                   subject: str | None = None, names: Any = None) -> Response:
    """Read one run's responses from a file.

    Parameters
    ----------
    path : path-like
        ``.npy``, ``.txt``/``.tsv``/``.csv``, ``.nii``/``.nii.gz`` (with ``mask``), ``.gii``,
        ``.dtseries.nii`` or ``.fif``.
    tr : float | None
        Repetition time in seconds (fMRI). Images default to the TR they store; a ``tr`` that
        disagrees with it is an error.
    sfreq : float | None
        Sampling rate in Hz (MEG/EEG arrays); ``.fif`` files carry their own.
    start : float
        Stimulus time of row 0, in seconds (e.g. 20.0 for Alice).
    mask : path-like | nibabel image | None
        Brain mask for NIfTI images (same grid).
    run : str | None
        Run name (default: the file name without extension); runs are matched to features by
        name.
    subject : str | None
    names : sequence of str | None
        Target names (default: from the file's header, voxel or vertex indices, channel names,
        or ``"0", "1", ...``).

    Returns
    -------
    response : Response
        With ``info["source"]`` (path) and ``info["sha256"]``, and the targets' ``space``.
    """
    path = _check_path_exists(path, "responses file")
    start = _check_finite_number("start", start, "the stimulus time of row 0 in seconds, e.g. start=20.0")
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
    space = None
    if ext == ".npy":
        data, file_names = np.load(path, allow_pickle=False), None
    elif ext in (".txt", ".tsv", ".csv"):
        data, file_names = _read_table(path)
    elif file_kind(path) == "cifti":
        data, space, file_names, stored = read_cifti(path)
        if sfreq is None:
            tr = resolve_tr(path, tr, stored)
    elif file_kind(path) == "nifti":
        if mask is None:
            raise ValueError(f"{str(path)!r} is a NIfTI image: give a brain mask (mask=..., --mask) to "
                             "select the voxels to model.")
        data, space, stored = read_nifti(path, mask)
        file_names = [f"{i}_{j}_{k}" for i, j, k in space.ijk]
        info.update({"mask": space.mask, "affine": space.affine.tolist(), "shape": list(space.shape),
                     "header_tr": stored.seconds})
        if sfreq is None:
            tr = resolve_tr(path, tr, stored)
    elif file_kind(path) == "gifti":
        data, space, stored = read_gifti(path)
        side = space.hemi[0][0].upper()
        file_names = [f"{side}{v}" for v in space.vertex_index]
        if sfreq is None:
            tr = resolve_tr(path, tr, stored)
    else:
        raise ValueError(
            f"Unknown responses format {ext!r} for {str(path)!r}; use one of {', '.join(RESPONSE_FORMATS)}."
        )
    if tr is None and sfreq is None:
        raise ValueError(f"Give the sampling of {str(path)!r}: tr= (fMRI, seconds) or sfreq= (Hz).")
    data = np.asarray(data, dtype=np.float64)
    return Response(data, tr=tr, sfreq=sfreq, start=start, names=names or file_names, run=run,
                    subject=subject, info=info, space=space)


def _read_fif(path: Path, mne: Any) -> Any:
    name = path.name.lower()
    if "-epo" in name or "_epo" in name:
        return mne.read_epochs(path, verbose="error")
    if "-ave" in name or "_ave" in name:
        return mne.read_evokeds(path, verbose="error")[0]
    return mne.io.read_raw_fif(path, preload=True, verbose="error")
