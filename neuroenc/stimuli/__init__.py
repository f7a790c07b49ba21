"""Stimuli: word-level transcripts and their readers; stimulus sets (sentences, passages) and
their responses."""
from .events import read_events_tsv
from .gentle import read_gentle
from .io import read_transcript
from .stimulus_set import StimulusError, StimulusSet, read_stimuli
from .text import read_text
from .textgrid import read_textgrid
from .transcript import Transcript, TranscriptError

__all__ = [
    "TranscriptError",
    "StimulusError",
    "Transcript",
    "StimulusSet",
    "read_transcript",
    "read_textgrid",
    "read_events_tsv",
    "read_gentle",
    "read_text",
    "read_stimuli",
]

