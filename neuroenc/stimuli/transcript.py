"""The :class:`Transcript`: words with onset and offset times, for one run or story."""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd


class Word(NamedTuple):
    """One word of a transcript: its text, onset and offset in seconds."""

    word: str
    onset: float
    offset: float


class TranscriptError(ValueError):
    """A transcript is malformed (unsorted, empty, negative or inverted times...)."""


#: A word followed by an annotation code: a word that starts with a letter, then ``/`` and a
#: code that starts with a digit, as the aligned TextGrids of Natural Stories label their words
#: (``"IF / 1.1"``, ``"ENGLAND / 1.10.word"``). ``"and/or"`` or ``"1/2"`` are plain words.
CODED_WORD = re.compile(r"^\s*(?P<word>[^\W\d_][^/]*?)\s*/\s*(?P<code>\d[\w.]*)\W*$")


def split_code(word: str) -> tuple[str, str | None]:
    """A word and its annotation code (see :data:`CODED_WORD`), or the word and ``None``.

    Examples
    --------
    >>> split_code("IF / 1.1"), split_code("ENGLAND / 1.10.word"), split_code("and/or")
    (('IF', '1.1'), ('ENGLAND', '1.10.word'), ('and/or', None))
    """
    match = CODED_WORD.match(word)
    if match is None:
        return word.strip(), None
    return match.group("word").strip(), match.group("code")


