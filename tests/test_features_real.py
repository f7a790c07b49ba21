"""Real models on real text: smollm2-135m and minilm-l6 on the first 200 words of Alice."""
from __future__ import annotations

import numpy as np
import pytest
from _features_helpers import direct_features, max_rel_err, one_torch_thread  # noqa: F401

from neuroenc.features import extract_features, load_model
from neuroenc.features.models import ModelNotAvailableError
from neuroenc.features.tokens import align_tokens

pytestmark = pytest.mark.slow
TOL = 1e-4


def _load(name):
    try:
        return load_model(name, device="cpu", dtype="float32")
    except ModelNotAvailableError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def smollm2():
    return _load("smollm2-135m")


@pytest.fixture(scope="module")
def minilm():
    return _load("minilm-l6")


@pytest.fixture(scope="module")
def alice200(data_dir):
    from neuroenc.datasets import load_alice

    return load_alice(data_dir=data_dir, download=False).transcripts["alice"][:200]


def test_smollm2_strided_equals_direct_forward_over_recorded_context(smollm2, alice200):
    C, S = 8, 4
    fs = extract_features(alice200, smollm2, context_tokens=C, stride=S)
    assert fs.layer_indices == list(range(31)) and fs.n_features() == 576
    al = align_tokens(alice200, smollm2.tokenizer)
    cs, cl = fs.attrs["context_start"], fs.attrs["context_len"]
    left = al.word_start - cs
    assert ((left >= C) & (left < C + S) | (cs == 0)).all()
    np.testing.assert_array_equal(cs + cl, al.word_stop)
    assert fs.attrs["prefix_ids"] == [smollm2.tokenizer.bos_token_id]  # the default prepend_bos="auto"
    ref = direct_features(smollm2, al, cs, cs + cl, prefix=fs.attrs["prefix_ids"])
    errors = [max_rel_err(fs[layer], ref[layer]) for layer in fs.layer_indices]
    assert max(errors) < TOL, errors
    # About (C + S) / S token-forwards per token, far fewer than a window per word.
    assert fs.attrs["n_token_forwards"] < 3.5 * al.n_tokens


def test_smollm2_window_equals_direct_window(smollm2, alice200):
    C = 8
    fs = extract_features(alice200, smollm2, context_tokens=C, policy="window", layers=[0, 10, 20, 30])
    al = align_tokens(alice200, smollm2.tokenizer)
    starts = np.maximum(al.word_start - C, 0)
    np.testing.assert_array_equal(fs.attrs["context_start"], starts)
    ref = direct_features(smollm2, al, starts, al.word_stop, prefix=fs.attrs["prefix_ids"])
    for layer in fs.layer_indices:
        assert max_rel_err(fs[layer], ref[layer]) < TOL


def test_minilm_layers_and_pooling_equal_direct_forward(minilm, alice200):
    assert minilm.kind == "masked" and minilm.max_positions == 512
    al = align_tokens(alice200, minilm.tokenizer)
    for pooling in ("last", "mean", "first"):
        fs = extract_features(alice200, minilm, context_tokens=16, stride=8, pooling=pooling)
        assert fs.layer_indices == list(range(7))
        assert all(fs[layer].shape == (200, 384) for layer in fs.layer_indices)
        cs, cl = fs.attrs["context_start"], fs.attrs["context_len"]
        ref = direct_features(minilm, al, cs, cs + cl, pooling=pooling)
        for layer in fs.layer_indices:
            assert max_rel_err(fs[layer], ref[layer]) < TOL
    # Window with right context: exactly 16 tokens left and 2 right of each word.
    fs = extract_features(alice200, minilm, context_tokens=16, right_context=2, policy="window",
                          pooling="mean", layers=[6])
    starts = np.maximum(al.word_start - 16, 0)
    stops = np.minimum(al.word_stop + 2, al.n_tokens)
    ref = direct_features(minilm, al, starts, stops, pooling="mean")
    assert max_rel_err(fs[6], ref[6]) < TOL


def test_smollm2_first_word_is_no_attention_sink_after_a_bos(smollm2, alice200):
    """Without a BOS, Alice's first word sits at position 0, SmolLM2's attention sink: its
    residual norm is ~24,000 in layers 12-28, against a median of 130-700 over the other
    words. With prepend_bos="auto" (SmolLM2's BOS, <|im_start|>) it is within a few medians."""
    plain = extract_features(alice200, smollm2, layers=list(range(12, 29)), prepend_bos=False)
    bos = extract_features(alice200, smollm2, layers=list(range(12, 29)), prepend_bos="auto")
    assert plain.attrs["prefix_ids"] == [] and bos.attrs["prefix_ids"] == [smollm2.tokenizer.bos_token_id]
    assert "word 0 'Alice'" in plain.attrs["warnings"][0] and bos.attrs["warnings"] == []
    for layer in plain.layer_indices:
        for fs, low, high in ((plain, 20_000, 30_000), (bos, 0, 5)):
            norms = np.linalg.norm(fs[layer], axis=1)
            ratio = norms[0] / np.median(norms[1:])
            if fs is plain:
                assert low < norms[0] < high, (layer, norms[0])
                assert ratio > 30, (layer, ratio)
            else:
                assert ratio < high, (layer, ratio)
