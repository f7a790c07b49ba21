"""Praat TextGrid reader (long and short text formats), via praatio's parser."""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .._validation import _check_path_exists
from .decode import read_text_file
from .transcript import Transcript, TranscriptError

logger = logging.getLogger(__name__)

#: Interval labels treated as silence (compared after stripping white space, case-insensitive).
SILENCE_MARKS: tuple[str, ...] = ("", "sp", "sil", "sp1", "spn", "<s>", "</s>", "<sil>", "{sl}", "{ns}", "#")


def _read_text(path: Path, encoding: str | None = None) -> str:
    text = read_text_file(path, "TextGrid", encoding)
    _check_no_negative_times(text, path)
    return text


_STRING = re.compile(r'"(?:[^"]|"")*"')
_NEGATIVE = re.compile(r'(?<![\w.])-(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?')


def _check_no_negative_times(text: str, path: Path) -> None:
    """A TranscriptError that says so if a TextGrid holds a negative number (a time: the
    formats have no other signed numbers), instead of the parser's "field missing"."""
    bare = _STRING.sub(lambda m: "\n" * m.group(0).count("\n"), text)  # numbers outside strings
    match = _NEGATIVE.search(bare)
    if match is None:
        return
    line = bare.count("\n", 0, match.start()) + 1
    end = bare.find("\n", match.end())
    row = bare[bare.rfind("\n", 0, match.start()) + 1:len(bare) if end < 0 else end]
    raise TranscriptError(
        f"TextGrid {str(path)!r} has a negative time, {match.group(0)} s, on line {line} "
        f"({row.strip()!r}). Times must be seconds >= 0 from the start of the audio: shift the "
        "TextGrid (Praat: Modify times > Shift times to... 0) or fix the aligner's output."
    )


CHRONOLOGICAL_HEADER = "Praat chronological TextGrid text file"


def _tokens(text: str, path: Path) -> list[str]:
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
                    line = text.count("\n", 0, i) + 1
                    raise TranscriptError(
                        f"TextGrid {str(path)!r}, line {line}: a string opened here is never "
                        "closed (no matching '\"'). Is the file truncated?"
                    )
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


def read_chronological(path: str | os.PathLike, encoding: str | None = None
                       ) -> dict[str, list[tuple[float, float, str]]]:
    """Read a TextGrid in Praat's chronological text format.

    Parameters
    ----------
    path : path-like
        The file; its first token must be ``"Praat chronological TextGrid text file"``.
    encoding : str | None
        The file's encoding; default UTF-8, or UTF-16 by its byte-order mark (see
        :func:`read_textgrid_tiers`).

    Returns
    -------
    tiers : dict
        Tier name -> ``(xmin, xmax, text)`` entries in time order (points have xmin == xmax).
        Of two tiers with the same name, the first is kept and a warning is logged, as
        :func:`read_textgrid_tiers` does for the other formats.
    """
    path = _check_path_exists(path, "TextGrid file")
    tok = _tokens(_read_text(path, encoding), path)
    if not tok or tok[0] != "\x00" + CHRONOLOGICAL_HEADER:
        raise TranscriptError(
            f"{str(path)!r} is not a chronological TextGrid: it does not start with "
            f"{CHRONOLOGICAL_HEADER!r}. Read it with read_textgrid_tiers(), which detects the format."
        )
    pos = 3  # header, xmin, xmax
    try:
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
            if not 0 <= k < n_tiers:
                raise ValueError(f"tier number {k + 1} is not between 1 and {n_tiers}")
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
    return _first_of_each_name(
        path, zip(names, (sorted(entries, key=lambda e: (e[0], e[1])) for entries in tiers))
    )


def _first_of_each_name(
    path: Path, tiers: Iterable[tuple[str, list[tuple[float, float, str]]]]
) -> dict[str, list[tuple[float, float, str]]]:
    """Tier name -> entries, keeping the first of tiers that share a name (with a warning)."""
    out: dict[str, list[tuple[float, float, str]]] = {}
    for name, entries in tiers:
        if name in out:
            logger.warning("TextGrid %s has two tiers named %r; keeping the first.", path, name)
            continue
        out[name] = entries
    return out


