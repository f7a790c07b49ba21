"""Saved encoders (issue 22 item 4): ``save_weights``, ``EncodingResults.predict``, ``neuroenc predict``."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
from _encoding_fixtures import _one_blas_thread, layer_walk, responses_from  # noqa: F401
from sklearn.linear_model import Ridge

from neuroenc.align import make_fmri_design, make_stimulus_design
from neuroenc.cli import main
from neuroenc.encoding import EncodingResults, LayerSweep, fit_encoding
from neuroenc.encoding.merge import merge_results
from neuroenc.encoding.stimulus_fit import fit_stimuli
from neuroenc.features import FeatureSet, StimulusFeatures
from neuroenc.features.featureset import save_features
from neuroenc.responses import Response
from neuroenc.stimuli.responses import StimulusResponses

ALPHAS = np.logspace(-1, 4, 6)
TR, N_TR = 2.0, 70


def _ridge_predict(X, Y, alphas, X_new):
    """sklearn's ridge (no intercept), each target with its own penalty."""
    return np.column_stack([Ridge(alpha=a, fit_intercept=False, solver="svd").fit(X, Y[:, t]).predict(X_new)
                            for t, a in enumerate(alphas)])


def test_primal_weights_predict_as_sklearn_ridge_and_the_sweep_refit(rng, tmp_path):
    layers = layer_walk(rng, n_samples=150, n_features=12, n_layers=3)
    Y = responses_from(rng, layers[1], n_targets=4)
    new = layer_walk(rng, n_samples=40, n_features=12, n_layers=3)
    res = fit_encoding(layers, Y, alphas=ALPHAS, n_permutations=0, dtype="float64", save_weights=True)
    w = res.weights
    assert w.layers == [0, 1, 2] and w.kinds() == {"primal": 3, "dual": 0}
    assert w.nbytes == 3 * (12 * 4 + 4) * 8
    for layer in w.layers:
        alphas = w[layer].alphas
        assert set(alphas) <= set(ALPHAS)
        np.testing.assert_allclose(res.predict(new[layer], layer=layer),
                                   _ridge_predict(layers[layer], Y, alphas, new[layer]), atol=1e-6, rtol=1e-6)
    # the sweep's own refit (each target's best layer, penalty by CV over the outer splits)
    sweep = LayerSweep(alphas=ALPHAS, n_permutations=0, dtype="float64", compare=False).fit(layers, Y)
    np.testing.assert_array_equal(sweep.best_layer_, res.layers[np.argmax(res.r, 0)])
    np.testing.assert_allclose(res.predict(new, layer="best"), sweep.predict(new), atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(sweep.refit_alphas_, [w[b].alphas[t] for t, b in enumerate(sweep.best_layer_)])
    # round trip: the layers are read from the file when used
    back = EncodingResults.load(res.save(tmp_path / "res.h5"))
    assert back.weights._layers[1] is None and back.weights.nbytes == w.nbytes
    np.testing.assert_array_equal(back.predict(new[2], layer=2), res.predict(new[2], layer=2))
    assert back.weights.info["feature_zscore"].startswith("as the design given")


def test_dual_storage_when_smaller(rng, tmp_path):
    """Many targets, few rows, wide design: dual coefficients + the training design."""
    X = rng.standard_normal((40, 100))
    Y = X[:, :10] @ rng.standard_normal((10, 300)) + rng.standard_normal((40, 300))
    X_new = rng.standard_normal((7, 100))
    res = fit_encoding(X, Y, alphas=ALPHAS, n_permutations=0, dtype="float64", save_weights=True, n_blocks=4,
                       inner_cv=3)
    w = res.weights[0]
    assert w.kind == "dual" and w.coef.shape == (40, 300) and w.X_fit.shape == (40, 100)
    assert res.weights.nbytes == (40 * 300 + 40 * 100 + 300) * 8  # primal would take 100 x 300
    expected = _ridge_predict(X, Y, w.alphas, X_new)
    np.testing.assert_allclose(res.predict(X_new, layer=0), expected, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(X_new @ w.primal(), expected, atol=1e-6, rtol=1e-6)
    back = EncodingResults.load(res.save(tmp_path / "dual.h5"))
    with h5py.File(tmp_path / "dual.h5") as f:
        assert f["weights/layer_0"].attrs["kind"] == "dual" and f["weights/layer_0/X_fit"].shape == (40, 100)
    np.testing.assert_allclose(back.predict(X_new, layer=0), expected, atol=1e-6, rtol=1e-6)


def _story(rng, runs=("run-1", "run-2", "run-3"), model="toy", n_features=5, layers=4):
    feats = {}
    for run in runs:
        onsets = np.sort(rng.uniform(1.0, N_TR * TR - 4.0, 250))
        values = layer_walk(rng, n_samples=250, n_features=n_features, n_layers=layers, smooth=1)
        feats[run] = FeatureSet(dict(enumerate(values)), onsets, onsets + 0.3, run=run, model=model,
                                n_model_layers=4)
    return feats


def _grid(runs):
    return {run: Response(np.arange(N_TR, dtype=float)[:, None], tr=TR, run=run) for run in runs}


@pytest.fixture
def story(rng):
    """Three runs of word features; a subject's responses to the first two, driven by layer 2."""
    feats = _story(rng)
    train = {r: feats[r] for r in ("run-1", "run-2")}
    grid = make_fmri_design(train, _grid(train), trim=(2, 1), dtype=np.float64)
    X = grid.X(2)
    Y = X @ rng.standard_normal((X.shape[1], 3)) / np.sqrt(X.shape[1]) + 0.7 * rng.standard_normal((X.shape[0], 3))
    responses = {run: Response(y, tr=TR, run=run, names=["LATL", "LPTL", "LIFG"])
                 for run, y in zip(train, [np.vstack([np.zeros((2, 3)), y, np.zeros((1, 3))])
                                           for y in grid.split(Y).values()])}
    design = make_fmri_design(train, responses, trim=(2, 1), dtype=np.float64)
    return feats, design


def test_story_features_are_aligned_as_in_the_fit(story, tmp_path):
    feats, design = story
    res = fit_encoding(design, alphas=ALPHAS, n_permutations=0, dtype="float64", save_weights=True)
    info = res.weights.info
    assert info["delays"] == [1, 2, 3, 4] and info["alignment"]["trim"] == [2, 1]
    assert info["feature_zscore"].startswith("features z-scored per run at prediction time")
    assert info["n_features"] == {str(k): 5 for k in range(4)} and info["features"]["model"] == "toy"
    back = EncodingResults.load(res.save(tmp_path / "res.h5"))
    for layer in (1, 2):
        alphas = res.weights[layer].alphas
        # the training runs' features on their grids give the training design's fitted values
        fitted = _ridge_predict(design.X(layer), design.Y, alphas, design.X(layer))
        again = back.predict({r: feats[r] for r in design.runs}, layer=layer, n_trs=N_TR)
        np.testing.assert_allclose(again, fitted, atol=1e-6, rtol=1e-6)
        # a new story: the same alignment (per-run z-scoring, delays, trimming) on its own grid
        new = make_fmri_design({"run-3": feats["run-3"]}, _grid(["run-3"]), trim=(2, 1), dtype=np.float64)
        expected = _ridge_predict(design.X(layer), design.Y, alphas, new.X(layer))
        np.testing.assert_allclose(back.predict(feats["run-3"], layer=layer, n_trs=N_TR), expected,
                                   atol=1e-6, rtol=1e-6)
        np.testing.assert_allclose(back.predict(new, layer=layer), expected, atol=1e-6, rtol=1e-6)
    # the default grid covers the words and the delays after them
    from neuroenc.encoding.predict import predict_responses

    pred = predict_responses(back, feats["run-3"], layer=2)
    times = pred.rows["time"]
    assert times[0] == 2 * TR and times[-1] >= feats["run-3"].times.max() + 4 * TR - TR
    assert (pred.rows["run"] == "run-3").all() and pred.values.shape == (times.size, 3)


def test_stimulus_features_use_the_training_statistics(rng, tmp_path):
    n, new_n = 60, 5
    layers = [rng.standard_normal((n, 8)) * 3 + 1 for _ in range(2)]
    ids = [f"s{i}" for i in range(n)]
    fs = StimulusFeatures(dict(enumerate(layers)), ids, ids, name="sim", model="sim-model", n_model_layers=2)
    Y = layers[1] @ rng.standard_normal((8, 2)) + rng.standard_normal((n, 2))
    res = fit_stimuli(fs, StimulusResponses(Y, ids, ["a", "b"]), alphas=ALPHAS, n_permutations=0, cv="kfold:4",
                      inner_cv=3, dtype="float64", save_weights=True)
    assert res.weights.info["rows"] == "stimuli" and "training stimuli" in res.weights.info["feature_zscore"]
    design = make_stimulus_design(fs, StimulusResponses(Y, ids, ["a", "b"]))
    mean, std = res.weights.feature_stats[1]
    np.testing.assert_allclose((layers[1] - mean) / std, design.X(1))
    new_layers = {k: rng.standard_normal((new_n, 8)) for k in range(2)}
    new = StimulusFeatures(new_layers, ["x1", "x2", "x3", "x4", "x5"], ["t"] * new_n, name="new", model="sim-model",
                           n_model_layers=2)
    expected = _ridge_predict(design.X(1), design.Y, res.weights[1].alphas, (new_layers[1] - mean) / std)
    back = EncodingResults.load(res.save(tmp_path / "stim.h5"))
    np.testing.assert_allclose(back.predict(new, layer=1), expected, atol=1e-6, rtol=1e-6)


def test_merged_parts_keep_the_weights(rng):
    layers = layer_walk(rng, n_samples=120, n_features=6, n_layers=3)
    Y = responses_from(rng, layers[2], n_targets=4)
    kw = dict(alphas=ALPHAS, n_permutations=0, dtype="float64", save_weights=True)
    full = fit_encoding(layers, Y, **kw)
    chunks = merge_results([fit_encoding(layers, Y[:, :2], targets=["0", "1"], **kw),
                            fit_encoding(layers, Y[:, 2:], targets=["2", "3"], **kw)])
    subsets = merge_results([fit_encoding({0: layers[0], 2: layers[2]}, Y, **kw),
                             fit_encoding({1: layers[1]}, Y, **kw)], axis="layers")
    for merged in (chunks, subsets):
        assert merged.weights.layers == [0, 1, 2]
        for layer in range(3):
            np.testing.assert_allclose(merged.predict(layers[layer], layer=layer),
                                       full.predict(layers[layer], layer=layer), atol=1e-10)
    with pytest.raises(ValueError, match="saved weights are missing from some parts only"):
        merge_results([full, fit_encoding(layers, Y, targets=list("abcd"), **{**kw, "save_weights": False})])


def test_prediction_errors(story, rng, tmp_path):
    feats, design = story
    plain = fit_encoding(design, alphas=ALPHAS, n_permutations=0, dtype="float64")
    path = plain.save(tmp_path / "plain.h5")
    with pytest.raises(ValueError, match=r"results file '.*plain\.h5' has no saved weights.*--save-weights"):
        EncodingResults.load(path).predict(feats["run-3"], layer=2)
    res = fit_encoding(design, alphas=ALPHAS, n_permutations=0, dtype="float64", save_weights=True)
    other = _story(rng, runs=("run-9",), model="other-model")["run-9"]
    with pytest.raises(ValueError, match="has model 'other-model', but the results were fitted on features with "
                                         "model 'toy'; extract the new stimuli with the same model"):
        res.predict(other, layer=2)
    fewer = FeatureSet({0: feats["run-3"][0], 1: feats["run-3"][1]}, feats["run-3"].onsets, feats["run-3"].offsets,
                       run="run-3", model="toy", n_model_layers=4)
    with pytest.raises(ValueError, match=r"has no layer\(s\) \[2\] \(it has layers \[0, 1\]\)"):
        res.predict(fewer, layer=2)
    wider = _story(rng, runs=("run-8",), n_features=6)["run-8"]
    with pytest.raises(ValueError, match="layer 2 of the features of run 'run-8' has 6 features, but the results "
                                         "were fitted on 5"):
        res.predict(wider, layer=2)
    with pytest.raises(ValueError, match="the saved weights have no layer 9"):
        res.predict(feats["run-3"], layer=9)
    with pytest.raises(ValueError, match=r"the design of layer 2 has shape \(10, 6\), but the saved weights of "
                                         r"layer 2 take 20 columns \(5 features x 4 delays\)"):
        res.predict(np.zeros((10, 6)), layer=2)
    stim = StimulusFeatures({2: np.zeros((4, 5))}, list("abcd"), list("abcd"), model="toy")
    with pytest.raises(ValueError, match="holds stimulus-level features, but the results were fitted on word-timed"):
        res.predict(stim, layer=2)


def test_save_weights_is_a_setting_of_the_config_and_the_command_line():
    from neuroenc._validation import ConfigError
    from neuroenc.cli import build_parser
    from neuroenc.pipeline.config import make_section, section_settings

    for kind in ("story", "stimuli"):
        assert section_settings("encoding", kind)["save_weights"].default is False
    assert make_section("encoding", {"save_weights": True}).kwargs(fit_encoding) == {"save_weights": True}
    with pytest.raises(ConfigError, match="save_weights"):
        make_section("encoding", {"save_weights": "yes"})
    with pytest.raises(ValueError, match=r"save_weights must be True or False; got 'yes' \(str\)"):
        fit_encoding(np.zeros((10, 2)), np.zeros(10), save_weights="yes")
    parser = build_parser()
    base = ["fit", "--features", "f.h5", "--responses", "r.txt", "--out", "o.h5"]
    assert parser.parse_args([*base, "--save-weights"]).save_weights is True
    assert parser.parse_args([*base, "--save-weights", "false"]).save_weights is False
    assert not hasattr(parser.parse_args(base), "save_weights")


def test_predict_cli(story, tmp_path, capsys):
    feats, design = story
    paths = {run: save_features(fs, tmp_path / f"{run}.h5") for run, fs in feats.items()}
    for run, y in design.split(design.Y).items():
        np.savetxt(tmp_path / f"{run}.txt", np.vstack([np.zeros((2, 3)), y, np.zeros((1, 3))]))
    out = tmp_path / "res.h5"
    fit = ["-q", "fit", "--features", paths["run-1"], paths["run-2"], "--responses", tmp_path / "run-1.txt",
           tmp_path / "run-2.txt", "--tr", TR, "--trim", "2,1", "--n-permutations", 0, "--alphas", "logspace:-1,4,6",
           "--dtype", "float64"]
    assert main([*map(str, fit), "--out", str(tmp_path / "plain.h5")]) == 0
    assert main([*map(str, fit), "--save-weights", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Weights saved: 2.0 KiB (4 layer(s) primal, 0 dual" in printed  # 4 x (20 x 3 + 3) float64
    pred = tmp_path / "pred.h5"
    assert main(["-q", "predict", "--results", str(out), "--features", str(paths["run-3"]), "--layer", "2",
                 "--n-trs", str(N_TR), "--out", str(pred)]) == 0
    assert "Predictions written to" in capsys.readouterr().out
    with h5py.File(pred) as f:
        assert f.attrs["format"] == "neuroenc-predictions/1"
        values, layers = f["predictions"][()], f["layers"][()]
        assert [t.decode() for t in f["targets"][()]] == ["0", "1", "2"]
        np.testing.assert_allclose(f["rows/time"][()], np.arange(2, N_TR - 1) * TR)
    res = EncodingResults.load(out)
    from neuroenc.features.featureset import load_features

    np.testing.assert_allclose(values, res.predict(load_features(paths["run-3"]), layer=2, n_trs=N_TR), atol=1e-12)
    assert layers.tolist() == [2, 2, 2]
    # again over the same file: neuroenc's own output is replaced
    assert main(["-q", "predict", "--results", str(out), "--features", str(paths["run-3"]), "--out", str(pred)]) == 0
    capsys.readouterr()
    assert main(["-q", "predict", "--results", str(tmp_path / "plain.h5"), "--features", str(paths["run-3"]),
                 "--out", str(tmp_path / "p2.h5")]) == 1
    err = capsys.readouterr().err
    assert "plain.h5' has no saved weights" in err and "--save-weights" in err
    assert not (tmp_path / "p2.h5").exists()


def test_predict_help_keeps_examples_as_written(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = capsys.readouterr().out
    assert "    neuroenc predict --results s18.h5 --features new-story.h5 --out pred.h5\n" in text
    assert ":func:" not in text and "``" not in text


def test_run_config_saves_weights_and_predict_reads_the_runs_features(tmp_path, capsys):
    """``encoding.save_weights: true`` in a run config (a tiny stimulus-level run), then
    ``neuroenc predict`` on the run's own features: the fitted values of the refit."""
    from _stimuli_fixtures import write_sentences

    from neuroenc.features.kinds import load_feature_file
    from neuroenc.pipeline.config import config_from_dict
    from neuroenc.pipeline.run import run_pipeline
    from neuroenc.testing import tiny_llama

    tiny_llama(n_layer=2, path=tmp_path / "model")
    ids = write_sentences(tmp_path / "sentences.csv", n_passages=6, per_passage=3)
    rng = np.random.default_rng(0)
    (tmp_path / "sub-A.csv").write_text("id,lang\n" + "\n".join(f"{i},{rng.standard_normal():.6f}" for i in ids) + "\n",
                                        encoding="utf-8")
    config = config_from_dict({
        "name": "tiny-weights",
        "dataset": {"loader": "stimuli", "args": {"path": str(tmp_path / "sentences.csv"), "text_column": "sentence",
                                                   "group_column": "passage",
                                                   "responses": {"A": str(tmp_path / "sub-A.csv")}}},
        "model": {"name": str(tmp_path / "model"), "pooling": "mean", "context": "none"},
        "encoding": {"alphas": [1.0, 100.0], "cv": "group-kfold:3", "inner_cv": 2, "n_permutations": 0,
                     "save_weights": True},
        "output": {"dir": str(tmp_path / "out"), "report": None},
    })
    out = run_pipeline(config, verbose=False)
    res = EncodingResults.load(out.results["A"])
    assert res.weights is not None and res.weights.layers == res.layers.tolist()
    assert set(res.weights.feature_stats) == set(res.layers.tolist())
    features = next(iter(out.features.values()))
    pred = tmp_path / "pred.h5"
    assert main(["-q", "predict", "--results", str(out.results["A"]), "--features", str(features), "--layer", "1",
                 "--out", str(pred)]) == 0
    fs = load_feature_file(features)
    X = (np.asarray(fs[1], dtype=np.float64) - fs[1].mean(0)) / np.where(fs[1].std(0) > 0, fs[1].std(0), 1)
    with h5py.File(pred) as f:
        assert [i.decode() for i in f["rows/id"][()]] == fs.ids
        np.testing.assert_allclose(f["predictions"][()], X @ res.weights[1].primal().astype(np.float64),
                                   rtol=1e-5, atol=1e-6)


def test_prediction_needs_one_layer_for_a_design_array_and_a_tr_grid_for_word_features(rng):
    layers = layer_walk(rng, n_samples=120, n_features=6, n_layers=2)
    Y = np.column_stack([responses_from(rng, layers[0], n_targets=1), responses_from(rng, layers[1], n_targets=1)])
    res = fit_encoding(layers, Y, alphas=ALPHAS, n_permutations=0, save_weights=True)
    assert sorted(set(res.layers[np.argmax(res.r, 0)].tolist())) == [0, 1]
    with pytest.raises(ValueError, match=r"a design array is one layer's design, but the targets' best layers are "
                                         r"\[0, 1\]; pass layer="):
        res.predict(layers[0])
    with pytest.raises(ValueError, match="Invalid value for 'layer': 'last'"):
        res.predict(layers[0], layer="last")
    res.weights.info["alignment"] = {"kind": "meg"}
    fs = FeatureSet({0: layers[0][:5]}, np.arange(5.0), np.arange(5.0) + 0.5, run="r", model="toy", n_model_layers=2)
    with pytest.raises(ValueError, match="predicting from word features is for fMRI designs; these results are on "
                                         "a 'meg' grid: build the design with make_meg_design"):
        res.predict(fs, layer=0)
