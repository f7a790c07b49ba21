"""The :class:`EncodingResults` container and its HDF5 file format.

One results file per (model, subject) fit. Layout::

    /scores/r            (n_layers, n_targets) float64   held-out Pearson r (CV mean)
    /scores/r2           (n_layers, n_targets) float64   held-out R² (CV mean)
    /scores/r_pooled     (n_layers, n_targets) float64   optional: held-out r of all folds' predictions
                                                         pooled (settings["scores"] says which is which)
    /pvalues             (n_layers, n_targets) float64   permutation p-values of r (each layer on its own)
    /qvalues             (n_layers, n_targets) float64   Benjamini-Hochberg q-values (across targets);
                                                         written for readers of the file, derived
                                                         from /pvalues when loaded
    /pvalues_best        (n_targets,) float64  optional: p-value of the best layer's r, corrected for
                                               choosing the best of the layers (max over layers of
                                               the permutation null, the same draws for every layer)
    /qvalues_best        (n_targets,) float64  optional: their BH q-values (across targets; derived)
    /compare/delta_r     (n_layers, n_targets) float64 optional: r(layer) - r(best layer) per target
    /compare/pvalues     (n_layers, n_targets) float64 optional: p of "this layer is one of the best",
                                               tested against the other layers (NaN at the best)
    /compare/in_best_set (n_layers, n_targets) bool   optional: the confidence set of best layers
    /compare/ci_low, /compare/ci_high                 optional: interval of delta_r
        attrs: alpha, ci, n_draws, source, description (see :mod:`neuroenc.encoding.compare`)
    /layers              (n_layers,) int64               layer indices (0 = embeddings)
    /relative_depth      (n_layers,) float64             layer / (n_model_layers - 1)
    /targets             (n_targets,) utf-8              target names (ROIs, voxels, sensors)
    /alphas              (n_layers, n_targets) float64   best ridge alpha (mean over folds)
    /fold_scores/r       (n_folds, n_layers, n_targets)  r of each outer fold
    /fold_scores/r2      (n_folds, n_layers, n_targets)
    /scores/brainscore_split_r (n_splits, n_layers, n_targets) optional: Brain-Score's linear metric
                         per split (scoring="brainscore-linear"; :mod:`neuroenc.encoding.brainscore_linear`)
    /baseline/r          (n_targets,)     optional: baseline model (e.g. word rate + sound power)
    /baseline/r2         (n_targets,)     optional
    /baseline/pvalues    (n_targets,)     optional
    /unique/delta_r2, /unique/delta_r (n_layers, n_targets) optional: held-out R² and r of
                                     [baseline + layer] minus the baseline's (fold means)
    /unique/pvalues, /unique/ci_low, /unique/ci_high, /unique/in_best_set  optional: their tests
    /unique/fold_delta_r2, /unique/fold_delta_r (n_folds, n_layers, n_targets), /unique/pvalues_best
        attrs: baseline_names (JSON), alpha, ci, n_draws, source
        (see :mod:`neuroenc.encoding.contribution`)
    /noise_ceiling       (n_targets,)     optional: ceiling on r (NaN where unknown)
    /split_scores/<name> (n_bands, n_targets) optional: banded-model split scores
    /weights             optional (save_weights): each layer's refitted encoder and what
                         prediction needs (see :mod:`neuroenc.encoding.weights`)
    /sensors/info_fif    (n_bytes,) uint8  optional: the mne.Info of sensor targets, as written by
                                           mne.io.write_info (see :mod:`neuroenc.encoding.sensors`)
    /trf/weights/<layer> (n_targets, n_features, n_lags) optional: TRF weights; /trf/lags (seconds)
    attrs: "settings" (JSON), "provenance" (JSON), "warnings" (JSON list), "format" = "neuroenc-results/1"

Written atomically: to a temporary file in the same folder, then ``os.replace``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._io import atomic_path, json_default
from .._owned import check_replace
from .best import P_BEST_LAYER_ONLY, P_MAX_OVER_LAYERS, best_index, best_pvalues  # noqa: F401 (P_*: re-exported)
from .compare import LayerComparison
from .contribution import UniqueContribution
from .stats import fdr_bh

RESULTS_FORMAT = "neuroenc-results/1"
#: ``p_method`` of p-values corrected for the choice of layer, and of those that are not.


@dataclass
class EncodingResults:
    """Scores of an encoding model per (layer, target), with statistics and provenance.

    Parameters
    ----------
    r, r2 : ndarray, shape (n_layers, n_targets)
        Held-out Pearson correlation and R², averaged over outer CV folds.
    layers : ndarray of int, shape (n_layers,)
        Layer indices (0 = embeddings).
    targets : list of str
        Target names.
    relative_depth : ndarray, shape (n_layers,) | None
        Relative depth of each layer in [0, 1]; default ``layers / max(layers)``.
    pvalues : ndarray, shape (n_layers, n_targets) | None
        Permutation p-values of ``r`` against chance, each layer on its own: the p-value at a
        target's best layer is *not* corrected for having chosen that layer among many (use
        ``pvalues_best``). Their Benjamini-Hochberg q-values across targets are the derived
        property :attr:`qvalues`.
    alphas : ndarray, shape (n_layers, n_targets) | None
        Chosen ridge penalties.
    fold_r, fold_r2 : ndarray, shape (n_folds, n_layers, n_targets) | None
        Scores of each outer fold.
    baseline : dict of str -> ndarray (n_targets,)
        A baseline model's ``r``, ``r2``, ``pvalues`` (``qvalues`` is derived from them).
    noise_ceiling : ndarray, shape (n_targets,) | None
        Ceiling on r per target.
    split_scores : dict of str -> ndarray (n_bands, n_targets)
        Banded-model split scores, keyed by band name.
    settings : dict
        The parameters that made these results (delays, CV, alphas, backend...).
    provenance : dict
        Features file hash, data set, subject, model, package versions, creation time.
    warnings : list of str
        Warnings the pipeline raised on the way.
    pvalues_best : ndarray, shape (n_targets,) | None
        The permutation p-value of each target's best r (the highest ``r`` over layers) against
        chance, corrected for choosing that layer: ``(1 + #{max over layers of the null >= r at
        the best layer}) / (1 + n_permutations)``, with the same permutations for every layer
        (q-values: the derived :attr:`qvalues_best`). None when there were no permutations, or
        when the layers were fitted apart and merged (it needs every layer's null at once).
    comparison : LayerComparison | None
        Every layer against each target's best layer, tested against the other layers (not
        against chance): ``delta_r``, its interval, p-values and the confidence set of best
        layers (:func:`~neuroenc.encoding.compare.compare_layers`). None without permutations,
        or when the layers were fitted apart and merged.
    r_pooled : ndarray, shape (n_layers, n_targets) | None
        Held-out Pearson r of the predictions of all outer folds pooled into one series (``r``
        is the mean over folds of each fold's r). The usual score of stimulus-level studies.
    weights : EncoderWeights | None
        With ``save_weights``: each layer's ridge weights refitted on all rows and what turns
        new stimuli into the same design (:mod:`neuroenc.encoding.weights`); :meth:`predict`
        uses them.
    source : Path | None
        The file the results were read from (:meth:`load`), for messages.
    sensor_info : mne.Info | None
        The measurement info of MEG/EEG targets (its channels are the targets, in order).
    trf_weights : dict of int -> ndarray (n_targets, n_features, n_lags)
        TRF weights per layer (:func:`~neuroenc.encoding.sensors.add_trf`); lags in ``trf_lags`` (s).
    unique : UniqueContribution | None
        Each layer's unique contribution beyond the baseline (``delta_r2``, ``delta_r``, their
        fold values, p-values, intervals, best-layer set and ``baseline_names``), from joint
        models of [baseline + layer] (:mod:`neuroenc.encoding.contribution`); None without a
        baseline.
    brainscore_split_r : ndarray, shape (n_splits, n_layers, n_targets) | None
        Brain-Score language's linear metric per split and target (``scoring="brainscore-linear"``):
        :attr:`r_brainscore` per target, :meth:`brainscore_scores` per layer.
    """

    r: np.ndarray
    r2: np.ndarray
    layers: np.ndarray
    targets: list[str]
    relative_depth: np.ndarray | None = None
    pvalues: np.ndarray | None = None
    alphas: np.ndarray | None = None
    fold_r: np.ndarray | None = None
    fold_r2: np.ndarray | None = None
    baseline: dict[str, np.ndarray] = field(default_factory=dict)
    noise_ceiling: np.ndarray | None = None
    split_scores: dict[str, np.ndarray] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    pvalues_best: np.ndarray | None = None
    comparison: LayerComparison | None = None
    r_pooled: np.ndarray | None = None
    weights: Any = None
    source: Path | None = field(default=None, repr=False, compare=False)
    sensor_info: Any = None
    trf_weights: dict[int, np.ndarray] = field(default_factory=dict)
    trf_lags: np.ndarray | None = None
    unique: UniqueContribution | None = None
    brainscore_split_r: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.r = np.atleast_2d(np.asarray(self.r, dtype=np.float64))
        self.r2 = np.atleast_2d(np.asarray(self.r2, dtype=np.float64))
        self.layers = np.asarray(self.layers, dtype=np.int64).reshape(-1)
        self.targets = [str(t) for t in self.targets]
        shape = (self.layers.size, len(self.targets))
        for name in ("r", "r2", "pvalues", "alphas", "r_pooled"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=np.float64)
                if value.shape != shape:
                    raise ValueError(
                        f"EncodingResults.{name} has shape {value.shape}; expected {shape} "
                        "(n_layers, n_targets)."
                    )
                setattr(self, name, value)
        for name in ("fold_r", "fold_r2", "brainscore_split_r"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=np.float64)
                if value.ndim != 3 or value.shape[1:] != shape:
                    raise ValueError(
                        f"EncodingResults.{name} has shape {value.shape}; expected (n_folds,) + {shape}."
                    )
                setattr(self, name, value)
        for name in ("pvalues_best",):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=np.float64)
                if value.shape != (len(self.targets),):
                    raise ValueError(
                        f"EncodingResults.{name} has shape {value.shape}; expected "
                        f"({len(self.targets)},) (n_targets,)."
                    )
                setattr(self, name, value)
        if self.comparison is not None and self.comparison.delta_r.shape != shape:
            raise ValueError(
                f"EncodingResults.comparison has shape {self.comparison.delta_r.shape}; expected {shape}."
            )
        if self.unique is not None and self.unique.delta_r2.shape != shape:
            raise ValueError(
                f"EncodingResults.unique has shape {self.unique.delta_r2.shape}; expected {shape}."
            )
        if self.relative_depth is None:
            top = max(int(self.provenance.get("n_model_layers", 0)) - 1, int(self.layers.max(initial=0)), 1)
            self.relative_depth = self.layers / top
        self.relative_depth = np.asarray(self.relative_depth, dtype=np.float64).reshape(-1)
        self.baseline = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in self.baseline.items()
                         if k != "qvalues"}
        if "pvalues" in self.baseline:
            self.baseline["qvalues"] = fdr_bh(self.baseline["pvalues"])
        if self.noise_ceiling is not None:
            self.noise_ceiling = np.asarray(self.noise_ceiling, dtype=np.float64).reshape(-1)
        self.split_scores = {k: np.asarray(v, dtype=np.float64) for k, v in self.split_scores.items()}
        if self.sensor_info is not None or self.trf_weights:
            from .sensors import check_sensor_info, check_trf

            if self.sensor_info is not None:
                check_sensor_info(self.sensor_info, self.targets)
            self.trf_weights, self.trf_lags = check_trf(self.trf_weights, self.trf_lags, self.n_targets)

    @property
    def qvalues(self) -> np.ndarray | None:
        """Benjamini-Hochberg q-values of :attr:`pvalues` across targets, per layer."""
        return None if self.pvalues is None else fdr_bh(self.pvalues, axis=-1)

    @property
    def qvalues_best(self) -> np.ndarray | None:
        """Benjamini-Hochberg q-values of :attr:`pvalues_best` across targets."""
        return None if self.pvalues_best is None else fdr_bh(self.pvalues_best)

    @property
    def n_layers(self) -> int:
        """Number of layers scored."""
        return int(self.layers.size)

    @property
    def n_targets(self) -> int:
        """Number of targets scored."""
        return len(self.targets)

    @property
    def subject(self) -> str | None:
        """The subject, from the provenance."""
        return self.provenance.get("subject")

    @property
    def model(self) -> str | None:
        """The model id, from the provenance."""
        return self.provenance.get("model")

    def to_frame(self) -> pd.DataFrame:
        """A tidy table: one row per (layer, target) with r, r2, p, q, alpha, depth, subject, model.

        ``p`` and ``q`` are each layer's own; with ``pvalues_best``, the columns ``p_best`` and
        ``q_best`` repeat each target's p- and q-value of its best layer corrected for the
        choice of layer (the same on every row of the target).
        """
        n_l, n_t = self.r.shape
        df = pd.DataFrame(
            {
                "subject": self.subject,
                "model": self.model,
                "layer": np.repeat(self.layers, n_t),
                "relative_depth": np.repeat(self.relative_depth, n_t),
                "target": np.tile(np.asarray(self.targets, dtype=object), n_l),
                "r": self.r.ravel(),
                "r2": self.r2.ravel(),
            }
        )
        for name, col in (("pvalues", "p"), ("qvalues", "q"), ("alphas", "alpha")):
            value = getattr(self, name)
            df[col] = value.ravel() if value is not None else np.nan
        if self.pvalues_best is not None:
            df["p_best"] = np.tile(self.pvalues_best, n_l)
            df["q_best"] = np.tile(self.qvalues_best, n_l)
        if self.r_pooled is not None:
            df["r_pooled"] = self.r_pooled.ravel()
        if self.brainscore_split_r is not None:
            df["r_brainscore"] = self.r_brainscore.ravel()
        if "r" in self.baseline:
            df["baseline_r"] = np.tile(self.baseline["r"], n_l)
        if self.noise_ceiling is not None:
            df["noise_ceiling"] = np.tile(self.noise_ceiling, n_l)
        if self.comparison is not None:
            df["delta_r"] = self.comparison.delta_r.ravel()
            df["p_vs_best"] = self.comparison.pvalues.ravel()
            df["in_best_set"] = self.comparison.in_best_set.ravel()
        return df

    def holdout_scores(self) -> pd.DataFrame:
        """The scores of a fixed train/test protocol (``cv="holdout:<run>"``), as LeBel et al.
        2023 and Antonello et al. 2023 report them: one row per (layer, target) with ``r``
        (held-out Pearson r), ``r_abs_r`` (``r * |r|``), ``cc_max`` (the noise ceiling, from the
        held-out run's repeats when it has them) and ``cc_norm`` (``r / cc_max``, Schoppe et
        al. 2016); ``cc_max`` and ``cc_norm`` are NaN without a ceiling. For other CV schemes
        ``r`` is the mean over folds, which is not these papers' score."""
        from .stats import cc_norm, signed_square

        n_l, n_t = self.r.shape
        ceiling = self.noise_ceiling if self.noise_ceiling is not None else np.full(n_t, np.nan)
        return pd.DataFrame({
            "layer": np.repeat(self.layers, n_t),
            "target": np.tile(np.asarray(self.targets, dtype=object), n_l),
            "r": self.r.ravel(),
            "r_abs_r": signed_square(self.r).ravel(),
            "cc_max": np.tile(ceiling, n_l),
            "cc_norm": cc_norm(self.r, ceiling[None, :]).ravel(),
        })

    def best(self) -> pd.DataFrame:
        """The best layer of each target, with what it was tested against.

        Returns
        -------
        table : DataFrame
            One row per target: ``best_layer``, ``best_depth``, ``r`` and ``r2`` there; ``p``
            and ``q``: the permutation p-value of that r *against chance* and its FDR q-value,
            corrected for choosing the best of the layers when the results have
            ``pvalues_best`` (``p_method`` ``"max over layers"``; otherwise the best layer's
            own, ``"best layer only"``), ``p_layer``/``q_layer`` the best layer's own;
            ``r_last`` (the last layer's r), ``baseline_r`` and ``noise_ceiling`` (NaN when
            absent). With layer comparisons (tested *against the other layers*): ``best_set``
            (the layers not reliably worse than the best, e.g. ``"12–30"``), ``n_in_set``,
            ``set_span`` (its extent in relative depth), ``delta_last`` (best minus last layer)
            and ``delta_mid`` (best minus the best intermediate layer ``mid_layer``, relative
            depth 1/3-2/3) with their intervals (``_low``, ``_high``): differences of held-out
            r, each of which can be negative; ``at_chance`` (``p`` above the comparison's
            alpha: the best layer does not predict above chance, so its margins are no
            evidence), and ``verdict``: the same in words ("at chance: ..." without margins
            where ``at_chance``). The best-layer r is a maximum over layers, so it is
            optimistically biased.
        """
        from .compare import chance_mask, margin_columns, verdicts

        n_t = self.n_targets
        best, valid = best_index(self.r)
        idx = np.arange(n_t)
        nan = np.full(n_t, np.nan)

        def at_best(arr):
            return np.where(valid, arr[best, idx], np.nan) if arr is not None else nan

        reported = best_pvalues(valid, self.pvalues_best if self.pvalues_best is not None else nan,
                                self.qvalues_best if self.qvalues_best is not None else nan,
                                at_best(self.pvalues), at_best(self.qvalues))
        table = pd.DataFrame({
            "target": self.targets,
            "best_layer": pd.array(np.where(valid, self.layers[best], np.nan), dtype="Int64"),
            "best_depth": np.where(valid, self.relative_depth[best], np.nan),
            "r": at_best(self.r),
            "r2": at_best(self.r2),
            "p": reported["p"],
            "q": reported["q"],
            "p_method": reported["p_method"],
            "p_layer": reported["p_layer"],
            "q_layer": reported["q_layer"],
            "r_last": self.r[int(np.argmax(self.layers))],
            "baseline_r": self.baseline.get("r", nan),
            "noise_ceiling": self.noise_ceiling if self.noise_ceiling is not None else nan,
        })
        if self.comparison is None:
            return table
        comp = self.comparison
        margins = margin_columns(comp, self.r, self.layers, self.relative_depth)
        for name, value in margins.items():
            table[name] = value
        table["at_chance"] = chance_mask(table["p"].to_numpy(np.float64), comp.alpha)
        table["verdict"] = verdicts(self.layers[best], margins, valid, comp.ci,
                                    p_chance=table["p"].to_numpy(np.float64), alpha=comp.alpha)
        return table

    # ------------------------------------------------------------------ I/O
    def save(self, path: str | os.PathLike) -> Path:
        """Write the results to an HDF5 file, atomically (temp file + ``os.replace``)."""
        import h5py

        path = Path(path)
        check_replace(path, "results file")  # never over a file neuroenc did not write
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = RESULTS_FORMAT
                f.create_dataset("scores/r", data=self.r)
                f.create_dataset("scores/r2", data=self.r2)
                if self.r_pooled is not None:
                    f.create_dataset("scores/r_pooled", data=self.r_pooled)
                f.create_dataset("layers", data=self.layers)
                f.create_dataset("relative_depth", data=self.relative_depth)
                f.create_dataset("targets", data=np.asarray(self.targets, dtype=object),
                                 dtype=h5py.string_dtype("utf-8"))
                for name in ("pvalues", "qvalues", "alphas", "noise_ceiling", "pvalues_best", "qvalues_best"):
                    value = getattr(self, name)
                    if value is not None:
                        f.create_dataset(name, data=value)
                if self.comparison is not None:
                    c = self.comparison
                    group = f.create_group("compare")
                    for name in ("delta_r", "pvalues", "in_best_set", "ci_low", "ci_high"):
                        group.create_dataset(name, data=getattr(c, name))
                    for key, value in c.attrs().items():
                        group.attrs[key] = value
                if self.unique is not None:
                    self.unique.save(f.create_group("unique"))
                if self.fold_r is not None:
                    f.create_dataset("fold_scores/r", data=self.fold_r)
                if self.fold_r2 is not None:
                    f.create_dataset("fold_scores/r2", data=self.fold_r2)
                if self.brainscore_split_r is not None:
                    f.create_dataset("scores/brainscore_split_r", data=self.brainscore_split_r)
                for key, value in self.baseline.items():
                    f.create_dataset(f"baseline/{key}", data=value)
                for key, value in self.split_scores.items():
                    f.create_dataset(f"split_scores/{key}", data=value)
                if self.sensor_info is not None or self.trf_weights:
                    from .sensors import write_sensor_h5

                    write_sensor_h5(f, self.sensor_info, self.trf_weights, self.trf_lags)
                f.attrs["settings"] = json.dumps(self.settings, default=json_default)
                f.attrs["provenance"] = json.dumps(self.provenance, default=json_default)
                f.attrs["warnings"] = json.dumps(list(self.warnings))
                if self.weights is not None:
                    from .weights import write_weights

                    write_weights(f, self.weights)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "EncodingResults":
        """Read a results file written by :meth:`save`."""
        import h5py

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"results file not found: {str(path)!r}.")
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != RESULTS_FORMAT:
                raise ValueError(
                    f"{str(path)!r} is not a neuroenc results file (format attribute "
                    f"{f.attrs.get('format')!r}, expected {RESULTS_FORMAT!r})."
                )

            def opt(key):
                return f[key][()] if key in f else None

            from .sensors import read_sensor_h5
            from .weights import read_weights

            sensor_info, trf_weights, trf_lags = read_sensor_h5(f)
            results = cls(
                r=f["scores/r"][()],
                r2=f["scores/r2"][()],
                layers=f["layers"][()],
                targets=[t.decode() if isinstance(t, bytes) else str(t) for t in f["targets"][()]],
                relative_depth=opt("relative_depth"),
                pvalues=opt("pvalues"),
                alphas=opt("alphas"),
                fold_r=opt("fold_scores/r"),
                fold_r2=opt("fold_scores/r2"),
                baseline={k: v[()] for k, v in f["baseline"].items()} if "baseline" in f else {},
                noise_ceiling=opt("noise_ceiling"),
                split_scores={k: v[()] for k, v in f["split_scores"].items()} if "split_scores" in f else {},
                settings=json.loads(f.attrs.get("settings", "{}")),
                provenance=json.loads(f.attrs.get("provenance", "{}")),
                warnings=json.loads(f.attrs.get("warnings", "[]")),
                pvalues_best=opt("pvalues_best"),
                comparison=_load_comparison(f["compare"], f["scores/r"][()]) if "compare" in f else None,
                r_pooled=opt("scores/r_pooled"),
                weights=read_weights(f, path) if "weights" in f else None,
                source=path,
                sensor_info=sensor_info,
                trf_weights=trf_weights,
                trf_lags=trf_lags,
                unique=UniqueContribution.load(f["unique"]) if "unique" in f else None,
                brainscore_split_r=opt("scores/brainscore_split_r"),
            )
        return results

    @property
    def r_brainscore(self) -> np.ndarray | None:
        """Brain-Score's linear metric per layer and target: the mean over their splits of the
        held-out r (None unless fitted with ``scoring="brainscore-linear"``)."""
        return None if self.brainscore_split_r is None else self.brainscore_split_r.mean(axis=0)

    def brainscore_scores(self, ceiling: Any = None) -> pd.DataFrame:
        """Brain-Score's score of each layer, raw and ceiling-normalised (see
        :func:`~neuroenc.encoding.brainscore_linear.brainscore_table`)."""
        from .brainscore_linear import brainscore_table

        return brainscore_table(self, ceiling=ceiling)

    def predict(self, features_or_design: Any, layer: int | str = "best", **grid: Any) -> np.ndarray:
        """Predict the responses of every target to new stimuli with the saved encoders.

        Needs results fitted with ``save_weights=True`` (``--save-weights``); see
        :func:`~neuroenc.encoding.predict.predict_responses`.

        Parameters
        ----------
        features_or_design : FeatureSet | list/dict of FeatureSet | StimulusFeatures | design | ndarray
            The new stimuli's features (word features are aligned on a TR grid with the fit's
            alignment settings; stimulus-level features z-scored with the training statistics),
            a design object, or one layer's design array.
        layer : int | "best"
            The layer to predict from, or each target's best layer.
        **grid
            Word features: ``tr``, ``n_trs``, ``start`` of the new runs' TR grids.

        Returns
        -------
        Y_hat : ndarray, shape (n_rows, n_targets)
            In the units of the training responses (z-scores).
        """
        from .predict import predict_responses

        return predict_responses(self, features_or_design, layer, **grid).values

    def to_evoked(self, layer: Any = None, *, kind: str = "r", info: Any = None) -> Any:
        """Scores per channel of sensor results as an :class:`mne.EvokedArray` (one time point
        per layer; ``kind``: ``"r"``, ``"delta_r"`` against the baseline, ``"r2"``); see
        :func:`~neuroenc.encoding.sensors.results_to_evoked`."""
        from .sensors import results_to_evoked

        return results_to_evoked(self, layer, kind=kind, info=info)

    def trf(self, layer: int) -> np.ndarray:
        """The TRF weights of one layer, shape (n_channels, n_features, n_lags); the lags (s) are
        :attr:`trf_lags`. Fitted by :func:`~neuroenc.encoding.sensors.add_trf`."""
        if int(layer) not in self.trf_weights:
            raise KeyError(
                f"no TRF weights for layer {layer}: these results hold them for layers "
                f"{sorted(self.trf_weights) or 'none'}; fit them with neuroenc.encoding.sensors.add_trf(results, "
                "design, layers=[...]) on the MEG/EEG design the results were fitted on."
            )
        return self.trf_weights[int(layer)]

    def to_xarray(self) -> Any:
        """The results as an :class:`xarray.Dataset` on ``layer × target`` (coordinates: layer
        indices, relative depth, target names); see
        :func:`~neuroenc.encoding.export.results_to_xarray`. Needs xarray
        (``pip install neuroenc[xarray]``)."""
        from .export import results_to_xarray

        return results_to_xarray(self)

    def to_netcdf(self, path: str | os.PathLike, engine: str | None = None) -> Path:
        """Write :meth:`to_xarray` as a NetCDF file, atomically; see
        :func:`~neuroenc.encoding.export.results_to_netcdf`."""
        from .export import results_to_netcdf

        return results_to_netcdf(self, path, engine=engine)


def _load_comparison(group, r: np.ndarray) -> LayerComparison:
    """A :class:`LayerComparison` from the ``/compare`` group of a results file."""
    from .compare import best_rows

    return LayerComparison(
        delta_r=group["delta_r"][()], pvalues=group["pvalues"][()],
        in_best_set=group["in_best_set"][()].astype(bool), ci_low=group["ci_low"][()],
        ci_high=group["ci_high"][()], best=best_rows(np.atleast_2d(r)),
        alpha=float(group.attrs["alpha"]), ci=float(group.attrs["ci"]),
        n_draws=int(group.attrs["n_draws"]), source=str(group.attrs["source"]),
    )
