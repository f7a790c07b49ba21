"""``neuroenc run`` with a stimulus-level data set: extract, fit, baselines, report."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _encoding_fixtures import _one_blas_thread  # noqa: F401
from _features_helpers import one_torch_thread  # noqa: F401
from _stimuli_fixtures import write_sentences

from neuroenc.encoding import EncodingResults
from neuroenc.pipeline.config import ConfigError, config_from_dict
from neuroenc.pipeline.run import run_pipeline


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from neuroenc.testing import tiny_llama

    root = tmp_path_factory.mktemp("stimrun")
    tiny_llama(n_layer=2, path=root / "model")
    ids = write_sentences(root / "sentences.csv", n_passages=6, per_passage=3)
    rng = np.random.default_rng(0)
    for subject in ("A", "B", "C"):
        rows = ["id,lang"] + [f"{i},{rng.standard_normal():.6f}" for i in ids]
        (root / f"sub-{subject}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def _values(files, loader="stimuli", out="out", baseline=("length", "position", "surprisal")):
    """The tiny stimulus run's config as a dict."""
    return {
        "name": "tiny-stimuli",
        "dataset": {"loader": loader, "group_mean": True,
                    "args": {"path": str(files / "sentences.csv"), "text_column": "sentence",
                             "group_column": "passage",
                             "responses": {s: str(files / f"sub-{s}.csv") for s in ("A", "B", "C")}}},
        "model": {"name": str(files / "model"), "pooling": "mean", "context": "group", "context_tokens": "full",
                  "prepend_bos": "auto"},
        "encoding": {"alphas": [1.0, 100.0], "cv": "group-kfold:3", "inner_cv": 2, "n_permutations": 19,
                     "baseline": list(baseline)},
        "output": {"dir": out},
    }


def _config(files, tmp_path, **changes):
    values = _values(files, out=str(tmp_path / "out"))
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        values[section][key] = value
    return config_from_dict(values)


def test_run_stimuli_end_to_end(files, tmp_path):
    out = run_pipeline(_config(files, tmp_path), verbose=False)
    assert set(out.results) == {"A", "B", "C", "group"}
    assert out.report is not None and out.report.exists()
    html = out.report.read_text(encoding="utf-8")
    assert "Stimulus-level encoding" in html and "r_pooled" in html and "group-kfold:3" in html
    group = EncodingResults.load(out.results["group"])
    assert group.settings["cv"] == "group-kfold:3" and group.settings["null_within_groups"] is True
    assert group.noise_ceiling is not None and group.provenance["group_members"] == ["A", "B", "C"]
    assert group.r_pooled is not None and group.settings["baseline_regressors"] == ["length", "position", "surprisal"]
    baselines = pd.read_csv(tmp_path / "out" / "baselines.csv")
    assert list(baselines["model"]) == ["length", "position", "surprisal", "all baseline regressors"]
    # the rerun reuses every file
    again = run_pipeline(_config(files, tmp_path), verbose=False)
    assert again.results == out.results
    assert EncodingResults.load(again.results["A"]).provenance["wall_seconds"] == \
        EncodingResults.load(out.results["A"]).provenance["wall_seconds"]


@pytest.mark.parametrize("changes, match", [
    # the model section is StimulusExtractor's: checked when the config is read
    ({"model.pooling": "first"}, r"Invalid value for 'model.pooling'. Allowed values are 'mean', 'last', 'last-word', "
                                 r"but got 'first' instead: 'first' applies to story data sets \(FeatureExtractor\)"),
    ({"model.context": "none"}, "context_tokens and stride apply to context='group'"),
    ({"dataset.runs": ["x"]}, "dataset.runs applies to story data sets"),
    ({"encoding.baseline": ["length", "loudness"]}, r"unknown regressor\(s\) \['loudness'\]"),
])
def test_run_stimuli_config_errors(files, tmp_path, changes, match):
    with pytest.raises(ConfigError, match=match):
        run_pipeline(_config(files, tmp_path, **changes), verbose=False)


def test_naturalstories_rt_loader(data_dir):
    from neuroenc.datasets import load_naturalstories_rt

    d = load_naturalstories_rt(data_dir, stories=[1, 3])
    assert len(d.stimuli) == 1073 + 1040 and d.stimuli.group_names == ["story-1", "story-3"]
    assert d.stimuli.ids[:3] == ["1.1", "1.2", "1.3"] and d.stimuli.texts[:4] == ["If", "you", "were", "to"]
    assert d.stimuli.texts[9] == "England,"  # as the readers saw it
    rt = d.responses["readers"]
    assert rt.names == ["meanItemRT"] and 250 < rt.data.mean() < 450
    np.testing.assert_array_equal(d.regressors["position"][:3], [1, 2, 3])


def _yaml(files, tmp_path, loader="stimuli", out="out"):
    import yaml

    # a config file's output folder is relative (to the working directory)
    values = _values(files, loader=loader, out=out, baseline=("length", "position"))
    path = tmp_path / f"{out}.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def _assert_same_run(a, b):
    """Two runs' results, tables and baselines agree to 1e-10."""
    assert set(a.results) == set(b.results) == {"A", "B", "C", "group"}
    for subject in a.results:
        x, y = EncodingResults.load(a.results[subject]), EncodingResults.load(b.results[subject])
        for name in ("r", "r2", "pvalues", "alphas", "fold_r", "r_pooled", "pvalues_best"):
            np.testing.assert_allclose(getattr(x, name), getattr(y, name), atol=1e-10, err_msg=f"{subject} {name}")
        np.testing.assert_allclose(x.comparison.delta_r, y.comparison.delta_r, atol=1e-10)
        np.testing.assert_allclose(x.baseline["r"], y.baseline["r"], atol=1e-10)
        if subject == "group":
            np.testing.assert_allclose(x.noise_ceiling, y.noise_ceiling, atol=1e-10)
    assert set(a.tables) == set(b.tables) and "group_mean_best_layers" in a.tables and "best_layers" in a.tables
    for name in a.tables:
        ta, tb = pd.read_csv(a.tables[name]), pd.read_csv(b.tables[name])
        assert list(ta.columns) == list(tb.columns) and len(ta) == len(tb)
        numeric = ta.select_dtypes("number").columns
        np.testing.assert_allclose(ta[numeric].to_numpy(float), tb[numeric].to_numpy(float), atol=1e-10, err_msg=name)


