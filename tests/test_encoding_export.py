"""Encoding results as xarray Datasets and NetCDF files (``EncodingResults.to_xarray``/``to_netcdf``)."""
import json
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from neuroenc.encoding import EncodingResults
from neuroenc.encoding.compare import compare_layers


def make_results(rng, with_comparison=True) -> EncodingResults:
    """4 layers x 3 targets with every optional part; target B is best fit by layer 2."""
    n_l, n_t = 4, 3
    r = rng.uniform(0.0, 0.2, (n_l, n_t))
    r[2, 1] = 0.6
    draws = rng.normal(0, 0.02, (200, n_l, n_t))
    return EncodingResults(
        r=r, r2=r ** 2, layers=np.arange(n_l), targets=["A", "B", "C"],
        pvalues=rng.uniform(0, 1, (n_l, n_t)), alphas=10.0 ** rng.integers(0, 4, (n_l, n_t)),
        fold_r=rng.uniform(0, 0.3, (5, n_l, n_t)), fold_r2=rng.uniform(0, 0.1, (5, n_l, n_t)),
        baseline={"r": np.array([0.1, 0.2, 0.0]), "pvalues": np.array([0.5, 0.01, 0.9])},
        noise_ceiling=np.array([0.8, np.nan, 0.7]), split_scores={"low": rng.uniform(0, 0.1, (2, n_t))},
        settings={"cv": "leave-one-run-out", "delays": [1, 2, 3, 4]},
        provenance={"subject": "s18", "model": "tiny", "runs": ["alice"]}, warnings=["a warning"],
        pvalues_best=np.array([0.3, 0.002, 0.6]),
        comparison=compare_layers(r, draws) if with_comparison else None,
        r_pooled=r * 0.9,
    )


def test_to_xarray_dims_coords_and_values(rng):
    pytest.importorskip("xarray")
    res = make_results(rng)
    ds = res.to_xarray()
    assert ds["r"].dims == ("layer", "target")
    assert_array_equal(ds["layer"].values, [0, 1, 2, 3])
    assert list(ds["target"].values) == ["A", "B", "C"]
    assert_allclose(ds["relative_depth"].values, [0, 1 / 3, 2 / 3, 1])
    assert float(ds["r"].sel(layer=2, target="B")) == pytest.approx(0.6)
    assert int(ds["r"].sel(target="B").idxmax("layer")) == 2
    assert_allclose(ds["pvalues_best"].sel(target="B"), 0.002)
    assert_allclose(ds["baseline_r"].values, [0.1, 0.2, 0.0])
    assert ds["fold_r"].dims == ("fold", "layer", "target") and ds.sizes["fold"] == 5
    assert ds["in_best_set"].dtype == bool and bool(ds["in_best_set"].sel(layer=2, target="B"))
    assert json.loads(ds.attrs["provenance"])["runs"] == ["alice"] and ds.attrs["subject"] == "s18"
    assert_allclose(ds["qvalues"].values, res.qvalues)


@pytest.mark.parametrize("engine", [None, "scipy"])  # the first installed; NetCDF-3 (always there)
def test_netcdf_round_trip(rng, tmp_path, engine):
    xr = pytest.importorskip("xarray")
    from neuroenc.encoding.from_xarray import results_from_xarray

    res = make_results(rng)
    path = res.to_netcdf(tmp_path / "out" / "s18.nc", engine=engine)
    with xr.open_dataset(path, engine=engine) as ds:
        back = results_from_xarray(ds.load())
    for name in ("r", "r2", "pvalues", "alphas", "fold_r", "fold_r2", "r_pooled", "relative_depth", "pvalues_best"):
        assert_allclose(getattr(back, name), getattr(res, name), err_msg=name)
    assert_array_equal(back.layers, res.layers) and back.targets == res.targets
    assert_allclose(back.noise_ceiling, res.noise_ceiling)  # NaN survives
    assert_allclose(back.baseline["pvalues"], res.baseline["pvalues"])
    assert_allclose(back.split_scores["low"], res.split_scores["low"])
    assert_array_equal(back.comparison.in_best_set, res.comparison.in_best_set)
    assert_allclose(back.comparison.ci_low, res.comparison.ci_low)
    assert back.settings == res.settings and back.provenance == res.provenance and back.warnings == ["a warning"]
    assert back.best()["best_layer"].tolist() == res.best()["best_layer"].tolist()
    res.to_netcdf(path, engine=engine)  # its own file: replaced


def test_without_comparison(rng, tmp_path):
    pytest.importorskip("xarray")
    res = make_results(rng, with_comparison=False)
    ds = res.to_xarray()
    assert "delta_r" not in ds and "in_best_set" not in ds


def test_netcdf_never_replaces_a_foreign_file(rng, tmp_path):
    pytest.importorskip("xarray")
    from neuroenc._owned import ForeignFileError

    other = tmp_path / "mine.nc"
    other.write_text("not neuroenc's", encoding="utf-8")
    with pytest.raises(ForeignFileError, match=r"NetCDF file .*mine.nc' would replace a file that neuroenc did not"):
        make_results(rng).to_netcdf(other)
    assert other.read_text(encoding="utf-8") == "not neuroenc's"


def test_from_xarray_refuses_other_datasets(rng):
    xr = pytest.importorskip("xarray")
    from neuroenc.encoding.from_xarray import results_from_xarray

    with pytest.raises(ValueError, match=r"not an export of neuroenc results \(format attribute None"):
        results_from_xarray(xr.Dataset({"r": ("x", [1.0])}))


def test_without_xarray_the_error_names_the_extra(rng, monkeypatch):
    monkeypatch.setitem(sys.modules, "xarray", None)  # as if not installed
    res = make_results(rng)
    with pytest.raises(ImportError, match=r"needs the package 'xarray': pip install neuroenc\[xarray\]"):
        res.to_xarray()
    with pytest.raises(ImportError, match=r"pip install neuroenc\[xarray\]"):
        res.to_netcdf("never.nc")
