"""The design of stimulus-level data: rows are exchangeable stimuli, not samples in time.

:func:`make_stimulus_design` pairs stimulus-level features (one row per stimulus and layer,
:class:`~neuroenc.features.StimulusFeatures`) with stimulus-level responses (a
:class:`~neuroenc.responses.Response` whose rows are stimulus ``ids``), matched by id, and
returns a :class:`StimulusDesign`: the same interface as the timed :class:`~neuroenc.align.Design`
(``layers``, ``X(layer)``, ``Y``, ``groups``, ``target_names``, ``space``, ``settings``,
``nuisance``), with :attr:`~StimulusDesign.rows` ``"stimuli"``. The encoding models read the
row kind from the design: k-fold or group-k-fold CV without a gap, and nulls that permute
stimuli (within groups), instead of blocks or runs and circular shifts in time.

Features (every layer's columns) and responses are z-scored over all stimuli, as the timed
designs z-score per run; the ridge has no intercept (himalaya's default).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._validation import _check_finite, _preview
from ..features.featureset import extraction_provenance

#: The fewest stimuli a fit takes: two folds of two held-out stimuli (a fold's r needs two).
MIN_STIMULI = 4


def zscore_columns(a: Any) -> np.ndarray:
    """Columns with zero mean and unit variance over rows; constant columns become 0."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    c = a - a.mean(0)
    sd = c.std(0)
    return c / np.where(sd > 0, sd, 1.0)


def _single(value: Any, what: str) -> Any:
    """The one item of a one-entry mapping (the runner's ``{run: ...}``), else the value."""
    if isinstance(value, Mapping):
        if len(value) != 1:
            raise ValueError(f"a stimulus-level design takes one {what}, got {len(value)} ({list(value)}); "
                             "average subjects first (group mean) or fit them one at a time.")
        return next(iter(value.values()))
    return value


