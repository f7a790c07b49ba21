"""The :class:`StimulusSet`: stimuli without time (sentences, passages), each with one response.

Stimulus-level data sets (Pereira et al. 2018, Tuckute et al. 2024, reading times) pair each
stimulus, a sentence or a short passage, with one response vector. A :class:`StimulusSet`
holds, per stimulus, its id, its text and an optional group (passage, topic, story), in the
order the stimuli are read: with ``context: group`` each stimulus is presented after the
stimuli before it in its group.

Readers:

- :func:`read_stimuli`: a CSV or TSV table, columns named by the user (ids, text, group);
- :func:`read_stimuli_events`: a BIDS ``events.tsv`` whose rows carry text (rows whose text is
  empty or ``n/a`` are not stimuli and are dropped; ``query`` selects rows).

Errors name the file, the row (its line number in the file) and the fix: an empty text, a
duplicate id, a missing column, text that is not UTF-8.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import StimulusError, _check_path_exists, _preview, check_csv_records

#: Control characters (Unicode category Cc) but tab and line breaks, which are whitespace.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class StimulusSet:
    """Stimuli with ids, texts and optional groups, in reading order.

    Parameters
    ----------
    ids : sequence of str
        A unique id per stimulus (responses are matched to stimuli by these ids).
    texts : sequence of str
        The text of each stimulus (a word, a sentence, a passage); never empty.
    groups : sequence of str | None
        The group of each stimulus (passage, topic, story), or None. Cross-validation holds
        out whole groups (``cv="group-kfold:K"``), permutation tests permute within groups, and
        ``context="group"`` presents each stimulus after the earlier stimuli of its group.
    name : str
        The set's name (in cache file names and provenance).
    source : str | None
        The file the stimuli came from, for messages.
    rows : sequence of int | None
        The line of each stimulus in its file (1-based, the header is line 1), for messages.

    Raises
    ------
    StimulusError
        If the set is empty, the lengths differ, a text is empty or an id repeats; the message
        names the file and the rows.

    Examples
    --------
    >>> s = StimulusSet(["s1", "s2", "s3"], ["The cat sat.", "It purred.", "Rain fell."],
    ...                 groups=["p1", "p1", "p2"])
    >>> len(s), s.group_names, s.preceding(1)
    (3, ['p1', 'p2'], [0])
    """

    def __init__(self, ids: Sequence[Any], texts: Sequence[Any], groups: Sequence[Any] | None = None,
                 name: str = "stimuli", source: str | None = None,
                 rows: Sequence[int] | np.ndarray | None = None) -> None:
        self.name = str(name)
        self.source = None if source is None else str(source)
        self.ids = [str(i) for i in ids]
        self.texts = [str(t) for t in texts]
        self.groups = None if groups is None else [str(g) for g in groups]
        n = len(self.ids)
        self.rows = np.arange(1, n + 1) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
        self._validate()

    # ------------------------------------------------------------------ validation
    def _where(self) -> str:
        return f"stimuli {str(self.source)!r}" if self.source else f"stimulus set {self.name!r}"

    def _row(self, i: int) -> str:
        return f"row {int(self.rows[i])}" if self.source else f"stimulus {i}"

    def _validate(self) -> None:
        n = len(self.ids)
        where = self._where()
        if n == 0:
            raise StimulusError(f"{where} has no stimuli; check the file (and its text column).")
        for label, values in (("texts", self.texts), ("groups", self.groups), ("rows", self.rows)):
            if values is not None and len(values) != n:
                raise StimulusError(f"{where}: {n} ids but {len(values)} {label}; give one per stimulus.")
        empty = [i for i, t in enumerate(self.texts) if not t.strip()]
        if empty:
            raise StimulusError(
                f"{where}: {len(empty)} stimulus text(s) are empty, first at {self._row(empty[0])} (id "
                f"{self.ids[empty[0]]!r}); rows "
                f"{_preview([int(self.rows[i]) for i in empty])}. Fill in the text or delete those rows."
            )
        for i, text in enumerate(self.texts):
            found = _CONTROL.search(text)
            if found is not None:
                bad = found.start()
                raise StimulusError(
                    f"{where}: the text of stimulus {self.ids[i]!r} ({self._row(i)}) holds the control "
                    f"character U+{ord(text[bad]):04X} at character {bad + 1}: {text[:80]!r}. A tokenizer "
                    "drops or mangles such characters (often left by copy-paste or a wrong encoding); "
                    "delete them from the file."
                )
        blank = [i for i, s in enumerate(self.ids) if not s.strip()]
        if blank:
            raise StimulusError(
                f"{where}: {len(blank)} stimulus id(s) are empty, first at {self._row(blank[0])}; give "
                "every stimulus an id."
            )
        seen: dict[str, int] = {}
        for i, s in enumerate(self.ids):
            if s in seen:
                j = seen[s]
                dups = sorted({x for x in self.ids if self.ids.count(x) > 1}) if n < 20000 else [s]
                raise StimulusError(
                    f"{where}: id {s!r} repeats at {self._row(j)} and {self._row(i)} "
                    f"({len(dups)} duplicated id(s): {_preview(dups)}). Ids must be unique: responses are "
                    "matched to stimuli by id; rename or drop the duplicates."
                )
            seen[s] = i

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_stimuli(self) -> int:
        """Number of stimuli."""
        return len(self.ids)

    @property
    def has_groups(self) -> bool:
        """Whether the stimuli have groups."""
        return self.groups is not None

    @property
    def group_names(self) -> list[str]:
        """The groups in order of first appearance (empty without groups)."""
        return list(dict.fromkeys(self.groups)) if self.groups is not None else []

    def group_indices(self) -> list[np.ndarray]:
        """The stimulus indices of each group, in reading order (one group of all stimuli
        without groups)."""
        if self.groups is None:
            return [np.arange(len(self))]
        g = np.asarray(self.groups, dtype=object)
        return [np.flatnonzero(g == name) for name in self.group_names]

    def preceding(self, i: int) -> list[int]:
        """The indices of the stimuli before stimulus ``i`` in its group (its ``context="group"``)."""
        if self.groups is None:
            return []
        return [j for j in range(i) if self.groups[j] == self.groups[i]]

    def index(self, ids: Sequence[Any]) -> np.ndarray:
        """Positions of ``ids`` in the set; unknown ids are an error listing them."""
        pos = {s: i for i, s in enumerate(self.ids)}
        ids = [str(i) for i in ids]
        missing = [i for i in ids if i not in pos]
        if missing:
            raise StimulusError(f"{self._where()} has no stimulus with id(s) {_preview(missing)}.")
        return np.asarray([pos[i] for i in ids], dtype=np.int64)

    def select(self, ids: Sequence[Any]) -> "StimulusSet":
        """The stimuli with these ids, in the set's order."""
        keep = np.sort(self.index(ids))
        return StimulusSet([self.ids[i] for i in keep], [self.texts[i] for i in keep],
                           None if self.groups is None else [self.groups[i] for i in keep],
                           name=self.name, source=self.source, rows=self.rows[keep])

    def to_frame(self) -> pd.DataFrame:
        """One row per stimulus: ``id``, ``text``, ``group`` (when there are groups), ``row``."""
        df = pd.DataFrame({"id": self.ids, "text": self.texts})
        if self.groups is not None:
            df["group"] = self.groups
        df["row"] = self.rows
        return df

    def sha256(self) -> str:
        """A hash of the ids, texts and groups (in order): the stimulus part of cache keys."""
        payload = json.dumps({"ids": self.ids, "texts": self.texts, "groups": self.groups},
                             ensure_ascii=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode("ascii")).hexdigest()

    def __repr__(self) -> str:
        groups = f", {len(self.group_names)} groups" if self.groups is not None else ""
        return f"<StimulusSet {self.name!r} | {len(self)} stimuli{groups}>"


