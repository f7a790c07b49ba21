"""The extractor and the feature-file reader of each kind of data set, chosen by name.

Two kinds of data sets: ``"story"`` (words with times: :class:`~neuroenc.features.FeatureExtractor`,
:class:`~neuroenc.features.FeatureSet`) and ``"stimuli"`` (stimuli without time, one response
each: :class:`~neuroenc.features.StimulusExtractor`,
:class:`~neuroenc.features.StimulusFeatures`). The pipeline asks for them by kind here, so
that nothing downstream of the extractors branches on the kind of data.
"""
from __future__ import annotations

import os
from typing import Any

from .._validation import _check_option

#: The kinds of data sets and the extractor of each.
EXTRACTORS = {"story": "FeatureExtractor", "stimuli": "StimulusExtractor"}


def extractor_class(kind: str) -> type:
    """The extractor class of a kind of data set (``"story"`` or ``"stimuli"``)."""
    from . import extract, stimuli

    _check_option("kind", kind, tuple(EXTRACTORS))
    return extract.FeatureExtractor if kind == "story" else stimuli.StimulusExtractor


def load_feature_file(path: str | os.PathLike, layers: Any = None) -> Any:
    """A feature file of either kind: :class:`~neuroenc.features.FeatureSet` (words with times)
    or :class:`~neuroenc.features.StimulusFeatures` (one row per stimulus), as the file says."""
    from .featureset import load_features
    from .stimulus_features import is_stimulus_file, load_stimulus_features

    return load_stimulus_features(path, layers=layers) if is_stimulus_file(path) else load_features(path, layers)


def features_kind(features: Any) -> str:
    """``"stimuli"`` for stimulus-level features (a :class:`~neuroenc.features.StimulusFeatures`
    or its file), else ``"story"`` (word features with times, or anything else), so that callers
    that read either kind (``neuroenc predict``) need not know the classes."""
    from .stimulus_features import StimulusFeatures, is_stimulus_file

    if isinstance(features, StimulusFeatures):
        return "stimuli"
    if isinstance(features, (str, os.PathLike)):
        return "stimuli" if is_stimulus_file(features) else "story"
    return "story"
