"""``neuroenc run`` end to end: Alice with a tiny model, cache reuse, and the four public data
sets' configs on miniature copies of their real layouts."""
from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pytest
from _bids_fixtures import layouts, mini_megmasc, mini_narratives  # noqa: F401

from neuroenc.cli import main as cli_main
from neuroenc.datasets import make_miniature
from neuroenc.encoding import EncodingResults
from neuroenc.pipeline import ConfigError, load_config, run_pipeline
from neuroenc.testing import tiny_gpt2

ANALYSES = Path(__file__).resolve().parents[1] / "analyses"


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny-gpt2")
    tiny_gpt2(n_layer=3, n_embd=32, n_positions=128, path=path)
    return path


def _small(model_dir: Path, out: Path, **extra):
    overrides = {
        "model.name": str(model_dir),
        "model.context_tokens": 16,
        "model.stride": 8,
        "model.device": "cpu",
        "model.dtype": "float32",
        "encoding.alphas": {"logspace": [0, 6, 7]},
        "encoding.n_permutations": 50,
        "output.dir": str(out),
    }
    overrides.update(extra)
    return overrides


def test_alice_end_to_end_and_cache_reuse(tiny_model_dir, tmp_path, data_dir):
    out = tmp_path / "alice"
    overrides = _small(tiny_model_dir, out, **{
        "dataset.args": {"data_dir": str(data_dir), "download": False},
        "dataset.subjects": ["s18", "s22", "s23"],
    })
    first = run_pipeline(ANALYSES / "alice_layers.yaml", overrides=overrides, verbose=False)
    assert sorted(first.results) == ["group", "s18", "s22", "s23"]
    res = EncodingResults.load(first.results["s18"])
    assert res.targets == ["LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG"]
    np.testing.assert_array_equal(res.layers, [0, 1, 2, 3])  # embeddings + 3 blocks
    assert res.provenance["subject"] == "s18" and res.provenance["dataset"] == "alice"
    assert res.provenance["runs"] == ["alice"]
    assert set(res.baseline) >= {"r", "pvalues"}  # word rate + sound power baseline
    assert res.noise_ceiling is None  # individual subjects: no inter-subject "ceiling" (see noise_ceilings)
    assert np.all((res.pvalues > 0) & (res.pvalues <= 1))
    group = EncodingResults.load(first.results["group"])
    assert group.provenance["group_members"] == ["s18", "s22", "s23"]
    # each fit records the sha256 of the responses it fitted (the mapping refuses a subject twice)
    hashes = [EncodingResults.load(first.results[s]).provenance["responses_sha256"]["alice"]
              for s in ("s18", "s22", "s23", "group")]
    assert len(set(hashes)) == 4 and all(len(h) == 64 for h in hashes)
    # layers compared: the group mean by the residual draws, subjects of a group by their own null's
    # draws (the group's comparison across subjects is the mapping's sign flips)
    assert group.comparison.source == "residual" and res.comparison.source == "refit"
    assert group.settings["layer_comparisons"] == "auto" and res.settings["layer_comparisons"] == "null"
    assert "best_set" in first.group_table and first.group_table["verdict"].str.len().gt(0).all()
    # the summary tables, as CSV beside the results
    import pandas as pd

    # with a baseline, what each layer adds beyond it (unique contributions) is a table too
    assert set(first.tables) == {"best_layers", "best_layers_per_subject", "group_mean_best_layers",
                                 "unique_layers"}
    assert res.unique is not None and res.unique.pvalues is None  # a subject among several: sign flips
    assert group.unique is not None and group.unique.pvalues is not None  # one response: its own draws
    written = pd.read_csv(first.tables["best_layers"])
    assert list(written["target"]) == res.targets and {"best_set", "delta_last", "delta_last_low"} <= set(written)
    # NaN where the 3 subjects share no signal (mean inter-subject r <= 0): no ceiling to estimate
    ceiling = group.noise_ceiling
    assert ceiling is not None and np.isfinite(ceiling).any()
    assert np.all((ceiling[np.isfinite(ceiling)] > 0) & (ceiling[np.isfinite(ceiling)] <= 1))
    # the group-mean response is the mean of the subjects' z-scored ROI time courses
    page = first.report.read_text()
    assert "Group-mean response" in page and "s22" in page
    assert first.group_table is not None and list(first.group_table["target"]) == res.targets
    assert "LPTL: " in first.summary() and "indistinguishable from the best" in first.summary()

    assert "Layer science" not in page
    # second run: features and results reused, nothing recomputed; layer-science tables found
    # in <out>/layer-science become a report section
    science = out / "layer-science"
    science.mkdir()
    import pandas as pd

    pd.DataFrame({"metric": "curvature", "layer": [0, 1, 2, 3], "value": [1.0, 0.9, 0.8, 0.7]}).to_csv(
        science / "metrics.csv", index=False)
    mtimes = {k: p.stat().st_mtime_ns for k, p in first.results.items()}
    feat_mtime = first.features["alice"].stat().st_mtime_ns
    second = run_pipeline(ANALYSES / "alice_layers.yaml", overrides=overrides, verbose=False)
    assert {k: p.stat().st_mtime_ns for k, p in second.results.items()} == mtimes
    assert second.features["alice"].stat().st_mtime_ns == feat_mtime
    assert "Layer science" in second.report.read_text()

    # a changed setting invalidates the results (not the features)
    third = run_pipeline(ANALYSES / "alice_layers.yaml",
                         overrides={**overrides, "alignment.delays": [1, 2, 3]}, verbose=False)
    assert third.results["s18"].stat().st_mtime_ns != mtimes["s18"]
    assert third.features["alice"].stat().st_mtime_ns == feat_mtime
    assert EncodingResults.load(third.results["s18"]).provenance["config"]["alignment"]["delays"] == [1, 2, 3]


