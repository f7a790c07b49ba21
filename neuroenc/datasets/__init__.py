"""Data sets: where they live, how they are fetched, and loaders that return timed runs."""
from .._validation import DatasetError
from ._base import DATA_ENV, EncodingDataset, fetch_files, get_data_dir
from .alice import load_alice
from .bids import bids_layout, index_runs
from .lebel2023 import load_lebel2023, read_lebel_transcript
from .lpp import load_lpp, read_lpp_transcript
from .megmasc import load_megmasc, megmasc_transcripts, read_megmasc_events
from .miniature import make_miniature
from .narratives import load_narratives, read_narratives_transcript
from .naturalstories import load_naturalstories
from .naturalstories_rt import load_naturalstories_rt
from .stimuli import StimulusDataset, load_stimuli
from .stories import load_stories

__all__ = [
    "DATA_ENV",
    "DatasetError",
    "EncodingDataset",
    "fetch_files",
    "get_data_dir",
    "load_alice",
    "load_naturalstories",
    "load_naturalstories_rt",
    "load_stimuli",
    "load_stories",
    "StimulusDataset",
    "bids_layout",
    "index_runs",
    "load_lebel2023",
    "load_lpp",
    "load_megmasc",
    "load_narratives",
    "make_miniature",
    "megmasc_transcripts",
    "read_lebel_transcript",
    "read_lpp_transcript",
    "read_megmasc_events",
    "read_narratives_transcript",
]