def read_textgrid_tiers(path: str | os.PathLike, encoding: str | None = None
                        ) -> dict[str, list[tuple[float, float, str]]]:
    """Read every interval tier of a Praat TextGrid.

    Parameters
    ----------
    path : path-like
        A Praat TextGrid in the long ("ooTextFile"), short or chronological text format.
        The long and short formats are parsed by praatio, without its validation (real
        forced alignments have overlapping or inverted intervals; the :class:`Transcript`
        checks what matters, with messages that name the row).
    encoding : str | None
        The file's encoding. Default: UTF-8 (with or without a BOM), or UTF-16 when the file
        starts with its byte-order mark (as Praat writes non-ASCII text); anything else is an
        error naming the byte that is not UTF-8: pass e.g. ``encoding="cp1252"``. Never
        guessed (see :mod:`neuroenc.stimuli.decode`).

    Raises
    ------
    TranscriptError
        For a file that cannot be decoded, has a negative time, or cannot be parsed.

    Returns
    -------
    tiers : dict
        Tier name -> list of ``(xmin, xmax, text)`` intervals, in file order (time order for
        the chronological format). Point tiers are returned with ``xmin == xmax``. Of two
        tiers with the same name, the first is kept and a warning is logged.
    """
    from praatio.utilities import textgrid_io

    path = _check_path_exists(path, "TextGrid file")
    data = _read_text(path, encoding)
    if CHRONOLOGICAL_HEADER in data[:200]:
        return read_chronological(path, encoding)
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
    tiers = []
    for tier in parsed["tiers"]:
        entries = []
        for entry in tier["entries"]:
            if len(entry) == 3:
                start, end, label = entry
            else:  # point tier: (time, label)
                start, label = entry
                end = start
            entries.append((float(start), float(end), str(label)))
        tiers.append((tier["name"], entries))
    return _first_of_each_name(path, tiers)


def read_textgrid(
    path: str | os.PathLike,
    tier: str | None = None,
    name: str | None = None,
    silence: Iterable[str] = SILENCE_MARKS,
    fix_inverted: bool = False,
    tier_index: int | None = None,
    encoding: str | None = None,
    strip_codes: bool | None = None,
) -> Transcript:
    """Read one tier of a Praat TextGrid as a :class:`Transcript`.

    Parameters
    ----------
    path : path-like
        The TextGrid file (long, short or chronological text format).
    tier : str | None
        The tier name. ``None`` picks the only tier, else a tier named ``word`` or ``words``
        (case-insensitive), else the tier at ``tier_index``; anything else is an error that
        lists the tiers.
    name : str | None
        The run/story name; defaults to the file's stem.
    silence : iterable of str
        Labels dropped as silence or noise (compared stripped, case-insensitively, with and
        without surrounding braces: ``{LG}`` matches ``lg``); default :data:`SILENCE_MARKS`
        (``""``, ``sp``, ``sil``, ``<s>`` ...).
    fix_inverted : bool
        If an interval ends before it starts (a forced-aligner glitch seen in real corpora),
        set its offset to its onset and log a warning naming the intervals, instead of
        raising an error.
    tier_index : int | None
        Fallback when ``tier`` is ``None`` and no tier is named ``word(s)``: the position of
        the word tier among the file's tiers (0-based, distinct names in file order; negative
        counts from the end), e.g. ``1`` for TextGrids whose tiers are a phone tier then the
        word tier under other names. Ignored when ``tier`` is given or a tier is named
        ``word(s)``; out of range, it is an error that lists the tiers.
    encoding : str | None
        The file's encoding (default UTF-8, or UTF-16 by its BOM; see
        :func:`read_textgrid_tiers`).
    strip_codes : bool | None
        Labels that are a word followed by an annotation code (``"IF / 1.1"``, as in the
        aligned TextGrids of Natural Stories; see :func:`~neuroenc.stimuli.transcript.split_code`)
        would be read, and tokenised, with their codes. ``True``: keep the words only
        (``"IF"``); ``False``: keep the labels as they are; ``None`` (default): keep them, with
        a warning that names the first ones.

    Returns
    -------
    transcript : Transcript
        One word per non-silence interval, text stripped of surrounding white space, with
        punctuation kept as the TextGrid has it. ``transcript.rows`` holds the 1-based interval
        numbers, as Praat shows them. A word whose interval runs past the onset of a later
        word is kept, with a warning that names it.

    Raises
    ------
    TranscriptError
        For a file that cannot be read (see :func:`read_textgrid_tiers`), a tier that cannot be
        chosen, a single tier named ``phone*`` (phones, not words) unless ``tier`` names it, or
        a tier without words.
    ValueError
        For a ``strip_codes`` that is not True, False or None.
    """
    path = Path(path)
    if strip_codes is not None and not isinstance(strip_codes, (bool, np.bool_)):
        raise ValueError(f"strip_codes must be True, False or None; got {strip_codes!r} "
                         f"({type(strip_codes).__name__}). Pass strip_codes=True to drop codes such as ' / 1.1'.")
    tiers = read_textgrid_tiers(path, encoding=encoding)
    if not tiers:
        raise TranscriptError(f"TextGrid {str(path)!r} has no tiers.")
    if tier is None:
        if len(tiers) == 1:
            tier = next(iter(tiers))
            if tier.strip().lower().startswith("phon"):
                raise TranscriptError(
                    f"TextGrid {str(path)!r} has a single tier, {tier!r}, which holds phones, not "
                    f"words; it is not used as the word tier unless named: if it does hold words, "
                    f"pass tier={tier!r}; else use the TextGrid with the word tier."
                )
        else:
            candidates = [t for t in tiers if t.strip().lower() in ("word", "words")]
            if not candidates and tier_index is not None and -len(tiers) <= tier_index < len(tiers):
                candidates = [list(tiers)[tier_index]]
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
        key = text.lower()
        if key in marks or key.strip("{}").strip() in marks:
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
    _warn_overlaps(path, tier, words, onsets, offsets, rows)
    if not words:
        raise TranscriptError(
            f"TextGrid {str(path)!r}, tier {tier!r}: no words (all {len(tiers[tier])} intervals are "
            "silence marks or empty). Check the tier name."
        )
    transcript = Transcript(
        words,
        np.asarray(onsets),
        np.asarray(offsets),
        name=name if name is not None else path.stem,
        source=f"{path} [tier {tier!r}]",
        rows=rows,
    )
    if strip_codes:
        return transcript.strip_codes()
    if strip_codes is None:
        _warn_codes(path, tier, transcript)
    return transcript


