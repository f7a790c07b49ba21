"""Feature extraction on tiny random models: exactness against direct forward passes."""
from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch
from _features_helpers import direct_features, max_rel_err, one_torch_thread  # noqa: F401

from neuroenc.features import FeatureExtractor, extract_features
from neuroenc.features.extract import token_states
from neuroenc.features.layers import layer_at_depth, resolve_layers
from neuroenc.features.tokens import align_tokens
from neuroenc.stimuli import Transcript
from neuroenc.stimuli.transcript import TranscriptError
from neuroenc.testing import tiny_bert, tiny_gpt2, tiny_llama, tiny_transcript

TOL = 1e-4


@pytest.fixture(scope="module")
def gpt2():
    return tiny_gpt2()


@pytest.fixture(scope="module")
def models():
    return {"gpt2": tiny_gpt2(), "llama": tiny_llama(), "bert": tiny_bert()}


@pytest.fixture(scope="module")
def transcript():
    return tiny_transcript(120)


@pytest.mark.parametrize("name", ["gpt2", "llama", "bert"])
@pytest.mark.parametrize("policy", ["strided", "window"])
def test_features_equal_direct_forward_over_recorded_context(models, transcript, name, policy):
    lm = models[name]
    C, S = 12, 5
    fs = extract_features(transcript, lm, context_tokens=C, stride=S, policy=policy, batch_size=3)
    al = align_tokens(transcript, lm.tokenizer)
    cs, cl = fs.attrs["context_start"], fs.attrs["context_len"]
    # the default prepend_bos="auto": the tiny GPT-2 gets its BOS, Llama and BERT their own prefix
    assert fs.attrs["prefix_ids"] == (list(lm.prefix_ids) or [lm.tokenizer.bos_token_id])
    ref = direct_features(lm, al, cs, cs + cl, prefix=fs.attrs["prefix_ids"])
    assert fs.layer_indices == list(range(5))
    for layer in fs.layer_indices:
        assert max_rel_err(fs[layer], ref[layer]) < TOL
    # The recorded contexts are the ones the policy promises.
    left = al.word_start - cs
    if policy == "window":
        np.testing.assert_array_equal(cs, np.maximum(al.word_start - C, 0))
    else:
        assert ((left >= C) & (left < C + S) | (cs == 0)).all()
    if lm.kind == "causal":
        np.testing.assert_array_equal(cs + cl, al.word_stop)


@pytest.mark.parametrize("pooling", ["mean", "first"])
def test_pooling_equals_direct_forward(gpt2, pooling):
    # Words with many tokens make mean/first/last differ.
    tr = Transcript(["Alice", "considering", "daisy-chain", "waistcoat-pocket", "rabbit-hole",
                     "conversations?'", "Oh", "dear!"] * 4, np.arange(32) * 0.3)
    fs = extract_features(tr, gpt2, context_tokens=6, stride=3, pooling=pooling)
    last = extract_features(tr, gpt2, context_tokens=6, stride=3, pooling="last")
    al = align_tokens(tr, gpt2.tokenizer)
    cs, cl = fs.attrs["context_start"], fs.attrs["context_len"]
    ref = direct_features(gpt2, al, cs, cs + cl, pooling=pooling, prefix=fs.attrs["prefix_ids"])
    for layer in fs.layer_indices:
        assert max_rel_err(fs[layer], ref[layer]) < TOL
    multi = al.word_n_tokens > 1
    assert multi.sum() >= 8
    assert np.abs(fs[4][multi] - last[4][multi]).max() > 1e-3


def test_masked_window_with_right_context_equals_direct(models, transcript):
    lm = models["bert"]
    fs = extract_features(transcript, lm, context_tokens=6, right_context=3, policy="window",
                          pooling="mean")
    al = align_tokens(transcript, lm.tokenizer)
    starts = np.maximum(al.word_start - 6, 0)
    stops = np.minimum(al.word_stop + 3, al.n_tokens)
    np.testing.assert_array_equal(fs.attrs["context_start"], starts)
    np.testing.assert_array_equal(fs.attrs["context_len"], stops - starts)
    ref = direct_features(lm, al, starts, stops, pooling="mean")
    for layer in fs.layer_indices:
        assert max_rel_err(fs[layer], ref[layer]) < TOL
    # The right context matters for a masked model.
    none = extract_features(transcript, lm, layers=[4], context_tokens=6, policy="window", pooling="mean")
    assert np.abs(none[4] - fs[4]).max() > 1e-3


