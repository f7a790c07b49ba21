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
from .banded import BandedLayerModel
from .cv import make_cv
from .encode import fit_encoding
from .results import EncodingResults
from .stats import fdr_bh, noise_ceiling_repeats, noise_ceiling_split_half, permutation_test
from .sweep import LayerSweep

__all__ = [
    "LayerSweep",
    "BandedLayerModel",
    "fit_encoding",
    "EncodingResults",
    "make_cv",
    "permutation_test",
    "fdr_bh",
    "noise_ceiling_split_half",
    "noise_ceiling_repeats",
    "use_backend",
]

