"""scoring="brainscore-linear": Brain-Score language's linear_pearsonr metric next to the ridge
scores, checked against a verbatim re-implementation of their functions (always), their own
published test value, and brainscore_language itself (when it is importable, or through
NEUROENC_BRAINSCORE_PYTHON, an interpreter that has it)."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from neuroenc.bridges.brainscore import assembly_to_dataset
from neuroenc.encoding import EncodingResults
from neuroenc.encoding import brainscore_linear as bsl
from neuroenc.encoding.merge import merge_results
from neuroenc.encoding.stimulus_fit import fit_stimuli
from neuroenc.features.stimulus_features import StimulusFeatures

xr = pytest.importorskip("xarray")
HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------------- their code, verbatim
# github.com/brain-score/language (brainscore-language 2.3.0), xarray-only copies:
# metrics/linear_predictivity/metric.py: pearsonr, XarrayRegression.fit/predict (sortby stimulus_id),
# XarrayCorrelationBatched.__call__ (sortby stimulus_id, neuroid_id), CrossRegressedCorrelation
# (train_size=.9 defaults, aggregate = median over neuroid); utils/transformations.py: Split
# (ShuffleSplit(n_splits=10, train_size=.9, test_size=None, random_state=1)), CrossValidation.pipe
# (splits over the target's stimulus_id values, subset by value), Split.aggregate (mean over
# split); utils/ceiling.py: ceiling_normalize.
def _their_pearsonr(x, y):
    import scipy.linalg

    xmean = x.mean(axis=0, keepdims=True)
    ymean = y.mean(axis=0, keepdims=True)
    xm = x - xmean
    ym = y - ymean
    normxm = scipy.linalg.norm(xm, axis=0, keepdims=True) + 1e-8
    normym = scipy.linalg.norm(ym, axis=0, keepdims=True) + 1e-8
    r = ((xm / normxm) * (ym / normym)).sum(axis=0)
    return r


def _their_metric(source, target):
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import ShuffleSplit

    split = ShuffleSplit(n_splits=10, train_size=.9, test_size=None, random_state=1)
    values = target["stimulus_id"].values
    scores = []
    for train_indices, test_indices in split.split(np.zeros(len(values))):
        train_values, test_values = values[train_indices], values[test_indices]

        def subset(a, vals):
            return a.isel(presentation=np.where([v in vals for v in a["stimulus_id"].values])[0])

        train_source, train_target = subset(source, train_values), subset(target, train_values)
        test_source, test_target = subset(source, test_values), subset(target, test_values)
        train_source, train_target = train_source.sortby("stimulus_id"), train_target.sortby("stimulus_id")
        regression = LinearRegression().fit(train_source.values, train_target.values)
        prediction = xr.DataArray(regression.predict(test_source.values), dims=["presentation", "neuroid"],
                                  coords={"stimulus_id": ("presentation", test_source["stimulus_id"].values),
                                          "neuroid_id": ("neuroid", train_target["neuroid_id"].values)})
        prediction = prediction.sortby("stimulus_id").sortby("neuroid_id")
        test_target = test_target.sortby("stimulus_id").sortby("neuroid_id")
        assert (prediction["stimulus_id"].values == test_target["stimulus_id"].values).all()
        scores.append(_their_pearsonr(prediction.values, test_target.values))
    raw = xr.DataArray(np.stack(scores), dims=["split", "neuroid"],
                       coords={"neuroid_id": ("neuroid", np.sort(target["neuroid_id"].values))})
    return float(raw.median("neuroid").mean("split")), raw


def _their_ceiling_normalize(raw_score, ceiling):
    score = raw_score / ceiling
    if score > 1 or score < 0:
        score = 1 if score > 1 else 0
    return score


def _assembly(values, ids, neuroids):
    return xr.DataArray(values, dims=["presentation", "neuroid"],
                        coords={"stimulus_id": ("presentation", list(ids)), "neuroid_id": ("neuroid", list(neuroids))})


# ---------------------------------------------------------------------- fixtures
def _data(seed=0, n=60):
    """60 stimuli (ids not in numeric order when sorted as strings), layer 0: 8 features that
    drive 3 neuroids; layer 1: 80 features (more than stimuli, as a language model's)."""
    rng = np.random.default_rng(seed)
    X0 = rng.standard_normal((n, 8)) * rng.uniform(0.5, 3, 8) + 5.0
    X1 = rng.standard_normal((n, 80)) * rng.uniform(0.5, 3, 80)
    Y = X0 @ rng.standard_normal((8, 3)) * 0.3 + rng.standard_normal((n, 3)) * np.array([0.5, 1.0, 4.0])
    ids = [f"s{i}" for i in rng.permutation(n)]
    return {0: X0, 1: X1}, Y, ids, ["n_a", "n_b", "n_c"]


def _fit(layer_X, Y, ids, neuroids, **kwargs):
    da = xr.DataArray(Y, dims=["presentation", "neuroid"], coords={
        "stimulus_id": ("presentation", ids), "stimulus": ("presentation", [f"sentence {i}." for i in ids]),
        "passage_label": ("presentation", [f"p{k // 4}" for k in range(len(ids))]),
        "neuroid_id": ("neuroid", neuroids)})
    ds = assembly_to_dataset(da)  # the locally built assembly, as a Brain-Score user holds it
    feats = StimulusFeatures(layer_X, ds.stimuli.ids, ds.stimuli.texts, groups=ds.stimuli.groups)
    return fit_stimuli(feats, ds.responses["all"], cv="kfold:5", alphas=[0.1, 1.0, 10.0], n_permutations=0,
                       scoring="brainscore-linear", **kwargs)


# ---------------------------------------------------------------------- tests
def test_their_published_test_value():
    """brainscore_language's own test_mismatched_source_target: 0.03686426 (abs 1e-5 there)."""
    from numpy.random import RandomState

    random_state = RandomState(1)
    source = (np.arange(30 * 25) + random_state.standard_normal(30 * 25)).reshape((30, 25))
    target = random_state.poisson(lam=1, size=30 * 25).reshape((30, 25))
    out = bsl.brainscore_linear({0: source}, target)
    assert out["score"][0] == pytest.approx(.03686426, abs=1e-8)
    ours, _ = _their_metric(_assembly(source, np.arange(30), np.arange(25)),
                            _assembly(target, np.arange(30), np.arange(25)))
    assert ours == pytest.approx(.03686426, abs=1e-8)


def test_matches_the_verbatim_reimplementation_through_fit_stimuli():
    layer_X, Y, ids, neuroids = _data()
    res = _fit(layer_X, Y, ids, neuroids, noise_ceiling=np.array([0.7, 0.9, 0.3]))
    table = res.brainscore_scores()
    for i, layer in enumerate((0, 1)):
        score, raw = _their_metric(_assembly(layer_X[layer], ids, [f"f{j}" for j in range(layer_X[layer].shape[1])]),
                                   _assembly(Y, ids, neuroids))
        assert_allclose(res.brainscore_split_r[:, i], raw.values, atol=1e-9)  # neuroids sort as given here
        assert table["score"][i] == pytest.approx(score, abs=1e-9)
        assert table["score_normalized"][i] == pytest.approx(_their_ceiling_normalize(score, 0.7), abs=1e-9)
    assert table["ceiling"][0] == pytest.approx(0.7)  # median of the per-target ceilings
    assert res.brainscore_scores(ceiling=0.5)["ceiling"][0] == 0.5
    assert_allclose(res.r_brainscore, res.brainscore_split_r.mean(0))
    assert table["score"][0] > 0.5 and table["score"][0] > table["score"][1]  # the driving layer wins
    assert res.r.shape == res.r_brainscore.shape and not np.allclose(res.r, res.r_brainscore)  # next to ridge r
    assert "r_brainscore" in res.settings["scores"] and res.settings["brainscore_linear"]["random_state"] == 1
    assert "r_brainscore" in res.to_frame()


def test_ceiling_normalisation_clips_as_theirs():
    assert bsl.ceiling_normalize(0.3, 0.6) == pytest.approx(0.5)
    assert bsl.ceiling_normalize(0.7, 0.6) == 1.0 and bsl.ceiling_normalize(-0.1, 0.6) == 0.0
    assert bsl.aggregate_ceiling([0.2, np.nan, 0.4, 0.9]) == pytest.approx(0.4)
    assert bsl.aggregate(np.array([[0.1, 0.5, 0.9], [0.0, 0.2, np.nan]])) == pytest.approx((0.5 + 0.1) / 2)


def test_saved_merged_and_without_ceiling(tmp_path):
    layer_X, Y, ids, neuroids = _data(1)
    res = _fit(layer_X, Y, ids, neuroids)
    assert np.isnan(res.brainscore_scores()["score_normalized"]).all()
    back = EncodingResults.load(res.save(tmp_path / "r.h5"))
    assert_allclose(back.brainscore_split_r, res.brainscore_split_r)
    from neuroenc.encoding.from_xarray import results_from_xarray

    ds = res.to_xarray()
    assert_allclose(ds["r_brainscore"].values, res.r_brainscore)
    assert_allclose(results_from_xarray(ds).brainscore_split_r, res.brainscore_split_r)
    parts = [_fit(layer_X, Y[:, [j]], ids, [neuroids[j]]) for j in range(3)]
    merged = merge_results(parts, axis="targets")
    assert_allclose(merged.brainscore_split_r, res.brainscore_split_r, atol=1e-12)  # per target: exact


def test_bad_inputs():
    from neuroenc.encoding import fit_encoding

    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"scoring='brainscore-linear' \(encoding.scoring, --scoring\) is "
                                         r"Brain-Score's metric of stimulus-level data"):
        fit_encoding([rng.standard_normal((40, 3))], rng.standard_normal((40, 2)), np.repeat([0, 1], 20),
                     scoring="brainscore-linear", n_permutations=0)
    with pytest.raises(ValueError, match=r"'scoring'.*'ridge', 'brainscore-linear', but got 'linear'"):
        fit_encoding([rng.standard_normal((40, 3))], rng.standard_normal((40, 2)), scoring="linear")
    res = EncodingResults(r=np.zeros((1, 2)), r2=np.zeros((1, 2)), layers=[0], targets=["a", "b"])
    with pytest.raises(ValueError, match=r"no Brain-Score scores; fit them with scoring='brainscore-linear'"):
        res.brainscore_scores()
    layer_X, Y, ids, neuroids = _data()
    fitted = _fit(layer_X, Y, ids, neuroids)
    with pytest.raises(ValueError, match=r"ceiling has 2 values; give one number .* or one per target \(3\)"):
        fitted.brainscore_scores(ceiling=[0.5, 0.6])
    with pytest.raises(ValueError, match=r"at least 3 stimuli"):
        bsl.brainscore_splits(2)


