"""neuroenc: which layers of a language model best predict the brain?

The package reads as the pipeline, left to right:

- :mod:`neuroenc.stimuli`: word-level transcripts and their readers;
- :mod:`neuroenc.responses`: brain responses on their time grid, with the geometry of their
  targets (voxels, vertices, parcels, ROIs, sensors), and their readers;
- :mod:`neuroenc.features`: per-layer hidden states of language models, cached in HDF5;
- :mod:`neuroenc.align`: word-rate features to fMRI TRs and MEG/EEG samples;
- :mod:`neuroenc.encoding`: ridge and banded-ridge encoding models (himalaya), CV, statistics;
- :mod:`neuroenc.mapping`: best layer, layer-preference index, ROI profiles, brain maps;
- :mod:`neuroenc.report`: the self-contained HTML report;
- :mod:`neuroenc.datasets`: loaders for public data sets.
"""
from ._logging import logger, set_log_level

__version__ = "0.1.0"

__all__ = ["__version__", "logger", "set_log_level"]
