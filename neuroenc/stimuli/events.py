"""BIDS ``events.tsv`` reader."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .._validation import _check_path_exists
from .transcript import Transcript, TranscriptError

_NA = {"", "n/a", "nan", "none"}


def read_events_tsv(
    path: str | os.PathLike,
    word_column: str | None = None,
    query: str | None = None,
    name: str | None = None,
) -> Transcript:
    """Read word events from a BIDS ``events.tsv`` as a :class:`Transcript`.

    Parameters
    ----------
    path : path-like
        A tab-separated file with ``onset`` and ``duration`` columns (seconds, BIDS).
    word_column : str | None
        The column holding the words. ``None`` uses ``word`` if present, else ``trial_type``.
    query : str | None
        A :meth:`pandas.DataFrame.query` expression selecting the word rows, e.g.
        ``"kind == 'word'"``. Rows whose word is empty or ``n/a`` are dropped either way.
    name : str | None
        The run name; defaults to the file name without ``_events.tsv``.

    Returns
    -------
    transcript : Transcript
        Offsets are ``onset + duration`` (``duration`` ``n/a`` counts as 0). ``rows`` holds the
        1-based line numbers of the file (the header is line 1).
    """
    path = _check_path_exists(path, "events file")
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except Exception as err:
        raise TranscriptError(f"Could not read events file {str(path)!r} as TSV: {err}") from err
    if "onset" not in df.columns:
        raise TranscriptError(
            f"events file {str(path)!r} has no 'onset' column (columns: {list(df.columns)}); "
            "BIDS events need 'onset' and 'duration'."
        )
    if word_column is None:
        word_column = "word" if "word" in df.columns else "trial_type"
    if word_column not in df.columns:
        raise TranscriptError(
            f"events file {str(path)!r} has no column {word_column!r} (columns: {list(df.columns)}); "
            "pass word_column= the column that holds the words."
        )
    df["_line"] = np.arange(len(df)) + 2
    if query is not None:
        numeric = df.copy()
        for col in ("onset", "duration"):
            if col in numeric:
                numeric[col] = pd.to_numeric(numeric[col], errors="coerce")
        try:
            df = df.loc[numeric.query(query).index]
        except Exception as err:
            raise TranscriptError(f"query {query!r} failed on events file {str(path)!r}: {err}") from err
    words = df[word_column].astype(str).str.strip()
    df = df[~words.str.lower().isin(_NA)]
    words = words.loc[df.index]
    onsets = pd.to_numeric(df["onset"], errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~np.isfinite(onsets))
    if bad.size:
        line = int(df["_line"].iloc[bad[0]])
        raise TranscriptError(
            f"events file {str(path)!r}, line {line}: onset {df['onset'].iloc[bad[0]]!r} is not a "
            "number."
        )
    if "duration" in df.columns:
        dur = pd.to_numeric(df["duration"].replace({"n/a": "0"}), errors="coerce").fillna(0.0)
        offsets = onsets + dur.to_numpy(float)
    else:
        offsets = None
    if name is None:
        name = path.name.removesuffix(".tsv").removesuffix("_events")
    return Transcript(
        words.tolist(), onsets, offsets, name=name, source=str(path), rows=df["_line"].to_numpy()
    )
