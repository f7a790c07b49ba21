"""A BIDS-aware run index: for a data set folder, every run's brain data, grid and timing files.

Built on pybids (:class:`bids.BIDSLayout`), which parses the file names, resolves sidecar
inheritance (a top-level ``task-<story>_bold.json`` applies to every run of that task) and finds
each run's ``events.tsv``. Derivative folders (fMRIPrep, AFNI, the authors' own) are indexed as
layouts of their own; when a derivative file has no ``RepetitionTime`` in its sidecar, the raw
run with the same entities supplies it.
"""
from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import DatasetError, _check_path_exists

logger = logging.getLogger(__name__)

#: Folders never indexed: not BIDS data (pybids' defaults plus the singular ``derivative/`` of
#: ds003020 and the annotation folders of ds003643).
DEFAULT_IGNORE: tuple[str, ...] = (
    "code", "stimuli", "sourcedata", "models", "derivative", "derivatives", "annotation", "quiz",
    "phenotype",
)

#: The columns of :func:`index_runs`' table, in order.
RUN_COLUMNS: tuple[str, ...] = (
    "subject", "session", "task", "run", "path", "tr", "sfreq", "events", "transcript",
    "entities", "metadata",
)

_HIDDEN = re.compile(r"/\.")


def _strip(label: str | None, prefix: str) -> str | None:
    if label is None:
        return None
    label = str(label)
    return label[len(prefix):] if label.startswith(prefix) else label


def normalize_subject(subject: str) -> str:
    """A subject label without the ``sub-`` prefix (``"sub-01"`` -> ``"01"``)."""
    return _strip(str(subject), "sub-")


def _subject_ignore(subjects: Iterable[str] | None) -> list[Any]:
    """pybids ignore patterns that prune every ``sub-*`` folder except the requested ones."""
    if subjects is None:
        return []
    keep = "|".join(re.escape(s) for s in subjects)
    return [re.compile(rf"(^|/)sub-(?!({keep})/?$)[A-Za-z0-9]+/?$")]


def bids_layout(
    root: str | os.PathLike,
    subjects: Iterable[str] | None = None,
    ignore: Sequence[Any] = DEFAULT_IGNORE,
    derivative: bool = False,
) -> Any:
    """A pybids layout of ``root`` (a raw data set or a derivative folder).

    Parameters
    ----------
    root : path-like
        The folder (a BIDS data set, or a derivative folder such as ``derivatives/fmriprep``;
        a missing ``dataset_description.json`` is tolerated).
    subjects : iterable of str | None
        Index only these subjects (labels with or without ``sub-``); the other ``sub-*`` folders
        are not walked at all, which keeps indexing of a large data set fast.
    ignore : sequence
        Folder names (relative to ``root``) or compiled regexes that pybids skips.
    derivative : bool
        Index with pybids' derivative entities too (``space``, ``desc``, ``res``, ``hemi``...).

    Returns
    -------
    layout : bids.BIDSLayout
    """
    from bids import BIDSLayout
    from bids.layout import BIDSLayoutIndexer

    root = _check_path_exists(root, "BIDS data set folder",
                              "Point root= at the folder that holds 'dataset_description.json'.")
    subs = None if subjects is None else [normalize_subject(s) for s in subjects]
    patterns = list(ignore) + [_HIDDEN] + _subject_ignore(subs)
    indexer = BIDSLayoutIndexer(validate=False, ignore=patterns)
    config = ["bids", "derivatives"] if derivative else ["bids"]
    return BIDSLayout(str(root), validate=False, config=config, indexer=indexer)


