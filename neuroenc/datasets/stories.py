"""Your own stories: transcripts and one response file per subject and run (``loader: stories``).

The generic loader of story data sets that have no loader of their own: the transcripts (a
glob, a list or a mapping run -> file) and the responses (a file pattern with ``{subject}`` and
``{run}`` placeholders, or a table of subject, run and path), read into the same
:class:`~neuroenc.datasets._base.EncodingDataset` the built-in loaders return. In a run config::

    dataset:
      loader: stories
      args:
        transcripts: stimuli/*.TextGrid
        responses: "sub-{subject}/{run}_bold.csv"
        tr: 2.0

Relative paths are relative to ``root``; in a run config, to the config file's folder. The
loader only reads files.
"""
from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Mapping
from numbers import Real
from pathlib import Path
from typing import Any

from .._settings import Interval, ListOf, declare
from .._validation import DatasetError
from ..responses import Response, read_responses
from ..stimuli.io import read_transcript
from ..stimuli.transcript import Transcript
from ._base import EncodingDataset, check_transcript

logger = logging.getLogger(__name__)

#: The placeholders of a responses pattern.
PLACEHOLDERS = ("subject", "run")
#: The columns a responses table must have.
TABLE_COLUMNS = ("subject", "run", "path")
_PATHS = (str, os.PathLike)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _root(root: str | os.PathLike | None) -> Path:
    return Path.cwd() if root is None else Path(os.path.expanduser(str(root))).absolute()


def _under(root: Path, path: str | os.PathLike) -> Path:
    """``path`` as given when absolute, else below ``root``."""
    p = Path(os.path.expanduser(str(path)))
    return p if p.is_absolute() else root / p


def _glob(root: Path, pattern: str) -> list[Path]:
    """The files a glob matches, sorted (the root's own characters are taken literally)."""
    if Path(pattern).is_absolute():
        full = pattern
    else:
        full = os.path.join(glob.escape(str(root)), pattern)
    return sorted(Path(p) for p in glob.glob(full) if Path(p).is_file())


def find_transcripts(transcripts: Any, root: Path) -> dict[str, Path]:
    """Run name -> transcript file: from a glob or a file (run = the file's stem), a list of
    them, or a mapping run -> file."""
    if isinstance(transcripts, Mapping):
        found = {str(run): _under(root, path) for run, path in transcripts.items()}
        for run, path in found.items():
            check_transcript(path, run, "Fix its path in transcripts (relative paths are relative to "
                             f"{str(root)!r}), or leave the run out.")
        return found
    items = [transcripts] if isinstance(transcripts, _PATHS) else list(transcripts)
    found: dict[str, Path] = {}
    for item in items:
        text = str(item)
        paths = _glob(root, text) if glob.has_magic(text) else [_under(root, text)]
        if not paths:
            raise DatasetError(
                f"transcripts {text!r} match no file under {str(root)!r}. Check the pattern (e.g. "
                "'stimuli/*.TextGrid'); relative paths are relative to the config file's folder "
                "(in Python, to root=)."
            )
        for path in paths:
            run = _run_name(path)
            if run in found:
                raise DatasetError(
                    f"two transcripts give run {run!r}: {str(found[run])!r} and {str(path)!r}. Name "
                    "the runs with a mapping (transcripts: {run: file, ...})."
                )
            check_transcript(path, run, "Fix the path in transcripts, or leave the run out.")
            found[run] = path
    return found


def _run_name(path: Path) -> str:
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem


