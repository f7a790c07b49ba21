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
from .extract import FeatureExtractor, extract_features
from .featureset import FeatureSet, load_features
from .interventions import parse_intervention
from .metrics_layers import layer_metrics
from .models import load_model
from .quality import lm_quality
from .stimuli import StimulusExtractor
from .stimulus_features import StimulusFeatures, load_stimulus_features
from .surprisal import word_surprisal

__all__ = [
    "FeatureExtractor",
    "StimulusExtractor",
    "extract_features",
    "load_features",
    "load_stimulus_features",
    "FeatureSet",
    "StimulusFeatures",
    "load_model",
    "word_surprisal",
    "lm_quality",
    "apply_intervention",
    "parse_intervention",
    "layer_metrics",
]

#: Names that need torch, imported on first access (``import neuroenc.features`` stays light).
_LAZY = {
    "apply_intervention": "interventions_patch",
}

def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

