"""Encoding results back from the xarray Dataset (or NetCDF file) of
:mod:`neuroenc.encoding.export`."""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from .compare import LayerComparison, best_rows
from .export import EXPORT_FORMAT
from .results import EncodingResults


def results_from_xarray(dataset: Any) -> EncodingResults:
    """:class:`EncodingResults` from a Dataset written by :func:`results_to_xarray` (or read
    back from its NetCDF file with ``xarray.open_dataset``).

    Raises
    ------
    ValueError
        For a Dataset that is not an export of neuroenc results.
    """
    if dataset.attrs.get("format") != EXPORT_FORMAT:
        raise ValueError(f"this Dataset is not an export of neuroenc results (format attribute "
                         f"{dataset.attrs.get('format')!r}, expected {EXPORT_FORMAT!r}).")

    def opt(name: str) -> np.ndarray | None:
        return np.asarray(dataset[name].values) if name in dataset.data_vars else None

    r = opt("r")
    comparison = None
    if "delta_r" in dataset.data_vars:
        comparison = LayerComparison(
            delta_r=opt("delta_r"), pvalues=opt("p_vs_best"), in_best_set=opt("in_best_set").astype(bool),
            ci_low=opt("delta_r_low"), ci_high=opt("delta_r_high"), best=best_rows(np.atleast_2d(r)),
            alpha=float(dataset.attrs["compare_alpha"]), ci=float(dataset.attrs["compare_ci"]),
            n_draws=int(dataset.attrs["compare_n_draws"]), source=str(dataset.attrs["compare_source"]))
    return EncodingResults(
        r=r, r2=opt("r2"), layers=np.asarray(dataset["layer"].values, dtype=np.int64),
        targets=[str(t) for t in dataset["target"].values],
        relative_depth=np.asarray(dataset["relative_depth"].values, dtype=np.float64),
        pvalues=opt("pvalues"), alphas=opt("alphas"), fold_r=opt("fold_r"), fold_r2=opt("fold_r2"),
        baseline={k[len("baseline_"):]: opt(k) for k in dataset.data_vars if str(k).startswith("baseline_")},
        noise_ceiling=opt("noise_ceiling"),
        split_scores={k[len("split_"):]: opt(k) for k in dataset.data_vars if str(k).startswith("split_")},
        settings=json.loads(dataset.attrs.get("settings", "{}")),
        provenance=json.loads(dataset.attrs.get("provenance", "{}")),
        warnings=json.loads(dataset.attrs.get("warnings", "[]")),
        pvalues_best=opt("pvalues_best"), comparison=comparison, r_pooled=opt("r_pooled"),
        brainscore_split_r=opt("brainscore_split_r"),
    )