def _pattern_regex(pattern: str) -> re.Pattern:
    """A regex matching the paths of a glob with ``{subject}``/``{run}`` placeholders, which
    capture one path part each (a placeholder used twice must match the same text)."""
    out, seen, i = [], set(), 0
    while i < len(pattern):
        m = _PLACEHOLDER.match(pattern, i)
        c = pattern[i]
        if m:
            key = m.group(1)
            out.append(f"(?P={key})" if key in seen else f"(?P<{key}>[^/]+?)")
            seen.add(key)
            i = m.end()
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and "]" in pattern[i + 2:]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def find_responses(responses: Any, root: Path, runs: list[str]) -> dict[str, dict[str, Path]]:
    """``files[subject][run]``: from a pattern with placeholders, a table (``.csv``/``.tsv``
    with columns subject, run, path; paths relative to the table's folder) or a mapping
    subject -> run -> file."""
    if isinstance(responses, Mapping):
        out: dict[str, dict[str, Path]] = {}
        for subject, files in responses.items():
            if not isinstance(files, Mapping):
                raise DatasetError(
                    f"responses of subject {subject!r} is {files!r}; a mapping of responses gives each "
                    "subject a mapping run -> file ({subject: {run: file}})."
                )
            out[str(subject)] = {str(run): _under(root, p) for run, p in files.items()}
        return out
    text = str(responses)
    keys = _PLACEHOLDER.findall(text)
    if not keys:
        if text.lower().endswith((".csv", ".tsv")):
            return _read_table(_under(root, text))
        raise DatasetError(
            f"responses {text!r} is neither a pattern with a {{subject}} placeholder nor a .csv/.tsv table "
            "of subject, run and path. Write e.g. 'sub-{subject}/{run}_bold.csv'."
        )
    unknown = sorted(set(keys) - set(PLACEHOLDERS))
    if unknown:
        raise DatasetError(
            f"responses pattern {text!r} has placeholder(s) {unknown}; the placeholders are {{subject}} and "
            "{run} (write other varying parts with * or ?)."
        )
    if "subject" not in keys:
        raise DatasetError(f"responses pattern {text!r} has no {{subject}} placeholder; write the part of the "
                           "file name that names the subject as {subject}, e.g. 'sub-{subject}/{run}_bold.csv'.")
    if "run" not in keys and len(runs) != 1:
        raise DatasetError(
            f"responses pattern {text!r} has no {{run}} placeholder, but there are {len(runs)} transcripts "
            f"({runs}); write the part of the file name that names the run as {{run}} (the transcript's "
            "name: its file stem, or its key in transcripts)."
        )
    full = text if Path(text).is_absolute() else os.path.join(str(root), text)
    regex = _pattern_regex(full)
    star = _PLACEHOLDER.sub("*", text)
    paths = _glob(root, star)
    files: dict[str, dict[str, Path]] = {}
    for path in paths:
        m = regex.fullmatch(str(path))
        if m is None:
            continue
        subject = m.group("subject")
        run = m.group("run") if "run" in keys else runs[0]
        if run in files.get(subject, {}):
            raise DatasetError(
                f"responses pattern {text!r} matches two files for subject {subject!r} run {run!r}: "
                f"{str(files[subject][run])!r} and {str(path)!r}; make the pattern match one file per "
                "subject and run."
            )
        files.setdefault(subject, {})[run] = path
    if not files:
        raise DatasetError(
            f"responses pattern {text!r} matches no file under {str(root)!r}. Check the pattern: "
            "{subject} and {run} stand for one part of a file name each (e.g. 'sub-{subject}/{run}_bold.csv'); "
            "relative paths are relative to the config file's folder (in Python, to root=)."
        )
    return dict(sorted(files.items()))


def _read_table(path: Path) -> dict[str, dict[str, Path]]:
    import pandas as pd

    if not path.is_file():
        raise DatasetError(f"responses table {str(path)!r} does not exist. Fix the path (relative paths are "
                           "relative to the config file's folder), or give a pattern with {subject}/{run}.")
    sep = "\t" if path.name.lower().endswith(".tsv") else ","
    try:
        table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DatasetError(f"responses table {str(path)!r} cannot be read as a table ({err}); it needs the "
                           f"columns {list(TABLE_COLUMNS)}.") from None
    missing = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise DatasetError(
            f"responses table {str(path)!r} lacks column(s) {missing}; it has {list(table.columns)}. Give one "
            f"row per subject and run with columns {list(TABLE_COLUMNS)} (paths relative to the table's folder)."
        )
    files: dict[str, dict[str, Path]] = {}
    for i, row in enumerate(table.itertuples(index=False), start=2):
        subject, run, rel = str(row.subject).strip(), str(row.run).strip(), str(row.path).strip()
        if not subject or not run or not rel:
            raise DatasetError(f"responses table {str(path)!r} line {i} has an empty subject, run or path.")
        if run in files.get(subject, {}):
            raise DatasetError(f"responses table {str(path)!r} gives subject {subject!r} run {run!r} twice "
                               f"(line {i}); give one file per subject and run.")
        files.setdefault(subject, {})[run] = _under(path.parent, rel)
    return files


