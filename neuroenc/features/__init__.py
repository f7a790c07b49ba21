"""Features: per-layer hidden states of language models, per word, cached in HDF5.

- :func:`load_model` / :class:`LoadedModel`: a model, its fast tokenizer and identity;
- :func:`extract_features` / :class:`FeatureExtractor`: per-word features with exact,
  recorded context (``strided`` or ``window`` policy), cached in HDF5;
- :func:`load_features`, :func:`save_features`, :func:`feature_cache_path`,
  :func:`is_complete`, :func:`read_feature_info`: the cache files (checksummed;
  :class:`FeatureFileError` when one is corrupt);
- :func:`check_compatible_features`: refuse runs whose features came from different models
  or settings;
- :func:`sequence_prefix` (``prepend_bos``) and :func:`capture_last_block`
  (``last_layer="pre-norm"``): the special tokens before each sequence, the last block's
  output before the final norm;
- :class:`StimulusExtractor` / :func:`extract_stimulus_features`: one row per stimulus
  (sentence, passage) and layer, pooled over its tokens, alone or after its group's earlier
  stimuli; :class:`StimulusFeatures`, :func:`load_stimulus_features`;
- :func:`word_surprisal` / :func:`stimulus_surprisal`: surprisal from a causal LM's logits;
  :func:`lm_quality`: surprisal, perplexity and top-1 accuracy under any intervention;
- :func:`align_tokens`, :func:`plan_contexts`, :func:`token_states`: the building blocks;
- :func:`resolve_layers`, :func:`resolve_stored_layers`, :func:`layer_at_depth`: layer
  selection and relative depth;
- :func:`parse_intervention` / :func:`apply_intervention`: model interventions (skip, repeat,
  swap, parallel, no-attention, freeze/random context) applied while extracting;
- :func:`layer_metrics` and the metric functions: per-layer representation geometry
  (entropies, curvature, intrinsic dimension, effective rank).
"""
from .cache import FEATURES_FORMAT, FeatureFileError, is_complete, read_feature_info
from .context import ContextPlan, plan_contexts
from .extract import FeatureExtractor, extract_features, feature_cache_path, token_states
from .featureset import FeatureSet, check_compatible_features, load_features, save_features
from .interventions import Intervention, parse_intervention
from .layers import layer_at_depth, resolve_layers
from .metrics import (
    curvature,
    dataset_entropy,
    effective_rank,
    intrinsic_dimension,
    matrix_entropy,
    prompt_entropy,
    sliding_windows,
)
from .metrics_layers import LayerMetrics, layer_metrics
from .models import (
    MODEL_ALIASES,
    LoadedModel,
    ModelNotAvailableError,
    load_model,
    model_identity,
    resolve_device,
    resolve_torch_dtype,
    sequence_prefix,
)
from .prenorm import capture_last_block
from .quality import lm_quality
from .stimuli import StimulusExtractor, extract_stimulus_features
from .stimulus_features import (
    StimulusFeatures,
    is_stimulus_file,
    load_stimulus_features,
    save_stimulus_features,
)
from .surprisal import stimulus_surprisal, word_surprisal
from .tokens import TokenAlignment, TokenMappingError, align_tokens

#: Names that need torch, imported on first access (``import neuroenc.features`` stays light).
_LAZY = {
    "apply_intervention": "interventions_patch",
    "InterventionHandle": "interventions_patch",
    "intervention_plan_table": "interventions_patch",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "StimulusExtractor",
    "StimulusFeatures",
    "extract_stimulus_features",
    "is_stimulus_file",
    "load_stimulus_features",
    "save_stimulus_features",
    "stimulus_surprisal",
    "word_surprisal",
    "lm_quality",
    "Intervention",
    "InterventionHandle",
    "LayerMetrics",
    "apply_intervention",
    "capture_last_block",
    "check_compatible_features",
    "curvature",
    "dataset_entropy",
    "effective_rank",
    "intervention_plan_table",
    "intrinsic_dimension",
    "layer_metrics",
    "matrix_entropy",
    "parse_intervention",
    "prompt_entropy",
    "sliding_windows",
    "FEATURES_FORMAT",
    "MODEL_ALIASES",
    "ContextPlan",
    "FeatureExtractor",
    "FeatureFileError",
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
    "read_feature_info",
    "resolve_device",
    "resolve_torch_dtype",
    "resolve_layers",
    "save_features",
    "sequence_prefix",
    "token_states",
]