class Transcript:
    """Words with onset and offset times (seconds), for one run or story.

    Times are in seconds from the start of the run's audio (the same clock as the brain
    data's grid, see :class:`neuroenc.align.Response`).

    Parameters
    ----------
    words : sequence of str
        The words, in order, with punctuation attached as the source has it.
    onsets : array-like of float
        Onset of each word in seconds; non-negative and sorted (non-decreasing).
    offsets : array-like of float | None
        Offset of each word in seconds, ``>= onsets``. ``None`` uses the next word's onset
        (and the last onset for the last word).
    name : str
        The run or story name; runs are matched by this name, never by position.
    source : str | None
        Where the words came from (a file path, possibly with a tier); used in messages.
    rows : sequence of int | None
        The row of each word in its source (TextGrid interval number, events.tsv line, JSON
        index), so that error messages can point at the file. Defaults to ``0..n-1``.

    Raises
    ------
    TranscriptError
        If the transcript is empty, lengths differ, times are not finite, onsets are negative
        or unsorted, or an offset precedes its onset. The message names the source and row.

    Examples
    --------
    >>> t = Transcript(["Alice", "was"], [20.06, 20.62], [20.62, 20.84], name="alice")
    >>> len(t), t[0].word, t.duration
    (2, 'Alice', 0.78)
    """

    def __init__(
        self,
        words: Sequence[str],
        onsets: Sequence[float] | np.ndarray,
        offsets: Sequence[float] | np.ndarray | None = None,
        name: str = "run-1",
        source: str | None = None,
        rows: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        self.name = str(name)
        self.source = None if source is None else str(source)
        words = [str(w) for w in words]
        onsets = np.asarray(onsets, dtype=np.float64).reshape(-1)
        if offsets is None:
            offsets = np.append(onsets[1:], onsets[-1:]) if onsets.size else onsets.copy()
        offsets = np.asarray(offsets, dtype=np.float64).reshape(-1)
        rows = np.arange(len(words)) if rows is None else np.asarray(rows, dtype=np.int64)
        self._words = tuple(words)
        self._onsets = onsets
        self._offsets = offsets
        self._rows = rows
        self._validate()
        for arr in (self._onsets, self._offsets, self._rows):
            arr.setflags(write=False)

    # ------------------------------------------------------------------ validation
    def _where(self) -> str:
        return f"Transcript {self.name!r}" + (f" from {self.source!r}" if self.source else "")

    def _row(self, i: int) -> str:
        return f"row {int(self._rows[i])} ({self._words[i]!r}, onset {self._onsets[i]:.3f} s)"

    def _validate(self) -> None:
        n = len(self._words)
        where = self._where()
        if n == 0:
            raise TranscriptError(
                f"{where} is empty: it has no words. Check the file (and the tier or column "
                "name), or drop this run."
            )
        for name, arr in (("onsets", self._onsets), ("offsets", self._offsets), ("rows", self._rows)):
            if arr.shape[0] != n:
                raise TranscriptError(
                    f"{where}: {n} words but {arr.shape[0]} {name}; give one value per word."
                )
        for name, arr in (("onset", self._onsets), ("offset", self._offsets)):
            bad = np.flatnonzero(~np.isfinite(arr))
            if bad.size:
                i = int(bad[0])
                raise TranscriptError(
                    f"{where}: {bad.size} word(s) have a non-finite {name}; first at row "
                    f"{int(self._rows[i])} ({self._words[i]!r}). Remove unaligned words or fix "
                    "their times."
                )
        neg = np.flatnonzero(self._onsets < 0)
        if neg.size:
            raise TranscriptError(
                f"{where}: negative onset at {self._row(int(neg[0]))}. Times must be seconds from "
                "the start of the run; shift them (e.g. transcript.shift(...)) or fix the file."
            )
        unsorted = np.flatnonzero(np.diff(self._onsets) < 0)
        if unsorted.size:
            i = int(unsorted[0]) + 1
            raise TranscriptError(
                f"{where}: onsets are not sorted: {self._row(i)} starts before the previous "
                f"{self._row(i - 1)}. Sort the words by onset or fix the file."
            )
        inverted = np.flatnonzero(self._offsets < self._onsets)
        if inverted.size:
            i = int(inverted[0])
            raise TranscriptError(
                f"{where}: offset {self._offsets[i]:.3f} s precedes the onset at {self._row(i)}. "
                "Offsets must be >= onsets."
            )
        empty = [i for i, w in enumerate(self._words) if not w.strip()]
        if empty:
            raise TranscriptError(
                f"{where}: {len(empty)} empty word(s); first at row {int(self._rows[empty[0]])}. "
                "Drop silence marks before building the transcript."
            )

    # ------------------------------------------------------------------ accessors
    @property
    def words(self) -> tuple[str, ...]:
        """The words, in order."""
        return self._words

    @property
    def onsets(self) -> np.ndarray:
        """Word onsets in seconds (read-only float64 array)."""
        return self._onsets

    @property
    def offsets(self) -> np.ndarray:
        """Word offsets in seconds (read-only float64 array)."""
        return self._offsets

    @property
    def rows(self) -> np.ndarray:
        """The row of each word in its source file."""
        return self._rows

    @property
    def midpoints(self) -> np.ndarray:
        """Word midpoints, ``(onsets + offsets) / 2``."""
        return (self._onsets + self._offsets) / 2.0

    @property
    def durations(self) -> np.ndarray:
        """Word durations, ``offsets - onsets``."""
        return self._offsets - self._onsets

    @property
    def start(self) -> float:
        """Onset of the first word."""
        return float(self._onsets[0])

    @property
    def end(self) -> float:
        """Offset of the last word (the latest offset)."""
        return float(self._offsets.max())

    @property
    def duration(self) -> float:
        """Time from the first onset to the last offset, in seconds."""
        return round(self.end - self.start, 10)

    @property
    def text(self) -> str:
        """The words joined by single spaces."""
        return " ".join(self._words)

    def times(self, reference: str = "onset") -> np.ndarray:
        """The time of each word: ``"onset"`` (default), ``"midpoint"`` or ``"offset"``."""
        from .._validation import _check_option

        _check_option("reference", reference, ("onset", "midpoint", "offset"))
        return {"onset": self.onsets, "midpoint": self.midpoints, "offset": self.offsets}[reference]

    # ------------------------------------------------------------------ python protocol
    def __len__(self) -> int:
        return len(self._words)

    def __iter__(self) -> Iterator[Word]:
        for w, on, off in zip(self._words, self._onsets, self._offsets):
            yield Word(w, float(on), float(off))

    def __getitem__(self, key: int | slice | Sequence[int] | np.ndarray) -> Word | "Transcript":
        if isinstance(key, (int, np.integer)):
            i = int(key)
            return Word(self._words[i], float(self._onsets[i]), float(self._offsets[i]))
        if isinstance(key, slice):
            idx = np.arange(len(self))[key]
        else:
            idx = np.asarray(key)
            if idx.dtype == bool:
                idx = np.flatnonzero(idx)
        return Transcript(
            [self._words[i] for i in idx],
            self._onsets[idx],
            self._offsets[idx],
            name=self.name,
            source=self.source,
            rows=self._rows[idx],
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Transcript):
            return NotImplemented
        return (
            self.name == other.name
            and self._words == other._words
            and np.array_equal(self._onsets, other._onsets)
            and np.array_equal(self._offsets, other._offsets)
        )

    __hash__ = None  # mutable-looking container semantics; use sha256() for keys

    def __repr__(self) -> str:
        head = " ".join(self._words[:6]) + (" ..." if len(self) > 6 else "")
        return (
            f"<Transcript {self.name!r} | {len(self)} words, {self.start:.2f}–{self.end:.2f} s | "
            f"{head!r}>"
        )

    # ------------------------------------------------------------------ conversion
    def to_dataframe(self) -> pd.DataFrame:
        """A DataFrame with columns ``word``, ``onset``, ``offset``, ``duration``, ``run``, ``row``."""
        return pd.DataFrame(
            {
                "word": list(self._words),
                "onset": self._onsets.copy(),
                "offset": self._offsets.copy(),
                "duration": self.durations,
                "run": self.name,
                "row": self._rows.copy(),
            }
        )

    @classmethod
    def from_dataframe(
        cls, df: pd.DataFrame, name: str | None = None, source: str | None = None
    ) -> "Transcript":
        """Build a transcript from a DataFrame with ``word``, ``onset`` and ``offset`` columns."""
        missing = [c for c in ("word", "onset") if c not in df.columns]
        if missing:
            raise TranscriptError(
                f"DataFrame{(' from ' + repr(source)) if source else ''} lacks column(s) {missing}; "
                f"it has {list(df.columns)}."
            )
        if name is None:
            name = str(df["run"].iloc[0]) if "run" in df.columns and len(df) else "run-1"
        offsets = df["offset"].to_numpy(float) if "offset" in df.columns else None
        rows = df["row"].to_numpy() if "row" in df.columns else None
        return cls(df["word"].astype(str).tolist(), df["onset"].to_numpy(float), offsets, name=name,
                   source=source, rows=rows)

    def codes(self) -> list[str | None]:
        """The annotation code of each word (``"IF / 1.1"`` -> ``"1.1"``), ``None`` for a plain
        word (see :func:`split_code`)."""
        return [split_code(w)[1] for w in self._words]

    def strip_codes(self) -> "Transcript":
        """A copy whose words lose their annotation codes (``"IF / 1.1"`` -> ``"IF"``), with the
        same times, rows and name (see :func:`split_code`).

        Examples
        --------
        >>> Transcript(["IF / 1.1", "YOU / 1.2"], [0.1, 0.3]).strip_codes().words
        ('IF', 'YOU')
        """
        return Transcript([split_code(w)[0] for w in self._words], self._onsets, self._offsets,
                          name=self.name, source=self.source, rows=self._rows)

    def shift(self, seconds: float) -> "Transcript":
        """A copy with all times shifted by ``seconds`` (e.g. to move to the scanner's clock)."""
        return Transcript(self._words, self._onsets + seconds, self._offsets + seconds,
                          name=self.name, source=self.source, rows=self._rows)

    def rename(self, name: str) -> "Transcript":
        """A copy with another run/story name."""
        return Transcript(self._words, self._onsets, self._offsets, name=name,
                          source=self.source, rows=self._rows)

    def sha256(self) -> str:
        """A content hash of the words and times (not the name or source), for cache keys."""
        h = hashlib.sha256()
        h.update(json.dumps(list(self._words), ensure_ascii=False).encode("utf-8"))
        h.update(np.ascontiguousarray(self._onsets, dtype="<f8").tobytes())
        h.update(np.ascontiguousarray(self._offsets, dtype="<f8").tobytes())
        return h.hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (name, source, words, onsets, offsets)."""
        return {
            "name": self.name,
            "source": self.source,
            "words": list(self._words),
            "onsets": self._onsets.tolist(),
            "offsets": self._offsets.tolist(),
        }
