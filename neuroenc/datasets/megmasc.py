"""MEG-MASC (Gwilliams et al. 2023): 27 subjects, 4 stories, KIT MEG at 1000 Hz, BIDS via NEMAR.

Stories and runs. ``task-0`` .. ``task-3`` are fixed stories (``lw1``, ``cable_spool_fort``,
``easy_money``, ``The_Black_Willow``) for every subject; ``participants.tsv``'s ``task_order`` is
the order of presentation (the sidecars' ``TaskDescription``, which calls the indices
session-relative, is wrong: the ``story`` column of the events says otherwise). Each story was
played as ~3-min sound files with comprehension questions in between, whose length varies per
subject, so the only clock shared by all subjects is the sound file's. The runs of this loader
are therefore the sound files: run ``lw1_0`` is ``stimuli/audio/lw1_0.wav``, its transcript times
are seconds from the start of that file (the events' ``start``, rounded to the 1-ms sample), the
same for every subject and session.

Events. ``*_events.tsv`` has sound, phoneme and word rows with ``onset`` in seconds from the
start of the recording. Two formats: sub-01..11 flatten the metadata into columns
(``story``, ``kind``, ``word``, ``sound_id``, ``start``...); sub-12..27 keep the original OSF
format, a UTF-8 BOM and a ``trial_type`` holding a Python dict literal. :func:`read_megmasc_events`
returns both as the same table.

Recordings. ``load_megmasc`` opens each recording lazily with mne-bids (``info["raw"]``) and,
with ``responses=True``, cuts one :class:`~neuroenc.align.Response` per sound file, from
``pad[0]`` s before the sound to ``pad[1]`` s after its last word, with ``start`` the time of
the first sample relative to the sound's onset.
"""
from __future__ import annotations

import ast
import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import DatasetError, _check_option, check_content
from ..responses import Response, SensorSpace
from ..stimuli.transcript import Transcript, TranscriptError
from ._base import EncodingDataset, check_transcript
from .bids import dataset_root, find_subjects, normalize_subject, read_sidecar

logger = logging.getLogger(__name__)

MEGMASC_DIRNAME = "nm000229"
MEGMASC_SFREQ = 1000.0
#: Fixed task -> story mapping (the events' ``story`` column, the README).
MEGMASC_STORIES = {"0": "lw1", "1": "cable_spool_fort", "2": "easy_money", "3": "The_Black_Willow"}
#: Word conditions: story sentences, the random word lists inserted between them, pseudo-words.
MEGMASC_CONDITIONS = ("sentence", "word_list", "pseudo_words")
MEGMASC_CITATION = (
    "Gwilliams, L., Flick, G., Marantz, A., Pylkkänen, L., Poeppel, D., & King, J.-R. (2023). "
    "Introducing MEG-MASC: a high-quality magneto-encephalography dataset for evaluating natural "
    "speech processing. Scientific Data, 10, 862. https://doi.org/10.1038/s41597-023-02752-5"
)
MEGMASC_URL = "https://osf.io/ag3kj/"
_FLOAT_COLS = ("onset", "duration", "start", "story_uid", "sound_id", "sequence_id", "word_index",
               "speech_rate", "pronounced")


def _parse_dicts(texts: list[str], lines: list[int], path: Path) -> list[dict]:
    """Parse the dict literals of the OSF-format ``trial_type`` column."""
    try:  # one parse of the whole column is much faster than one per row
        values = ast.literal_eval("[" + ",\n".join(texts) + "]")
        if all(isinstance(v, dict) for v in values):
            return values
    except (ValueError, SyntaxError):
        pass
    values = []  # row by row, to name the offending line
    for line, text in zip(lines, texts):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError) as err:
            raise DatasetError(
                f"events file {str(path)!r}, line {line}: trial_type {text[:60]!r} is not a "
                f"Python dict literal ({err})."
            ) from err
        if not isinstance(value, dict):
            raise DatasetError(f"events file {str(path)!r}, line {line}: trial_type is not a dict.")
        values.append(value)
    return values


