"""Narratives (Nastase et al. 2021; ds002345): 345 subjects, 27 spoken stories, TR 1.5 s.

Timing. Each run's ``events.tsv`` gives, on the scanner clock (seconds from the first stored
volume; the 3 volumes the scanner discarded are not counted), a ``story`` row (and ``music``
rows) with the stimulus file. The story onset differs between runs of the same story (milkyway
and prettymouth start at 21.0, 15.0 or 13.5 s), so it is always read from the run's own file.
The Gentle alignments (``stimuli/gentle/<story>/align.json``, in the DataLad release) time the
words from the start of the stimulus audio, which for most stories begins with the music: the
story starts :data:`NARRATIVES_STORY_OFFSETS` seconds into the audio (15 s for pieman, 21 s for
milkyway, 0 for stories without music). These offsets follow the events of the standard
protocol (the music row starts the audio) and agree with the durations of the audio files in the
annex (e.g. merlin: 915 s = 29 s + 886 s of story) and with the authors' split of
``slumlordreach`` at 950 s, inside the music between its two stories. A run's row 0 (scanner
time 0) is therefore audio time ``offset - story_onset``.

Trimming. As the authors do (``code/event_meta.json``), ``crop=True`` keeps the volumes from
``round(story_onset / TR)`` for ``round(story_duration / TR)`` volumes.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import DatasetError, _check_option, check_content
from ..responses import Response, read_bold
from ..responses.bold import read_subject_bold
from ..responses.space import TargetSpace, concat_spaces
from ..stimuli.gentle import read_gentle
from ..stimuli.transcript import Transcript
from ._base import EncodingDataset, check_transcript
from .bids import check_tr, dataset_root, index_runs, normalize_subject, round_half_up

logger = logging.getLogger(__name__)

NARRATIVES_DIRNAME = "ds002345"
NARRATIVES_TR = 1.5
#: Seconds from the start of each stimulus audio (and its Gentle alignment) to the story onset.
NARRATIVES_STORY_OFFSETS: dict[str, float] = {
    "pieman": 15.0, "tunnel": 0.0, "lucy": 0.0, "prettymouth": 21.0, "milkywayoriginal": 21.0,
    "milkywayvodka": 21.0, "milkywaysynonyms": 21.0, "slumlordreach": 25.0,
    "notthefallintact": 25.0, "notthefalllongscram": 25.0, "notthefallshortscram": 25.0,
    "merlin": 29.0, "sherlock": 29.0, "shapesphysical": 45.0, "shapessocial": 45.0,
    "21styear": 21.0, "piemanpni": 0.0, "bronx": 0.0, "black": 0.0, "forgot": 0.0,
}
#: Derivative pipelines of the DataLad release and the ``desc`` of their BOLD files.
NARRATIVES_PIPELINES = {"afni-nosmooth": "clean", "afni-smooth": "clean", "fmriprep": "preproc"}
NARRATIVES_CITATION = (
    "Nastase, S. A., Liu, Y.-F., Hillman, H., Zadbood, A., Hasenfratz, L., Keshavarzian, N., "
    "Chen, J., Honey, C. J., Yeshurun, Y., Regev, M., et al. (2021). The \"Narratives\" fMRI "
    "dataset for evaluating models of naturalistic language comprehension. Scientific Data, 8, "
    "250. https://doi.org/10.1038/s41597-021-01033-3"
)
NARRATIVES_URL = "https://openneuro.org/datasets/ds002345"


def read_participants(root: str | os.PathLike) -> pd.DataFrame:
    """``participants.tsv`` as one row per (subject, task).

    Narratives joins the values of a subject's tasks with commas (``task = pieman,tunnel``,
    ``age = 22,23``); this splits them so each row holds one task's age, sex, condition and
    comprehension score.
    """
    path = check_content(Path(root) / "participants.tsv", "participants file")
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    rows = []
    for rec in df.to_dict("records"):
        tasks = rec["task"].split(",")
        for i, task in enumerate(tasks):
            row = {"subject": normalize_subject(rec["participant_id"]), "task": task}
            for col, value in rec.items():
                if col in ("participant_id", "task"):
                    continue
                parts = value.split(",")
                row[col] = parts[i] if len(parts) == len(tasks) else value
            rows.append(row)
    return pd.DataFrame(rows)


def _story_rows(events_path: Path) -> tuple[pd.DataFrame, str]:
    """The ``story`` rows of a run's events and the stimulus name (``pieman``)."""
    check_content(events_path, "events file")
    events = pd.read_csv(events_path, sep="\t", encoding="utf-8-sig")
    missing = [c for c in ("onset", "duration", "trial_type", "stim_file") if c not in events]
    if missing:
        raise DatasetError(f"events file {str(events_path)!r} lacks column(s) {missing}.")
    story = events[events["trial_type"] == "story"]
    if not len(story):
        raise DatasetError(
            f"events file {str(events_path)!r} has no 'story' row (trial types: "
            f"{sorted(events['trial_type'].astype(str).unique())}); cannot place the story."
        )
    stims = sorted(set(story["stim_file"].astype(str)))
    if len(stims) != 1:
        raise DatasetError(
            f"events file {str(events_path)!r} plays several stories in one run ({stims}); runs "
            "that interleave stories (task 'schema') are not supported."
        )
    return story, stims[0].removesuffix(".wav").removesuffix("_audio")


