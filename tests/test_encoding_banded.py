"""BandedLayerModel: split scores credit the generating band; scikit-learn conventions."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from _encoding_fixtures import _one_blas_thread, layer_walk, responses_from  # noqa: F401
from sklearn.utils.estimator_checks import parametrize_with_checks

from neuroenc.encoding import BandedLayerModel
from neuroenc.encoding.banded import make_bands
from neuroenc.encoding.designs import LayerDesigns


@pytest.mark.parametrize("form", ["primal", "kernel"])
def test_generating_band_gets_the_largest_split_score(rng, form):
    layers = layer_walk(rng, n_samples=240, n_features=16, n_layers=5)
    Y = responses_from(rng, layers[2], n_targets=10, snr=1.0)
    nuisance = rng.standard_normal((240, 2))
    bands = make_bands(LayerDesigns(range(5), lambda i: layers[i]), [0, 2, 4], {"rate+power": nuisance})
    assert list(bands) == ["layer_0", "layer_2", "layer_4", "rate+power"]
    groups = np.repeat(["a", "b", "c"], 80)
    model = BandedLayerModel(n_iter=6, alphas=np.logspace(-1, 4, 8), form=form, random_state=0,
                             refit=False).fit(bands, Y, groups=groups)
    assert model.form_ == form
    assert np.all(np.argmax(model.split_r2_, 0) == 1)
    assert np.mean(model.split_r2_[1]) > 0.3
    assert np.all(np.abs(model.split_r2_[3]) < 0.05)  # the nuisance band explains nothing
    # the split R² add up to the joint R² of the fold-centred prediction, which is the joint R²
    # (LayerSweep's definition) plus the offset term; the split r to the joint r
    np.testing.assert_allclose(model.fold_split_r2_.sum(1), model.fold_r2_ + model.fold_offset_r2_, atol=1e-8)
    assert np.all(model.fold_offset_r2_ >= -1e-12) and np.any(model.fold_offset_r2_ > 1e-6)
    np.testing.assert_allclose(model.fold_split_r_.sum(1), model.fold_r_, atol=1e-8)
    assert model.deltas_.shape == (3, 4, 10)


def test_banded_predict_split_sums_to_joint(rng):
    layers = layer_walk(rng, n_samples=120, n_features=8, n_layers=2)
    Y = responses_from(rng, layers[1], n_targets=3)
    bands = {"a": layers[0], "b": layers[1]}
    model = BandedLayerModel(n_iter=3, cv=3, gap=0, inner_cv=2, random_state=0).fit(bands, Y)
    split = model.predict(bands, split=True)
    assert split.shape == (2, 120, 3)
    np.testing.assert_allclose(split.sum(0), model.predict(bands), atol=1e-10)
    assert model.score(bands, Y) > 0.2
    with pytest.raises(ValueError, match=r"Bands \['b', 'a'\] differ from the fitted bands \['a', 'b'\]"):
        model.predict({"b": layers[1], "a": layers[0]})


def test_banded_scores_go_into_results(rng, tmp_path):
    from neuroenc.encoding import EncodingResults, fit_encoding

    layers = layer_walk(rng, n_samples=120, n_features=6, n_layers=3)
    Y = responses_from(rng, layers[1], n_targets=4)
    res = fit_encoding(layers, Y, n_permutations=0)
    model = BandedLayerModel(n_iter=3, cv=3, gap=0, inner_cv=2, random_state=0, refit=False)
    model.fit(make_bands(layers, [0, 1, 2]), Y).add_to(res)
    back = EncodingResults.load(res.save(tmp_path / "r.h5"))
    np.testing.assert_allclose(back.split_scores["r2"], model.split_r2_)
    assert back.settings["bands"] == ["layer_0", "layer_1", "layer_2"]
    with pytest.raises(ValueError, match="The results have 4 targets but the banded model 2"):
        BandedLayerModel(n_iter=2, cv=3, gap=0, inner_cv=2, refit=False).fit(layers, Y[:, :2]).add_to(res)


def test_make_bands_groups_layers(rng):
    layers = [rng.standard_normal((10, 3)) for _ in range(4)]
    bands = make_bands(LayerDesigns(range(4), lambda i: layers[i]), [[1, 2, 3], [0, 2]])
    assert list(bands) == ["layers_1-3", "layers_0+2"]
    assert bands["layers_1-3"].shape == (10, 9)
    with pytest.raises(ValueError, match="Nuisance band 'layer_0' has the name of a layer band"):
        make_bands(LayerDesigns(range(4), lambda i: layers[i]), [0], {"layer_0": layers[0]})


def test_banded_bad_input(rng):
    with pytest.raises(ValueError, match="Band 'b' has shape \\(9, 2\\); every band needs 10 rows"):
        BandedLayerModel().fit({"a": np.ones((10, 2)), "b": np.ones((9, 2))}, np.ones(10))
    Y = rng.standard_normal((30, 2))
    Y[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf in 1 target"):
        BandedLayerModel().fit({"a": rng.standard_normal((30, 2))}, Y)


@parametrize_with_checks([BandedLayerModel(alphas=(0.1, 1.0, 10.0), n_iter=2, cv=2, inner_cv=2, gap=0,
                                           random_state=0)])
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        check(estimator)


@pytest.mark.parametrize("form", ["primal", "kernel"])
def test_banded_r2_is_the_layer_sweep_r2(rng, form):
    """One band: the banded model is the layer sweep, and its joint R² is defined as the sweep's
    (the prediction as it is, not re-centred on the test fold); centring would add
    fold_offset_r2_, here > 0."""
    from neuroenc.encoding import LayerSweep

    layers = layer_walk(rng, n_samples=200, n_features=8, n_layers=2)
    Y = responses_from(rng, layers[1], n_targets=5, snr=0.5)
    kw = dict(cv=4, gap=2, inner_cv=3, form=form, refit=False, alphas=np.logspace(-1, 4, 6))
    banded = BandedLayerModel(n_iter=1, random_state=0, **kw).fit({"a": layers[1]}, Y)
    sweep = LayerSweep(**kw).fit([layers[1]], Y)
    np.testing.assert_allclose(banded.fold_r_, sweep.fold_r_[:, 0], atol=1e-10)
    np.testing.assert_allclose(banded.fold_r2_, sweep.fold_r2_[:, 0], atol=1e-10)
    np.testing.assert_allclose(banded.r2_, sweep.r2_[0], atol=1e-10)
    assert banded.fold_offset_r2_.max() > 1e-3
    np.testing.assert_allclose(banded.fold_split_r2_[:, 0], banded.fold_r2_ + banded.fold_offset_r2_, atol=1e-10)


def test_banded_gap_comes_from_the_design(rng):
    """Bands made from an alignment design carry its delays and resampling: the gap is 4 + 3 + 1."""
    from neuroenc.align import make_fmri_design
    from neuroenc.encoding import make_cv
    from neuroenc.features import FeatureSet
    from neuroenc.responses import Response

    n_tr = 150
    onsets = np.sort(rng.uniform(0, n_tr * 2.0 - 4, 500))
    feats = layer_walk(rng, n_samples=500, n_features=4, n_layers=2, smooth=1)
    design = make_fmri_design(FeatureSet(dict(enumerate(feats)), onsets, onsets + 0.2, run="r"),
                              Response(rng.standard_normal((n_tr, 2)), tr=2.0, start=0.0, run="r"))
    bands = make_bands(design, [0, 1])
    assert bands.info["delays"] == [1, 2, 3, 4]
    model = BandedLayerModel(n_iter=2, inner_cv=2, refit=False, random_state=0).fit(bands, design.Y)
    assert model.gap_ == 8
    expected = make_cv("auto", None, n_tr, 5, 8)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
               for a, b in zip(model.cv_splits_, expected))
    plain = BandedLayerModel(n_iter=2, inner_cv=2, refit=False, random_state=0).fit(dict(bands), design.Y)
    assert plain.gap_ == 5  # a plain dict knows nothing of the design: the default
