"""Merge :class:`EncodingResults` fitted on target chunks or layer subsets, exactly.

Every score of :func:`neuroenc.encoding.fit_encoding` depends on one (layer, target) only, so a
big fit can be cut into tasks (a subset of layers x a chunk of targets, e.g. on Dask workers)
and put back together here. The only quantity that couples targets, the Benjamini-Hochberg
q-values, is recomputed across all targets after the merge.

The quantities that couple layers, ``pvalues_best`` (the p-value of each target's best layer
corrected for choosing among the layers, from the maximum over layers of the permutation null)
and the layer comparisons (``comparison``: every layer against the best, from every layer's
null draws), cannot be rebuilt from layer subsets: a merge along layers sets them to None and
says so in the results' warnings (tables then fall back to the best layer's own, uncorrected
p-value, and have no best-layer set). The same holds for the unique contributions' best-layer
set and ``pvalues_best`` (their per-layer deltas, p-values and intervals are kept).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..responses.space import concat_spaces, space_from_dict
from .compare import LayerComparison
from .contribution import UniqueContribution
from .results import EncodingResults
from .sensors import merge_sensor_parts
from .weights import merge_weights

#: The warning a merge along layers adds when the parts had ``pvalues_best``.
LAYER_MERGE_WARNING = (
    "The layers were fitted in separate parts and merged, so the p-values at the best layer are "
    "not corrected for choosing the best of the layers, and the layers are not compared with "
    "each other (both need every layer's permutation null in one fit); treat the best layer's "
    "p-value as optimistic, or fit all layers together."
)


def _same(parts: Sequence[EncodingResults], what: str, get) -> None:
    first = get(parts[0])
    for k, part in enumerate(parts[1:], 1):
        other = get(part)
        if isinstance(first, np.ndarray) or isinstance(other, np.ndarray):
            same = np.array_equal(np.asarray(first), np.asarray(other), equal_nan=True)
        else:
            same = first == other
        if not same:
            raise ValueError(f"Cannot merge results: part {k} has different {what} than part 0.")


def _cat(parts, name, axis):
    values = [getattr(p, name) for p in parts]
    if any(v is None for v in values):
        if not all(v is None for v in values):
            raise ValueError(f"Cannot merge results: {name!r} is missing from some parts only.")
        return None
    return np.concatenate(values, axis=axis)


def _merge_edge_shares(parts: Sequence[EncodingResults], axis: str) -> dict[str, list[float]]:
    """Per-layer shares of penalties at the grid's edges: weighted by targets across target
    chunks, in layer order across layer subsets."""
    shares = [p.settings["alpha_edge_shares"] for p in parts]
    if axis == "targets":
        weights = np.array([p.n_targets for p in parts], dtype=float)
        return {side: (np.average([s[side] for s in shares], axis=0, weights=weights)).tolist()
                for side in ("low", "high")}
    layers = np.concatenate([p.layers for p in parts])
    order = np.argsort(layers, kind="stable")
    return {side: np.concatenate([s[side] for s in shares])[order].tolist() for side in ("low", "high")}


def _cat_comparisons(parts: Sequence[EncodingResults]) -> LayerComparison | None:
    comps = [p.comparison for p in parts]
    if all(c is None for c in comps):
        return None
    if any(c is None for c in comps):
        raise ValueError("Cannot merge results: the layer comparisons are missing from some parts only.")
    return LayerComparison.concatenate(comps)


def _cat_unique(parts: Sequence[EncodingResults], axis: str, order: np.ndarray | None = None):
    uniq = [p.unique for p in parts]
    if all(u is None for u in uniq):
        return None
    if any(u is None for u in uniq):
        raise ValueError("Cannot merge results: the unique contributions are missing from some parts only.")
    return UniqueContribution.concatenate(uniq, axis=axis, order=order)


def merge_results(parts: Sequence[EncodingResults], axis: str = "targets") -> EncodingResults:
    """Concatenate results along targets (chunks) or layers (subsets).

    The q-values are derived from the merged p-values (across all targets). ``pvalues_best``
    (corrected for the choice of layer) and the layer comparisons are concatenated along
    targets; along layers they cannot be computed from the parts, so the merged results have
    none and a warning (:data:`LAYER_MERGE_WARNING`) when the parts had them.

    Parameters
    ----------
    parts : sequence of EncodingResults
        Fits of the same data set, subject, model and settings.
    axis : {"targets", "layers"}
        ``"targets"``: parts hold the same layers and disjoint target chunks (concatenated in
        the order given). ``"layers"``: parts hold the same targets and disjoint layers (sorted
        by layer index in the output); baselines and noise ceilings must agree.

    Returns
    -------
    results : EncodingResults
    """
    parts = list(parts)
    if not parts:
        raise ValueError("merge_results needs at least one part.")
    if axis not in ("targets", "layers"):
        raise ValueError(f"Invalid value for 'axis'. Allowed values are 'targets', 'layers', but got {axis!r} instead.")
    # what each part's task measured or ran with (time, work, thread pools: a task's threads
    # follow its worker and the machine's load), not what the part is
    strip = ("created", "fit_seconds", "flops", "threads") + (
        ("target_space", "baseline_models") if axis == "targets" else ())
    _same(parts, "settings", lambda p: {k: v for k, v in p.settings.items()
                                        if k not in ("block_size", "forms", "alpha_edge_shares")})
    settings = dict(parts[0].settings)
    if all("alpha_edge_shares" in p.settings for p in parts):
        settings["alpha_edge_shares"] = _merge_edge_shares(parts, axis)
    if any("forms" in p.settings for p in parts):
        settings["forms"] = {k: v for p in parts for k, v in p.settings.get("forms", {}).items()}
    _same(parts, "provenance", lambda p: {k: v for k, v in p.provenance.items() if k not in strip})
    provenance = dict(parts[0].provenance)
    provenance["flops"] = float(sum(p.provenance.get("flops", 0.0) for p in parts))
    provenance["fit_seconds"] = float(sum(p.provenance.get("fit_seconds", 0.0) for p in parts))
    provenance["merged_parts"] = len(parts)
    threads = [p.provenance["threads"] for p in parts if "threads" in p.provenance]
    if threads and any(t != threads[0] for t in threads):
        provenance["threads"] = threads  # one entry per part
    if axis == "targets" and any("target_space" in p.provenance for p in parts):
        if not all("target_space" in p.provenance for p in parts):
            raise ValueError("Cannot merge results: 'target_space' is missing from the provenance of some parts only.")
        # the chunks' targets side by side
        provenance["target_space"] = concat_spaces(
            [space_from_dict(p.provenance["target_space"]) for p in parts]).to_dict()
    if axis == "targets" and all("baseline_models" in p.provenance for p in parts):
        # one row per (model, target): each model's rows, the chunks' targets in order
        models = list(dict.fromkeys(row["model"] for row in parts[0].provenance["baseline_models"]))
        provenance["baseline_models"] = [row for m in models for p in parts for row in p.provenance["baseline_models"]
                                         if row["model"] == m]
    warnings_ = [w for p in parts for w in p.warnings]
    if warnings_.count(LAYER_MERGE_WARNING) > 1:  # once, however many parts carried it
        first = warnings_.index(LAYER_MERGE_WARNING)
        warnings_ = [w for i, w in enumerate(warnings_) if w != LAYER_MERGE_WARNING or i == first]
    if axis == "targets":
        _same(parts, "layers", lambda p: p.layers)
        targets = [t for p in parts for t in p.targets]
        if len(set(targets)) != len(targets):
            raise ValueError("Cannot merge results: target names repeat across parts.")
        baseline_keys = set(parts[0].baseline)
        _same(parts, "baseline keys", lambda p: set(p.baseline))
        baseline = {k: np.concatenate([p.baseline[k] for p in parts]) for k in baseline_keys if k != "qvalues"}
        split_keys = set(parts[0].split_scores)
        _same(parts, "split score keys", lambda p: set(p.split_scores))
        pvalues = _cat(parts, "pvalues", 1)
        pvalues_best = _cat(parts, "pvalues_best", 0)
        return EncodingResults(
            r=_cat(parts, "r", 1), r2=_cat(parts, "r2", 1), layers=parts[0].layers, targets=targets,
            relative_depth=parts[0].relative_depth, pvalues=pvalues,
            alphas=_cat(parts, "alphas", 1), fold_r=_cat(parts, "fold_r", 2), fold_r2=_cat(parts, "fold_r2", 2),
            baseline=baseline, noise_ceiling=_cat(parts, "noise_ceiling", 0),
            split_scores={k: np.concatenate([p.split_scores[k] for p in parts], axis=-1) for k in split_keys},
            settings=settings, provenance=provenance, warnings=warnings_, pvalues_best=pvalues_best,
            comparison=_cat_comparisons(parts), r_pooled=_cat(parts, "r_pooled", 1),
            brainscore_split_r=_cat(parts, "brainscore_split_r", 2),
            weights=merge_weights([p.weights for p in parts], axis),
            **merge_sensor_parts(parts, "targets"),
            unique=_cat_unique(parts, "targets"),
        )
    _same(parts, "targets", lambda p: p.targets)
    _same(parts, "baseline keys", lambda p: set(p.baseline))
    for key in parts[0].baseline:
        _same(parts, f"baseline {key!r}", lambda p, key=key: p.baseline[key])
    _same(parts, "noise ceiling", lambda p: p.noise_ceiling)
    layers = np.concatenate([p.layers for p in parts])
    if np.unique(layers).size != layers.size:
        raise ValueError(f"Cannot merge results: layers repeat across parts ({layers.tolist()}).")
    order = np.argsort(layers, kind="stable")

    def cat(name, ax):
        value = _cat(parts, name, ax)
        return None if value is None else np.take(value, order, axis=ax)

    pvalues = cat("pvalues", 0)
    coupled = any(p.pvalues_best is not None or p.comparison is not None for p in parts)
    if coupled and LAYER_MERGE_WARNING not in warnings_:
        warnings_.append(LAYER_MERGE_WARNING)
    return EncodingResults(
        r=cat("r", 0), r2=cat("r2", 0), layers=layers[order], targets=parts[0].targets,
        relative_depth=np.concatenate([p.relative_depth for p in parts])[order], pvalues=pvalues,
        alphas=cat("alphas", 0),
        fold_r=cat("fold_r", 1), fold_r2=cat("fold_r2", 1), baseline=parts[0].baseline,
        noise_ceiling=parts[0].noise_ceiling, split_scores=parts[0].split_scores,
        settings=settings, provenance=provenance, warnings=warnings_, r_pooled=cat("r_pooled", 0),
        brainscore_split_r=cat("brainscore_split_r", 1),
        weights=merge_weights([p.weights for p in parts], axis),
        **merge_sensor_parts(parts, "layers"),
        unique=_cat_unique(parts, "layers", order),
    )
