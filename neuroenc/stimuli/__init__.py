"""Stimuli: word-level transcripts and their readers; stimulus sets (sentences, passages) and
their responses."""
from .decode import default_encoding
from .events import read_events_tsv
from .gentle import read_gentle
from .io import read_transcript
from .responses import StimulusResponses, read_stimulus_responses
from .stimulus_set import StimulusError, StimulusSet, read_stimuli, read_stimuli_events
from .text import read_text
from .textgrid import SILENCE_MARKS, read_textgrid, read_textgrid_tiers
from .transcript import Transcript, TranscriptError, Word

__all__ = [
    "SILENCE_MARKS",
    "StimulusError",
    "StimulusResponses",
    "StimulusSet",
    "read_stimuli",
    "read_stimuli_events",
    "read_stimulus_responses",
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
