"""Encoding models: ridge sweeps over layers and banded ridge (himalaya), CV, scores, statistics.

The public names, re-exported from the modules that do one job each:

- :class:`LayerSweep` (``sweep``): a ridge model per layer, per-target penalties by nested CV;
- :mod:`cv`: :class:`BlockedKFold`, :class:`LeaveOneRunOut`, :class:`RunKFold`, :func:`make_cv`,
  :func:`inner_splits`;
- :class:`BandedLayerModel` (``banded``): banded ridge, one band per layer (group) + nuisance
  bands, split scores per band; :func:`make_bands`;
- :func:`fit_encoding` (``encode``): designs + responses -> :class:`EncodingResults` with
  p-values, q-values, baseline; :func:`merge_results` (``merge``) for target chunks / layers;
- :func:`fit_stimuli` (``stimulus_fit``): stimulus-level features and responses (no time),
  matched by id, cross-validated by stimulus (``kfold:K``, ``group-kfold:K``) with a permutation
  null over stimuli;
- :mod:`stats`: permutation tests, FDR, noise ceilings;
- :mod:`backend`: :func:`use_backend` (himalaya backend, restored afterwards);
- :mod:`designs`: :class:`LayerDesigns` (one layer's design at a time);
- :func:`memory_estimate`: bytes per layer fit, fixed and per target, to size target chunks;
- :class:`EncodingResults` (``results``): the results file.

Responses are read by :func:`neuroenc.responses.read_responses`.
"""
from ._ridge import memory_estimate
from .backend import resolve_backend, use_backend
from .banded import BandedLayerModel, Bands, make_bands
from .cv import BlockedKFold, LeaveOneRunOut, RunKFold, inner_splits, make_cv, parse_stimulus_cv
from .designs import LayerDesigns, as_layer_designs
from .encode import fit_encoding
from .merge import merge_results
from .results import EncodingResults
from .stimulus_fit import fit_stimuli, group_responses, stimulus_cv
from .stats import (
    fdr_bh,
    noise_ceiling_intersubject,
    noise_ceiling_repeats,
    noise_ceiling_split_half,
    PermutedDraws,
    permutation_null,
    permutation_test,
    permutation_test_best,
    spearman_brown,
    split_half_reliability,
)
from .sweep import DEFAULT_ALPHAS, LayerSweep, resolve_permutation

__all__ = [
    "BandedLayerModel",
    "Bands",
    "fit_encoding",
    "fit_stimuli",
    "group_responses",
    "parse_stimulus_cv",
    "stimulus_cv",
    "PermutedDraws",
    "make_bands",
    "merge_results",
    "BlockedKFold",
    "DEFAULT_ALPHAS",
    "EncodingResults",
    "LayerDesigns",
    "LayerSweep",
    "LeaveOneRunOut",
    "RunKFold",
    "as_layer_designs",
    "fdr_bh",
    "inner_splits",
    "make_cv",
    "memory_estimate",
    "noise_ceiling_intersubject",
    "noise_ceiling_repeats",
    "noise_ceiling_split_half",
    "permutation_null",
    "permutation_test",
    "permutation_test_best",
    "resolve_backend",
    "resolve_permutation",
    "spearman_brown",
    "split_half_reliability",
    "use_backend",
]
