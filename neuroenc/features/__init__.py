"""Features: per-layer hidden states of language models, per word, cached in HDF5."""
from .featureset import FeatureSet

__all__ = ["FeatureSet"]
