"""BIDS ``events.tsv`` reader."""
from __future__ import annotations

import io
import os

import numpy as np
import pandas as pd

from .._validation import _check_path_exists
from .decode import read_text_file
from .filters import FilterError, parse_filter
from .transcript import Transcript, TranscriptError

#: BIDS's mark for a missing value (compared exactly, after stripping white space).
BIDS_NA = "n/a"


def select_rows(df: pd.DataFrame, query: str | None, path: os.PathLike, error: type[Exception]) -> pd.DataFrame:
    """The rows of an events table that a row filter selects (:func:`~neuroenc.stimuli.filters.parse_filter`:
    ``column op value`` combined with ``and``/``or``/``not``; never evaluated as Python); all
    rows when ``query`` is None. A number compares with the column read as numbers (``onset``,
    ``duration``), a string with its text. A bad query raises ``error``, naming the query, the
    position and the file."""
    if query is None:
        return df
    try:
        mask = parse_filter(query).rows(df)
    except FilterError as err:
        raise error(f"{err} (events file {str(path)!r})") from err
    return df[mask]


def _read_table(path: os.PathLike, encoding: str | None = None) -> pd.DataFrame:
    """The TSV as strings, blank lines dropped, with each row's file line number in ``_line``.

    pandas skips blank lines by default, which would shift every later line number; here they
    are read as empty rows (``skip_blank_lines=False``) and dropped after numbering. Blank
    lines before the header are skipped too.
    """
    text = read_text_file(path, "events file", encoding)
    lines = text.split("\n")
    n_leading = 0
    while n_leading < len(lines) - 1 and not lines[n_leading].strip():
        n_leading += 1
    try:
        df = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False,
                         skip_blank_lines=False, skiprows=n_leading)
    except Exception as err:
        raise TranscriptError(f"Could not read events file {str(path)!r} as TSV: {err}") from err
    df = df.fillna("")  # rows with fewer fields than the header
    df["_line"] = np.arange(len(df)) + 2 + n_leading
    blank = np.ones(len(df), dtype=bool)
    for col in df.columns[:-1]:
        blank &= df[col].str.strip().eq("").to_numpy()
    return df[~blank]


def read_events_tsv(
    path: str | os.PathLike,
    word_column: str | None = None,
    query: str | None = None,
    name: str | None = None,
    encoding: str | None = None,
) -> Transcript:
    """Read word events from a BIDS ``events.tsv`` as a :class:`Transcript`.

    Parameters
    ----------
    path : path-like
        A tab-separated file with ``onset`` and ``duration`` columns (seconds, BIDS).
    word_column : str | None
        The column holding the words. ``None`` uses ``word`` if present, else ``trial_type``.
    query : str | None
        A row filter selecting the word rows, e.g. ``"kind == 'word'"`` or
        ``"trial_type in ['word', 'name'] and onset >= 10"``: columns compared with numbers or
        quoted strings, combined with ``and``, ``or``, ``not`` and parentheses (see
        :mod:`neuroenc.stimuli.filters`; it is parsed, never evaluated as Python). Rows whose
        word is empty or exactly ``n/a`` (BIDS's missing value) are dropped either way; every
        other word is kept as written, including words such as ``none``, ``nan`` or ``N/A``.
    name : str | None
        The run name; defaults to the file name without ``_events.tsv``.
    encoding : str | None
        The file's encoding; default UTF-8 (or UTF-16 by its byte-order mark). Never guessed:
        a file in another encoding is an error naming the first byte that is not UTF-8.

    Returns
    -------
    transcript : Transcript
        Offsets are ``onset + duration`` (a ``duration`` of ``n/a`` or empty counts as 0).
        ``rows`` holds the 1-based line numbers of the file (the header is line 1; blank
        lines are counted).

    Raises
    ------
    TranscriptError
        If a column is missing, or an ``onset`` or ``duration`` is not a finite number; the
        message names the file and line.
    """
    path = _check_path_exists(path, "events file")
    df = _read_table(path, encoding)
    if "onset" not in df.columns:
        raise TranscriptError(
            f"events file {str(path)!r} has no 'onset' column (columns: {list(df.columns[:-1])}); "
            "BIDS events need 'onset' and 'duration'."
        )
    if word_column is None:
        word_column = "word" if "word" in df.columns else "trial_type"
    if word_column not in df.columns:
        raise TranscriptError(
            f"events file {str(path)!r} has no column {word_column!r} (columns: "
            f"{list(df.columns[:-1])}); pass word_column= the column that holds the words."
        )
    df = select_rows(df, query, path, TranscriptError)
    words = df[word_column].astype(str).str.strip()
    df = df[~words.isin(("", BIDS_NA))]
    words = words.loc[df.index]
    onsets = _numbers(df, "onset", path, missing=None)
    if "duration" in df.columns:
        offsets = onsets + _numbers(df, "duration", path, missing=0.0)
    else:
        offsets = None
    if name is None:
        name = path.name.removesuffix(".tsv").removesuffix("_events")
    return Transcript(
        words.tolist(), onsets, offsets, name=name, source=str(path), rows=df["_line"].to_numpy()
    )


def _numbers(df: pd.DataFrame, column: str, path: os.PathLike, missing: float | None) -> np.ndarray:
    """``df[column]`` as floats; ``n/a`` or empty become ``missing`` (an error if ``None``)."""
    text = df[column].astype(str).str.strip()
    absent = text.isin(("", BIDS_NA)).to_numpy()
    values = pd.to_numeric(text.where(~absent, "0"), errors="coerce").to_numpy(float)
    bad = ~np.isfinite(values) | (absent if missing is None else False)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise TranscriptError(
            f"events file {str(path)!r}, line {int(df['_line'].iloc[i])}: {column} "
            f"{df[column].iloc[i]!r} is not a number. Fix the file (BIDS: seconds, or 'n/a' for "
            "an unknown duration)."
        )
    return values if missing is None else np.where(absent, missing, values)