def test_batch_size_and_padding_do_not_change_features(gpt2, transcript):
    kw = dict(context_tokens=10, policy="window")
    one = extract_features(transcript, gpt2, batch_size=1, **kw)
    many = extract_features(transcript, gpt2, batch_size=16, **kw)
    auto = extract_features(transcript, gpt2, batch_size="auto", **kw)
    for layer in one.layer_indices:
        np.testing.assert_allclose(many[layer], one[layer], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(auto[layer], one[layer], rtol=1e-5, atol=1e-5)


def test_feature_set_metadata(gpt2, transcript):
    fs = extract_features(transcript, gpt2, layers=[1, 3], context_tokens=8, stride=4,
                          reference="midpoint")
    assert fs.layer_indices == [1, 3]
    assert fs.n_model_layers == 5 and fs.model == "tiny-gpt2" and fs.run == "tiny"
    assert fs.words == list(transcript.words)
    np.testing.assert_array_equal(fs.onsets, transcript.onsets)
    np.testing.assert_array_equal(fs.times, transcript.midpoints)
    assert fs[1].dtype == np.float32 and fs[1].shape == (120, 64)
    a = fs.attrs
    assert (a["policy"], a["context_tokens"], a["stride"], a["pooling"]) == ("strided", 8, 4, "last")
    assert a["transcript_sha256"] == transcript.sha256() and a["model_kind"] == "causal"
    assert a["model_sha256"] == gpt2.sha256 and a["intervention"] is None
    assert a["layers"] == [1, 3] and len(a["cache_key"]) == 64
    # Subsets equal the full extraction.
    full = extract_features(transcript, gpt2, context_tokens=8, stride=4)
    np.testing.assert_array_equal(fs[3], full[3])


def test_layers_relative_depth_and_negative_indices(gpt2, transcript):
    assert resolve_layers([0.5, -1, 0], 31) == [0, 15, 30]
    assert layer_at_depth(0.5, 5) == 2 and layer_at_depth(1.0, 7) == 6
    fs = extract_features(transcript[:20], gpt2, layers=[0.5, -1], context_tokens=4)
    assert fs.layer_indices == [2, 4]


def test_bad_layers_are_errors(gpt2, transcript):
    tr = transcript[:10]
    message = "Layer 9 is out of range for 'tiny-gpt2', which has 5 hidden states"
    with pytest.raises(ValueError, match=re.escape(message)):
        extract_features(tr, gpt2, layers=[1, 9])
    with pytest.raises(ValueError, match=r"Relative depth must be in \[0, 1\]"):
        extract_features(tr, gpt2, layers=[1.5])
    with pytest.raises(ValueError, match="layers must be 'all', an int, a number or a list of numbers; got 'middle'"):
        extract_features(tr, gpt2, layers="middle")
    with pytest.raises(TypeError, match=r"layers must be 'all', an int, a number or a list of numbers; got \[True\]"):
        extract_features(tr, gpt2, layers=[True])
    with pytest.raises(ValueError, match=r"layers must be .* a list of numbers; got \[\] \(list\)"):
        extract_features(tr, gpt2, layers=[])


def test_bad_settings_are_errors(gpt2, transcript):
    tr = transcript[:10]
    with pytest.raises(ValueError,
                       match="Invalid value for 'pooling'. Allowed values are 'last', 'mean', 'first', but got 'max'"):
        extract_features(tr, gpt2, pooling="max")
    with pytest.raises(ValueError, match="Invalid value for 'policy'"):
        extract_features(tr, gpt2, policy="sliding")
    with pytest.raises(ValueError, match=r"stride must be None or an int >= 1; got 0 \(int\)"):
        extract_features(tr, gpt2, stride=0)
    with pytest.raises(TypeError, match=r"context_tokens must be an int >= 0 or 'full'; got 12.5 \(float\)"):
        extract_features(tr, gpt2, context_tokens=12.5)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1 or 'auto'; got 0"):
        extract_features(tr, gpt2, batch_size=0)
    with pytest.raises(ValueError, match="right_context=2 needs a masked model, but 'tiny-gpt2' is causal"):
        extract_features(tr, gpt2, right_context=2)


def test_empty_or_wrong_transcript_is_an_error(gpt2):
    with pytest.raises(TranscriptError, match="is empty: it has no words"):
        extract_features(Transcript([], []), gpt2)
    with pytest.raises(ValueError, match="empty transcript: it has no words"):
        extract_features([], gpt2)
    with pytest.raises(TypeError, match="'transcript' must be a neuroenc Transcript"):
        extract_features("Alice was beginning", gpt2)


def test_context_beyond_max_positions_is_an_error_not_a_truncation(transcript):
    lm = tiny_gpt2(n_layer=1, n_positions=32)
    with pytest.raises(ValueError, match=re.escape(
            "context_tokens=24 + stride=12 + 1 special token(s) need 37 positions, but model "
            "'tiny-gpt2' has at most 32")):
        extract_features(transcript, lm, context_tokens=24, stride=12)
    with pytest.raises(ValueError, match="need 33 positions"):
        extract_features(transcript, lm, context_tokens=32, policy="window", prepend_bos=False)
    # A word with many tokens makes the longest sequence too long.
    long = Transcript(["Alice", "qxzjv" * 8, "was"], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match=re.escape("the longest sequence (word 1 'qxzjv")):
        extract_features(long, lm, context_tokens=10, stride=10)
    # Special tokens count: BERT's [CLS] and [SEP].
    bert = tiny_bert(n_layer=1, max_positions=16)
    with pytest.raises(ValueError, match=re.escape("+ 2 special token(s) need 17 positions")):
        extract_features(transcript, bert, context_tokens=10, stride=5)


def test_out_of_memory_halves_the_batch(transcript, monkeypatch, caplog):
    lm = tiny_gpt2(n_layer=2)
    ref = extract_features(transcript, lm, context_tokens=10, policy="window", batch_size=1)
    original = lm.hidden_states
    sizes = []

    def flaky(input_ids, attention_mask=None):
        sizes.append(int(input_ids.shape[0]))
        if input_ids.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(input_ids, attention_mask)

    monkeypatch.setattr(lm, "hidden_states", flaky)
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        fs = extract_features(transcript, lm, context_tokens=10, policy="window", batch_size=8)
    assert sizes[:3] == [8, 4, 2] and max(sizes[3:]) == 2
    assert "Out of memory with 8 sequences per batch; retrying with 4" in caplog.text
    for layer in ref.layer_indices:
        np.testing.assert_allclose(fs[layer], ref[layer], rtol=1e-5, atol=1e-6)

    def broken(input_ids, attention_mask=None):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(lm, "hidden_states", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        extract_features(transcript, lm, context_tokens=10, batch_size=8)


def test_token_states_equal_hidden_states(models):
    lm = models["llama"]  # prefixes a BOS token
    al = align_tokens(tiny_transcript(30), lm.tokenizer)
    ids = al.input_ids[5:25]
    states = token_states(lm, ids, layers=[0, 4])
    seq = torch.tensor([lm.prefix_ids + ids.tolist()])
    with torch.inference_mode():
        ref = lm.hidden_states(seq)
    assert sorted(states) == [0, 4] and states[4].shape == (20, 64)
    np.testing.assert_allclose(states[4], ref[4][0, 1:].numpy(), rtol=1e-6, atol=1e-6)
    text = token_states(lm, "Alice was beginning", layers="all")
    assert len(text) == 5 and text[0].shape[0] == len(lm.tokenizer("Alice was beginning",
                                                                    add_special_tokens=False)["input_ids"])
    with pytest.raises(ValueError, match="at least one token"):
        token_states(lm, [])
    with pytest.raises(TypeError, match="'model' must be an instance of LoadedModel"):
        token_states("tiny-llama", [1, 2])


def test_extractor_reuses_one_loaded_model(tmp_path, monkeypatch):
    tiny_gpt2(n_layer=2, path=tmp_path / "gpt2")
    ext = FeatureExtractor(str(tmp_path / "gpt2"), context_tokens=8, stride=4).fit()
    loaded = ext.model_
    import neuroenc.features.extract as extract_module

    def no_reload(*args, **kwargs):
        raise AssertionError("the model was loaded twice")

    monkeypatch.setattr(extract_module, "load_model", no_reload)
    a = ext.transform(tiny_transcript(30, name="a"))
    b = ext.transform(tiny_transcript(40, name="b"))
    assert ext.model_ is loaded and (a.run, b.run) == ("a", "b")
    # Same words, same context -> same features, whichever transcript they came from.
    np.testing.assert_allclose(a[2][:30], b[2][:30], rtol=1e-5, atol=1e-6)
    assert "FeatureExtractor(model=" in repr(ext)


def test_intervention_is_applied_and_recorded(gpt2, transcript):
    pytest.importorskip("neuroenc.features.interventions_patch")
    tr = transcript[:40]
    plain = extract_features(tr, gpt2, context_tokens=8, stride=4)
    none = extract_features(tr, gpt2, context_tokens=8, stride=4, intervention="none")
    skip = extract_features(tr, gpt2, context_tokens=8, stride=4, intervention="skip:1")
    for layer in plain.layer_indices:
        np.testing.assert_array_equal(none[layer], plain[layer])
    # Block 1 is skipped: hidden state 2 is hidden state 1, the lower layers are unchanged.
    np.testing.assert_array_equal(skip[0], plain[0])
    np.testing.assert_array_equal(skip[1], plain[1])
    np.testing.assert_allclose(skip[2], plain[1], rtol=1e-6, atol=1e-6)
    assert np.abs(skip[3] - plain[3]).max() > 1e-3
    assert skip.attrs["intervention"]["kind"] == "skip"
    assert skip.attrs["cache_key"] != plain.attrs["cache_key"]


@pytest.fixture
def neuroenc_logger():
    """The package logger, restored (level and handlers) after the test."""
    log = logging.getLogger("neuroenc")
    level, handlers = log.level, list(log.handlers)
    yield log
    log.setLevel(level)
    log.handlers[:] = handlers


def _messages(caplog, text):
    return [r for r in caplog.records if text in r.getMessage()]


def test_verbose_never_changes_the_shared_logger(tmp_path, neuroenc_logger, monkeypatch, caplog, capsys):
    """verbose=None inherits the logger's level; an explicit level applies to the call's own
    messages and progress bar only, and the shared logger's level is never touched."""
    import neuroenc.features.extract as extract_module

    lm = tiny_gpt2(n_layer=1)
    levels = []
    original = extract_module.run_plan

    def spy(*args, **kwargs):
        levels.append(neuroenc_logger.level)
        return original(*args, **kwargs)

    monkeypatch.setattr(extract_module, "run_plan", spy)
    kw = dict(context_tokens=4, cache_dir=tmp_path)
    neuroenc_logger.setLevel(logging.WARNING)  # as `neuroenc -q` sets it
    # Inherit: quiet, no progress bar.
    extract_features(tiny_transcript(12, name="a"), lm, **kw)
    assert not _messages(caplog, "Wrote") and "features a" not in capsys.readouterr().err
    # An explicit "info" shows this call's messages and bar, without changing the logger.
    extract_features(tiny_transcript(12, name="b"), lm, verbose="info", **kw)
    assert len(_messages(caplog, "Wrote")) == 1 and "features b" in capsys.readouterr().err
    extract_features(tiny_transcript(12, name="b"), lm, verbose=True, **kw)
    assert len(_messages(caplog, "Reusing cached features")) == 1
    assert levels == [logging.WARNING, logging.WARNING] and neuroenc_logger.level == logging.WARNING
    # Inherit a verbose logger: messages and bar show; an explicit "error" silences this call only.
    neuroenc_logger.setLevel(logging.INFO)
    extract_features(tiny_transcript(12, name="c"), lm, **kw)
    assert len(_messages(caplog, "Wrote")) == 2 and "features c" in capsys.readouterr().err
    extract_features(tiny_transcript(12, name="d"), lm, verbose="error", **kw)
    extract_features(tiny_transcript(12, name="d"), lm, verbose="error", **kw)
    assert len(_messages(caplog, "Wrote")) == 2 and len(_messages(caplog, "Reusing")) == 1
    assert "features d" not in capsys.readouterr().err
    assert levels[2:] == [logging.INFO, logging.INFO] and neuroenc_logger.level == logging.INFO
    with pytest.raises(ValueError, match="Invalid value for 'verbose'. Allowed values are 'debug'"):
        extract_features(tiny_transcript(12, name="e"), lm, verbose="loud", **kw)


def test_learned_attributes_only_after_fit(tmp_path):
    """As scikit-learn estimators: nothing ending in "_" before fit (cache_path included)."""
    from neuroenc.features.models import model_identity

    def learned(est):  # scikit-learn's check_is_fitted rule
        return sorted(k for k in vars(est) if k.endswith("_") and not k.startswith("__"))

    tiny_gpt2(n_layer=1, path=tmp_path / "m")
    tiny_gpt2(n_layer=1, seed=1, path=tmp_path / "m2")
    tr = tiny_transcript(10)
    ext = FeatureExtractor(str(tmp_path / "m"), cache_dir=tmp_path / "c", context_tokens=4)
    path = ext.cache_path(tr)
    assert learned(ext) == []
    # The memoised identity follows the model parameter.
    ext.model = str(tmp_path / "m2")
    assert ext.cache_path(tr) != path
    ext.model = str(tmp_path / "m")
    assert ext.cache_path(tr) == path
    ext.fit()
    assert learned(ext) == ["identity_", "model_"]
    assert ext.identity_ == ext.model_.identity == model_identity(str(tmp_path / "m"))
    assert ext.cache_path(tr) == path
