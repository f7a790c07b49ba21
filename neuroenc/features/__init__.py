"""Features: per-layer hidden states of language models, per word, cached in HDF5.

- :func:`load_model` / :class:`LoadedModel`: a model, its fast tokenizer and identity;
- :func:`extract_features` / :class:`FeatureExtractor`: per-word features with exact,
  recorded context (``strided`` or ``window`` policy), cached in HDF5;
- :func:`load_features`, :func:`save_features`, :func:`feature_cache_path`,
  :func:`is_complete`: the cache files;
- :func:`align_tokens`, :func:`plan_contexts`, :func:`token_states`: the building blocks;
- :func:`resolve_layers`, :func:`layer_at_depth`: layer selection and relative depth.
"""
from .cache import FEATURES_FORMAT, is_complete, load_features, save_features
from .context import ContextPlan, plan_contexts
from .extract import FeatureExtractor, extract_features, feature_cache_path, token_states
from .featureset import FeatureSet
from .layers import layer_at_depth, resolve_layers
from .models import (
    MODEL_ALIASES,
    LoadedModel,
    ModelNotAvailableError,
    load_model,
    model_identity,
    resolve_device,
    resolve_dtype,
)
from .tokens import TokenAlignment, TokenMappingError, align_tokens

__all__ = [
    "FEATURES_FORMAT",
    "MODEL_ALIASES",
    "ContextPlan",
    "FeatureExtractor",
    "FeatureSet",
    "LoadedModel",
    "ModelNotAvailableError",
    "TokenAlignment",
    "TokenMappingError",
    "align_tokens",
    "extract_features",
    "feature_cache_path",
    "is_complete",
    "layer_at_depth",
    "load_features",
    "load_model",
    "model_identity",
    "plan_contexts",
    "resolve_device",
    "resolve_dtype",
    "resolve_layers",
    "save_features",
    "token_states",
]
