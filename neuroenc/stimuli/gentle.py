"""Forced-aligner JSON reader (Gentle's ``align.json``)."""
from __future__ import annotations

import json
import logging
import os

from .._validation import _check_path_exists
from .transcript import Transcript, TranscriptError

logger = logging.getLogger(__name__)


def read_gentle(
    path: str | os.PathLike,
    name: str | None = None,
    use_transcript_text: bool = True,
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
        Take each word's text from the original transcript (``startOffset:endOffset``), which
        keeps the punctuation attached, as Narratives does; else the aligner's ``word``.

    Returns
    -------
    transcript : Transcript
        Aligned words only. Words Gentle could not align (``case != "success"`` or no
        ``start``/``end``) are skipped with a warning that counts them and names the first.
        ``rows`` holds each word's index in the JSON's ``words`` list.
    """
    path = _check_path_exists(path, "Gentle JSON file")
    try:
        with open(path, encoding="utf-8") as fid:
            data = json.load(fid)
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
    words, onsets, offsets, rows, skipped = [], [], [], [], []
    for i, entry in enumerate(data["words"]):
        if not isinstance(entry, dict) or "word" not in entry:
            raise TranscriptError(f"{str(path)!r}: words[{i}] has no 'word' field: {entry!r}.")
        aligned = entry.get("case", "success") == "success" and "start" in entry and "end" in entry
        if not aligned:
            skipped.append((i, entry["word"]))
            continue
        word = entry["word"]
        if text is not None and "startOffset" in entry and "endOffset" in entry:
            word = _extend_punctuation(text, int(entry["startOffset"]), int(entry["endOffset"]))
        words.append(word)
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


def _extend_punctuation(text: str, start: int, end: int) -> str:
    """The transcript's token around ``text[start:end]``, with attached punctuation."""
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    while end < len(text) and not text[end].isspace():
        end += 1
    return text[start:end].strip()