def test_cli_run_prints_report_and_summary(tiny_model_dir, tmp_path, data_dir, capsys):
    out = tmp_path / "cli"
    sets = [f"{k}={v}" for k, v in {
        "model.name": str(tiny_model_dir), "model.context_tokens": 16, "model.stride": 8,
        "encoding.n_permutations": 20, "dataset.subjects": "[s18, s22]", "dataset.group_mean": "false",
        "dataset.args": "{data_dir: " + str(data_dir) + ", download: false}",
    }.items()]
    argv = ["-q", "run", str(ANALYSES / "alice_layers.yaml"), "--out", str(out)]
    for s in sets:
        argv += ["--set", s]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    assert f"report:  {(out / 'report.html').resolve()}" in printed
    assert "LPTL: the data cannot single out a best layer" in printed  # 2 subjects: 4 sign flips
    assert (out / "results" / "sub-s18.h5").exists()


def test_run_bad_config(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset:\n  loader: nosuchset\n")
    with pytest.raises(ConfigError, match="Unknown data-set loader 'nosuchset'"):
        run_pipeline(bad, verbose=False)
    assert cli_main(["-q", "run", str(bad)]) == 1
    assert "Unknown data-set loader" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"no subject\(s\) \[.s99.\]"):
        run_pipeline(ANALYSES / "alice_layers.yaml", overrides={"dataset.subjects": ["s99"]}, verbose=False)


