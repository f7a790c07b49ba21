"""The :class:`EncodingResults` container and its HDF5 file format.

One results file per (model, subject) fit. Layout::

    /scores/r            (n_layers, n_targets) float64   held-out Pearson r (CV mean)
    /scores/r2           (n_layers, n_targets) float64   held-out R² (CV mean)
    /pvalues             (n_layers, n_targets) float64   permutation p-values of r (each layer on its own)
    /qvalues             (n_layers, n_targets) float64   Benjamini-Hochberg q-values (across targets)
    /pvalues_best        (n_targets,) float64  optional: p-value of the best layer's r, corrected for
                                               choosing the best of the layers (max over layers of
                                               the permutation null, the same draws for every layer)
    /qvalues_best        (n_targets,) float64  optional: their BH q-values (across targets)
    /layers              (n_layers,) int64               layer indices (0 = embeddings)
    /relative_depth      (n_layers,) float64             layer / (n_model_layers - 1)
    /targets             (n_targets,) utf-8              target names (ROIs, voxels, sensors)
    /alphas              (n_layers, n_targets) float64   best ridge alpha (mean over folds)
    /fold_scores/r       (n_folds, n_layers, n_targets)  r of each outer fold
    /fold_scores/r2      (n_folds, n_layers, n_targets)
    /baseline/r          (n_targets,)     optional: baseline model (e.g. word rate + sound power)
    /baseline/r2         (n_targets,)     optional
    /baseline/pvalues    (n_targets,)     optional
    /noise_ceiling       (n_targets,)     optional: ceiling on r (NaN where unknown)
    /split_scores/<name> (n_bands, n_targets) optional: banded-model split scores
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

RESULTS_FORMAT = "neuroenc-results/1"


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
    pvalues, qvalues : ndarray, shape (n_layers, n_targets) | None
        Permutation p-values of ``r`` and their FDR (Benjamini-Hochberg) q-values, each layer
        on its own: the p-value at a target's best layer is *not* corrected for having chosen
        that layer among many (use ``pvalues_best``).
    alphas : ndarray, shape (n_layers, n_targets) | None
        Chosen ridge penalties.
    fold_r, fold_r2 : ndarray, shape (n_folds, n_layers, n_targets) | None
        Scores of each outer fold.
    baseline : dict of str -> ndarray (n_targets,)
        A baseline model's ``r``, ``r2``, ``pvalues``.
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
    pvalues_best, qvalues_best : ndarray, shape (n_targets,) | None
        The permutation p-value of each target's best r (the highest ``r`` over layers),
        corrected for choosing that layer: ``(1 + #{max over layers of the null >= r at the best
        layer}) / (1 + n_permutations)``, with the same permutations for every layer; and its
        Benjamini-Hochberg q-values across targets. None when there were no permutations, or
        when the layers were fitted apart and merged (it needs every layer's null at once).
    """

    r: np.ndarray
    r2: np.ndarray
    layers: np.ndarray
    targets: list[str]
    relative_depth: np.ndarray | None = None
    pvalues: np.ndarray | None = None
    qvalues: np.ndarray | None = None
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
    qvalues_best: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.r = np.atleast_2d(np.asarray(self.r, dtype=np.float64))
        self.r2 = np.atleast_2d(np.asarray(self.r2, dtype=np.float64))
        self.layers = np.asarray(self.layers, dtype=np.int64).reshape(-1)
        self.targets = [str(t) for t in self.targets]
        shape = (self.layers.size, len(self.targets))
        for name in ("r", "r2", "pvalues", "qvalues", "alphas"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=np.float64)
                if value.shape != shape:
                    raise ValueError(
                        f"EncodingResults.{name} has shape {value.shape}; expected {shape} "
                        "(n_layers, n_targets)."
                    )
                setattr(self, name, value)
        for name in ("fold_r", "fold_r2"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=np.float64)
                if value.ndim != 3 or value.shape[1:] != shape:
                    raise ValueError(
                        f"EncodingResults.{name} has shape {value.shape}; expected (n_folds,) + {shape}."
                    )
                setattr(self, name, value)
        for name in ("pvalues_best", "qvalues_best"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=np.float64)
                if value.shape != (len(self.targets),):
                    raise ValueError(
                        f"EncodingResults.{name} has shape {value.shape}; expected "
                        f"({len(self.targets)},) (n_targets,)."
                    )
                setattr(self, name, value)
        if self.qvalues_best is None and self.pvalues_best is not None:
            from .stats import fdr_bh

            self.qvalues_best = fdr_bh(self.pvalues_best)
        if self.relative_depth is None:
            top = max(int(self.provenance.get("n_model_layers", 0)) - 1, int(self.layers.max(initial=0)), 1)
            self.relative_depth = self.layers / top
        self.relative_depth = np.asarray(self.relative_depth, dtype=np.float64).reshape(-1)
        self.baseline = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in self.baseline.items()}
        if self.noise_ceiling is not None:
            self.noise_ceiling = np.asarray(self.noise_ceiling, dtype=np.float64).reshape(-1)
        self.split_scores = {k: np.asarray(v, dtype=np.float64) for k, v in self.split_scores.items()}

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
        if "r" in self.baseline:
            df["baseline_r"] = np.tile(self.baseline["r"], n_l)
        if self.noise_ceiling is not None:
            df["noise_ceiling"] = np.tile(self.noise_ceiling, n_l)
        return df

    # ------------------------------------------------------------------ I/O
    def save(self, path: str | os.PathLike) -> Path:
        """Write the results to an HDF5 file, atomically (temp file + ``os.replace``)."""
        import h5py

        path = Path(path)
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = RESULTS_FORMAT
                f.create_dataset("scores/r", data=self.r)
                f.create_dataset("scores/r2", data=self.r2)
                f.create_dataset("layers", data=self.layers)
                f.create_dataset("relative_depth", data=self.relative_depth)
                f.create_dataset("targets", data=np.asarray(self.targets, dtype=object),
                                 dtype=h5py.string_dtype("utf-8"))
                for name in ("pvalues", "qvalues", "alphas", "noise_ceiling", "pvalues_best", "qvalues_best"):
                    value = getattr(self, name)
                    if value is not None:
                        f.create_dataset(name, data=value)
                if self.fold_r is not None:
                    f.create_dataset("fold_scores/r", data=self.fold_r)
                if self.fold_r2 is not None:
                    f.create_dataset("fold_scores/r2", data=self.fold_r2)
                for key, value in self.baseline.items():
                    f.create_dataset(f"baseline/{key}", data=value)
                for key, value in self.split_scores.items():
                    f.create_dataset(f"split_scores/{key}", data=value)
                f.attrs["settings"] = json.dumps(self.settings, default=json_default)
                f.attrs["provenance"] = json.dumps(self.provenance, default=json_default)
                f.attrs["warnings"] = json.dumps(list(self.warnings))
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

            return cls(
                r=f["scores/r"][()],
                r2=f["scores/r2"][()],
                layers=f["layers"][()],
                targets=[t.decode() if isinstance(t, bytes) else str(t) for t in f["targets"][()]],
                relative_depth=opt("relative_depth"),
                pvalues=opt("pvalues"),
                qvalues=opt("qvalues"),
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
                qvalues_best=opt("qvalues_best"),
            )
