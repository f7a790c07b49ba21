"""Stimulus-level responses: one response vector per stimulus, matched to the stimuli by id.

Formats:

- ``.csv`` / ``.tsv``: one row per stimulus id (``id_column``), one column per target
  (``columns``: names, or ``"all"`` numeric columns but the id and subject columns); with
  ``subject_column``, one row per (subject, stimulus) and one response set per subject;
- ``.npy``: an array (n_rows, n_targets); the ids of its rows are given (``ids``), since the
  file has none;
- NIfTI beta maps with a brain mask: a 4-D image (one volume per row, ``ids`` given), or a
  path pattern holding ``{id}`` (``betas/sent-{id}_beta.nii.gz``: one 3-D image per stimulus).

:meth:`~neuroenc.responses.Response.match` puts the rows in the order of the stimuli; ids missing from
either side are an error listing them. (This module reads with nibabel directly; it is meant
to join ``neuroenc.responses`` beside the timed readers.)
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import _check_path_exists, _preview, _sha256_file
from .stimulus_set import StimulusError, read_table, read_utf8

STIMULUS_RESPONSE_FORMATS = (".csv", ".tsv", ".npy", ".nii", ".nii.gz")


#: The run name of stimulus-level responses (the one unit of rows a stimulus set has).
STIMULI_RUN = "stimuli"


def StimulusResponses(data: Any, ids: Sequence[Any], names: Sequence[Any], subject: str | None = None,  # noqa: N802
                      info: dict[str, Any] | None = None, space: Any = None):
    """Stimulus-level responses of one subject (or a group mean), as a
    :class:`~neuroenc.responses.Response` whose rows are stimuli (``ids``), run ``"stimuli"``.

    Parameters
    ----------
    data : array-like, shape (n_stimuli, n_targets)
    ids : sequence of str
        The stimulus id of each row (unique).
    names : sequence of str
        Target names (columns, ROIs, voxels).
    subject : str | None
    info : dict | None
        ``source`` (path), ``sha256``, and for NIfTI ``mask``, ``affine``, ``shape``. A subject's
        rows of a long table (``subject_column``) have a ``sha256`` of their own (the file's and
        the subject's), and the file's in ``file_sha256``.
    space : TargetSpace | None
        Where the targets are (a :class:`~neuroenc.responses.VolumeSpace` for NIfTI beta maps);
        default a :class:`~neuroenc.responses.RoiSpace`.
    """
    from ..responses import Response

    info = dict(info or {})
    data = np.asarray(data, dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2 or data.shape != (len(ids), len(names)):
        raise StimulusError(
            f"{info.get('source', 'responses')}: responses of shape {data.shape} for {len(ids)} ids and "
            f"{len(names)} targets; give one row per id and one column per target."
        )
    return Response(data, ids=ids, names=[str(n) for n in names], run=STIMULI_RUN, subject=subject, info=info,
                    space=space)


def subject_keys(paths: Sequence[str | os.PathLike]) -> list[str]:
    """A distinct subject name for each of several responses files (one file per subject).

    Each file is named by its file name (``sub-01.csv``); files that share a file name are named
    by the shortest end of their paths that tells them apart, its folders joined by ``_``
    (``subA/bold.csv`` and ``subB/bold.csv`` give ``subA_bold.csv`` and ``subB_bold.csv``), so
    that no subject's responses replace another's.

    Raises
    ------
    StimulusError
        When a file is given twice, or two files would still get one name.
    """
    texts = [str(p) for p in paths]
    parts = [Path(os.path.abspath(os.path.expanduser(t))).parts for t in texts]
    first: dict[tuple, int] = {}
    for i, key in enumerate(parts):
        if key in first:
            raise StimulusError(
                f"the responses file {texts[i]!r} is given twice (as {texts[first[key]]!r} too): it would "
                "count as two subjects; give each subject's file once."
            )
        first[key] = i
    names = []
    for i, mine in enumerate(parts):
        depth = 1
        while depth < len(mine) and any(other[-depth:] == mine[-depth:] for j, other in enumerate(parts) if j != i):
            depth += 1
        names.append("_".join(mine[-depth:]))
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise StimulusError(
                f"the responses files {texts[seen[name]]!r} and {texts[i]!r} would both be subject {name!r}; "
                "rename one of them (each file is a subject, named by its file name or, where file names "
                "repeat, by its path)."
            )
        seen[name] = i
    return names


def add_subject(out: dict[str, StimulusResponses], subject: str, responses: StimulusResponses) -> None:
    """Add one subject's responses to ``out``; a subject already there is an error naming both
    files (responses of one subject in two files would otherwise replace each other)."""
    if subject in out:
        raise StimulusError(
            f"subject {subject!r} has responses in {out[subject].info.get('source')!r} and in "
            f"{responses.info.get('source')!r}; give each subject's responses once (one file per subject, "
            "or one long table with subject_column)."
        )
    out[subject] = responses


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for ext in STIMULUS_RESPONSE_FORMATS:
        if name.endswith(ext):
            return ext
    return path.suffix.lower()


def _read_ids(ids: Any) -> list[str] | None:
    """Row ids from a list, or a text file of one id per line."""
    if ids is None:
        return None
    if isinstance(ids, (str, os.PathLike)):
        path = _check_path_exists(ids, "row-ids file")
        return [line.strip() for line in read_utf8(path).splitlines() if line.strip()]
    return [str(i) for i in ids]


def _numeric(df: pd.DataFrame, columns: list[str], path: Path, id_column: str) -> np.ndarray:
    out = np.empty((len(df), len(columns)))

    def refuse(bad: np.ndarray, col: str, what: str, fix: str) -> None:
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            value = df[col].iloc[i]
            value = value.strip() if isinstance(value, str) else value
            raise StimulusError(
                f"responses {str(path)!r}, line {int(df['_line'].iloc[i])} (id {df[id_column].iloc[i]!r}): "
                f"column {col!r} holds {value!r}, {what} ({int(bad.sum())} such row(s) in "
                f"this column). {fix}"
            )

    for j, col in enumerate(columns):
        values = pd.to_numeric(df[col].str.strip(), errors="coerce")
        refuse(values.isna().to_numpy(), col, "not a number",
               "Fill in the missing responses or drop those stimuli; name the response columns with "
               "columns=NAME,... if this column is not a response.")
        out[:, j] = values.to_numpy(dtype=np.float64)
        refuse(~np.isfinite(out[:, j]), col, "not a finite number", "Fix the value, or drop that stimulus.")
    return out


def _read_table(path: Path, id_column: str, columns: Any, subject_column: str | None):
    df = read_table(path, "\t" if _suffix(path) == ".tsv" else ",", "responses")
    cols = [c for c in df.columns if c != "_line"]
    for name, option in ((id_column, "id_column"), (subject_column, "subject_column")):
        if name is not None and name not in df.columns:
            raise StimulusError(
                f"responses {str(path)!r} has no column {name!r} (columns: {cols}); pass {option}=NAME, the "
                "column that holds it."
            )
    if isinstance(columns, str) and columns == "all":
        names = [c for c in cols if c not in (id_column, subject_column)]
        non_numeric = [c for c in names
                       if pd.to_numeric(df[c].str.strip(), errors="coerce").isna().all() and len(df)]
        if non_numeric:
            raise StimulusError(
                f"responses {str(path)!r}: column(s) {non_numeric} are not numbers; name the response "
                f"columns with columns=NAME,..., e.g. "
                f"columns={','.join(n for n in names if n not in non_numeric)[:80]}."
            )
    else:
        names = [columns] if isinstance(columns, str) else [str(c) for c in columns]
        missing = [c for c in names if c not in df.columns]
        if missing:
            raise StimulusError(
                f"responses {str(path)!r} has no column(s) {missing} (columns: {cols}); name columns of the "
                "file in columns=NAME,...."
            )
    if not names:
        raise StimulusError(f"responses {str(path)!r} has no response column besides the ids.")
    df[id_column] = df[id_column].astype(str).str.strip()
    return df, names


def read_stimulus_responses(path: str | os.PathLike, *, id_column: str = "id", columns: Any = "all",
                            subject_column: str | None = None, ids: Any = None, mask: Any = None,
                            subject: str | None = None) -> Any:
    """Read stimulus-level responses (see the module docstring for the formats).

    Parameters
    ----------
    path : path-like | str
        A ``.csv``/``.tsv`` table, a ``.npy`` array, a 4-D NIfTI image, or a NIfTI path
        pattern holding ``{id}``.
    id_column : str
        Tables: the column of stimulus ids.
    columns : "all" | str | sequence of str
        Tables: the response columns (``"all"``: every column but the id and subject columns).
    subject_column : str | None
        Tables in long format: the column naming the subject of each row; a dict of
        subject -> responses is returned.
    ids : sequence of str | path | None
        The stimulus id of each row of a ``.npy`` array or 4-D image (a list, or a text file of
        one id per line); for a ``{id}`` pattern, the ids whose images to read.
    mask : path-like | None
        Brain mask (3-D NIfTI) selecting the voxels of NIfTI responses.
    subject : str | None
        The subject, for messages and provenance.

    Returns
    -------
    responses : Response | dict of str -> Response
        Stimulus-level :class:`~neuroenc.responses.Response` objects (rows are stimuli), in the
        file's row order; put them in the stimuli's order with :meth:`~neuroenc.responses.Response.match`.
        NIfTI responses carry their voxels' :class:`~neuroenc.responses.VolumeSpace`.
    """
    text = str(path)
    if "{id}" in text:
        return _read_nifti_pattern(text, _read_ids(ids), mask, subject)
    path = _check_path_exists(path, "responses file")
    ext = _suffix(path)
    info: dict[str, Any] = {"source": str(path), "sha256": _sha256_file(path)}
    if ext in (".csv", ".tsv"):
        df, names = _read_table(path, id_column, columns, subject_column)
        if subject_column is None:
            return StimulusResponses(_numeric(df, names, path, id_column), df[id_column].tolist(), names,
                                     subject, info)
        out = {}
        for sub, part in df.groupby(df[subject_column].astype(str).str.strip(), sort=False):
            # one subject's rows of the file: its own hash, so that two subjects of one table are
            # never taken for one subject's responses twice (neuroenc.mapping.check_group)
            mine = dict(info, file_sha256=info["sha256"],
                        sha256=hashlib.sha256(f"{info['sha256']}\0{subject_column}\0{sub}".encode()).hexdigest())
            out[str(sub)] = StimulusResponses(_numeric(part, names, path, id_column), part[id_column].tolist(),
                                              names, str(sub), mine)
        return out
    if subject_column is not None:
        raise StimulusError(f"subject_column applies to .csv/.tsv responses, not {str(path)!r}.")
    row_ids = _read_ids(ids)
    space = None
    if ext == ".npy":
        data = np.load(path, allow_pickle=False)
        names = [str(i) for i in range(data.shape[1] if data.ndim == 2 else 1)]
    elif ext in (".nii", ".nii.gz"):
        data, names, extra = _read_nifti_4d(path, mask)
        space = extra.pop("space")
        info.update(extra)
    else:
        raise StimulusError(
            f"Unknown responses format {ext!r} for {str(path)!r}; use one of "
            f"{', '.join(STIMULUS_RESPONSE_FORMATS)} or a NIfTI pattern with {{id}}."
        )
    if row_ids is None:
        raise StimulusError(
            f"{str(path)!r} has no stimulus ids: give ids=FILE, the id of each row in order "
            "(a list, or a text file of one id per line)."
        )
    if len(row_ids) != np.shape(data)[0]:
        raise StimulusError(
            f"{str(path)!r} has {np.shape(data)[0]} rows but {len(row_ids)} ids were given; give one id per row."
        )
    return StimulusResponses(data, row_ids, names, subject, info, space=space)


def _load_mask(mask: Any, shape: tuple, affine: np.ndarray, what: str):
    import nibabel as nib

    if mask is None:
        raise StimulusError(f"{what} is a NIfTI image: give a brain mask (mask=FILE) to select the voxels.")
    mask_path = _check_path_exists(mask, "mask image")
    mask_img = nib.load(str(mask_path))
    if mask_img.shape[:3] != tuple(shape[:3]):
        raise StimulusError(
            f"The mask {str(mask_path)!r} has shape {mask_img.shape[:3]} but {what} has {tuple(shape[:3])}; "
            "resample the mask to the images first."
        )
    if not np.allclose(mask_img.affine, affine, atol=1e-3):
        raise StimulusError(f"The mask {str(mask_path)!r} and {what} have different affines.")
    keep = np.asarray(mask_img.dataobj) != 0
    if not keep.any():
        raise StimulusError(f"The mask {str(mask_path)!r} selects no voxel.")
    from ..responses import VolumeSpace

    names = [f"{i}_{j}_{k}" for i, j, k in np.argwhere(keep)]
    space = VolumeSpace.from_mask(mask_img, mask=mask_path)  # the voxels in C order, as ``names``
    return keep, names, {"mask": str(mask_path), "affine": np.asarray(affine).tolist(), "shape": list(shape[:3]),
                         "space": space}


def _read_nifti_4d(path: Path, mask: Any):
    import nibabel as nib

    img = nib.load(str(path))
    if img.ndim != 4:
        raise StimulusError(f"{str(path)!r} has {img.ndim} dimensions; expected a 4-D image (one volume per stimulus).")
    keep, names, info = _load_mask(mask, img.shape, img.affine, repr(str(path)))
    return np.asarray(img.dataobj, dtype=np.float64)[keep].T, names, info


def _read_nifti_pattern(pattern: str, ids: list[str] | None, mask: Any, subject: str | None) -> Any:
    import hashlib

    import nibabel as nib

    if ids is None:
        raise StimulusError(f"the pattern {pattern!r} needs the stimulus ids whose images to read (ids=FILE).")
    paths = [Path(pattern.replace("{id}", i)) for i in ids]
    missing = [i for i, p in zip(ids, paths) if not p.exists()]
    if missing:
        raise StimulusError(
            f"{len(missing)} stimulus id(s) have no beta map for the pattern {pattern!r}: ids "
            f"{_preview(missing)} (first expected file: {str(paths[ids.index(missing[0])])!r})."
        )
    first = nib.load(str(paths[0]))
    keep, names, info = _load_mask(mask, first.shape, first.affine, repr(str(paths[0])))
    rows = []
    digest = hashlib.sha256()
    for i, p in zip(ids, paths):
        img = nib.load(str(p))
        if img.shape[:3] != first.shape[:3] or img.ndim not in (3, 4) or (img.ndim == 4 and img.shape[3] != 1):
            raise StimulusError(f"{str(p)!r} (id {i!r}) has shape {img.shape}; expected one 3-D volume of "
                                f"shape {first.shape[:3]}.")
        rows.append(np.asarray(img.dataobj, dtype=np.float64).reshape(first.shape[:3])[keep])
        digest.update(_sha256_file(p).encode("ascii"))
    space = info.pop("space")
    info.update({"source": pattern, "sha256": digest.hexdigest()})
    return StimulusResponses(np.stack(rows), ids, names, subject, info, space=space)
