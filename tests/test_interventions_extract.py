"""Interventions through the feature extractor: known answers on a tiny Llama."""
from __future__ import annotations

import numpy as np
import pytest

from neuroenc.features import extract_features
from neuroenc.testing import tiny_llama, tiny_transcript

N_BLOCKS = 4


@pytest.fixture(scope="module")
def lm():
    return tiny_llama(n_layer=N_BLOCKS, hidden_size=32)


@pytest.fixture(scope="module")
def transcript():
    return tiny_transcript(30)


def _extract(transcript, lm, intervention=None, policy="window"):
    return extract_features(transcript, lm, context_tokens=12, stride=6, policy=policy, pooling="last",
                            intervention=intervention)


@pytest.fixture(scope="module")
def intact(transcript, lm):
    return {policy: _extract(transcript, lm, policy=policy) for policy in ("window", "strided")}


@pytest.mark.parametrize("policy", ["window", "strided"])
def test_skip_and_parallel_through_the_extractor(transcript, lm, intact, policy):
    ref = intact[policy]
    skipped = _extract(transcript, lm, "skip:2", policy)
    # separate forward passes: equal to float32 rounding (a tolerance that holds across CPUs and
    # thread counts); the skipped block's output is its input, the same array
    for layer in range(3):
        np.testing.assert_allclose(skipped[layer], ref[layer], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(skipped[3], skipped[2])  # the skipped block passes its input on
    assert not np.allclose(skipped[4], ref[4], atol=1e-3)
    assert skipped.attrs["intervention"] == {"kind": "skip", "start": 2, "stop": 2, "spec": "skip:2"}
    single = _extract(transcript, lm, "parallel:1", policy)
    for layer in ref.layer_indices:
        np.testing.assert_allclose(single[layer], ref[layer], rtol=1e-5, atol=1e-6)


def test_freeze_context_through_the_window_policy(transcript, lm, intact):
    ref = intact["window"]
    # Frozen from the last block: the current word's own state is never changed.
    last = _extract(transcript, lm, f"freeze-context:{N_BLOCKS - 1}")
    for layer in ref.layer_indices:
        np.testing.assert_allclose(last[layer], ref[layer], rtol=1e-6, atol=1e-6)
    # Frozen from block 1: block 1 still sees the intact context (hidden state 1), so layers
    # 0..2 are unchanged and layers 3 and 4 change.
    frozen = _extract(transcript, lm, "freeze-context:1")
    for layer in range(3):
        np.testing.assert_allclose(frozen[layer], ref[layer], rtol=1e-6, atol=1e-6)
    for layer in (3, 4):
        assert not np.allclose(frozen[layer], ref[layer], atol=1e-3)
    # Random context from block 1 already changes what block 1 reads.
    noisy = _extract(transcript, lm, "random-context:1:seed=3")
    np.testing.assert_allclose(noisy[1], ref[1], rtol=1e-6, atol=1e-6)
    assert not np.allclose(noisy[2], ref[2], atol=1e-3)


@pytest.mark.parametrize("spec", ["freeze-context:1", "freeze-context:1-2", "random-context:1:seed=3",
                                  "random-context:2:keep-sink", "swap-context:1-2:text=" + " ".join(["a b c"] * 30)])
def test_strided_context_interventions_equal_one_pass_per_word(transcript, lm, spec):
    """With the full context, one paired pass (policy='strided') gives exactly the features of
    one pass per word (policy='window'): every word's context is the story before it."""
    kw = dict(context_tokens="full", pooling="last", intervention=spec)
    window = extract_features(transcript, lm, policy="window", **kw)
    strided = extract_features(transcript, lm, policy="strided", **kw)
    for layer in window.layer_indices:
        np.testing.assert_allclose(strided[layer], window[layer], rtol=1e-5, atol=1e-5)
    intact = extract_features(transcript, lm, policy="strided", context_tokens="full", pooling="last")
    assert not np.allclose(strided[N_BLOCKS], intact[N_BLOCKS], atol=1e-3)  # the intervention acts
    assert strided.attrs["n_token_forwards"] < window.attrs["n_token_forwards"] / 5


def test_strided_context_interventions_chunks_and_surprisal(transcript, lm):
    """Strided chunks: each word is read with its chunk's earlier tokens as context, and the
    surprisal read from the same paired pass is each token's, under the intervention."""
    from neuroenc.features.quality import lm_quality

    f = extract_features(transcript, lm, context_tokens=12, stride=6, policy="strided", pooling="last",
                         intervention="freeze-context:1", surprisal=True)
    # a word's window pass over exactly its recorded context gives the same features
    window = extract_features(transcript, lm, context_tokens=12, policy="window", pooling="last",
                              intervention="freeze-context:1")
    same = np.asarray(f.attrs["context_len"]) == np.asarray(window.attrs["context_len"])
    assert same.sum() >= 3
    np.testing.assert_allclose(f[N_BLOCKS][same], window[N_BLOCKS][same], rtol=1e-5, atol=1e-5)
    full = extract_features(transcript, lm, context_tokens="full", policy="strided", pooling="last",
                            intervention="freeze-context:1", surprisal=True)
    q = lm_quality(transcript.words, lm, intervention="freeze-context:1")
    np.testing.assert_allclose(full.attrs["surprisal"], q.word_surprisal, rtol=1e-4, atol=1e-4)


def test_context_interventions_on_a_masked_model_need_the_window_policy(transcript):
    from neuroenc.testing import tiny_bert

    bert = tiny_bert(n_layer=2)
    with pytest.raises(ValueError, match="needs a causal model; this model is 'masked'"):
        extract_features(transcript, bert, context_tokens=12, policy="strided", pooling="last",
                         intervention="freeze-context:1")
    with pytest.raises(ValueError, match="with policy='window' .* needs pooling='last'"):
        extract_features(transcript, bert, context_tokens=12, policy="window", pooling="mean",
                         intervention="freeze-context:1")


def test_random_context_does_not_depend_on_batching(transcript, lm):
    """Each word's random context is drawn from its own sequence's tokens: batch size, row and
    padding leave its features unchanged (with one generator per batch they differed by ~1)."""
    kw = dict(context_tokens=12, policy="window", pooling="last", intervention="random-context:1:seed=3")
    one = extract_features(transcript, lm, batch_size=1, **kw)
    three = extract_features(transcript, lm, batch_size=3, **kw)
    many = extract_features(transcript, lm, batch_size=64, **kw)
    for layer in one.layer_indices:
        np.testing.assert_allclose(three[layer], one[layer], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(many[layer], one[layer], rtol=1e-5, atol=1e-5)
    # The seed still matters, and the recorded spec says how the noise was drawn.
    other = extract_features(transcript, lm, batch_size=3, **dict(kw, intervention="random-context:1:seed=4"))
    assert not np.allclose(other[2], one[2], atol=1e-3)
    assert one.attrs["intervention"] == {"kind": "random-context", "start": 1, "seed": 3,
                                         "noise": "per-prefix", "spec": "random-context:1:seed=3"}
