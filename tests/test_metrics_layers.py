"""Per-layer metrics of feature sets, their HDF5 file and the ``neuroenc metrics`` command."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from neuroenc.cli import main
from neuroenc.features import FeatureSet
from neuroenc.features.featureset import save_features
from neuroenc.features.metrics_layers import METRICS, LayerMetrics, layer_metrics

N_WORDS, DIM, WINDOW = 40, 64, 8


@pytest.fixture
def features(rng):
    """Three layers with known geometry: orthonormal words, a straight line, a circle."""
    q, _ = np.linalg.qr(rng.normal(size=(DIM, N_WORDS)))
    ortho = q.T  # 40 orthonormal rows
    line = rng.normal(size=DIM) + np.linspace(0, 5, N_WORDS)[:, None] * rng.normal(size=DIM)
    plane, _ = np.linalg.qr(rng.normal(size=(DIM, 2)))
    t = np.arange(N_WORDS) * 2 * np.pi / 10  # a decagon, walked four times
    circle = np.c_[np.cos(t), np.sin(t)] @ plane.T
    onsets = np.arange(N_WORDS) * 0.3
    return FeatureSet({0: ortho, 1: line, 2: circle}, onsets, onsets + 0.2,
                      [f"w{i}" for i in range(N_WORDS)], run="story", model="toy",
                      n_model_layers=5, attrs={"intervention": "skip:1"})


def test_layer_metrics_known_values(features):
    out = layer_metrics(features, window=WINDOW)
    assert out.metric_names == list(METRICS)
    np.testing.assert_array_equal(out.layers, [0, 1, 2])
    np.testing.assert_allclose(out.relative_depth, [0, 0.25, 0.5])
    # Orthonormal words: every window and the whole set have maximal entropy; each step
    # e_{k+1} - e_k meets the next at 120 degrees.
    assert out["prompt_entropy"][0] == pytest.approx(np.log(WINDOW))
    assert out["dataset_entropy"][0] == pytest.approx(np.log(N_WORDS))
    assert out["effective_rank"][0] == pytest.approx(N_WORDS)
    assert out["curvature"][0] == pytest.approx(2 * np.pi / 3)
    # A straight line: no curvature, an affine rank of 1.
    assert out["curvature"][1] == pytest.approx(0.0, abs=1e-7)
    assert out["effective_rank"][1] <= 2.0
    # A decagon: its exterior angle, two dimensions.
    assert out["curvature"][2] == pytest.approx(2 * np.pi / 10)
    assert out["effective_rank"][2] == pytest.approx(2.0)
    assert out["dataset_entropy"][2] == pytest.approx(np.log(2.0))
    assert out.provenance["model"] == "toy" and out.provenance["intervention"] == "skip:1"
    assert out.settings["window"] == WINDOW and out.settings["step"] == WINDOW


def test_layer_metrics_subsets_and_token_states(features, rng):
    out = layer_metrics(features, ["curvature"], layers=[2], window=WINDOW, step=3)
    assert out.metric_names == ["curvature"] and list(out.layers) == [2]
    assert out["curvature"][0] == pytest.approx(2 * np.pi / 10)
    # Token states (n_windows, n_tokens, dim): one sequence per window, items = mean tokens.
    q, _ = np.linalg.qr(rng.normal(size=(DIM, 6)))
    windows = np.stack([q.T * s for s in (1.0, 2.0, 3.0)])
    tok = layer_metrics({3: windows}, ["prompt_entropy", "dataset_entropy"], alpha=2.0)
    assert tok["prompt_entropy"][0] == pytest.approx(np.log(6))
    assert tok["dataset_entropy"][0] == pytest.approx(0.0, abs=1e-10)  # the mean tokens are collinear


def test_layer_metrics_file_roundtrip_and_table(features, tmp_path):
    out = layer_metrics(features, window=WINDOW)
    path = out.save(tmp_path / "sub" / "metrics.h5")
    assert [p.name for p in path.parent.iterdir()] == ["metrics.h5"]  # no temp file left
    back = LayerMetrics.load(path)
    assert back.metric_names == out.metric_names
    for name in out.metric_names:
        np.testing.assert_array_equal(back[name], out[name])
    np.testing.assert_array_equal(back.relative_depth, out.relative_depth)
    assert back.settings == out.settings and back.provenance == out.provenance
    table = back.to_frame()
    assert len(table) == 3 * len(METRICS)
    row = table[(table.metric == "curvature") & (table.layer == 2)]
    assert float(row.value.iloc[0]) == pytest.approx(2 * np.pi / 10)
    assert set(table.intervention) == {"skip:1"}
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "neuroenc-metrics/1"
        assert sorted(f["metrics"]) == sorted(METRICS)


def test_metrics_command(features, tmp_path, capsys):
    feats = save_features(features, tmp_path / "features.h5")
    out = tmp_path / "metrics.h5"
    code = main(["-q", "metrics", "--features", str(feats), "--out", str(out), "--window", str(WINDOW),
                 "--metrics", "curvature,effective_rank", "--layers", "0,2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "curvature" in printed and f"wrote {out}" in printed
    result = LayerMetrics.load(out)
    assert list(result.layers) == [0, 2]
    np.testing.assert_allclose(result["curvature"], [2 * np.pi / 3, 2 * np.pi / 10])
    assert result.provenance["features_file"] == str(feats)
    assert len(result.provenance["features_sha256"]) == 64
    assert result.provenance["run"] == "story"
    np.testing.assert_allclose(result.relative_depth, [0.0, 0.5])


def test_metrics_command_errors(features, tmp_path, capsys):
    feats = save_features(features, tmp_path / "features.h5")
    out = str(tmp_path / "m.h5")
    assert main(["metrics", "--features", str(tmp_path / "missing.h5"), "--out", out]) == 1
    assert "features file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["metrics", "--features", str(feats), "--out", out, "--layers", "a,b"])
    assert "argument --layers: invalid layer 'a'" in capsys.readouterr().err
    # -1 is the model's last block (layer 4 of 5), which this file does not hold.
    assert main(["metrics", "--features", str(feats), "--out", out, "--layers=-1"]) == 1
    assert "has no layer(s) [4]; it holds layers [0, 1, 2]" in capsys.readouterr().err
    assert main(["metrics", "--features", str(feats), "--out", out, "--metrics", "entropy"]) == 1
    assert "Invalid value for 'metric'" in capsys.readouterr().err


def test_metrics_command_layer_grammar_and_quiet(features, tmp_path, capsys):
    """--layers takes the grammar of `neuroenc extract` (ranges, relative depths); -q hides the
    progress bar (the command no longer forces verbose output)."""
    feats = save_features(features, tmp_path / "features.h5")
    out = tmp_path / "m.h5"
    args = ["metrics", "--features", str(feats), "--out", str(out), "--window", str(WINDOW),
            "--metrics", "curvature"]
    assert main(["-q", *args, "--layers", "0.5,0-1"]) == 0
    assert "layer metrics" not in capsys.readouterr().err
    result = LayerMetrics.load(out)
    assert list(result.layers) == [0, 1, 2]  # 0.5 of 5 hidden states is layer 2
    np.testing.assert_allclose(result["curvature"][2], 2 * np.pi / 10)
    assert main([*args, "--layers", "0.5"]) == 0
    assert "layer metrics" in capsys.readouterr().err
    assert list(LayerMetrics.load(out).layers) == [2]


def test_layer_metrics_layer_grammar(features):
    assert list(layer_metrics(features, ["curvature"], layers=[0.5, 0], window=WINDOW).layers) == [0, 2]
    assert list(layer_metrics(features, ["curvature"], layers="all", window=WINDOW).layers) == [0, 1, 2]
    # A mapping has no model depth: the highest layer held is the last.
    held = {0: features[0], 2: features[2]}
    assert list(layer_metrics(held, ["curvature"], layers=[-1], window=WINDOW).layers) == [2]
    with pytest.raises(KeyError, match=r"no layer\(s\) \[4\] in the features; they have \[0, 1, 2\]"):
        layer_metrics(features, layers=[-1])
    with pytest.raises(ValueError, match="Invalid value for 'layers': 'top'"):
        layer_metrics(features, layers="top")


def test_layer_metrics_bad_input(features, tmp_path):
    with pytest.raises(ValueError, match="Invalid value for 'metric'. Allowed values are 'prompt_entropy'"):
        layer_metrics(features, ["entropy"])
    with pytest.raises(ValueError, match="empty list of metrics"):
        layer_metrics(features, [])
    with pytest.raises(KeyError, match=r"no layer\(s\) \[7\] in the features; they have \[0, 1, 2\]"):
        layer_metrics(features, layers=[7])
    with pytest.raises(ValueError, match="layer 0: there are 40 rows, fewer than window=64"):
        layer_metrics(features, window=64)
    with pytest.raises(ValueError, match=r"layer 4 has shape \(3,\); expected word features"):
        layer_metrics({4: np.ones(3)})
    with pytest.raises(ValueError, match="empty mapping of layers"):
        layer_metrics({})
    with pytest.raises(TypeError, match="needs a FeatureSet, a path"):
        layer_metrics([1, 2])
    with pytest.raises(ValueError, match="Invalid value for 'id_method'"):
        layer_metrics(features, id_method="knn")
    with pytest.raises(ValueError, match="metric 'a' has 2 values for 3 layers"):
        LayerMetrics(layers=[0, 1, 2], values={"a": [1.0, 2.0]})
    with pytest.raises(KeyError, match=r"no metric 'b'; it has \['a'\]"):
        LayerMetrics(layers=[0], values={"a": [1.0]})["b"]
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(ValueError, match="is not a neuroenc metrics file"):
        LayerMetrics.load(other)
    with pytest.raises(FileNotFoundError, match="metrics file not found"):
        LayerMetrics.load(tmp_path / "nope.h5")
