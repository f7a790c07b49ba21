"""layer_metrics(preset="skean2025") against a re-implementation of the authors' published code.

The reference functions below re-implement, in torch and float64, the functions of
github.com/OFSkean/information_flow (Skean et al. 2025, "Layer by Layer"):

- ``normalize`` in ``experiments/utils/metrics/metric_functions.py`` (from
  github.com/waltonfuture/Matrix-Entropy): centre a prompt's token rows, L2-normalise rows;
- ``compute_entropy`` in the same file: Gram on the smaller side, negative entries clamped to
  0, divided by its trace, then ``repitl.matrix_itl.matrixAlphaEntropy`` (eigenvalues > 0,
  renormalised, ``log(sum lambda^alpha) / (1 - alpha)``);
- ``compute_on_concatenated_passes`` in ``experiments/utils/misc/metric_utils.py``: each
  prompt normalised and mean-pooled, then ``compute_entropy`` over the prompts (dataset
  entropy); ``compute_per_forward_pass``: the mean of a per-prompt metric (prompt entropy);
- ``compute_curvature`` in ``experiments/utils/metrics/metric_functions.py`` (later code:
  ``arccos(|v_{k+1} . v_k| / (|v_{k+1}| |v_k|))`` of successive steps) and in
  ``experiments/utils/misc/metric_utils.py`` (earlier code: ``arccos(z_i . z_{i+1})`` of
  successive normalised states).
"""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from neuroenc.features import FeatureSet, layer_metrics
from neuroenc.features.metrics import curvature, normalize_prompts


# ------------------------------------------------------------------ the authors' functions
def ref_normalize(R):
    mean = R.mean(dim=0)
    R = R - mean
    norms = torch.norm(R, p=2, dim=1, keepdim=True)
    return R / norms


def ref_matrix_alpha_entropy(K, alpha):
    ek, _ = torch.linalg.eigh(K)
    mek = ek[torch.gt(ek, 0.0)]
    mek = mek / torch.sum(mek)
    if alpha == 1:  # the Shannon limit (repitl's formula divides by 1 - alpha = 0)
        return -torch.sum(mek * torch.log(mek))
    return (1.0 / (1.0 - alpha)) * torch.log(torch.sum(torch.exp(alpha * torch.log(mek))))


def ref_compute_entropy(hidden_states, alpha=1):
    L, N, D = hidden_states.shape
    if N > D:
        cov = torch.matmul(hidden_states.transpose(1, 2), hidden_states)
    else:
        cov = torch.matmul(hidden_states, hidden_states.transpose(1, 2))
    cov = torch.clamp(cov, min=0)
    out = []
    for layer_cov in cov:
        layer_cov = layer_cov.double() / torch.trace(layer_cov.double())
        out.append(ref_matrix_alpha_entropy(layer_cov, alpha).item())
    return out


def ref_curvature_later(layer_p):
    summation, counter = 0.0, 0
    for k in range(1, layer_p.shape[0] - 1):
        v_k = layer_p[k].unsqueeze(1) - layer_p[k - 1].unsqueeze(1)
        v_kplusone = layer_p[k + 1].unsqueeze(1) - layer_p[k].unsqueeze(1)
        dot = torch.abs(v_kplusone.T @ v_k)
        arg = torch.clamp(dot / (torch.norm(v_kplusone) * torch.norm(v_k)), min=-1, max=1)
        summation += torch.arccos(arg).item()
        counter += 1
    return summation / counter


def ref_curvature_earlier(layer_p, k=1):
    summation, counter = 0.0, 0
    for i in range(layer_p.shape[0] - k):
        summation += torch.arccos(layer_p[i].unsqueeze(1).T @ layer_p[i + k].unsqueeze(1)).item()
        counter += 1
    return summation / counter


def ref_metrics(windows, alpha):
    """The authors' prompt entropy, dataset entropy and both curvatures of one layer."""
    normed = [ref_normalize(torch.from_numpy(w)) for w in windows]
    prompt = np.mean([ref_compute_entropy(x[None], alpha)[0] for x in normed])
    pooled = torch.stack([x.mean(dim=0) for x in normed])
    dataset = ref_compute_entropy(pooled[None], alpha)[0]
    later = np.mean([ref_curvature_later(x) for x in normed])
    earlier = np.mean([ref_curvature_earlier(x) for x in normed])
    return prompt, dataset, later, earlier


def _states(rng, n_windows, n_tokens, dim):
    # A shared offset and a few strong directions: Gram matrices with negative entries.
    base = rng.normal(size=(1, 1, dim)) * 2.0
    return base + rng.normal(size=(n_windows, n_tokens, dim)) @ np.diag(rng.uniform(0.2, 2.0, dim))


