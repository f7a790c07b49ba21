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

Spill-over (``spillover``, for word-level data such as self-paced reading times): a word's
reading time depends on the words read just before it, so the design can add, beside each
stimulus's own columns, those of the previous 1-3 stimuli of the same group (story), for the
baseline regressors and for the layers (:func:`spillover_rows`, :func:`add_spillover`). The
previous stimulus is the one before it in the stimulus set's order *within its group*: the first
words of a story have no previous word (the last words of another story are not their
spill-over), and their spill-over columns are 0, the mean of the z-scored column, so no stimulus
is dropped and the rows stay matched to the responses and the CV groups. Sentence boundaries
inside a story are not cut: in self-paced reading the last word of a sentence is read just
before the next sentence's first word, and its processing spills over.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import Any

import numpy as np

from .._settings import Interval, Pattern, declare
from .._validation import _check_finite, _preview
from ..features.featureset import extraction_provenance

#: The fewest stimuli a fit takes: two folds of two held-out stimuli (a fold's r needs two).
MIN_STIMULI = 4
#: The most previous stimuli a spill-over takes (reading-time studies use 1-3 words).
MAX_SPILLOVER = 3
#: What gets spill-over columns.
SPILLOVER_KEYS = ("baseline", "layers")


class _Spillover(Pattern):
    """A spill-over mapping: ``{baseline: N, layers: N}`` in a config (N in 0..:data:`MAX_SPILLOVER`,
    a missing key 0), ``baseline=N,layers=N`` on the command line (read as the mapping)."""

    def __init__(self) -> None:
        super().__init__(r"(baseline|layers)=\d+(,(baseline|layers)=\d+)?", "baseline=N,layers=N")

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, str):
            return super().is_satisfied_by(value)
        return (isinstance(value, Mapping) and bool(value) and all(k in SPILLOVER_KEYS for k in value)
                and all(isinstance(v, Integral) and not isinstance(v, bool) and 0 <= v <= MAX_SPILLOVER
                        for v in value.values()))

    def describe(self, style: str = "yaml") -> str:
        if style == "cli":
            return f"baseline=N,layers=N (N in 0-{MAX_SPILLOVER})"
        return (f"{{'baseline': N, 'layers': N}} (N in 0-{MAX_SPILLOVER})" if style == "python"
                else f"{{baseline: N, layers: N}} (N in 0-{MAX_SPILLOVER})")

    def from_text(self, text: str) -> dict:
        if not super().is_satisfied_by(text):
            raise ValueError(text)
        return {k: int(v) for k, v in (part.split("=") for part in text.split(","))}


#: ``spillover``'s values: none, one number for both, a mapping (or its command-line spelling).
SPILLOVER_CONSTRAINTS = [None, Interval(Integral, 0, MAX_SPILLOVER, closed="both"), _Spillover()]


def parse_spillover(spillover: Any) -> dict[str, int]:
    """``spillover`` as ``{"baseline": k, "layers": k}``, each k in 0..:data:`MAX_SPILLOVER`.

    Accepts None (no spill-over), an int (the same for both), a mapping with the keys
    ``baseline`` and/or ``layers`` (a missing one is 0), or the command-line text
    ``"baseline=2,layers=1"``.
    """
    fix = (f"give an int 0-{MAX_SPILLOVER} (both), or e.g. {{baseline: 2, layers: 1}} "
           "(--spillover baseline=2,layers=1)")
    if spillover is None:
        return {"baseline": 0, "layers": 0}
    if isinstance(spillover, str):
        try:
            spillover = {k.strip(): int(v) for k, v in (part.split("=") for part in spillover.split(","))}
        except ValueError:
            raise ValueError(f"Invalid value for 'spillover': {spillover!r}; {fix}.") from None
    if isinstance(spillover, (int, np.integer)) and not isinstance(spillover, bool):
        spillover = {"baseline": int(spillover), "layers": int(spillover)}
    if not isinstance(spillover, Mapping):
        raise ValueError(f"Invalid value for 'spillover': {spillover!r}; {fix}.")
    unknown = [k for k in spillover if k not in SPILLOVER_KEYS]
    if unknown:
        raise ValueError(f"Invalid key(s) {unknown} of 'spillover' ({dict(spillover)}); the keys are "
                         f"{list(SPILLOVER_KEYS)}: {fix}.")
    out = {}
    for key in SPILLOVER_KEYS:
        k = spillover.get(key, 0)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= MAX_SPILLOVER:
            raise ValueError(f"Invalid value for 'spillover.{key}': {k!r}; the previous stimuli to add, an int "
                             f"0-{MAX_SPILLOVER}.")
        out[key] = int(k)
    return out