def read_megmasc_events(path: str | os.PathLike) -> pd.DataFrame:
    """Read a MEG-MASC ``events.tsv`` in either of its two formats.

    Returns
    -------
    events : pandas.DataFrame
        One row per event with (at least) ``onset``, ``duration``, ``sample``, ``kind``
        (``sound``/``phoneme``/``word``), ``story``, ``sound_id``, ``start`` (seconds within the
        sound file), ``sound``, ``word``, ``condition`` and ``line`` (the line in the file).
    """
    path = check_content(path, "events file")
    df = pd.read_csv(path, sep="\t", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    df["line"] = np.arange(len(df)) + 2
    if "kind" not in df.columns:
        if "trial_type" not in df.columns:
            raise DatasetError(f"events file {str(path)!r} has neither 'kind' nor 'trial_type' columns.")
        parsed = _parse_dicts(list(df["trial_type"]), list(df["line"]), path)
        meta = pd.DataFrame(parsed).astype(object)
        meta = meta.where(meta.notna(), "")
        df = pd.concat([df.drop(columns=["trial_type"]).reset_index(drop=True),
                        meta.reset_index(drop=True).astype(str)], axis=1)
    df = df.replace({"n/a": "", "nan": ""})
    for col in _FLOAT_COLS:
        if col in df.columns:
            df[col] = pd.to_numeric(df[col].replace("", np.nan), errors="coerce")
    missing = [c for c in ("onset", "kind", "story", "sound_id", "start") if c not in df.columns]
    if missing:
        raise DatasetError(f"events file {str(path)!r} lacks field(s) {missing} (MEG-MASC format).")
    return df


def megmasc_transcripts(
    events: pd.DataFrame,
    source: str | None = None,
    conditions: Sequence[str] | None = None,
) -> dict[str, Transcript]:
    """One transcript per sound file (``"<story>_<sound_id>"``), on the sound file's clock.

    Parameters
    ----------
    events : DataFrame
        From :func:`read_megmasc_events`.
    source : str | None
        The events file, for messages and ``Transcript.source``.
    conditions : sequence of str | None
        Keep words of these conditions (:data:`MEGMASC_CONDITIONS`); default all words heard.
        Words marked ``pronounced == 0`` are dropped.
    """
    words = events[events["kind"] == "word"]
    words = words[words["word"].astype(str).str.strip() != ""]
    if "pronounced" in words.columns:
        words = words[words["pronounced"].fillna(1) != 0]
    if conditions is not None:
        words = words[words["condition"].isin(list(conditions))]
    if not len(words):
        raise TranscriptError(f"events {source!r}: no word rows (after filtering conditions={conditions}).")
    out = {}
    for (story, sound_id), grp in words.groupby(["story", "sound_id"], sort=True):
        key = f"{story}_{int(sound_id)}"
        onsets = np.round(grp["start"].to_numpy(float), 3)
        offsets = np.round(grp["start"].to_numpy(float) + grp["duration"].to_numpy(float), 3)
        out[key] = Transcript(grp["word"].astype(str).str.strip().tolist(), onsets, offsets,
                              name=key, source=f"{source} [sound {key}]", rows=grp["line"].to_numpy())
    return dict(sorted(out.items(), key=lambda kv: (kv[0].rsplit("_", 1)[0], int(kv[0].rsplit("_", 1)[1]))))


def _bids_path(root: Path, subject: str, session: str, task: str, suffix: str, extension: str) -> Any:
    from mne_bids import BIDSPath

    return BIDSPath(root=root, subject=subject, session=session, task=task, datatype="meg",
                    suffix=suffix, extension=extension)


def _recording(root: Path, subject: str, session: str, task: str) -> Any:
    """The BIDSPath of a recording (``.con``, else ``.fif``/``.sqd``), or raise naming it."""
    for ext in (".con", ".sqd", ".fif"):
        bp = _bids_path(root, subject, session, task, "meg", ext)
        if bp.fpath.exists() or bp.fpath.is_symlink():
            return bp
    con = _bids_path(root, subject, session, task, "meg", ".con").fpath
    raise FileNotFoundError(
        f"recording not found: {str(con)!r}. Fetch it ('datalad get' the file, or download "
        "from OSF ag3kj), or load with raw=False for the transcripts only."
    )


def _sound_table(events: pd.DataFrame, transcripts: dict[str, Transcript]) -> pd.DataFrame:
    sounds = events[events["kind"] == "sound"]
    rows = []
    for key, tr in transcripts.items():
        story, sid = key.rsplit("_", 1)
        match = sounds[(sounds["story"] == story) & (sounds["sound_id"] == int(sid))]
        onset = float(match["onset"].iloc[0]) if len(match) else float("nan")
        rows.append({"run": key, "story": story, "sound_id": int(sid), "onset": onset,
                     "last_offset": onset + tr.end})
    return pd.DataFrame(rows)


def load_megmasc(
    root: str | os.PathLike | None = None,
    subject: str | Sequence[str] | None = "01",
    session: str | int = "0",
    tasks: Iterable[str | int] | None = None,
    conditions: Sequence[str] | None = None,
    raw: bool = True,
    responses: bool = False,
    picks: Any = "meg",
    l_freq: float | None = None,
    h_freq: float | None = None,
    resample: float | None = None,
    pad: tuple[float, float] = (0.5, 1.0),
) -> EncodingDataset:
    """Load MEG-MASC (NEMAR nm000229 / OSF ag3kj): word transcripts per sound file and the MEG.

    Parameters
    ----------
    root : path-like | None
        The BIDS folder; default ``<data dir>/nm000229``.
    subject : str | sequence of str | None
        ``"01"`` ... ``"27"`` (``sub-`` optional); ``None`` for every subject.
    session : str | int
        ``"0"`` or ``"1"`` (5 subjects have only session 0; they are listed in ``excluded``
        when session 1 is asked for). One session per data set keeps run names unique.
    tasks : iterable | None
        Task indices (``0``-``3``, fixed stories, :data:`MEGMASC_STORIES`); default all four.
    conditions : sequence of str | None
        Words kept (:data:`MEGMASC_CONDITIONS`); default all words heard (the word lists are
        part of the audio, so a language model's context should include them).
    raw : bool
        Open each recording (lazily, via :func:`mne_bids.read_raw_bids`) into
        ``info["raw"][subject][story]``, checking its sampling rate against the sidecar.
    responses : bool
        Also cut one Response per sound file (loads the data: about 0.7 GB per 6-min story
        at 1000 Hz for 208 channels; use ``picks``/``resample`` to reduce it).
    picks, l_freq, h_freq, resample
        Channels (mne ``picks``), band-pass edges (Hz, ``None`` for none) and new sampling rate
        applied to each recording before cutting.
    pad : (float, float)
        Seconds kept before each sound's onset and after its last word.

    Returns
    -------
    dataset : EncodingDataset
        ``transcripts["lw1_0"]`` ... (one per sound file, identical across subjects);
        ``responses[subject][run]`` (``sfreq``; ``start`` = time of the first sample from the
        sound onset, i.e. ``-pad[0]``) when ``responses=True``, else empty.
        ``info["raw"][subject][story]``: ``mne.io.Raw`` (not preloaded);
        ``info["events"][subject][story]``: the events table; ``info["sounds"][subject]``:
        each run's recording, sound onset and last word offset (seconds from recording start);
        ``info["task_order"][subject]``: the presentation order from ``participants.tsv``.
    """
    root = dataset_root(
        root, MEGMASC_DIRNAME,
        "Get it with 'datalad install https://github.com/nemarDatasets/nm000229.git' (or from OSF ag3kj)",
    )
    session = str(session)
    _check_option("session", session, ("0", "1"))
    task_list = list(MEGMASC_STORIES) if tasks is None else [str(t) for t in tasks]
    for t in task_list:
        _check_option("task", t, tuple(MEGMASC_STORIES))
    if conditions is not None:
        for c in conditions:
            _check_option("conditions", c, MEGMASC_CONDITIONS)
    if subject is None:
        subjects = find_subjects(root, hint="Is root the MEG-MASC BIDS folder (nm000229)?")
    else:
        subjects = [normalize_subject(s) for s in ([subject] if isinstance(subject, str) else subject)]
    participants = {}
    ppath = root / "participants.tsv"
    if ppath.exists():
        table = pd.read_csv(ppath, sep="\t", dtype=str, encoding="utf-8-sig")
        participants = {normalize_subject(r["participant_id"]): r for r in table.to_dict("records")}
    transcripts: dict[str, Transcript] = {}
    responses_out: dict[str, dict[str, Response]] = {}
    excluded: dict[str, str] = {}
    raws: dict[str, dict[str, Any]] = {}
    events_out: dict[str, dict[str, pd.DataFrame]] = {}
    sounds_out: dict[str, pd.DataFrame] = {}
    for sub in subjects:
        ses_dir = root / f"sub-{sub}" / f"ses-{session}"
        if not ses_dir.is_dir():
            excluded[sub] = f"no session {session} ({str(ses_dir)!r} is missing)"
            logger.warning("MEG-MASC: excluding sub-%s: %s", sub, excluded[sub])
            continue
        raws[sub], events_out[sub] = {}, {}
        tables = []
        for task in task_list:
            story = MEGMASC_STORIES[task]
            ev_path = check_transcript(
                _bids_path(root, sub, session, task, "events", ".tsv").fpath, story,
                f"The word timings of every sound file of story {story!r} are in this file; fetch "
                "it ('datalad get'), or leave the task out (tasks=).",
                what="events file",
            )
            events = read_megmasc_events(ev_path)
            stories = sorted(set(events["story"].dropna().astype(str)) - {""})
            if stories != [story]:
                raise DatasetError(
                    f"{str(ev_path)!r} names stor{'ies' if len(stories) > 1 else 'y'} {stories}, but "
                    f"task-{task} is {story!r} in MEG-MASC (fixed task->story mapping)."
                )
            mine = megmasc_transcripts(events, source=str(ev_path), conditions=conditions)
            for key, tr in mine.items():
                if key in transcripts and transcripts[key].words != tr.words:
                    raise DatasetError(
                        f"sound {key!r}: the words in {str(ev_path)!r} differ from those of "
                        f"{transcripts[key].source!r}."
                    )
                transcripts.setdefault(key, tr)
            events_out[sub][story] = events
            snd = _sound_table(events, mine)
            snd["events"] = str(ev_path)
            snd["task"] = task
            if raw or responses:
                bp = _recording(root, sub, session, task)
                snd["recording"] = str(bp.fpath)
                rec = _open_raw(bp)
                raws[sub][story] = rec
                if responses:
                    responses_out.setdefault(sub, {}).update(
                        _cut(rec, snd, sub, picks, l_freq, h_freq, resample, pad))
            tables.append(snd)
        sounds_out[sub] = pd.concat(tables, ignore_index=True)
    if not sounds_out:
        raise DatasetError(f"MEG-MASC: no requested subject has session {session}: {excluded}.")
    info = {
        "citation": MEGMASC_CITATION,
        "license": "CC0",
        "url": MEGMASC_URL,
        "nemar": MEGMASC_DIRNAME,
        "sfreq": MEGMASC_SFREQ,
        "session": session,
        "stories": {t: MEGMASC_STORIES[t] for t in task_list},
        "raw": raws,
        "events": events_out,
        "sounds": sounds_out,
        "task_order": {s: participants.get(s, {}).get("task_order") for s in sounds_out},
        "root": str(root),
    }
    return EncodingDataset("megmasc", transcripts, responses_out, {}, excluded, info)


def _open_raw(bids_path: Any) -> Any:
    """Open a recording with mne-bids and check its rate against the ``_meg.json`` sidecar."""
    from mne_bids import read_raw_bids

    fpath = check_content(bids_path.fpath, "MEG recording")
    with warnings.catch_warnings():
        # mne-bids warns about every sidecar field it cannot map (PowerLineFrequency "n/a"...)
        warnings.simplefilter("ignore", RuntimeWarning)
        rec = read_raw_bids(bids_path, verbose="error")
    side = bids_path.copy().update(suffix="meg", extension=".json").fpath
    if side.exists():
        meta = read_sidecar(side)
        want = meta.get("SamplingFrequency")
        if want is not None and abs(float(want) - rec.info["sfreq"]) > 1e-6:
            raise DatasetError(
                f"sampling-rate mismatch for {str(fpath)!r}: the sidecar {side.name} says "
                f"SamplingFrequency={float(want):g} Hz but the recording is at "
                f"{rec.info['sfreq']:g} Hz. Fix the sidecar or the file."
            )
    return rec


def _cut(rec: Any, sounds: pd.DataFrame, subject: str, picks: Any, l_freq: float | None,
         h_freq: float | None, resample: float | None, pad: tuple[float, float]) -> dict[str, Response]:
    """One Response per sound file of a recording."""
    inst = rec.copy().pick(picks).load_data(verbose="error")
    if l_freq is not None or h_freq is not None:
        inst.filter(l_freq, h_freq, verbose="error")
    if resample is not None:
        inst.resample(resample, verbose="error")
    sfreq = float(inst.info["sfreq"])
    data = inst.get_data()
    out = {}
    for row in sounds.itertuples():
        if not np.isfinite(row.onset):
            raise DatasetError(f"sound {row.run!r} has no 'sound' row in {row.events!r}; its onset is unknown.")
        i0 = max(0, int(np.floor((row.onset - pad[0]) * sfreq)))
        i1 = min(data.shape[1], int(np.ceil((row.last_offset + pad[1]) * sfreq)))
        if i1 <= i0 or row.last_offset > data.shape[1] / sfreq:
            raise DatasetError(
                f"recording {row.recording!r} ends at {data.shape[1] / sfreq:.1f} s, before the last "
                f"word of sound {row.run!r} ({row.last_offset:.1f} s)."
            )
        out[row.run] = Response(
            data[:, i0:i1].T, sfreq=sfreq, start=i0 / sfreq - row.onset, names=inst.ch_names,
            run=row.run, subject=subject, space=SensorSpace.from_info(inst.info),
            info={"recording": row.recording, "sound_onset": row.onset, "events": row.events},
        )
    return out