def test_config_and_cli_take_scoring_for_stimulus_sets_only():
    from neuroenc.pipeline import ConfigError
    from neuroenc.pipeline.config import make_section

    assert make_section("encoding", {"scoring": "brainscore-linear"}, kind="stimuli").scoring == "brainscore-linear"
    with pytest.raises(ConfigError, match=r"unknown key encoding.scoring.*applies to stimulus-level data sets"):
        make_section("encoding", {"scoring": "brainscore-linear"}, kind="story")
    with pytest.raises(ConfigError, match=r"encoding.scoring.*'ridge', 'brainscore-linear'"):
        make_section("encoding", {"scoring": "lasso"}, kind="stimuli")


# ---------------------------------------------------------------------- their package itself
def _their_package():
    if importlib.util.find_spec("brainscore_language") is not None:
        return "import"
    python = os.environ.get("NEUROENC_BRAINSCORE_PYTHON")
    if python:
        return python
    pytest.skip("brainscore_language is not importable (it pins numpy<2, pandas<3, transformers<5, so it cannot "
                "share neuroenc's environment); set NEUROENC_BRAINSCORE_PYTHON to an interpreter that has it "
                "(e.g. python -m venv /tmp/bsvenv && /tmp/bsvenv/bin/pip install brainscore-language)")