def read_narratives_transcript(root: str | os.PathLike, stim: str, name: str | None = None) -> Transcript:
    """The Gentle alignment ``stimuli/gentle/<stim>/align.json`` (seconds from audio start)."""
    path = check_transcript(
        Path(root) / "stimuli" / "gentle" / stim / "align.json", name or stim,
        "The Gentle alignments are in the DataLad release (///labs/hasson/narratives: "
        f"'datalad get stimuli/gentle/{stim}'), not on OpenNeuro.",
        what="Gentle alignment",
    )
    return read_gentle(path, name=name or stim)


def _read_surface(paths: Mapping[str, Path]) -> tuple[np.ndarray, list[str], TargetSpace]:
    blocks, names, spaces = [], [], []
    for hemi in ("L", "R"):
        if hemi not in paths:
            raise FileNotFoundError(f"no hemi-{hemi} file next to {list(paths.values())[0]!s}.")
        data, _, info = read_bold(paths[hemi])
        blocks.append(data)
        names += [f"{hemi}{n}" for n in info["names"]]
        spaces.append(info["target_space"])
    n = {b.shape[0] for b in blocks}
    if len(n) != 1:
        raise DatasetError(f"the two hemispheres have different numbers of volumes: {sorted(n)} "
                           f"({[str(p) for p in paths.values()]}).")
    return np.hstack(blocks), names, concat_spaces(spaces)


