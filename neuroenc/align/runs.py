"""What the design builders share: runs paired and checked, and each run's plan (its words,
its response grid extended by the delays, the rows kept after trimming)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import _check_finite, _check_option, _preview
from ..features.featureset import FeatureSet, check_compatible_features
from ..responses import Response
from .checks import as_run_dict, check_grid_extent, report_uncovered, word_coverage
from .design import RunPlan


def check_trim(trim: Any) -> tuple[int, int]:
    """``(first, last)`` rows to drop from a ``trim`` given as one int or a pair."""
    if isinstance(trim, (int, np.integer)) and not isinstance(trim, bool):
        trim = (int(trim), int(trim))
    try:
        first, last = trim
    except (TypeError, ValueError):
        raise TypeError(f"'trim' must be (first, last) numbers of TRs, or one int for both; got {trim!r}.") from None
    for name, value in (("first", first), ("last", last)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"'trim' {name} must be an int >= 0 (TRs), got {value!r}.")
    return int(first), int(last)


def features_reference(items: dict) -> str | list[str]:
    """The word time the feature rows of ``{run: FeatureSet}`` sit at (``"onset"`` or
    ``"midpoint"``), for a design's settings: the runs' one reference, or each run's when they
    differ."""
    refs = [fs.reference for fs in items.values()]
    return refs[0] if len(set(refs)) == 1 else refs


def check_features(features: Any, layers: Any, reference: str | None) -> tuple[dict, list[int]]:
    """``{run: FeatureSet}`` and the layers to build, checked: the layers exist, one model and one
    extraction setting (:func:`~neuroenc.features.featureset.check_compatible_features`), finite times."""
    items = as_run_dict(features, "features", FeatureSet)
    if reference is not None:
        _check_option("reference", reference, ("onset", "midpoint"))
        items = {k: v.with_reference(reference) for k, v in items.items()}
    first_name, first = next(iter(items.items()))
    if layers is None:
        layers = first.layer_indices
    elif isinstance(layers, (int, np.integer)) and not isinstance(layers, bool):
        layers = [int(layers)]
    layers = [int(i) for i in layers]
    if not layers:
        raise ValueError("'layers' is empty; give at least one layer index.")
    for name, fs in items.items():
        missing = [i for i in layers if i not in fs]
        if missing:
            raise ValueError(
                f"features for run {name!r} have no layer(s) {missing} (they have "
                f"{fs.layer_indices}); extract them, or pass layers= that every run has."
            )
        if fs.model != first.model:
            raise ValueError(
                f"features for run {name!r} come from model {fs.model!r} but those for run "
                f"{first_name!r} from {first.model!r}; one design needs one model."
            )
        for i in layers:
            if fs.n_features(i) != first.n_features(i):
                raise ValueError(
                    f"layer {i} has {fs.n_features(i)} columns for run {name!r} but "
                    f"{first.n_features(i)} for run {first_name!r}."
                )
        if fs.n_words == 0:
            raise ValueError(f"features for run {name!r} have no words.")
        _check_finite("word times", fs.times, where=f"of the features for run {name!r}",
                      fix="Drop unaligned words before extracting features.")
    check_compatible_features(items)
    return items, layers


def check_responses(responses: Any, kind: str, runs: list[str], trim: tuple[int, int]) -> None:
    """Raise unless the runs' responses share one grid kind, period, targets and space, and their
    kept rows are finite and not constant."""
    ref = responses[runs[0]]
    for name in runs:
        resp = responses[name]
        if resp.kind != kind:
            other = "make_meg_design" if resp.kind == "meg" else "make_fmri_design"
            raise ValueError(
                f"response for run {name!r} is on a {resp.kind!r} grid ("
                f"{'TR ' + format(resp.tr, 'g') + ' s' if resp.tr else format(resp.sfreq, 'g') + ' Hz'}); "
                f"use {other} for it."
            )
        if not np.isclose(resp.period, ref.period):
            raise ValueError(
                f"response for run {name!r} has a period of {resp.period:g} s but run "
                f"{runs[0]!r} has {ref.period:g} s; delays in rows need one period (resample "
                "MEG with sfreq=, or build one design per TR)."
            )
        if resp.names != ref.names:
            raise ValueError(
                f"responses for run {name!r} have targets {_preview(resp.names)} but run "
                f"{runs[0]!r} has {_preview(ref.names)}; select the same targets in every run."
            )
        first, last = trim
        if resp.n_samples - first - last < 2:
            raise ValueError(
                f"trim=({first}, {last}) leaves {resp.n_samples - first - last} of the "
                f"{resp.n_samples} rows of run {name!r}; trim less."
            )
        if resp.space != ref.space:
            raise ValueError(
                f"responses for run {name!r} have targets in {resp.space!r} but run {runs[0]!r} in "
                f"{ref.space!r}; the runs of one design need the same targets in one space (read "
                "them with one mask)."
            )
        resp.check(slice(first, resp.n_samples - last))


def plan_runs(items: dict, responses: dict, runs: list[str], *, n_pre: int, n_post: int,
              trim: tuple[int, int], on_uncovered: str, warnings: list[str]) -> list[RunPlan]:
    """One :class:`RunPlan` per run, after checking that each grid covers its words."""
    planned = []
    for name in runs:
        fs, resp = items[name], responses[name]
        times = np.asarray(fs.times, dtype=np.float64)
        period = resp.period
        _, msg = word_coverage(times, resp, n_pre * period, n_post * period, "words")
        report_uncovered(msg, on_uncovered, warnings)
        check_grid_extent(times, resp, reach_before=n_pre * period, reach_after=n_post * period,
                          trim=trim, sink=warnings)
        planned.append(RunPlan(name=name, features=fs, times=times,
                            onsets=np.asarray(fs.onsets, dtype=np.float64),
                            offsets=np.asarray(fs.offsets, dtype=np.float64), response=resp,
                            n_pre=n_pre, n_post=n_post, first=trim[0], last=trim[1]))
    return planned


def as_responses(responses: Any) -> dict[str, Response]:
    """``{run: Response}`` from Responses or mne objects (keyed by run name in a dict)."""
    if isinstance(responses, dict):
        converted = {}
        for key, value in responses.items():
            if not isinstance(value, Response) and _is_mne(value):
                value = Response.from_mne(value, run=str(key))
            converted[key] = value
        responses = converted
    elif _is_mne(responses):
        raise TypeError(
            "an mne object has no run name: pass {run: raw} or Response.from_mne(raw, run=...)."
        )
    return as_run_dict(responses, "responses", Response)


def _is_mne(obj: Any) -> bool:
    return type(obj).__module__.startswith("mne.")