def test_parity_with_brainscore_language(tmp_path):
    how = _their_package()
    layer_X, Y, ids, neuroids = _data()
    res = _fit(layer_X, Y, ids, neuroids, noise_ceiling=np.full(3, 0.6))
    if how == "import":
        sys.path.insert(0, str(HERE))
        from _brainscore_reference import their_metric

        theirs = {k: their_metric(layer_X[k], Y, ids, neuroids, 0.6) for k in layer_X}
    else:
        np.savez(tmp_path / "in.npz", **{f"X_{k}": v for k, v in layer_X.items()}, Y=Y, ids=np.array(ids),
                 neuroids=np.array(neuroids), ceiling=0.6)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        subprocess.run([how, str(HERE / "_brainscore_reference.py"), str(tmp_path / "in.npz"),
                        str(tmp_path / "out.npz")], check=True, env=env, capture_output=True, timeout=600)
        out = np.load(tmp_path / "out.npz")
        theirs = {k: (float(out[f"score_{k}"]), out[f"raw_{k}"], float(out[f"norm_{k}"])) for k in layer_X}
    table = res.brainscore_scores()
    for i, k in enumerate(layer_X):
        score, raw, normalized = theirs[k]
        assert_allclose(res.brainscore_split_r[:, i], raw, atol=1e-9)
        assert table["score"][i] == pytest.approx(score, abs=1e-9)
        assert table["score_normalized"][i] == pytest.approx(normalized, abs=1e-9)