@pytest.mark.parametrize("shape", [(9, 12, 32), (7, 40, 8)])  # tokens <= dim, and tokens > dim
@pytest.mark.parametrize("alpha", [1.0, 2.0, 0.5])
def test_skean2025_preset_equals_the_authors_code(rng, shape, alpha):
    layers = {0: _states(rng, *shape), 1: _states(rng, *shape)}
    got = {c: layer_metrics(layers, ["prompt_entropy", "dataset_entropy", "curvature"], alpha=alpha,
                            preset="skean2025", curvature=c) for c in ("abs-angles", "angles")}
    for row, layer in enumerate(sorted(layers)):
        prompt, dataset, later, earlier = ref_metrics(layers[layer], alpha)
        res = got["abs-angles"]
        np.testing.assert_allclose(res["prompt_entropy"][row], prompt, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(res["dataset_entropy"][row], dataset, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(res["curvature"][row], later, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(got["angles"]["curvature"][row], earlier, rtol=1e-6, atol=1e-6)
    assert got["abs-angles"].settings["preset"] == "skean2025"


def test_preset_differs_from_the_default_and_clamp_matters(rng):
    layers = {0: _states(rng, 6, 12, 32)}
    default = layer_metrics(layers, ["prompt_entropy", "dataset_entropy", "curvature"])
    preset = layer_metrics(layers, ["prompt_entropy", "dataset_entropy", "curvature"], preset="skean2025")
    for name in ("prompt_entropy", "dataset_entropy", "curvature"):
        assert abs(default[name][0] - preset[name][0]) > 1e-3, name
    assert default.settings["curvature"] == "paper" and preset.settings["curvature"] == "abs-angles"
    # Without the clamp the preset's prompt entropy would differ: the clamp is reproduced.
    from neuroenc.features.metrics import prompt_entropy

    unclamped = np.mean(prompt_entropy(normalize_prompts(layers[0]), clamp=False))
    assert abs(unclamped - preset["prompt_entropy"][0]) > 1e-4


def test_curvature_variants_known_answers():
    # A zig-zag in the plane: successive steps at 90 degrees; states at known angles.
    zigzag = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [2.0, 1.0], [2.0, 2.0]])
    assert curvature(zigzag) == pytest.approx(np.pi / 2)
    assert curvature(zigzag, "abs-angles") == pytest.approx(np.pi / 2)
    back = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])  # reversals: pi, folded to 0
    assert curvature(back) == pytest.approx(np.pi)
    assert curvature(back, "abs-angles") == pytest.approx(0.0, abs=1e-12)
    circle = np.stack([np.cos(np.arange(4) * 0.3), np.sin(np.arange(4) * 0.3)], axis=1) * 5.0
    assert curvature(circle, "angles") == pytest.approx(0.3)
    with pytest.raises(ValueError, match="Invalid value for 'method'"):
        curvature(zigzag, "abs")


def test_normalize_prompts_centres_and_scales(rng):
    x = _states(rng, 3, 5, 4)
    n = normalize_prompts(x)
    np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1.0)
    np.testing.assert_allclose(n, [ref_normalize(torch.from_numpy(w)).numpy() for w in x], atol=1e-12)


def test_first_token_drop_and_bos_warning(rng, caplog):
    states = _states(rng, 4, 10, 16)
    states[:, 0] *= 50.0  # an attention sink: one huge first state
    keep = layer_metrics({0: states}, ["prompt_entropy"])
    drop = layer_metrics({0: states}, ["prompt_entropy"], first_token="drop")
    ref = layer_metrics({0: states[:, 1:]}, ["prompt_entropy"])
    np.testing.assert_allclose(drop["prompt_entropy"], ref["prompt_entropy"])
    assert keep["prompt_entropy"][0] < drop["prompt_entropy"][0] - 0.5  # the sink dominates
    words = rng.normal(size=(40, 8))
    onsets = np.arange(40.0)
    no_bos = FeatureSet({0: words}, onsets, run="r", attrs={"prefix_ids": []})
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        layer_metrics(no_bos, ["dataset_entropy"], window=8)
    assert "record no BOS" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        dropped = layer_metrics(no_bos, ["dataset_entropy"], window=8, first_token="drop")
        layer_metrics(FeatureSet({0: words}, onsets, run="r", attrs={"prefix_ids": [0]}), ["dataset_entropy"],
                      window=8)
    assert "record no BOS" not in caplog.text
    np.testing.assert_allclose(dropped["dataset_entropy"], layer_metrics({0: words[1:]}, ["dataset_entropy"],
                                                                         window=8)["dataset_entropy"])


@pytest.mark.parametrize("kwargs, match", [
    ({"preset": "skean"}, "Invalid value for 'preset'"),
    ({"curvature": "abs"}, "Invalid value for 'curvature'"),
    ({"first_token": "skip"}, "Invalid value for 'first_token'"),
    ({"preset": "skean2025", "center": True}, "center=True cannot be combined with preset='skean2025'"),
])
def test_bad_options(rng, kwargs, match):
    with pytest.raises(ValueError, match=match):
        layer_metrics({0: _states(rng, 3, 5, 4)}, ["prompt_entropy"], **kwargs)


def test_metrics_command_preset_options(rng, tmp_path, capsys):
    from neuroenc.cli import main
    from neuroenc.features.featureset import save_features
    from neuroenc.features.metrics_layers import LayerMetrics

    words = rng.normal(size=(40, 8)) + 3.0
    fs = FeatureSet({0: words, 1: words ** 2}, np.arange(40.0), run="story", model="m", n_model_layers=2,
                    attrs={"prefix_ids": [0]})
    feats = save_features(fs, tmp_path / "features.h5")
    out = tmp_path / "metrics.h5"
    assert main(["-q", "metrics", "--features", str(feats), "--out", str(out), "--window", "8",
                 "--metrics", "prompt_entropy,curvature", "--preset", "skean2025", "--curvature", "angles",
                 "--first-token", "drop"]) == 0
    got = LayerMetrics.load(out)
    assert got.settings["preset"] == "skean2025" and got.settings["curvature"] == "angles"
    expected = layer_metrics(fs, ["prompt_entropy", "curvature"], window=8, preset="skean2025",
                             curvature="angles", first_token="drop")
    np.testing.assert_allclose(got["prompt_entropy"], expected["prompt_entropy"])
    np.testing.assert_allclose(got["curvature"], expected["curvature"])
    capsys.readouterr()
    assert main(["metrics", "--features", str(feats), "--out", str(out), "--intervention", "skip:1"]) == 1
    assert "apply to --quality only" in capsys.readouterr().err
