"""Data sets: where they live, how they are fetched, and loaders that return timed runs."""
from ._base import DATA_ENV, DatasetError, EncodingDataset, fetch_files, get_data_dir
from .alice import load_alice
from .naturalstories import load_naturalstories

__all__ = [
    "DATA_ENV",
    "DatasetError",
    "EncodingDataset",
    "fetch_files",
    "get_data_dir",
    "load_alice",
    "load_naturalstories",
]