def test_neuroenc_run_scores_a_stimulus_set_with_brainscore_linear(tmp_path):
    """encoding.scoring in a run config reaches the pipeline's fit task."""
    from _stimuli_fixtures import write_sentences

    from neuroenc.pipeline.config import config_from_dict
    from neuroenc.pipeline.run import run_pipeline
    from neuroenc.testing import tiny_llama

    tiny_llama(n_layer=2, path=tmp_path / "model")
    ids = write_sentences(tmp_path / "sentences.csv", n_passages=6, per_passage=4)
    rng = np.random.default_rng(0)
    rows = ["id,lang,mtg"] + [f"{i},{rng.standard_normal():.6f},{rng.standard_normal():.6f}" for i in ids]
    (tmp_path / "sub-A.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = config_from_dict({
        "name": "tiny-bs",
        "dataset": {"loader": "stimuli", "args": {"path": str(tmp_path / "sentences.csv"), "text_column": "sentence",
                                                  "group_column": "passage",
                                                  "responses": {"A": str(tmp_path / "sub-A.csv")}}},
        "model": {"name": str(tmp_path / "model"), "pooling": "mean", "context": "none"},
        "encoding": {"alphas": [1.0, 100.0], "cv": "kfold:3", "inner_cv": 2, "n_permutations": 0,
                     "scoring": "brainscore-linear"},
        "output": {"dir": str(tmp_path / "out")}})
    out = run_pipeline(config, verbose=False)
    res = EncodingResults.load(out.results["A"])
    assert res.brainscore_split_r.shape == (10, res.n_layers, 2) and np.isfinite(res.brainscore_split_r).all()
    assert res.provenance["config"]["encoding"]["scoring"] == "brainscore-linear"
    assert len(res.brainscore_scores()) == res.n_layers
