"""Forced-aligner JSON reader (Gentle's ``align.json``)."""
from __future__ import annotations

import json
import logging
import os

from .._validation import _check_path_exists
from .decode import read_text_file
from .transcript import Transcript, TranscriptError

logger = logging.getLogger(__name__)


def read_gentle(
    path: str | os.PathLike,
    name: str | None = None,
    use_transcript_text: bool = True,
    encoding: str | None = None,
) -> Transcript:
    """Read a Gentle forced-alignment JSON as a :class:`Transcript`.

    Parameters
    ----------
    path : path-like
        Gentle output: ``{"transcript": ..., "words": [{"word", "start", "end", "case",
        "startOffset", "endOffset", ...}]}``.
    name : str | None
        The run name; defaults to the parent folder's name when the file is ``align.json``
        (Narratives' ``gentle/<story>/align.json``), else the file's stem.
    use_transcript_text : bool
        Take each word's text from the original transcript (``startOffset:endOffset``), with
        the punctuation attached to it, as Narratives does; else the aligner's ``word``. A
        word is extended over the non-alphanumeric, non-space characters next to it (``"``,
        ``,``, ``.``, ``-``...), never into a neighbouring word's span: every character of
        the transcript goes to at most one word, the one before it when two could take it.
        Gentle splits ``"well-known"`` into ``well`` and ``known``, which become ``"well-"``
        and ``"known"``.
    encoding : str | None
        The file's encoding; default UTF-8 (or UTF-16 by its byte-order mark). Never guessed:
        a file in another encoding is an error naming the first byte that is not UTF-8.

    Returns
    -------
    transcript : Transcript
        Aligned words only. Words Gentle could not align (``case != "success"`` or no
        ``start``/``end``) are skipped with a warning that counts them and names the first.
        ``rows`` holds each word's index in the JSON's ``words`` list.
    """
    path = _check_path_exists(path, "Gentle JSON file")
    text = read_text_file(path, "Gentle JSON file", encoding)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise TranscriptError(
            f"Could not read {str(path)!r} as JSON: {err.msg} at line {err.lineno}, column "
            f"{err.colno}. Is it Gentle's align.json, complete?"
        ) from err
    if not isinstance(data, dict) or not isinstance(data.get("words"), list):
        raise TranscriptError(
            f"{str(path)!r} is not a Gentle alignment: it needs a top-level 'words' list "
            "(words[].word/start/end)."
        )
    text = data.get("transcript") if use_transcript_text else None
    for i, entry in enumerate(data["words"]):
        if not isinstance(entry, dict) or "word" not in entry:
            raise TranscriptError(f"{str(path)!r}: words[{i}] has no 'word' field: {entry!r}.")
    texts = ([entry["word"] for entry in data["words"]] if not isinstance(text, str)
             else _transcript_tokens(text, data["words"], path))
    words, onsets, offsets, rows, skipped = [], [], [], [], []
    for i, entry in enumerate(data["words"]):
        aligned = entry.get("case", "success") == "success" and "start" in entry and "end" in entry
        if not aligned:
            skipped.append((i, entry["word"]))
            continue
        words.append(texts[i])
        onsets.append(float(entry["start"]))
        offsets.append(float(entry["end"]))
        rows.append(i)
    if skipped:
        logger.warning(
            "%s: skipped %d word(s) that Gentle did not align (first: words[%d] %r).",
            path, len(skipped), skipped[0][0], skipped[0][1],
        )
    if name is None:
        name = path.parent.name if path.name == "align.json" else path.stem
    return Transcript(words, onsets, offsets, name=name, source=str(path), rows=rows)


def _span(entry: dict) -> tuple[int, int] | None:
    """An entry's ``(startOffset, endOffset)`` in the transcript, ``None`` if it has none."""
    try:
        return int(entry["startOffset"]), int(entry["endOffset"])
    except (KeyError, TypeError, ValueError):
        return None


def _transcript_tokens(text: str, entries: list[dict], path: os.PathLike) -> list[str]:
    """Each entry's text in the transcript, with the punctuation attached to it.

    A word's span ``text[startOffset:endOffset]`` grows over adjacent characters that are
    neither alphanumeric nor white space, but not past the end of the previous word (as
    grown) nor the start of the next one, so no character is given to two words. Entries
    without offsets keep the aligner's ``word``.
    """
    spans = [_span(entry) for entry in entries]
    out = []
    claimed = 0  # end of the previous word's span, punctuation included
    for i, (entry, span) in enumerate(zip(entries, spans)):
        if span is None:
            out.append(str(entry["word"]))
            continue
        start, end = span
        if not 0 <= start <= end <= len(text):
            raise TranscriptError(
                f"{str(path)!r}: words[{i}] ({entry['word']!r}) has startOffset {start} and "
                f"endOffset {end}, outside the {len(text)}-character transcript. Is the "
                "'transcript' the one that was aligned? Pass use_transcript_text=False to use "
                "the aligner's words."
            )
        limit = next((s[0] for s in spans[i + 1:] if s is not None), len(text))
        while start > claimed and _is_punctuation(text[start - 1]):
            start -= 1
        while end < min(limit, len(text)) and _is_punctuation(text[end]):
            end += 1
        claimed = max(claimed, end)
        out.append(text[start:end].strip() or str(entry["word"]))
    return out


def _is_punctuation(char: str) -> bool:
    return not (char.isalnum() or char.isspace())