def test_run_stimuli_on_dask_equals_serial(files, tmp_path, monkeypatch):
    """One runner: a stimulus-level run on a local Dask cluster writes the results, the tables and the
    report of the serial run (same graph of tasks), with the group-mean fit and its table."""
    from neuroenc.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["run", str(_yaml(files, tmp_path, out="serial")), "--executor", "serial"]) == 0
    assert main(["run", str(_yaml(files, tmp_path, out="dask")), "--executor", "local:2"]) == 0
    serial = run_pipeline(_yaml(files, tmp_path, out="serial"), verbose=False)  # complete: reused
    dask = run_pipeline(_yaml(files, tmp_path, out="dask"), executor="local:2", verbose=False)
    assert dask.tasks["skipped"] >= 5 and dask.tasks.get("fit_computed", 0) == 0  # every file reused
    _assert_same_run(serial, dask)
    for out in (serial, dask):
        assert out.report.exists() and "Stimulus-level encoding" in out.report.read_text(encoding="utf-8")
        base = pd.read_csv(out.report.parent / "baselines.csv")
        assert list(dict.fromkeys(base["model"])) == ["length", "position", "all baseline regressors"]
    np.testing.assert_allclose(pd.read_csv(serial.report.parent / "baselines.csv")[["r", "r_pooled", "p"]],
                               pd.read_csv(dask.report.parent / "baselines.csv")[["r", "r_pooled", "p"]], atol=1e-10)


def test_custom_stimulus_loader_runs_with_allow_code(files, tmp_path, monkeypatch, capsys):
    """A custom stimulus-level loader (``module:function``, ``stimulus_level = True``) runs with the opt-in,
    and is refused without it."""
    from neuroenc.cli import main

    (tmp_path / "my_stimulus_loader.py").write_text(
        "from neuroenc.datasets import load_stimuli\n\n\n"
        "def load(**kwargs):\n"
        "    return load_stimuli(name='mine', **kwargs)\n\n\n"
        "load.stimulus_level = True\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("NEUROENC_ALLOW_CODE", raising=False)
    monkeypatch.chdir(tmp_path)
    config = _yaml(files, tmp_path, loader="my_stimulus_loader:load", out="custom")
    assert main(["run", str(config)]) != 0
    assert "--allow-code" in capsys.readouterr().err
    assert main(["run", str(config), "--allow-code"]) == 0
    res = EncodingResults.load(tmp_path / "custom" / "results" / "sub-group.h5")
    assert res.provenance["dataset"] == "mine" and res.settings["rows"] == "stimuli"
    assert (tmp_path / "custom" / "tables" / "group_mean_best_layers.csv").exists()


def test_baseline_names_are_checked_for_every_kind_of_data_set():
    """One check of encoding.baseline: a name that is no confound (nor carried by the features) is an
    error for story data sets too (it used to be dropped silently there); left-out ones are warnings."""
    from neuroenc.datasets import EncodingDataset
    from neuroenc.pipeline.tasks import check_baseline
    from neuroenc.responses import Response

    rate = Response(np.zeros((5, 2)), tr=2.0, names=["word_rate", "sound_power"], run="r1")
    story = EncodingDataset("toy", {}, {"s1": {"r1": rate}}, {"s1": {"r1": rate}})
    config = config_from_dict({"name": "x", "dataset": {"loader": "alice"},
                               "encoding": {"baseline": ["word_rate", "loudness"]}})
    # a story data set offers its confounds and the regressors computed from the words (issue 20)
    with pytest.raises(ConfigError, match=r"unknown regressor\(s\) \['loudness'\]: use those of the data set "
                                          r"\['length', 'log_frequency', 'phoneme_rate', 'position', 'sound_power', "
                                          r"'story_position', 'surprisal', 'word_rate'\]"):
        check_baseline(config, story)
    story.info["unavailable_regressors"] = {"loudness": "loudness left out: no audio"}
    assert check_baseline(config, story) == ["loudness left out: no audio"]


def test_run_stimuli_with_spillover(files, tmp_path):
    """encoding.spillover reaches the design of every fit: its settings say what was added, and the
    baselines keep one model per regressor (each with its spill-over)."""
    spill = {"baseline": 1, "layers": 2}
    out = run_pipeline(_config(files, tmp_path, **{"encoding.spillover": spill}), verbose=False)
    for subject in ("A", "group"):
        res = EncodingResults.load(out.results[subject])
        got = res.settings["alignment"]["spillover"]
        assert {k: got[k] for k in spill} == spill and "same group" in got["boundaries"]
    baselines = pd.read_csv(tmp_path / "out" / "baselines.csv")
    assert list(baselines["model"]) == ["length", "position", "surprisal", "all baseline regressors"]
    plain = EncodingResults.load(run_pipeline(_config(files, tmp_path / "plain"), verbose=False).results["A"])
    assert "spillover" not in plain.settings["alignment"]
    assert not np.allclose(plain.r, EncodingResults.load(out.results["A"]).r)
