"""Synthetic encoding results with known answers, for the mapping and report tests."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from neuroenc.encoding.results import EncodingResults

ROIS = ("LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG")
#: The layer at which each ROI's simulated profile peaks (of 9 layers, 0..8).
PEAKS = {"LATL": 2, "RATL": 3, "LPTL": 5, "LIPL": 6, "LPreM": 8, "LIFG": 4}


def true_profile(n_layers: int, peak: int, amplitude: float = 0.3, width: float = 1.5) -> np.ndarray:
    """A bump of height ``amplitude`` centred on layer ``peak``, plus a small floor."""
    layers = np.arange(n_layers)
    return 0.02 + amplitude * np.exp(-((layers - peak) ** 2) / (2 * width**2))


def make_results(
    subject: str | None = "s01",
    *,
    n_layers: int = 9,
    targets: Sequence[str] = ROIS,
    peaks: dict[str, int] | None = None,
    noise: float = 0.02,
    n_folds: int = 4,
    baseline: float | None = 0.05,
    noise_ceiling: bool = True,
    seed: int = 0,
    model: str = "tiny-model",
    provenance: dict | None = None,
    warnings: Sequence[str] = (),
) -> EncodingResults:
    """One subject's results: r per (layer, target) peaks at ``peaks[target]`` (plus noise)."""
    rng = np.random.default_rng(seed)
    peaks = peaks if peaks is not None else {t: PEAKS.get(t, i % n_layers) for i, t in enumerate(targets)}
    truth = np.stack([true_profile(n_layers, peaks[t]) for t in targets], axis=1)
    fold_r = truth[None] + noise * rng.standard_normal((n_folds, n_layers, len(targets)))
    r = fold_r.mean(0)
    r2 = np.sign(r) * r**2
    pvalues = np.clip(np.exp(-40 * r), 1e-4, 1.0)
    prov = {"subject": subject, "model": model, "dataset": "synthetic", "n_model_layers": n_layers,
            "features_sha256": f"{seed:064x}"}
    prov.update(provenance or {})
    return EncodingResults(
        r=r,
        r2=r2,
        layers=np.arange(n_layers),
        targets=list(targets),
        pvalues=pvalues,
        alphas=np.full(r.shape, 10.0) * (1 + np.arange(n_layers))[:, None],
        fold_r=fold_r,
        fold_r2=np.sign(fold_r) * fold_r**2,
        baseline={"r": np.full(len(targets), baseline), "r2": np.full(len(targets), baseline**2)}
        if baseline is not None else {},
        noise_ceiling=np.linspace(0.5, 0.8, len(targets)) if noise_ceiling else None,
        settings={"delays": [1, 2, 3, 4], "cv": "blocks", "alphas": [1.0, 10.0, 100.0]},
        provenance=prov,
        warnings=list(warnings),
    )


def make_group(n_subjects: int = 5, **kwargs) -> list[EncodingResults]:
    """``n_subjects`` results of one model, subjects ``s01``, ``s02``..., each seeded differently."""
    return [make_results(f"s{i + 1:02d}", seed=i, **kwargs) for i in range(n_subjects)]


@dataclass
class UniqueStub:
    """The interface of ``EncodingResults.unique`` (each layer's contribution beyond a baseline),
    for tests of what is built on it: (n_layers, n_targets) arrays unless said."""

    delta_r2: np.ndarray
    delta_r: np.ndarray
    baseline_names: list[str]
    pvalues: np.ndarray | None = None
    ci_low: np.ndarray | None = None
    ci_high: np.ndarray | None = None
    in_best_set: np.ndarray | None = None
    fold_delta_r2: np.ndarray | None = None  # (n_folds, n_layers, n_targets)
    fold_delta_r: np.ndarray | None = None
    pvalues_best: np.ndarray | None = None  # (n_targets,)
    score: str | None = None  # what r² is ("squared-r" or "R2"; None: the default)


def with_unique(res: EncodingResults, delta_r2: np.ndarray, baseline: Sequence[str] = ("length", "position"),
                **fields) -> EncodingResults:
    """``res`` with unique contributions ``delta_r2`` (n_layers, n_targets) beyond ``baseline``."""
    delta_r2 = np.asarray(delta_r2, dtype=np.float64)
    res.unique = UniqueStub(delta_r2=delta_r2, delta_r=np.sign(delta_r2) * np.sqrt(np.abs(delta_r2)),
                            baseline_names=list(baseline), **fields)
    return res


def make_unique_group(n_subjects: int = 8, seed: int = 0):
    """Raw profiles peak at layer 6 ("adds") and 2 ("nothing"); beyond the baseline, "adds" gains
    Δr² = 0.02 at layer 3 (a bump, noise 0.002 across subjects) and "nothing" gains exactly nothing:
    its subjects' Δr² come in pairs of opposite sign (mean 0 at every layer)."""
    rng = np.random.default_rng(seed)
    group = make_group(n_subjects, targets=("adds", "nothing"), peaks={"adds": 6, "nothing": 2})
    half = rng.normal(0, 0.01, (n_subjects // 2, 9))
    nothing = np.concatenate([half, -half])
    for s, res in enumerate(group):
        adds = true_profile(9, 3, amplitude=0.02, width=1.0) - 0.02 + rng.normal(0, 0.002, 9)
        with_unique(res, np.stack([adds, nothing[s]], axis=1))
    return group
