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


def _config(files, tmp_path, **changes):
    values = {
        "name": "tiny-stimuli",
        "dataset": {"loader": "stimuli", "group_mean": True,
                    "args": {"path": str(files / "sentences.csv"), "text_column": "sentence",
                             "group_column": "passage",
                             "responses": {s: str(files / f"sub-{s}.csv") for s in ("A", "B", "C")}}},
        "model": {"name": str(files / "model"), "pooling": "mean", "context": "group", "context_tokens": "full",
                  "prepend_bos": "auto"},
        "encoding": {"alphas": [1.0, 100.0], "cv": "group-kfold:3", "inner_cv": 2, "n_permutations": 19,
                     "baseline": ["length", "position", "surprisal"]},
        "output": {"dir": str(tmp_path / "out")},
    }
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
    assert group.noise_ceiling is not None and group.provenance["subjects_averaged"] == ["A", "B", "C"]
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
    ({"executor.kind": "local:2"}, "stimulus-level runs .* run in one process"),
])
def test_run_stimuli_config_errors(files, tmp_path, changes, match):
    values = dict(changes)
    with pytest.raises(ConfigError, match=match):
        if "executor.kind" in values:
            config = _config(files, tmp_path)
            config.executor.kind = values["executor.kind"]
        else:
            config = _config(files, tmp_path, **values)
        run_pipeline(config, verbose=False)


def test_naturalstories_rt_loader(data_dir):
    from neuroenc.datasets import load_naturalstories_rt

    d = load_naturalstories_rt(data_dir, stories=[1, 3])
    assert len(d.stimuli) == 1073 + 1040 and d.stimuli.group_names == ["story-1", "story-3"]
    assert d.stimuli.ids[:3] == ["1.1", "1.2", "1.3"] and d.stimuli.texts[:4] == ["If", "you", "were", "to"]
    assert d.stimuli.texts[9] == "England,"  # as the readers saw it
    rt = d.responses["readers"]
    assert rt.names == ["meanItemRT"] and 250 < rt.data.mean() < 450
    np.testing.assert_array_equal(d.regressors["position"][:3], [1, 2, 3])
