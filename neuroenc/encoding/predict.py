"""Predict responses to new stimuli with the encoders saved in a results file.

:func:`predict_responses` takes what a user has for the new stimuli and turns it into the
design the weights were fitted on (:mod:`neuroenc.encoding.weights` records how):

- word-timed features (:class:`~neuroenc.features.FeatureSet`, one per run) and a TR grid:
  aligned by :func:`~neuroenc.align.make_fmri_design` with the results' alignment settings
  (resampling, delays, HRF, trimming; features z-scored per run, as in the fit);
- stimulus-level features (:class:`~neuroenc.features.StimulusFeatures`, one row per stimulus):
  z-scored with the training stimuli's statistics;
- a design object (``.X(layer)``) or a design array, used as given.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import _preview
from .designs import LayerDesigns, as_layer_designs
from .weights import SAVE_WEIGHTS_FIX, EncoderWeights


@dataclass
class Prediction:
    """Predicted responses and what their rows and columns are.

    Attributes
    ----------
    values : ndarray, shape (n_rows, n_targets)
    targets : list of str
    layers : ndarray of int, shape (n_targets,)
        The layer each target was predicted from.
    rows : dict of str -> ndarray
        ``run`` and ``time`` (stories: the run and stimulus time of each TR) or ``id``
        (stimuli); empty for a design array.
    """

    values: np.ndarray
    targets: list[str]
    layers: np.ndarray
    rows: dict[str, np.ndarray] = field(default_factory=dict)


def results_weights(results: Any) -> EncoderWeights:
    """The saved weights of ``results``; an error naming the file and the fix when it has none."""
    weights = getattr(results, "weights", None)
    if weights is None:
        source = getattr(results, "source", None)
        where = f"the results file {str(source)!r}" if source is not None else "these results"
        raise ValueError(f"{where} has no saved weights (the encoders are kept only when asked for): "
                         f"{SAVE_WEIGHTS_FIX}.")
    return weights


def _target_layers(results: Any, weights: EncoderWeights, layer: Any) -> np.ndarray:
    """The layer of each target: ``layer`` for all, or each target's best (``"best"``)."""
    n_t = len(weights.targets)
    if isinstance(layer, str):
        if layer != "best":
            raise ValueError(f"Invalid value for 'layer': {layer!r}; give a layer index or 'best'.")
        from .best import best_index

        best, valid = best_index(results.r)
        layers = np.asarray(results.layers)[np.maximum(best, 0)]
        return np.where(valid, layers, layers[0]).astype(int) if n_t else np.zeros(0, int)
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
        raise TypeError(f"'layer' must be a layer index or 'best', got {layer!r}.")
    if int(layer) not in weights:
        raise ValueError(f"the saved weights have no layer {layer}; they have layers {_preview(weights.layers)}.")
    return np.full(n_t, int(layer))


def _check_features(weights: EncoderWeights, features: Any, layers: Sequence[int], where: str) -> None:
    """Raise unless ``features`` were made as the training features were and have ``layers``."""
    from ..features.featureset import extraction_provenance, provenance_difference

    theirs = weights.info.get("features")
    if theirs:
        differ = provenance_difference(extraction_provenance(features), theirs)
        if differ is not None:
            name, mine, fitted = differ
            raise ValueError(
                f"{where} has {name} {mine!r}, but the results were fitted on features with {name} {fitted!r}; "
                "extract the new stimuli with the same model and settings."
            )
    missing = [x for x in layers if x not in features]
    if missing:
        raise ValueError(f"{where} has no layer(s) {_preview(missing)} (it has layers "
                         f"{_preview(list(features.layer_indices))}); extract those layers, or predict with layer= "
                         "one it has.")
    known = weights.info.get("n_features") or {}
    for x in layers:
        if str(x) in known and features.n_features(x) != known[str(x)]:
            raise ValueError(f"layer {x} of {where} has {features.n_features(x)} features, but the results were "
                             f"fitted on {known[str(x)]}; extract the new stimuli with the same model.")


def _features_label(features: Any) -> str:
    path = (getattr(features, "attrs", {}) or {}).get("path")
    if path:
        return f"the features file {str(path)!r}"
    name = getattr(features, "name", None) or f"run {getattr(features, 'run', '')!r}"
    return f"the features of {name}"


def _story_design(weights: EncoderWeights, items: dict, layers: Sequence[int], tr: float | None,
                  n_trs: Any, start: Any) -> Any:
    """The fMRI design of new runs on their TR grids, with the results' alignment settings."""
    from ..align import make_fmri_design
    from ..align.hrf import hrf_kernel
    from ..responses import Response

    align = weights.info.get("alignment") or {}
    if align.get("kind", "fmri") != "fmri":
        raise ValueError(f"predicting from word features is for fMRI designs; these results are on a "
                         f"{align.get('kind')!r} grid: build the design with make_meg_design and pass it (or "
                         "design.X(layer)).")
    tr = align.get("tr") if tr is None else float(tr)
    if tr is None:
        raise ValueError("the results do not record the TR of their design; pass tr=.")
    delays = [int(d) for d in align.get("delays") or weights.info.get("delays") or [0]]
    trim = list(align.get("trim") or [0, 0])
    n_hrf = len(hrf_kernel(tr, align["hrf"])) - 1 if align.get("hrf") else 0
    grids = {}
    for run, fs in items.items():
        s = float(start.get(run, 0.0) if isinstance(start, Mapping) else (start or 0.0))
        n = n_trs.get(run) if isinstance(n_trs, Mapping) else n_trs
        if n is None:  # the words, the design's reach after them and the trimmed rows
            n = int(np.floor((float(np.max(fs.times)) - s) / tr)) + 1 + max(max(delays), 0) + n_hrf + trim[1]
        grids[run] = Response(np.arange(int(n), dtype=np.float64)[:, None], tr=tr, start=s, run=run,
                              names=["grid"])  # the TR grid only: its values are not used
    options = {k: align[k] for k in ("method", "window", "cutoff_mult", "normalize", "hrf", "zscore",
                                     "on_uncovered") if k in align}
    if isinstance(align.get("reference"), str):
        options["reference"] = align["reference"]
    return make_fmri_design(items, grids, layers=list(layers), trim=tuple(trim), delays=delays,
                            dtype=np.float64, **options)