def spillover_rows(groups: Sequence[Any] | None, n: int, k: int) -> np.ndarray:
    """The row of the stimulus 1..k places before each stimulus in its group, shape (k, n); -1
    where there is none (the first stimuli of a group). ``groups`` None: one sequence.

    Examples
    --------
    >>> spillover_rows(["a", "a", "a", "b", "b"], 5, 2).tolist()
    [[-1, 0, 1, -1, 3], [-1, -1, 0, -1, -1]]
    """
    labels = np.zeros(n, dtype=np.int64) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    out = np.full((k, n), -1, dtype=np.int64)
    for g in np.unique(labels):
        rows = np.flatnonzero(labels == g)
        for lag in range(1, k + 1):
            out[lag - 1, rows[lag:]] = rows[:-lag]
    return out


def add_spillover(values: Any, previous: np.ndarray) -> np.ndarray:
    """``values`` (n, p) with the values of the previous stimuli beside them: columns
    ``[x_t, x_{t-1}, ..., x_{t-k}]``, shape (n, p * (k + 1)), 0 where there is no previous
    stimulus (``previous`` from :func:`spillover_rows`, -1 there)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[:, None] if values.ndim == 1 else values
    parts = [values] + [np.where((rows >= 0)[:, None], values[np.clip(rows, 0, None)], 0.0) for rows in previous]
    return np.hstack(parts)


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
    spillover : dict of str -> int
        The previous stimuli of the same group whose columns are added beside each stimulus's
        own, for the ``baseline`` regressors and for the ``layers`` (0: none; see the module
        docstring).
    settings : dict
        How the design was made (z-scoring, the features' pooling and context, the spill-over).
    provenance : dict
        The stimuli, the features' model and files, the responses' sources; written to the
        results' provenance.
    warnings : list of str
    """

    kind = "stimuli"
    rows = "stimuli"

    def __init__(self, features: Any, response: Any, layers: Sequence[int] | None = None,
                 spillover: Any = None) -> None:
        self._features = features
        self.spillover = parse_spillover(spillover)
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
        k = max(self.spillover.values())
        self._previous = spillover_rows(self.groups, len(self.ids), k)
        if k:
            self.settings["spillover"] = dict(self.spillover, boundaries=(
                "previous stimuli of the same group in the stimulus order; none before a group's first "
                "stimuli (their spill-over columns are 0, the z-scored mean)" if self.groups is not None
                else "previous stimuli in the stimulus order (no groups: one sequence)"))
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
        """Columns of one layer (with its spill-over columns)."""
        return int(np.shape(self._features[int(layer)])[1]) * (1 + self.spillover["layers"])

    def X(self, layer: int) -> np.ndarray:
        """One layer's features, z-scored over stimuli, shape (n_stimuli, n_features); with
        ``spillover["layers"] = k``, followed by those of the k previous stimuli of the same
        group (0 where there is none)."""
        if int(layer) not in self.layers:
            raise KeyError(f"this design has no layer {layer}; it has layers {self.layers}.")
        z = zscore_columns(self._features[int(layer)])
        k = self.spillover["layers"]
        return add_spillover(z, self._previous[:k]) if k else z

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
        nuisance : dict of str -> ndarray (n_stimuli, 1 + k)
            With ``spillover["baseline"] = k``, each regressor's column is followed by its values
            at the k previous stimuli of the same group (0 where there is none), in the same
            entry: the regressor and its spill-over are one band, fitted alone together.
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
            k = self.spillover["baseline"]
            for j, label in enumerate(labels):
                out[label] = add_spillover(z[:, [j]], self._previous[:k]) if k else z[:, [j]]
        return out

    def __repr__(self) -> str:
        groups = "" if self.groups is None else f", {len(set(self.groups.tolist()))} groups"
        spill = "" if not any(self.spillover.values()) else (
            f", spill-over {self.spillover['baseline']} (baseline) / {self.spillover['layers']} (layers)")
        return (f"<StimulusDesign | {self.n_samples} stimuli{groups} × {self.n_targets} targets, "
                f"{len(self.layers)} layer(s){spill}>")


@declare({"spillover": SPILLOVER_CONSTRAINTS})
def make_stimulus_design(features: Any, responses: Any, *, layers: Sequence[int] | None = None,
                         spillover: Any = None) -> StimulusDesign:
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
    spillover : int | dict | str | None
        Spill-over regressors for word-level data (e.g. reading times): the columns of the
        previous 1-3 stimuli of the same group (story), beside each stimulus's own, for the
        baseline regressors and for the layers: ``{baseline: 2, layers: 1}`` (a missing key is
        0), an int for both, or ``"baseline=2,layers=1"``; None or 0: none. A group's first
        stimuli have no previous stimulus: their spill-over columns are 0 (the mean of the
        z-scored column), none is dropped.
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
    design = StimulusDesign(features, response, layers, spillover=parse_spillover(spillover))
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