def _runs_named(page: str, runs) -> bool:
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    return all(run in text for run in runs)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lebel2023", "narratives", "lpp", "megmasc"])
def test_public_dataset_configs_run_on_miniatures(name, tiny_model_dir, tmp_path, layouts,
                                                  mini_narratives, mini_megmasc):
    config = load_config(ANALYSES / f"{name}_layers.yaml")
    args = dict(config.dataset.args)
    if name == "lebel2023":
        stories = args["stories"][:2] + ["wheretheressmoke"]
        root = make_miniature("lebel2023", tmp_path / "mini", subjects=["UTS03"], runs=stories,
                              layouts=layouts, n_voxels=6)
        args.update(stories=stories)
    elif name == "lpp":
        root = make_miniature("lpp", tmp_path / "mini", subjects=["EN057", "EN058"], layouts=layouts,
                              n_voxels=6)
        args.update(subjects=["EN057", "EN058"], sections=[1, 2, 3])
    elif name == "narratives":
        root = mini_narratives
    else:
        root = mini_megmasc
        args.update(subject=["01", "12"], tasks=[0])
    args["root"] = str(root)
    overrides = _small(tiny_model_dir, tmp_path / "out", **{"dataset.args": args,
                                                            "encoding.n_permutations": 20})
    if name == "megmasc":
        overrides.update({"alignment.tmin": 0.0, "alignment.tmax": 0.2})
    output = run_pipeline(ANALYSES / f"{name}_layers.yaml", overrides=overrides, verbose=False)
    assert output.results and output.report.exists()
    runs = sorted({r for p in output.results.values() for r in EncodingResults.load(p).provenance["runs"]})
    assert len(runs) >= 2
    page = output.report.read_text()
    assert _runs_named(page, runs), f"the report does not name every run of {runs}"
    for path in output.results.values():
        res = EncodingResults.load(path)
        assert np.isfinite(res.r).any() and res.provenance["dataset"] == name


def test_results_key_covers_what_changes_results(monkeypatch):
    from neuroenc.pipeline.config import config_from_dict
    from neuroenc.pipeline.tasks import results_key

    config = config_from_dict({"dataset": {"loader": "lebel2023", "args": {"root": "$LEBEL_ROOT"}}})
    feats = {"a": "/cache/m_a_0123.h5"}
    data = "0" * 64  # the subject's data hash (tasks.subject_data_hash)
    monkeypatch.setenv("LEBEL_ROOT", "/data/one")
    one = results_key(config, feats, data_hash=data)
    assert results_key(config, feats, data_hash=data) == one  # deterministic
    monkeypatch.setenv("LEBEL_ROOT", "/data/two")
    assert results_key(config, feats, data_hash=data) != one  # another data set on disk
    monkeypatch.setenv("LEBEL_ROOT", "/data/one")
    assert results_key(config, {"a": "/cache/m_a_4567.h5"}, data_hash=data) != one  # other features
    assert results_key(config, feats, np.array([0.5, 0.6]), data_hash=data) != one  # a noise ceiling
    assert results_key(config, feats, data_hash="1" * 64) != one  # other responses or confounds
    config.output.dir = "elsewhere"
    assert results_key(config, feats, data_hash=data) == one  # outputs do not change results


def test_group_best_table_reports_the_p_value_corrected_for_the_layer_choice():
    """p/q of the group-mean fit's best layer: max over layers when the results have it, else the
    best layer's own (p_method says which); the report section labels them."""
    import dataclasses

    from _mapping_fixtures import PEAKS, ROIS, make_results

    from neuroenc.mapping.summary import group_best_table
    from neuroenc.report.sections import group_mean_section

    plain = make_results("group")
    table = group_best_table(plain)
    ks = [PEAKS[t] for t in ROIS]
    np.testing.assert_array_equal(table["best_layer"], ks)
    np.testing.assert_array_equal(table["p"], plain.pvalues[ks, np.arange(len(ROIS))])
    np.testing.assert_array_equal(table["q"], plain.qvalues[ks, np.arange(len(ROIS))])
    assert set(table["p_method"]) == {"best layer only"}
    corrected = dataclasses.replace(plain, pvalues_best=np.linspace(0.002, 0.4, len(ROIS)))
    table = group_best_table(corrected)
    np.testing.assert_array_equal(table["p"], corrected.pvalues_best)
    np.testing.assert_array_equal(table["q"], corrected.qvalues_best)
    np.testing.assert_array_equal(table["p_layer"], plain.pvalues[ks, np.arange(len(ROIS))])
    assert set(table["p_method"]) == {"max over layers"}
    section = group_mean_section(corrected)
    shown = section.tables[0][1]
    np.testing.assert_array_equal(shown["p_max"], corrected.pvalues_best)
    assert "corrected for choosing the best layer" in section.text and "optimistically biased" in section.text
    assert "not corrected" in group_mean_section(plain).text