def load_narratives(
    root: str | os.PathLike | None = None,
    task: str = "pieman",
    space: str = "MNI152NLin2009cAsym",
    pipeline: str = "afni-nosmooth",
    subjects: Iterable[str] | None = None,
    desc: str | None = None,
    crop: bool = True,
    mask: Any = "auto",
    story_offsets: Mapping[str, float] | None = None,
) -> EncodingDataset:
    """Load one Narratives task (ds002345): Gentle transcripts and derivative BOLD per run.

    Parameters
    ----------
    root : path-like | None
        The Narratives folder (the DataLad release ``///labs/hasson/narratives``, with
        ``stimuli/gentle`` and ``derivatives/``); default ``<data dir>/ds002345``.
    task : str
        The task (story) label: ``pieman``, ``milkyway``, ``slumlordreach``, ``tunnel``...
        Tasks that interleave several stories per run (``schema``) are not supported.
    space : str
        ``"MNI152NLin2009cAsym"`` (NIfTI volumes) or ``"fsaverage6"`` (GIfTI, left then right
        hemisphere, vertex names ``L0``..., ``R0``...).
    pipeline : {"afni-nosmooth", "afni-smooth", "fmriprep"}
        The derivative folder under ``derivatives/``.
    subjects : iterable of str | None
        Subject labels (``"001"`` or ``"sub-001"``); default every subject with data.
    desc : str | None
        The ``desc`` entity of the BOLD files; default ``clean`` (AFNI) or ``preproc`` (fMRIPrep).
    crop : bool
        Keep only the story's volumes (the authors' trimming, from the run's events); else every
        volume, including the music and silence before and after.
    mask : "auto" | path-like | array | None
        Voxels to keep (volumes only). ``"auto"``: the task's brain mask of the release
        (``derivatives/afni-smooth/tpl-<space>/tpl-<space>_res-<task>_desc-brain_mask.nii.gz``)
        if present, else as ``None``. ``None``: the voxels whose time course varies in every
        run of the subject, so that all its runs share one set of targets (the number dropped
        is logged; see :func:`neuroenc.responses.bold.read_subject_bold`).
    story_offsets : mapping | None
        Override :data:`NARRATIVES_STORY_OFFSETS` (seconds from audio start to story onset).

    Returns
    -------
    dataset : EncodingDataset
        ``transcripts[run]`` on the audio clock of the run's stimulus. Runs are named after the
        stimulus (``milkywayvodka``, ``milkywaysynonyms``...: each subject heard one version),
        with ``_run-<N>`` when a subject heard it more than once (``pieman_run-1``).
        ``responses[subject][run]``: TR from the run's sidecar (1.5 s; 1.52 s for the
        milkywaysynonyms runs), checked against the file, ``start`` = audio time of row 0
        (``offset - story_onset``, plus the cropped volumes). ``Response.info`` holds the
        story onset, audio offset, stimulus and events file. ``info["participants"]``: one row
        per (subject, task) (see :func:`read_participants`).
    """
    _check_option("pipeline", pipeline, tuple(NARRATIVES_PIPELINES))
    root = dataset_root(
        root, NARRATIVES_DIRNAME,
        "Get it with 'datalad install -r ///labs/hasson/narratives'",
    )
    offsets = dict(NARRATIVES_STORY_OFFSETS)
    offsets.update(dict(story_offsets or {}))
    desc = NARRATIVES_PIPELINES[pipeline] if desc is None else desc
    surface = space.startswith("fsaverage")
    deriv = root / "derivatives" / pipeline
    if not deriv.is_dir():
        raise FileNotFoundError(
            f"derivative folder not found: {str(deriv)!r}. Fetch it from the DataLad release "
            f"('datalad get -n derivatives/{pipeline}') or choose another pipeline=."
        )
    subs = None if subjects is None else [normalize_subject(s) for s in subjects]
    table = index_runs(
        root, subjects=subs, tasks=[task], derivatives=deriv,
        suffix=None if surface else "bold",
        extensions=(".func.gii",) if surface else (".nii.gz", ".nii"),
        filters={"space": space, "desc": desc},
    )
    if not len(table):
        raise FileNotFoundError(
            f"no {pipeline} BOLD files for task {task!r} in space {space!r} (desc {desc!r}) under "
            f"{str(deriv)!r}{' for subjects ' + str(subs) if subs else ''}."
        )
    if mask == "auto":
        tpl = root / "derivatives" / "afni-smooth" / f"tpl-{space}" / f"tpl-{space}_res-{task}_desc-brain_mask.nii.gz"
        mask = tpl if tpl.exists() and tpl.stat().st_size > 0 else None
    # group hemispheres of a run
    runs: dict[tuple[str, str | None], dict[str, Any]] = {}
    for row in table.itertuples():
        rec = runs.setdefault((row.subject, row.run), {"row": row, "paths": {}})
        rec["paths"][row.entities.get("hemi") or "vol"] = row.path
    transcripts: dict[str, Transcript] = {}
    responses: dict[str, dict[str, Response]] = {}
    base: dict[str, Transcript] = {}
    per_subject: dict[str, list[tuple[str, pd.DataFrame, Any, dict]]] = {}
    for (sub, run), rec in runs.items():
        row = rec["row"]
        if row.events is None:
            raise FileNotFoundError(
                f"run {row.path.name!r} has no events.tsv (looked for sub-{sub}_task-{task}"
                f"{'_run-' + run if run else ''}_events.tsv); its story onset is unknown."
            )
        story, stim = _story_rows(row.events)
        if stim not in offsets:
            raise DatasetError(
                f"no audio offset known for stimulus {stim!r} ({str(row.events)!r}); pass "
                "story_offsets={" + repr(stim) + ": seconds from audio start to story onset}."
            )
        per_subject.setdefault(sub, []).append((stim, story, row, rec))
    for sub, items in per_subject.items():
        counts = pd.Series([item[0] for item in items]).value_counts()
        keys = [stim if counts[stim] == 1 else f"{stim}_run-{row.run}" for stim, _, row, _ in items]
        for key, (stim, _, _, _) in zip(keys, items):  # transcripts first: cheap, and often missing
            if stim not in base:
                base[stim] = read_narratives_transcript(root, stim, name=key)
            transcripts[key] = base[stim].rename(key)
        if not surface:
            volumes = read_subject_bold([rec["paths"]["vol"] for _, _, _, rec in items], mask=mask,
                                        subject=sub)
        out: dict[str, Response] = {}
        for i, (key, (stim, story, row, rec)) in enumerate(zip(keys, items)):
            if surface:
                data, names, space_ = _read_surface(rec["paths"])
                header_tr = None
                src = [str(p) for p in rec["paths"].values()]
            else:
                data, header_tr, binfo = volumes[i]
                names, space_ = binfo["names"], binfo["target_space"]
                src = str(rec["paths"]["vol"])
            tr = check_tr(row.path, row.tr, header_tr, sidecar=f"sidecar of {row.path.name}")
            onset = float(story["onset"].iloc[0])
            end = float((story["onset"] + story["duration"]).max())
            start = offsets[stim] - onset
            first = 0
            if crop:
                first = round_half_up(onset / tr)
                n_keep = round_half_up((end - onset) / tr)
                if first + n_keep > data.shape[0]:
                    raise DatasetError(
                        f"{str(row.path)!r} has {data.shape[0]} volumes but {str(row.events)!r} "
                        f"puts the story at {onset:g}-{end:g} s, i.e. up to volume {first + n_keep} "
                        f"at TR {tr:g} s. Check the TR, the events, or pass crop=False."
                    )
                data = data[first: first + n_keep]
                start += first * tr
            out[key] = Response(
                data, tr=tr, start=start, names=names, run=key, subject=sub,
                info={"source": src, "events": str(row.events), "stimulus": stim,
                      "story_onset": onset, "audio_offset": offsets[stim], "space": space,
                      "pipeline": pipeline, "cropped_volumes": first},
                space=space_,
            )
        responses[sub] = out
    info = {
        "citation": NARRATIVES_CITATION,
        "license": "CC0 (imaging data); stimuli: fair use, see stimuli/README",
        "url": NARRATIVES_URL,
        "openneuro": NARRATIVES_DIRNAME,
        "task": task,
        "space": space,
        "pipeline": pipeline,
        "tr": NARRATIVES_TR,
        "crop": crop,
        "story_offsets": {k: offsets[k] for k in base},
        "root": str(root),
    }
    try:
        info["participants"] = read_participants(root)
    except FileNotFoundError:
        logger.warning("Narratives: no participants.tsv under %s", root)
    return EncodingDataset("narratives", transcripts, responses, {}, {}, info)