def _entity_filters(entities: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """pybids filters matching ``entities`` on ``keys`` exactly (absent -> must be absent)."""
    from bids.layout import Query

    out = {}
    for key in keys:
        value = entities.get(key)
        out[key] = Query.NONE if value is None else value
    return out


def _label(value: Any) -> str | None:
    """An entity value as the string in the file name (pybids pads run numbers as ``07``)."""
    return None if value is None else str(value)


def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON sidecar, with an error naming the file if it is not valid JSON."""
    path = _check_path_exists(path, "JSON sidecar")
    try:
        with open(path, encoding="utf-8-sig") as fid:
            return json.load(fid)
    except json.JSONDecodeError as err:
        raise DatasetError(
            f"sidecar {str(path)!r} is not valid JSON ({err.msg} at line {err.lineno}); is it an "
            "annex pointer whose content was never fetched (datalad get)?"
        ) from err


def index_runs(
    root: str | os.PathLike,
    *,
    subjects: Iterable[str] | None = None,
    tasks: Iterable[str] | None = None,
    datatype: str = "func",
    suffix: str | None = "bold",
    extensions: Sequence[str] = (".nii.gz", ".nii"),
    derivatives: str | os.PathLike | None = None,
    filters: Mapping[str, Any] | None = None,
    transcript: Callable[[Mapping[str, Any]], Path | None] | None = None,
    ignore: Sequence[Any] = DEFAULT_IGNORE,
) -> pd.DataFrame:
    """List a data set's runs: brain data path, TR or sampling rate, events and transcript.

    Parameters
    ----------
    root : path-like
        The raw BIDS data set (``dataset_description.json``, ``sub-*``).
    subjects : iterable of str | None
        Subject labels (with or without ``sub-``); default all.
    tasks : iterable of str | None
        Task labels; default all.
    datatype : str
        ``"func"`` for fMRI, ``"meg"`` for MEG.
    suffix : str | None
        ``"bold"``, ``"meg"``...; ``None`` for derivative files without a suffix (fMRIPrep's
        ``..._hemi-L_desc-clean.func.gii``).
    extensions : sequence of str
        File extensions of the brain data (``.nii.gz``, ``.func.gii``, ``.con``, ``.fif``...).
    derivatives : path-like | None
        List the brain data of this derivative folder (relative to ``root`` or absolute)
        instead of the raw files; events and missing sidecar fields come from the raw runs
        with the same subject, session, task and run.
    filters : mapping | None
        More pybids entity filters (``{"space": "MNIColin27", "desc": "preproc"}``,
        ``{"echo": 2}``).
    transcript : callable | None
        Called with each row (a dict of the columns above) and returns the path of the run's
        stimulus transcript, or ``None``; default: no transcript column values.
    ignore : sequence
        Folders that are not indexed (see :data:`DEFAULT_IGNORE`).

    Returns
    -------
    runs : pandas.DataFrame
        One row per brain-data file, sorted by subject, session, task and run, with columns
        :data:`RUN_COLUMNS`: ``subject``, ``session``, ``task``, ``run`` (labels as in the file
        names, ``None`` when absent), ``path``, ``tr`` (``RepetitionTime`` in s) or ``sfreq``
        (``SamplingFrequency`` in Hz) from the sidecars, ``events`` (the run's ``events.tsv``
        or ``None``), ``transcript``, ``entities`` (all pybids entities) and ``metadata``
        (the merged sidecar).
    """
    root = Path(root)
    subs = None if subjects is None else [normalize_subject(s) for s in subjects]
    query: dict[str, Any] = {"datatype": datatype, "extension": list(extensions)}
    if suffix is not None:
        query["suffix"] = suffix
    if subs is not None:
        query["subject"] = subs
    if tasks is not None:
        query["task"] = list(tasks)
    query.update(dict(filters or {}))
    if derivatives is not None:
        deriv_root = Path(derivatives)
        if not deriv_root.is_absolute():
            deriv_root = root / deriv_root
        data_layout = bids_layout(deriv_root, subjects=subs, ignore=(), derivative=True)
        files = data_layout.get(**query)
        # index only the raw subjects that have matching derivative files
        found = sorted({str(f.get_entities().get("subject")) for f in files})
        raw = bids_layout(root, subjects=found if subs is None else subs, ignore=ignore)
    else:
        raw = data_layout = bids_layout(root, subjects=subs, ignore=ignore)
        files = data_layout.get(**query)
    keys = ("subject", "session", "task", "run")

    def key_of(entities: Mapping[str, Any]) -> tuple:
        return tuple(_label(entities.get(k)) for k in keys)

    # one query each for the raw runs and events, then dictionary lookups per file
    events_by_key: dict[tuple, str] = {}
    for ev in raw.get(suffix="events", extension=".tsv", datatype=datatype):
        events_by_key.setdefault(key_of(ev.get_entities()), ev.path)
    raw_by_key: dict[tuple, str] = {}
    if derivatives is not None:
        for rf in raw.get(suffix=suffix or "bold", datatype=datatype):
            if not rf.path.endswith(".json"):
                raw_by_key.setdefault(key_of(rf.get_entities()), rf.path)
    own_sidecars = derivatives is None or bool(data_layout.get(extension=".json", return_type="id",
                                                                target="subject"))
    raw_meta: dict[tuple, dict] = {}
    rows = []
    for bf in files:
        ent = dict(bf.get_entities())
        key = key_of(ent)
        meta = dict(data_layout.get_metadata(bf.path)) if own_sidecars else {}
        if derivatives is not None and not any(k in meta for k in ("RepetitionTime", "SamplingFrequency")):
            if key not in raw_meta:
                raw_meta[key] = dict(raw.get_metadata(raw_by_key[key])) if key in raw_by_key else {}
            meta = {**raw_meta[key], **meta}
        events = events_by_key.get(key)
        row = {
            "subject": _label(ent.get("subject")),
            "session": _label(ent.get("session")),
            "task": _label(ent.get("task")),
            "run": _label(ent.get("run")),
            "path": Path(bf.path),
            "tr": float(meta["RepetitionTime"]) if "RepetitionTime" in meta else None,
            "sfreq": float(meta["SamplingFrequency"]) if "SamplingFrequency" in meta else None,
            "events": Path(events) if events else None,
            "transcript": None,
            "entities": {k: _label(v) for k, v in ent.items()},
            "metadata": meta,
        }
        if transcript is not None:
            found = transcript(row)
            row["transcript"] = None if found is None else Path(found)
        rows.append(row)
    rows.sort(key=lambda r: tuple(natural_key(r[k]) for k in ("subject", "session", "task", "run")))
    # object columns: absent entities stay None (pandas would turn them into NaN)
    table = pd.DataFrame(rows, columns=list(RUN_COLUMNS), dtype=object)
    logger.debug("Indexed %d %s/%s file(s) under %s", len(table), datatype, suffix,
                 derivatives or root)
    return table


def natural_key(label: str | None) -> tuple:
    """Sort key that orders ``ses-2`` before ``ses-10`` (``None`` first)."""
    if label is None:
        return ()
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", str(label)) if p)


def find_subjects(folder: str | os.PathLike, *, prefix: str = "sub-", label_start: str = "",
                  hint: str = "") -> list[str]:
    """The subject labels of the ``<prefix><label>`` folders directly under ``folder``.

    Parameters
    ----------
    folder : path-like
        A data set (``sub-*`` folders) or a derivative folder.
    prefix : str
        The folder names' prefix, removed from the labels (``""`` for ds003020's
        ``preprocessed_data/UTS01``).
    label_start : str
        Only labels starting with this (``"EN"`` for the English cohort of ds003643).
    hint : str
        Appended to the error when there is none (where the data come from).

    Returns
    -------
    subjects : list of str
        Labels without the prefix, in natural order (``2`` before ``10``).

    Raises
    ------
    DatasetError
        If no such folder exists (the message names the folder and the pattern).
    """
    folder = Path(folder)
    pattern = f"{prefix}{label_start}*"
    found = ([p.name[len(prefix):] for p in folder.glob(pattern) if p.is_dir()]
             if folder.is_dir() else [])
    if not found:
        raise DatasetError(
            f"no subject folders {pattern!r} under {str(folder)!r}."
            + (f" {hint}" if hint else "")
        )
    return sorted(found, key=natural_key)


def dataset_root(root: str | os.PathLike | None, dirname: str, how: str) -> Path:
    """The folder of a data set: ``root`` (``~`` and ``$VARS`` expanded), else
    ``<data dir>/<dirname>``; an error saying how to get it if it is not there."""
    from ._base import get_data_dir

    path = (Path(os.path.expandvars(str(root))).expanduser() if root is not None
            else get_data_dir() / dirname)
    if not path.is_dir():
        raise FileNotFoundError(f"{dirname} folder not found: {str(path)!r}. {how} and pass root=.")
    return path


def run_key(task: str, run: str | None) -> str:
    """The run name used in :class:`~neuroenc.datasets._base.EncodingDataset` (``task`` or ``task_run-N``)."""
    return task if run is None else f"{task}_run-{run}"


def check_tr(path: str | os.PathLike, sidecar_tr: float | None, data_tr: float | None,
             sidecar: str = "sidecar", atol: float = 1e-3) -> float:
    """The TR of a run, checking that the sidecar and the data file agree.

    Parameters
    ----------
    path : path-like
        The brain data file (named in messages).
    sidecar_tr : float | None
        ``RepetitionTime`` from the JSON sidecar.
    data_tr : float | None
        The TR stored in the data file (NIfTI ``pixdim[4]``), or ``None`` if it has none.
    sidecar : str
        What the sidecar is, for messages.
    atol : float
        Tolerance in seconds.

    Returns
    -------
    tr : float
        The sidecar's TR (else the file's).
    """
    if sidecar_tr is None and data_tr is None:
        raise DatasetError(
            f"no TR for {str(path)!r}: the {sidecar} has no 'RepetitionTime' and the file stores "
            "none. Fix the sidecar or pass the TR explicitly."
        )
    if sidecar_tr is not None and data_tr is not None and abs(sidecar_tr - data_tr) > atol:
        raise DatasetError(
            f"TR mismatch for {str(path)!r}: the {sidecar} says RepetitionTime={sidecar_tr:g} s "
            f"but the data file's header says {data_tr:g} s. One of them is wrong; fix the "
            "sidecar or the header before fitting (the time grid depends on it)."
        )
    return float(sidecar_tr if sidecar_tr is not None else data_tr)


def round_half_up(x: float) -> int:
    """``floor(x + 0.5)``: rounding without numpy's round-half-to-even."""
    return int(np.floor(x + 0.5))