# The values each option takes, as neuroenc._settings.declare attaches them (set here directly,
# so that reading a transcript does not import scikit-learn); read by the run config and the
# command line.
read_textgrid._parameter_constraints = {"strip_codes": [None, "boolean"]}


def _warn_codes(path: Path, tier: str, transcript: Transcript) -> None:
    """Log a warning naming the first words that carry an annotation code (``"IF / 1.1"``)."""
    coded = [i for i, code in enumerate(transcript.codes()) if code is not None]
    if not coded:
        return
    first = ", ".join(f"{transcript.words[i]!r} (interval {int(transcript.rows[i])})" for i in coded[:3])
    logger.warning(
        "TextGrid %s, tier %r: %d of %d word(s) look like coded annotations (a word, then '/' and a "
        "code), e.g. %s%s; they are kept as they are, codes and all, and would be tokenised so. Pass "
        "strip_codes=True to keep the words only (strip_codes=False keeps the labels without this "
        "warning).", path, tier, len(coded), len(transcript), first, ", ..." if len(coded) > 3 else "",
    )


def _warn_overlaps(path: Path, tier: str, words: list[str], onsets: list[float], offsets: list[float],
                   rows: list[int]) -> None:
    """Log a warning naming the words whose interval runs past the onset of a later word."""
    if len(words) < 2:
        return
    on = np.asarray(onsets, dtype=np.float64)
    off = np.asarray(offsets, dtype=np.float64)
    later_onset = on[1:]
    tol = 1e-6
    bad = np.flatnonzero(off[:-1] > later_onset + tol)
    if not bad.size:
        return
    parts = []
    for k in bad[:3]:
        k = int(k)
        n_over = int(np.count_nonzero(on[k + 1:] < off[k] - tol))
        parts.append(
            f"interval {rows[k]} {words[k]!r} ({on[k]:.3f}-{off[k]:.3f} s) overlaps "
            + (f"the next word {words[k + 1]!r} (onset {on[k + 1]:.3f} s)" if n_over <= 1 else
               f"the {n_over} words from {words[k + 1]!r} (onset {on[k + 1]:.3f} s)")
        )
    logger.warning(
        "TextGrid %s, tier %r: %d word interval(s) overlap later words: %s%s. The words are kept "
        "in onset order; check the alignment.", path, tier, bad.size, "; ".join(parts),
        "; ..." if bad.size > 3 else "",
    )
