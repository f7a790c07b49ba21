"""One entry point for every transcript format, chosen by file name."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .events import read_events_tsv
from .gentle import read_gentle
from .text import read_text
from .textgrid import read_textgrid
from .transcript import Transcript, TranscriptError


def read_transcript(path: str | os.PathLike, **kwargs: Any) -> Transcript:
    """Read a transcript, choosing the reader from the file name.

    ``.TextGrid`` → :func:`read_textgrid`, ``.tsv`` → :func:`read_events_tsv`, ``.json`` →
    :func:`read_gentle`, ``.txt`` → :func:`read_text`. Keyword arguments go to the reader
    (e.g. ``tier="word"``, ``words_per_second=2.5``, ``encoding="cp1252"``: every reader takes
    ``encoding``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    readers = {".textgrid": read_textgrid, ".tsv": read_events_tsv, ".json": read_gentle,
               ".txt": read_text}
    if suffix not in readers:
        raise TranscriptError(
            f"Cannot tell the format of {str(path)!r} from its extension {suffix!r}; use one of "
            ".TextGrid, .tsv (BIDS events), .json (Gentle), .txt (plain text), or call the "
            "reader directly."
        )
    return readers[suffix](path, **kwargs)
