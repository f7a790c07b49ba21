"""Stimuli: word-level transcripts and their readers."""
from .decode import default_encoding
from .events import read_events_tsv
from .gentle import read_gentle
from .io import read_transcript
from .text import read_text
from .textgrid import SILENCE_MARKS, read_textgrid, read_textgrid_tiers
from .transcript import Transcript, TranscriptError, Word

__all__ = [
    "SILENCE_MARKS",
    "Transcript",
    "TranscriptError",
    "Word",
    "default_encoding",
    "read_events_tsv",
    "read_gentle",
    "read_text",
    "read_textgrid",
    "read_textgrid_tiers",
    "read_transcript",
]
