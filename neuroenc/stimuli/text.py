"""Plain text with a constant speech rate."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._validation import _check_positive
from .decode import read_text_file
from .transcript import Transcript, TranscriptError


def read_text(
    source: str | os.PathLike,
    words_per_second: float = 2.5,
    start: float = 0.0,
    name: str | None = None,
    encoding: str | None = None,
) -> Transcript:
    """Build a :class:`Transcript` from plain text at a constant speech rate.

    Parameters
    ----------
    source : str | path-like
        A path to a text file, or the text itself (a string with white space that is not an
        existing file). Words are split on white space, punctuation kept attached.
    words_per_second : float
        Speech rate; word ``i`` starts at ``start + i / words_per_second`` and lasts
        ``1 / words_per_second``.
    start : float
        Onset of the first word, in seconds.
    name : str | None
        The run name; defaults to the file's stem (or ``"text"``).
    encoding : str | None
        The file's encoding; default UTF-8 (or UTF-16 by its byte-order mark). Never guessed:
        a file in another encoding is an error naming the first byte that is not UTF-8.
    """
    _check_positive("words_per_second", words_per_second)
    if start < 0:
        raise TranscriptError(f"'start' must be >= 0 seconds, got {start}.")
    path = None
    if isinstance(source, os.PathLike) or (isinstance(source, str) and "\n" not in source
                                           and len(source) < 4096 and Path(source).is_file()):
        path = Path(source)
        text = read_text_file(path, "text file", encoding)
    else:
        text = str(source)
    words = text.split()
    if not words:
        where = repr(str(path)) if path else "the text given"
        raise TranscriptError(f"{where} has no words; nothing to build a transcript from.")
    step = 1.0 / words_per_second
    onsets = start + np.arange(len(words)) * step
    if name is None:
        name = path.stem if path else "text"
    return Transcript(words, onsets, onsets + step, name=name,
                      source=str(path) if path else None)
