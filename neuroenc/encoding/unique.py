"""What each layer adds to a baseline: its unique held-out R² (:func:`unique_r2`).

For each layer, a banded ridge (:class:`~neuroenc.encoding.BandedLayerModel`) of the baseline
band and that layer's band is compared with the baseline band alone, on the same outer folds
(same CV, gap and seed): ``delta_r2 = R²(baseline + layer) − R²(baseline)``, per fold and its
mean. A layer that carries nothing beyond the baseline (e.g. word rate or word length that the
layer merely re-encodes) has a delta near 0; a held-out R² can fall when a band is added (the
extra penalty search costs variance), so the delta can be negative.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .banded import BandedLayerModel, Bands, make_bands
from .cv import DEFAULT_GAP
from .designs import as_layer_designs, gap_for


def unique_r2(designs: Any, nuisance: Mapping[str, Any], Y: Any = None, groups: Any = None, *,
              layers: Sequence[int] | None = None, targets: Sequence[str] | None = None,
              **banded: Any) -> pd.DataFrame:
    """The unique held-out R² of each layer beyond a baseline, on the story path.

    Parameters
    ----------
    designs : neuroenc.align.Design | LayerDesigns | list/dict of arrays
        Per-layer designs on the response grid (as :func:`~neuroenc.encoding.fit_encoding`).
    nuisance : dict of str -> array (n_samples, k)
        The baseline regressors on the same rows (e.g. from
        :func:`~neuroenc.align.regressors.baseline_bands`), together one band ``"baseline"``.
    Y, groups : array-like | None
        Responses and run labels (default: the design's ``Y`` and ``groups``).
    layers : sequence of int | None
        Default: every layer of the designs.
    targets : sequence of str | None
        Target names (default: the design's, else ``"0"``, ``"1"``, ...).
    **banded
        Parameters of :class:`~neuroenc.encoding.BandedLayerModel` (``cv``, ``n_blocks``,
        ``alphas``, ``n_iter``, ``random_state``...), the same for every fit; ``gap`` defaults
        to the designs' (their delays, HRF and resampling window).

    Returns
    -------
    table : DataFrame
        One row per layer and target: ``layer``, ``target``, ``r2_joint`` (baseline + layer),
        ``r2_baseline`` (alone), ``delta_r2`` (their difference, mean over folds),
        ``delta_r2_sem`` (its standard error over folds), ``n_folds``.
    """
    if not isinstance(nuisance, Mapping) or not nuisance:
        raise ValueError("unique_r2 needs the baseline as a non-empty dict of name -> array (n_samples, k), "
                         f"got {type(nuisance).__name__}; e.g. the bands of neuroenc.align.regressors.baseline_bands.")
    source, designs = designs, as_layer_designs(designs)
    if Y is None:
        Y = getattr(source, "Y", None)
        if Y is None:
            raise ValueError("unique_r2: pass Y (the designs carry no responses).")
    if groups is None:
        groups = designs.groups
    Y = np.asarray(Y, dtype=np.float64)
    Y2 = Y[:, None] if Y.ndim == 1 else Y
    layers = list(designs.layers) if layers is None else [int(x) for x in layers]
    missing = [x for x in layers if x not in designs.layers]
    if missing:
        raise ValueError(f"unique_r2: no layer(s) {missing}; the designs have {list(designs.layers)}.")
    names = list(targets) if targets is not None else list(getattr(source, "target_names", None)
                                                           or [str(j) for j in range(Y2.shape[1])])
    if len(names) != Y2.shape[1]:
        raise ValueError(f"unique_r2: {len(names)} target names for {Y2.shape[1]} targets.")
    base = np.hstack([np.asarray(v, dtype=np.float64).reshape(Y2.shape[0], -1) for v in nuisance.values()])
    banded.setdefault("gap", gap_for(designs, DEFAULT_GAP))
    banded.setdefault("refit", False)

    def fit(bands: Bands) -> BandedLayerModel:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*constant.*", category=UserWarning)
            return BandedLayerModel(**banded).fit(bands, Y2, groups=groups)

    alone = fit(Bands({"baseline": base}, info=designs.info))
    rows = []
    for layer in layers:
        joint = fit(make_bands(designs, [layer], nuisance={"baseline": base}))
        if len(joint.cv_splits_) != len(alone.cv_splits_) or any(
                not np.array_equal(a[1], b[1]) for a, b in zip(joint.cv_splits_, alone.cv_splits_)):
            raise RuntimeError("unique_r2: the joint and baseline fits used different folds.")
        delta = joint.fold_r2_ - alone.fold_r2_  # (n_folds, n_targets)
        n_folds = np.isfinite(delta).sum(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            sem = np.nanstd(delta, axis=0, ddof=1) / np.sqrt(n_folds)
            mean = np.nanmean(delta, axis=0)
        for j, name in enumerate(names):
            rows.append({"layer": layer, "target": name, "r2_joint": joint.r2_[j], "r2_baseline": alone.r2_[j],
                         "delta_r2": mean[j], "delta_r2_sem": sem[j] if n_folds[j] >= 2 else np.nan,
                         "n_folds": int(n_folds[j])})
    return pd.DataFrame(rows)
