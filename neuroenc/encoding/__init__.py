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
- :mod:`memory`: the memory model of a fit (:class:`FitShape`, :func:`fit_task_bytes`),
  and layers and targets per task (:func:`partition_fit`, :func:`target_chunk_size`);
- :class:`EncodingResults` (``results``): the results file.

Responses are read by :func:`neuroenc.responses.read_responses`.
"""
from .backend import use_backend
from .banded import BandedLayerModel, Bands, make_bands
from .cv import BlockedKFold, LeaveOneRunOut, RunKFold, inner_splits, make_cv
from .designs import LayerDesigns, as_layer_designs
from .encode import fit_encoding
from .memory import FitShape, fit_task_bytes, partition_fit, target_chunk_size
from .merge import merge_results
from .results import EncodingResults
from .stats import (
    PermutedDraws,
    fdr_bh,
    noise_ceiling_intersubject,
    noise_ceiling_repeats,
    noise_ceiling_split_half,
    permutation_null,
    permutation_test,
    permutation_test_best,
    spearman_brown,
    split_half_reliability,
)
from .stimulus_fit import fit_stimuli, group_responses, stimulus_cv
from .sweep import DEFAULT_ALPHAS, LayerSweep

__all__ = [
    "BandedLayerModel",
    "Bands",
    "fit_encoding",
    "fit_stimuli",
    "group_responses",
    "stimulus_cv",
    "PermutedDraws",
    "make_bands",
    "merge_results",
    "BlockedKFold",
    "DEFAULT_ALPHAS",
    "EncodingResults",
    "FitShape",
    "LayerDesigns",
    "LayerSweep",
    "LeaveOneRunOut",
    "RunKFold",
    "as_layer_designs",
    "fdr_bh",
    "fit_task_bytes",
    "inner_splits",
    "make_cv",
    "noise_ceiling_intersubject",
    "noise_ceiling_repeats",
    "noise_ceiling_split_half",
    "partition_fit",
    "permutation_null",
    "permutation_test",
    "permutation_test_best",
    "spearman_brown",
    "split_half_reliability",
    "target_chunk_size",
    "use_backend",
]