def predict_responses(results: Any, source: Any, layer: Any = "best", *, tr: float | None = None,
                      n_trs: Any = None, start: Any = 0.0) -> Prediction:
    """Predict every target's response to new stimuli (see the module docstring).

    Parameters
    ----------
    results : EncodingResults
        Fitted with ``save_weights=True``.
    source : FeatureSet | list/dict of FeatureSet | StimulusFeatures | design | ndarray
        The new stimuli's features, a design object (``.X(layer)``), designs per layer (a
        list, dict or 3-D array, as :class:`~neuroenc.encoding.LayerSweep` takes them), or one
        layer's design array (n_rows, n_columns).
    layer : int | "best"
        The layer to predict from, or each target's best layer (highest held-out r).
    tr : float | None
        Word features: the TR of the new grid (default the fit's).
    n_trs : int | dict of str -> int | None
        Word features: TRs of each run's grid (default: enough to cover the words and the
        design's reach after them).
    start : float | dict of str -> float
        Word features: stimulus time of each run's first TR (default 0).

    Returns
    -------
    prediction : Prediction
    """
    from ..features.featureset import FeatureSet
    from ..features.kinds import features_kind

    weights = results_weights(results)
    target_layers = _target_layers(results, weights, layer)
    used = sorted({int(x) for x in target_layers})
    rows: dict[str, np.ndarray] = {}
    if features_kind(source) == "stimuli":
        if weights.info.get("rows") != "stimuli":
            raise ValueError(f"{_features_label(source)} holds stimulus-level features, but the results were fitted on "
                             "word-timed features (stories); give the new stories' word features and a TR grid.")
        _check_features(weights, source, used, _features_label(source))

        def X_of(x):
            mean, std = weights.feature_stats[x]
            return (np.asarray(source[x], dtype=np.float64) - mean) / std

        rows = {"id": np.asarray(source.ids, dtype=object)}
    elif isinstance(source, FeatureSet) or (isinstance(source, (list, tuple, Mapping)) and source and all(
            isinstance(v, FeatureSet) for v in (source.values() if isinstance(source, Mapping) else source))):
        if weights.info.get("rows") != "samples":
            raise ValueError("the results were fitted on stimulus-level features (one row per stimulus); give the new "
                             "stimuli's stimulus-level features (neuroenc extract --stimuli), not word features.")
        from ..align.checks import as_run_dict

        items = as_run_dict(source, "features", FeatureSet)
        for fs in items.values():
            _check_features(weights, fs, used, _features_label(fs))
        design = _story_design(weights, items, used, tr, n_trs, start)
        X_of = design.X
        rows = {"run": np.asarray(design.groups, dtype=object), "time": np.asarray(design.times)}
    elif hasattr(source, "X") and callable(source.X):
        X_of = source.X
    elif isinstance(source, (list, tuple, Mapping, LayerDesigns)) or np.ndim(source) == 3:
        designs = as_layer_designs(source)  # one design per layer, as LayerSweep takes them

        def X_of(x):
            return designs[x]
    else:
        arr = np.asarray(source)
        if len(used) > 1:
            raise ValueError(f"a design array is one layer's design, but the targets' best layers are {used}; pass "
                             "layer= (one layer for every target), or the new stimuli's features.")
        X_of = lambda _x: arr  # noqa: E731
    values = None
    for x in used:
        cols = np.flatnonzero(target_layers == x)
        pred = weights.predict(X_of(x), x)
        if values is None:
            values = np.zeros((pred.shape[0], len(weights.targets)))
        values[:, cols] = pred[:, cols]
    return Prediction(values, list(weights.targets), target_layers, rows)


#: Format of the predictions files of ``neuroenc predict``.
PREDICTIONS_FORMAT = "neuroenc-predictions/1"


def save_predictions(prediction: Prediction, path: Any, attrs: Mapping[str, Any] | None = None) -> Any:
    """Write a :class:`Prediction` to HDF5, atomically: ``/predictions`` (n_rows, n_targets),
    ``/targets``, ``/layers`` (per target) and the rows (``/rows/run`` + ``/rows/time``, or
    ``/rows/id``); ``attrs`` (JSON) say where it came from."""
    import json
    from pathlib import Path

    import h5py

    from .._io import atomic_path, json_default
    from .._owned import check_replace

    path = Path(path)
    check_replace(path, "predictions file")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = PREDICTIONS_FORMAT
            f.create_dataset("predictions", data=prediction.values)
            f.create_dataset("targets", data=np.asarray(prediction.targets, dtype=object),
                             dtype=h5py.string_dtype("utf-8"))
            f.create_dataset("layers", data=np.asarray(prediction.layers, dtype=np.int64))
            for key, value in prediction.rows.items():
                if value.dtype == object:
                    f.create_dataset(f"rows/{key}", data=value.astype(str).astype(object),
                                     dtype=h5py.string_dtype("utf-8"))
                else:
                    f.create_dataset(f"rows/{key}", data=value)
            f.attrs["provenance"] = json.dumps(dict(attrs or {}), default=json_default)
    return path
