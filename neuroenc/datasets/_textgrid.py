"""TextGrid helpers for the public data sets: Praat's chronological format and word tiers.

:func:`neuroenc.stimuli.read_textgrid_tiers` reads the long and short text formats (via praatio);
some TextGrids of ds003020 are in Praat's third text serialisation, the "chronological" one,
which praatio does not parse. :func:`read_tiers` reads all three.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..stimuli.textgrid import _read_text, read_textgrid_tiers
from ..stimuli.transcript import Transcript, TranscriptError

logger = logging.getLogger(__name__)

CHRONOLOGICAL_HEADER = "Praat chronological TextGrid text file"


def _tokens(text: str) -> list[str]:
    """Praat text tokens: quoted strings (``""`` escapes a quote) and bare words; ``!`` comments."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "!":
            while i < n and text[i] != "\n":
                i += 1
        elif c == '"':
            j, buf = i + 1, []
            while True:
                k = text.find('"', j)
                if k < 0:
                    raise TranscriptError("unterminated string in TextGrid")
                buf.append(text[j:k])
                if k + 1 < n and text[k + 1] == '"':
                    buf.append('"')
                    j = k + 2
                    continue
                i = k + 1
                break
            out.append("\x00" + "".join(buf))  # mark strings so "1" and 1 differ
        else:
            j = i
            while j < n and not text[j].isspace():
                j += 1
            out.append(text[i:j])
            i = j
    return out


def read_chronological(path: str | os.PathLike) -> dict[str, list[tuple[float, float, str]]]:
    """Read a TextGrid in Praat's chronological text format.

    Returns
    -------
    tiers : dict
        Tier name -> ``(xmin, xmax, text)`` entries in time order (points have xmin == xmax).
    """
    path = Path(path)
    text = _read_text(path)
    tok = _tokens(text)
    try:
        if not tok or tok[0] != "\x00" + CHRONOLOGICAL_HEADER:
            raise TranscriptError(f"{str(path)!r} is not a chronological TextGrid.")
        pos = 3  # header, xmin, xmax
        n_tiers = int(tok[pos])
        pos += 1
        kinds, names = [], []
        for _ in range(n_tiers):
            kinds.append(tok[pos].lstrip("\x00"))
            names.append(tok[pos + 1].lstrip("\x00"))
            pos += 4  # class, name, xmin, xmax
        tiers: list[list[tuple[float, float, str]]] = [[] for _ in range(n_tiers)]
        while pos < len(tok):
            k = int(tok[pos]) - 1
            if kinds[k] == "IntervalTier":
                start, end, label = float(tok[pos + 1]), float(tok[pos + 2]), tok[pos + 3]
                pos += 4
            else:
                start = end = float(tok[pos + 1])
                label = tok[pos + 2]
                pos += 3
            tiers[k].append((start, end, label.lstrip("\x00")))
    except (ValueError, IndexError) as err:
        raise TranscriptError(
            f"Could not parse chronological TextGrid {str(path)!r} near token {pos}: {err}. Is "
            "the file complete?"
        ) from err
    out: dict[str, list[tuple[float, float, str]]] = {}
    for name, entries in zip(names, tiers):
        out.setdefault(name, sorted(entries, key=lambda e: (e[0], e[1])))
    return out


def read_tiers(path: str | os.PathLike) -> dict[str, list[tuple[float, float, str]]]:
    """Every tier of a TextGrid in the long, short or chronological text format."""
    path = Path(path)
    head = _read_text(path)[:200] if path.exists() else ""
    if CHRONOLOGICAL_HEADER in head:
        return read_chronological(path)
    return read_textgrid_tiers(path)


def word_transcript(
    path: str | os.PathLike,
    name: str,
    drop: Iterable[str],
    tier: str | None = None,
    fallback_index: int | None = None,
    strip: str = "{}",
) -> Transcript:
    """The word tier of a TextGrid as a :class:`Transcript`, dropping silence and noise marks.

    Parameters
    ----------
    path : path-like
        The TextGrid (any of Praat's three text formats).
    name : str
        The run name of the transcript.
    drop : iterable of str
        Labels dropped (compared lower-cased, stripped of ``strip`` characters and white space).
    tier : str | None
        The tier; ``None``: a tier named ``word``/``words`` (any case), else the tier at
        ``fallback_index``, else the only tier.
    fallback_index : int | None
        Position of the word tier when no tier is named so (ds003020: 1, after the phones).
    strip : str
        Characters stripped from labels before comparing them with ``drop`` (``{LG}`` -> ``lg``).
    """
    path = Path(path)
    tiers = read_tiers(path)
    if not tiers:
        raise TranscriptError(f"TextGrid {str(path)!r} has no tiers.")
    if tier is None:
        named = [t for t in tiers if t.strip().lower() in ("word", "words")]
        if named:
            tier = named[0]
        elif fallback_index is not None and len(tiers) > fallback_index:
            tier = list(tiers)[fallback_index]
        elif len(tiers) == 1:
            tier = next(iter(tiers))
        else:
            raise TranscriptError(
                f"TextGrid {str(path)!r} has tiers {list(tiers)} and none is named 'word'; pass "
                "tier= the one that holds the words."
            )
    if tier not in tiers:
        raise TranscriptError(f"TextGrid {str(path)!r} has no tier {tier!r}; its tiers are {list(tiers)}.")
    marks = {d.lower() for d in drop}
    words, onsets, offsets, rows, inverted = [], [], [], [], []
    for i, (start, end, label) in enumerate(tiers[tier], start=1):
        text = label.strip()
        if not text or text.lower().strip(strip).strip() in marks:
            continue
        words.append(text)
        onsets.append(start)
        if end < start:
            inverted.append(i)
        offsets.append(max(end, start))
        rows.append(i)
    if inverted:
        logger.warning("TextGrid %s, tier %r: %d interval(s) end before they start; their offsets "
                       "were set to their onsets (intervals %s).", path, tier, len(inverted),
                       inverted[:5])
    if not words:
        raise TranscriptError(f"TextGrid {str(path)!r}, tier {tier!r}: no words (only silence marks).")
    return Transcript(words, np.asarray(onsets), np.asarray(offsets), name=name,
                      source=f"{path} [tier {tier!r}]", rows=rows)