@declare({
    "transcripts": [str, os.PathLike, ListOf(str, os.PathLike), dict],
    "responses": [str, os.PathLike, dict],
    "tr": [None, Interval(Real, 0, None, closed="neither")],
    "sfreq": [None, Interval(Real, 0, None, closed="neither")],
    "start": [Interval(Real, None, None, closed="neither")],
    "subjects": [None, str, ListOf(str)],
    "names": [None, ListOf(str)],
    "tier": [None, str],
    "mask": [None, str, os.PathLike],
    "name": [str],
    "root": [None, str, os.PathLike],
})
def load_stories(
    transcripts: Any,
    responses: Any,
    *,
    tr: float | None = None,
    sfreq: float | None = None,
    start: float = 0.0,
    subjects: Any = None,
    names: list[str] | None = None,
    tier: str | None = None,
    mask: str | os.PathLike | None = None,
    name: str = "stories",
    root: str | os.PathLike | None = None,
) -> EncodingDataset:
    """Load your own stories: transcripts and one response file per subject and run.

    Parameters
    ----------
    transcripts : str | list of str | dict of str -> str
        The transcripts: a glob (``"stimuli/*.TextGrid"``) or a file, whose runs are named by
        the file stems; a list of them; or a mapping run -> file. ``.TextGrid``, ``.tsv``
        (BIDS events), ``.json`` (Gentle) or ``.txt`` (see
        :func:`~neuroenc.stimuli.read_transcript`).
    responses : str | dict
        The responses, one file per subject and run: a pattern in which ``{subject}`` and
        ``{run}`` stand for one part of a file name each (``"sub-{subject}/{run}_bold.csv"``;
        ``*`` and ``?`` match the parts that vary otherwise; ``{run}`` is the transcript's
        name, and may be left out when there is one transcript); or a ``.csv``/``.tsv`` table
        with columns ``subject``, ``run``, ``path`` (paths relative to the table's folder); or a
        mapping subject -> run -> file. Files are read by
        :func:`~neuroenc.responses.read_responses` (``.csv``, ``.tsv``, ``.txt``, ``.npy``,
        ``.nii.gz`` with ``mask``, ``.gii``, ``.dtseries.nii``, ``.fif``).
    tr : float | None
        Repetition time in seconds (fMRI); images default to the TR they store.
    sfreq : float | None
        Sampling rate in Hz (MEG/EEG arrays).
    start : float
        Stimulus time of each response's row 0, in seconds (e.g. 20.0 when the first 10
        volumes of a TR-2 scan were discarded).
    subjects : str | list of str | None
        Load only these subjects (default all the responses give).
    names : list of str | None
        Target names (default: the files' header, or ``"0", "1", ...``).
    tier : str | None
        The TextGrid tier of the words (default the only tier, else one named ``word(s)``).
    mask : path | None
        Brain mask of NIfTI responses.
    name : str
        The data set's name.
    root : path | None
        The folder relative paths are relative to (default the working directory; in a run
        config, the config file's folder).

    Returns
    -------
    dataset : EncodingDataset
        ``transcripts[run]`` and ``responses[subject][run]``, as the built-in loaders give
        them; ``info["sources"]``: the files read.

    Raises
    ------
    DatasetError
        A pattern or glob that matches no file, a response whose run has no transcript, a
        transcript that no response file has, a table without its columns, or two files for
        one subject and run.
    FileNotFoundError
        A transcript file that is missing.
    """
    base = _root(root)
    found = find_transcripts(transcripts, base)
    runs = list(found)
    files = find_responses(responses, base, runs)
    for subject, by_run in files.items():
        for run, path in by_run.items():
            if run not in found:
                raise DatasetError(
                    f"response file {str(path)!r} (subject {subject!r}) is for run {run!r}, which has no "
                    f"transcript; the transcripts give runs {runs}. Add the transcript of {run!r} to "
                    "transcripts, or move the file out of the responses pattern's reach."
                )
    if subjects is not None:
        wanted = [subjects] if isinstance(subjects, str) else [str(s) for s in subjects]
        unknown = [s for s in wanted if s not in files]
        if unknown:
            raise DatasetError(f"data set {name!r} has no responses for subject(s) {unknown}; the responses "
                               f"give subjects {list(files)}.")
        files = {s: files[s] for s in wanted}
    for run, path in found.items():
        if not any(run in by_run for by_run in files.values()):
            raise DatasetError(
                f"run {run!r} has a transcript ({str(path)!r}) but no response file"
                f"{' of the subjects loaded' if subjects is not None else ''}. Add its responses, or leave "
                "its transcript out of transcripts."
            )
    out: dict[str, dict[str, Response]] = {}
    for subject, by_run in files.items():
        missing = [r for r in runs if r not in by_run]
        if missing:
            logger.warning("stories %r: subject %s has no responses for run(s) %s", name, subject, missing)
        for run in runs:
            if run in by_run:
                out.setdefault(subject, {})[run] = read_responses(
                    by_run[run], tr=tr, sfreq=sfreq, start=start, run=run, subject=subject,
                    names=names, mask=None if mask is None else _under(base, mask))
    loaded = {run: _read(path, run, tier) for run, path in found.items()}
    for subject, by_run in out.items():
        for run, resp in by_run.items():
            last = float(loaded[run].onsets[-1])
            if last >= resp.end:  # the alignment's coverage check refuses it; say which file
                logger.warning(
                    "stories %r: %s (subject %s, run %r) ends at %.3f s (%d rows from start=%g) but its transcript's "
                    "last word is at %.3f s; check tr=/sfreq= and the file's rows, or start=", name,
                    resp.info.get("source"), subject, run, resp.end, resp.n_samples, resp.start, last)
    info = {"root": str(base), "tr": tr, "sfreq": sfreq, "start": float(start),
            "sources": {"transcripts": {r: str(p) for r, p in found.items()},
                        "responses": {s: {r: str(p) for r, p in rs.items()} for s, rs in files.items()}}}
    return EncodingDataset(name, loaded, out, info=info)


def _read(path: Path, run: str, tier: str | None) -> Transcript:
    kwargs: dict[str, Any] = {"name": run}
    if path.suffix.lower() == ".textgrid":
        kwargs["tier"] = tier
    return read_transcript(path, **kwargs)


#: ``neuroenc.pipeline.load_dataset`` passes a run config's folder as this argument: relative
#: paths in the config are relative to the config file.
load_stories.config_folder_arg = "root"