# ---------------------------------------------------------------------- readers
def read_utf8(path: Path) -> str:
    """The file's text (UTF-8, a BOM allowed); non-UTF-8 bytes are an error naming the line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise StimulusError(
            f"stimuli {str(path)!r}, line {line}: the file is not UTF-8 text ({err.reason}: byte "
            f"{data[err.start:err.start + 1]!r} at offset {err.start}). Save it as UTF-8 (e.g. "
            f"`iconv -f latin1 -t utf-8 {path.name}`)."
        ) from None


def read_table(path: Path, sep: str | None = None, what: str = "stimuli") -> pd.DataFrame:
    """A UTF-8 table as strings, with each row's file line number in ``_line`` (blank lines dropped).

    ``sep``: the column separator (default: a tab for ``.tsv``/``.tab`` files, else a comma);
    ``what`` names the file in messages (``"stimuli"``, ``"responses"``).
    """
    text = read_utf8(path)
    if sep is None:
        sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        check_csv_records(text, path, what, sep)  # an unclosed quote would merge rows silently
    except ValueError as err:
        raise StimulusError(str(err)) from None
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                         skip_blank_lines=False)
    except Exception as err:  # pandas' parser errors name the line
        raise StimulusError(f"Could not read {what} {str(path)!r} as a table (sep={sep!r}): {err}") from err
    df = df.fillna("")
    df["_line"] = np.arange(len(df)) + 2
    cols = [c for c in df.columns if c != "_line"]
    blank = np.ones(len(df), dtype=bool)
    for col in cols:
        blank &= df[col].astype(str).str.strip().eq("").to_numpy()
    return df[~blank]


def _column(df: pd.DataFrame, column: str | None, what: str, option: str, path: Path) -> pd.Series | None:
    if column is None:
        return None
    if column not in df.columns:
        cols = [c for c in df.columns if c != "_line"]
        raise StimulusError(
            f"stimuli {str(path)!r} has no column {column!r} for the {what} (columns: {cols}); pass "
            f"{option}=NAME, the column that holds them."
        )
    return df[column].astype(str)


def _build(df: pd.DataFrame, path: Path, text_column: str, id_column: str | None,
           group_column: str | None, name: str | None) -> StimulusSet:
    texts = _column(df, text_column, "texts", "text_column", path)
    ids = _column(df, id_column, "ids", "id_column", path)
    groups = _column(df, group_column, "groups", "group_column", path)
    empty_groups = groups is not None and groups.str.strip().eq("").any()
    if empty_groups:
        i = int(np.flatnonzero(groups.str.strip().eq("").to_numpy())[0])
        raise StimulusError(
            f"stimuli {str(path)!r}, row {int(df['_line'].iloc[i])}: the group (column {group_column!r}) is "
            "empty; give every stimulus a group, or drop group_column."
        )
    return StimulusSet(
        ids.str.strip().tolist() if ids is not None else [str(x) for x in df["_line"]],
        texts.str.strip().tolist(),
        None if groups is None else groups.str.strip().tolist(),
        name=name or path.stem, source=str(path), rows=df["_line"].to_numpy(),
    )


def read_stimuli(path: str | os.PathLike, text_column: str, id_column: str | None = "id",
                 group_column: str | None = None, sep: str | None = None,
                 name: str | None = None) -> StimulusSet:
    """Read stimuli from a CSV or TSV table, one row per stimulus, in reading order.

    Parameters
    ----------
    path : path-like
        A ``.csv`` (comma-separated) or ``.tsv`` file (tab-separated), UTF-8, with a header.
    text_column : str
        The column holding each stimulus's text.
    id_column : str | None
        The column holding the ids (default ``"id"``). ``None``: each stimulus's id is its
        line number in the file (the header is line 1), as a string.
    group_column : str | None
        The column holding each stimulus's group (passage, topic), or None.
    sep : str | None
        Field separator (default: tab for ``.tsv``, comma otherwise).
    name : str | None
        The set's name (default: the file's stem).

    Returns
    -------
    stimuli : StimulusSet
        ``rows`` holds each stimulus's line number (blank lines are skipped but counted).

    Raises
    ------
    StimulusError
        If the file is not UTF-8, a column is missing, a text, id or group is empty, or an id
        repeats; the message names the file, the line and the fix.
    """
    path = _check_path_exists(path, "stimuli file")
    return _build(read_table(path, sep), path, text_column, id_column, group_column, name)


def read_stimuli_events(path: str | os.PathLike, text_column: str, id_column: str | None = None,
                        group_column: str | None = None, query: str | None = None,
                        name: str | None = None) -> StimulusSet:
    """Read stimuli from a BIDS ``events.tsv`` whose rows carry text, in the order of their onsets.

    Parameters
    ----------
    path : path-like
        A BIDS events file (tab-separated, ``onset`` and ``duration`` columns).
    text_column : str
        The column holding the text (e.g. ``sentence``, ``stim_text``). Rows whose text is empty
        or BIDS's ``n/a`` are not stimuli (fixation, responses) and are dropped.
    id_column : str | None
        The column holding the ids; ``None``: the line number in the file.
    group_column : str | None
        The column holding each stimulus's group, or None.
    query : str | None
        A row filter selecting the stimulus rows, e.g. ``"trial_type == 'sentence'"``:
        columns compared with numbers or quoted strings, combined with ``and``, ``or``, ``not``
        and parentheses (see :mod:`neuroenc.stimuli.filters`; never evaluated as Python).
    name : str | None
        The set's name (default: the file name without ``_events.tsv``).

    Returns
    -------
    stimuli : StimulusSet
        Sorted by onset (stable), so ``context="group"`` follows the order of presentation.
    """
    from .events import BIDS_NA, select_rows

    path = _check_path_exists(path, "events file")
    df = read_table(path, "\t")
    df = select_rows(df, query, path, StimulusError)
    text = _column(df, text_column, "texts", "text_column", path)
    df = df[~text.str.strip().isin(("", BIDS_NA))]
    if "onset" in df.columns:
        onset = pd.to_numeric(df["onset"], errors="coerce")
        bad = onset.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise StimulusError(
                f"events file {str(path)!r}, line {int(df['_line'].iloc[i])}: onset {df['onset'].iloc[i]!r} "
                "is not a number. Fix the file (BIDS: seconds)."
            )
        df = df.iloc[np.argsort(onset.to_numpy(), kind="stable")]
    if name is None:
        name = path.name.removesuffix(".tsv").removesuffix("_events")
    return _build(df, path, text_column, id_column, group_column, name)