class StimulusDesign:
    """Stimulus-level features and responses matched by id (built by :func:`make_stimulus_design`).

    Attributes
    ----------
    kind, rows : "stimuli"
        What the rows are: exchangeable stimuli (no time, no gap, permutation nulls).
    ids : list of str
        The stimulus of each row.
    layers : list of int
    Y : ndarray, shape (n_stimuli, n_targets)
        The responses, z-scored over stimuli.
    groups : ndarray of str | None
        The group (passage, story) of each stimulus: whole groups are held out by
        ``group-kfold`` CV, and the nulls permute within groups.
    target_names : list of str
    space : TargetSpace
        Where the targets are (the responses' space: e.g. the voxels of NIfTI beta maps).
    settings : dict
        How the design was made (z-scoring, the features' pooling and context).
    provenance : dict
        The stimuli, the features' model and files, the responses' sources; written to the
        results' provenance.
    warnings : list of str
    """

    kind = "stimuli"
    rows = "stimuli"

    def __init__(self, features: Any, response: Any, layers: Sequence[int] | None = None) -> None:
        self._features = features
        self.ids = list(features.ids)
        self.layers = list(features.layer_indices if layers is None else [int(x) for x in layers])
        matched = response.match(self.ids)
        self.response = matched
        self.Y = zscore_columns(matched.data)
        self.groups = None if features.groups is None else np.asarray(features.groups)
        self.target_names = list(matched.names)
        self.space = matched.space
        self.delays = None
        self.warnings: list[str] = []
        attrs = features.attrs
        # what made the features (model, context, pooling...): results keep it, so that results
        # of different features are never pooled (neuroenc.mapping.check_group)
        self.settings = {"zscore": "features and responses z-scored over all stimuli",
                         "pooling": attrs.get("pooling"), "context": attrs.get("context"),
                         "features": extraction_provenance(features)}
        self.provenance = {
            "model": features.model, "n_model_layers": features.n_model_layers, "stimuli": features.name,
            "n_stimuli": len(self.ids), "groups": sorted(set(self.groups.tolist())) if self.groups is not None
            else None, "features_file": attrs.get("path"), "stimuli_sha256": attrs.get("stimuli_sha256"),
            "responses_files": matched.info.get("source"), "responses_sha256": matched.info.get("sha256"),
            "context": attrs.get("context"), "pooling": attrs.get("pooling"),
        }

    @property
    def feature_regressors(self) -> dict[str, np.ndarray]:
        """Baseline regressors the features carry, per stimulus: ``surprisal`` (the model's own,
        extracted with ``surprisal=True``), when they have it."""
        value = self._features.attrs.get("surprisal")
        return {} if value is None else {"surprisal": np.asarray(value, dtype=np.float64)}

    @property
    def n_samples(self) -> int:
        """Rows (stimuli)."""
        return len(self.ids)

    @property
    def n_targets(self) -> int:
        """Columns of ``Y``."""
        return len(self.target_names)

    @property
    def n_delays(self) -> int:
        """1: a stimulus's features are not delayed."""
        return 1

    def n_features(self, layer: int) -> int:
        """Columns of one layer."""
        return int(np.shape(self._features[int(layer)])[1])

    def X(self, layer: int) -> np.ndarray:
        """One layer's features, z-scored over stimuli, shape (n_stimuli, n_features)."""
        if int(layer) not in self.layers:
            raise KeyError(f"this design has no layer {layer}; it has layers {self.layers}.")
        return zscore_columns(self._features[int(layer)])

    def raw_X(self, layer: int) -> np.ndarray:
        """One layer's features as extracted (not z-scored), shape (n_stimuli, n_features): what
        Brain-Score's metric regresses on (:mod:`neuroenc.encoding.brainscore_linear`)."""
        if int(layer) not in self.layers:
            raise KeyError(f"this design has no layer {layer}; it has layers {self.layers}.")
        return np.asarray(self._features[int(layer)], dtype=np.float64)

    def feature_stats(self, layer: int) -> Any:
        """The z-scoring statistics of one layer's columns over the stimuli (a
        :class:`~neuroenc.align.zscore.ZStats`; :meth:`X` applies them): what turns new stimuli's
        features into the same design."""
        from .zscore import zscore_stats

        if int(layer) not in self.layers:
            raise KeyError(f"this design has no layer {layer}; it has layers {self.layers}.")
        return zscore_stats(np.asarray(self._features[int(layer)], dtype=np.float64))

    def nuisance(self, source: Any, *, columns: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Baseline regressors on the same rows, z-scored over stimuli, one column per name.

        Parameters
        ----------
        source : Response | dict of str -> Response | dict of str -> array | DataFrame
            A stimulus-level :class:`~neuroenc.responses.Response` of regressors (matched by id;
            a one-entry ``{run: Response}`` as the runner has them), or values per stimulus in
            the stimuli's order (a dict of name -> (n,) or (n, k) values, or a DataFrame).
        columns : sequence of str | None
            For a Response: the columns to use (default all); a name that is not one of its
            columns is taken from :attr:`feature_regressors`.

        Returns
        -------
        nuisance : dict of str -> ndarray (n_stimuli, 1)
        """
        n = self.n_samples
        if isinstance(source, Mapping) and len(source) == 1 and hasattr(next(iter(source.values())), "match"):
            source = next(iter(source.values()))
        if hasattr(source, "match"):
            matched = source.match(self.ids, "the stimuli (baseline regressors)")
            names = list(matched.names) if columns is None else [str(c) for c in columns]
            carried = self.feature_regressors
            unknown = [c for c in names if c not in matched.names and c not in carried]
            if unknown:
                raise ValueError(f"no baseline regressor(s) {unknown}: the regressors are {matched.names}"
                                 + (f" and the features carry {list(carried)}" if carried else "") + ".")
            values = {c: matched.data[:, matched.names.index(c)] if c in matched.names else carried[c]
                      for c in names}
        elif hasattr(source, "columns") and hasattr(source, "to_numpy"):  # a DataFrame
            values = {str(c): source[c].to_numpy() for c in source.columns}
        else:
            values = dict(source)
        out: dict[str, np.ndarray] = {}
        for name, raw in values.items():
            arr = np.asarray(raw, dtype=np.float64)
            arr = arr[:, None] if arr.ndim == 1 else arr
            if arr.shape[0] != n:
                raise ValueError(f"baseline regressor {name!r} has {arr.shape[0]} rows for {n} stimuli.")
            if not np.isfinite(arr).all():
                bad = np.flatnonzero(~np.isfinite(arr).all(1))
                hint = ("surprisal is undefined for stimuli that start a sequence with no token before them; "
                        "set model.prepend_bos: auto (or true)." if name == "surprisal" else
                        "fill them in or drop the regressor.")
                raise ValueError(f"baseline regressor {name!r} has NaN or inf at stimuli {_preview(bad)}; {hint}")
            z = zscore_columns(arr)
            labels = [str(name)] if arr.shape[1] == 1 else [f"{name}_{j}" for j in range(arr.shape[1])]
            for j, label in enumerate(labels):
                out[label] = z[:, [j]]
        return out

    def __repr__(self) -> str:
        groups = "" if self.groups is None else f", {len(set(self.groups.tolist()))} groups"
        return (f"<StimulusDesign | {self.n_samples} stimuli{groups} × {self.n_targets} targets, "
                f"{len(self.layers)} layer(s)>")


def make_stimulus_design(features: Any, responses: Any, *, layers: Sequence[int] | None = None) -> StimulusDesign:
    """Stimulus-level features and responses as a :class:`StimulusDesign` (rows: stimuli).

    Parameters
    ----------
    features : StimulusFeatures | dict of str -> StimulusFeatures
        One row per stimulus (ids, groups); a one-entry ``{run: features}`` as the runner has it.
    responses : Response | dict of str -> Response
        Stimulus-level responses (``Response(..., ids=...)``), matched to the features by id
        (an error lists the ids on one side only); a one-entry ``{run: response}``.
    layers : sequence of int | None
        The layers (default: every layer of the features).
    """
    features = _single(features, "features set")
    response = _single(responses, "response set")
    if getattr(response, "rows", None) != "stimuli":
        raise TypeError(f"a stimulus-level design needs stimulus-level responses (a Response with ids=), got "
                        f"{response!r}.")
    n = len(features.ids)
    if n < MIN_STIMULI:
        raise ValueError(
            f"the stimulus-level features {features.attrs.get('path') or features.name!r} hold {n} "
            f"stimulus(es) ({_preview(list(features.ids))}); a cross-validated fit needs at least "
            f"{MIN_STIMULI} (two folds, each holding out at least 2 stimuli for its r). Extract features "
            "of more stimuli."
        )
    design = StimulusDesign(features, response, layers)
    _check_finite("The responses", design.Y, fix="Fill in the missing responses or drop those stimuli.")
    return design


def group_mean_response(per_subject: Mapping[str, Any], ids: Sequence[str]) -> tuple[Any, np.ndarray]:
    """The mean of several subjects' stimulus-level responses (each z-scored over stimuli), and
    the stack of the z-scored responses, shape (n_subjects, n_stimuli, n_targets).

    Each subject's responses are matched to ``ids``; every subject needs the same targets.
    """
    subjects = list(per_subject)
    matched = [per_subject[s].match(ids) for s in subjects]
    names = matched[0].names
    for s, m in zip(subjects, matched):
        if m.names != names:
            raise ValueError(
                f"subject {s!r} has targets {_preview(m.names)} but subject {subjects[0]!r} has "
                f"{_preview(names)}; every subject needs the same response columns."
            )
    stack = np.stack([zscore_columns(m.data) for m in matched])
    info = {"group_members": subjects, "source": [m.info.get("source") for m in matched],
            "sha256": [m.info.get("sha256") for m in matched]}
    return matched[0].copy(data=stack.mean(0), subject="group", info=info), stack
