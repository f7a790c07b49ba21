"""Praat TextGrid reader (long and short text formats), via praatio's parser."""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .._validation import _check_path_exists
from .transcript import Transcript, TranscriptError

logger = logging.getLogger(__name__)

#: Interval labels treated as silence (compared after stripping white space, case-insensitive).
SILENCE_MARKS: tuple[str, ...] = ("", "sp", "sil", "sp1", "spn", "<s>", "</s>", "<sil>", "{sl}", "{ns}", "#")


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read_textgrid_tiers(path: str | os.PathLike) -> dict[str, list[tuple[float, float, str]]]:
    """Read every interval tier of a Praat TextGrid.

    Parameters
    ----------
    path : path-like
        A Praat TextGrid in the long ("ooTextFile") or short text format, UTF-8 or UTF-16.

    Returns
    -------
    tiers : dict
        Tier name -> list of ``(xmin, xmax, text)`` intervals, in file order. Point tiers are
        returned with ``xmin == xmax``.
    """
    from praatio.utilities import textgrid_io

    path = _check_path_exists(path, "TextGrid file")
    data = _read_text(path)
    if "TextGrid" not in data[:200]:
        raise TranscriptError(
            f"{str(path)!r} is not a Praat TextGrid: its header lacks 'Object class = \"TextGrid\"'. "
            "Save it from Praat as a text file (long or short format)."
        )
    try:
        parsed = textgrid_io.parseTextgridStr(data, includeEmptyIntervals=True)
    except Exception as err:  # praatio raises assorted errors on malformed input
        raise TranscriptError(
            f"Could not parse TextGrid {str(path)!r}: {type(err).__name__}: {err}. Is it a Praat "
            "text TextGrid (long or short format), not truncated?"
        ) from err
    tiers: dict[str, list[tuple[float, float, str]]] = {}
    for tier in parsed["tiers"]:
        entries = []
        for entry in tier["entries"]:
            if len(entry) == 3:
                start, end, label = entry
            else:  # point tier: (time, label)
                start, label = entry
                end = start
            entries.append((float(start), float(end), str(label)))
        name = tier["name"]
        if name in tiers:
            logger.warning("TextGrid %s has two tiers named %r; keeping the first.", path, name)
            continue
        tiers[name] = entries
    return tiers


def read_textgrid(
    path: str | os.PathLike,
    tier: str | None = None,
    name: str | None = None,
    silence: Iterable[str] = SILENCE_MARKS,
    fix_inverted: bool = False,
) -> Transcript:
    """Read one tier of a Praat TextGrid as a :class:`Transcript`.

    Parameters
    ----------
    path : path-like
        The TextGrid file (long or short text format).
    tier : str | None
        The tier name. ``None`` picks the only tier, else a tier named ``word`` or ``words``
        (case-insensitive); anything else is an error that lists the tiers.
    name : str | None
        The run/story name; defaults to the file's stem.
    silence : iterable of str
        Labels dropped as silence (compared stripped and case-insensitively);
        default :data:`SILENCE_MARKS` (``""``, ``sp``, ``sil``, ``<s>`` ...).
    fix_inverted : bool
        If an interval ends before it starts (a forced-aligner glitch seen in real corpora),
        set its offset to its onset and log a warning naming the intervals, instead of
        raising an error.

    Returns
    -------
    transcript : Transcript
        One word per non-silence interval, text stripped of surrounding white space, with
        punctuation kept as the TextGrid has it. ``transcript.rows`` holds the 1-based interval
        numbers, as Praat shows them.
    """
    path = Path(path)
    tiers = read_textgrid_tiers(path)
    if not tiers:
        raise TranscriptError(f"TextGrid {str(path)!r} has no tiers.")
    if tier is None:
        if len(tiers) == 1:
            tier = next(iter(tiers))
        else:
            candidates = [t for t in tiers if t.lower() in ("word", "words")]
            if len(candidates) != 1:
                raise TranscriptError(
                    f"TextGrid {str(path)!r} has tiers {list(tiers)}; say which holds the words, "
                    f"e.g. tier={list(tiers)[0]!r}."
                )
            tier = candidates[0]
    if tier not in tiers:
        raise TranscriptError(
            f"TextGrid {str(path)!r} has no tier {tier!r}; its tiers are {list(tiers)}. "
            f"Pass tier= one of those."
        )
    marks = {s.strip().lower() for s in silence}
    words, onsets, offsets, rows = [], [], [], []
    for i, (start, end, label) in enumerate(tiers[tier], start=1):
        text = label.strip()
        if text.lower() in marks:
            continue
        words.append(text)
        onsets.append(start)
        offsets.append(end)
        rows.append(i)
    if fix_inverted:
        inverted = [k for k in range(len(words)) if offsets[k] < onsets[k]]
        for k in inverted:
            offsets[k] = onsets[k]
        if inverted:
            logger.warning(
                "TextGrid %s, tier %r: %d interval(s) end before they start; their offsets were "
                "set to their onsets (intervals %s).", path, tier, len(inverted),
                [rows[k] for k in inverted[:5]],
            )
    if not words:
        raise TranscriptError(
            f"TextGrid {str(path)!r}, tier {tier!r}: no words (all {len(tiers[tier])} intervals are "
            "silence marks or empty). Check the tier name."
        )
    return Transcript(
        words,
        np.asarray(onsets),
        np.asarray(offsets),
        name=name if name is not None else path.stem,
        source=f"{path} [tier {tier!r}]",
        rows=rows,
    )
