"""Data sets: where they live, how they are fetched, and loaders that return timed runs."""
from .._validation import DatasetError
from ._base import EncodingDataset, get_data_dir
from .alice import load_alice
from .lebel2023 import load_lebel2023
from .lpp import load_lpp
from .megmasc import load_megmasc
from .miniature import make_miniature
from .narratives import load_narratives
from .naturalstories import load_naturalstories
from .naturalstories_rt import load_naturalstories_rt
from .stimuli import load_stimuli
from .stories import load_stories

__all__ = [
    "DatasetError",
    "EncodingDataset",
    "get_data_dir",
    "load_alice",
    "load_naturalstories",
    "load_naturalstories_rt",
    "load_stimuli",
    "load_lebel2023",
    "load_narratives",
    "load_lpp",
    "load_megmasc",
    "make_miniature",
    "load_stories",
]

