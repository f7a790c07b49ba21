"""Extraction options: ``context_tokens="full"``, ``prepend_bos``, ``last_layer``; their
provenance, cache keys, config and command line; and ``prepend_bos=False`` (the default before
issue 19) with the other defaults reproduces the features of the code before these options
existed."""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import transformers
from _features_helpers import direct_features, max_rel_err, one_torch_thread  # noqa: F401

from neuroenc.cli import main
from neuroenc.features import FeatureExtractor, extract_features, load_features
from neuroenc.features.models import LoadedModel, _state_dict_sha256, sequence_prefix
from neuroenc.features.prenorm import capture_last_block
from neuroenc.features.tokens import align_tokens
from neuroenc.pipeline.config import ConfigError, config_from_dict
from neuroenc.pipeline.tasks import extractor_params
from neuroenc.stimuli import Transcript
from neuroenc.testing import TINY_TEXT, tiny_bert, tiny_gpt2, tiny_llama, tiny_tokenizer, tiny_transcript

TOL = 1e-4
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def models():
    return {"gpt2": tiny_gpt2(n_layer=2, n_embd=32), "llama": tiny_llama(n_layer=2, hidden_size=32),
            "llama_nobos": tiny_llama(n_layer=2, hidden_size=32, bos=False),
            "bert": tiny_bert(n_layer=2, hidden_size=32)}


@pytest.fixture(scope="module")
def transcript():
    return tiny_transcript(60)


# ---------------------------------------------------------------------- defaults
def test_default_options_reproduce_the_features_of_09b4b6d(models):
    """The features of tiny models extracted by neuroenc 09b4b6d (before these options; see
    data/make_default_features.py) are reproduced by the defaults with ``prepend_bos=False`` (the
    default then; ``"auto"`` since issue 19), to float32 rounding (rtol 1e-5, atol 1e-6:
    the features' sums differ in their last bits across CPUs and BLAS thread counts)."""
    spec = importlib.util.spec_from_file_location("make_default_features", DATA / "make_default_features.py")
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    MODELS, N_WORDS, SETTINGS = maker.MODELS, maker.N_WORDS, maker.SETTINGS
    ref = np.load(DATA / "default_features_09b4b6d.npz")
    tr = tiny_transcript(N_WORDS)
    n_checked = 0
    for name, (builder, kwargs) in MODELS.items():
        lm = models.get(name) or builder(**kwargs)
        if _state_dict_sha256(lm.model) != str(ref[f"{name}/sha256"]):
            pytest.skip(f"the tiny {name} built by transformers {transformers.__version__} differs from "
                        f"the fixture's (transformers {ref['transformers']})")
        for setting, kw in SETTINGS.items():
            fs = extract_features(tr, lm, prepend_bos=False, **kw)
            assert fs.attrs["prepend_bos"] is False and fs.attrs["last_layer"] == "normed"
            for key in ("context_start", "context_len"):
                np.testing.assert_array_equal(fs.attrs[key], ref[f"{name}/{setting}/{key}"])
            for i in fs.layer_indices:
                want = ref[f"{name}/{setting}/{i}"]
                # float32 sums on another CPU or BLAS thread count differ in their last bits
                # (up to 2.3e-7 absolute seen, relative 4e-4 on near-zero values): a tolerance
                # that holds across machines, never a bit-exact check.
                np.testing.assert_allclose(fs[i], want, rtol=1e-5, atol=1e-6)
                n_checked += 1
    assert n_checked == 4 * 2 * 3


def test_default_settings_keep_their_cache_key(models, transcript):
    """The new options enter the cache key only when they differ from the settings before
    them (``prepend_bos=False``, ``last_layer="normed"``); the default ``prepend_bos="auto"``
    (since issue 19) is in the key. (The key also holds the versions of torch, transformers and
    tokenizers: see test_hardening_features.py, where the same versions hit the cache and
    another version misses it.)"""
    lm = models["gpt2"]
    ext = FeatureExtractor(lm, context_tokens=8, prepend_bos=False)
    settings = ext._settings(transcript, ext.check_params())
    assert "prepend_bos" not in settings and "last_layer" not in settings
    assert settings["context_tokens"] == 8 and settings["stride"] == 4
    ext = FeatureExtractor(lm, context_tokens=8)
    settings = ext._settings(transcript, ext.check_params())
    assert settings["prepend_bos"] == "auto" and "last_layer" not in settings


def test_default_prepend_bos_is_auto_as_for_stimuli(models, transcript):
    """Transcripts and stimuli share the default ``prepend_bos="auto"`` (issue 19): a causal
    model whose tokenizer has a BOS gets it first, so no word sits at the attention sink."""
    import inspect

    from neuroenc.features import StimulusExtractor

    for obj in (FeatureExtractor, extract_features, StimulusExtractor):
        assert inspect.signature(obj).parameters["prepend_bos"].default == "auto"
    lm = models["gpt2"]
    fs = extract_features(transcript, lm, context_tokens=10, stride=4)
    assert fs.attrs["prepend_bos"] == "auto" and fs.attrs["prefix_ids"] == [lm.tokenizer.bos_token_id]
    assert fs.attrs["warnings"] == []
    bos = extract_features(transcript, lm, context_tokens=10, stride=4, prepend_bos=True)
    for layer in fs.layer_indices:
        np.testing.assert_allclose(fs[layer], bos[layer], rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------- context_tokens="full"
@pytest.mark.parametrize("name", ["gpt2", "llama", "bert"])
def test_full_context_is_one_pass_over_the_run(models, transcript, name):
    lm = models[name]
    fs = extract_features(transcript, lm, context_tokens="full", prepend_bos=False)
    al = align_tokens(transcript, lm.tokenizer)
    n_special = len(lm.prefix_ids) + len(lm.suffix_ids)
    assert fs.attrs["n_token_forwards"] == al.n_tokens + n_special  # one sequence
    cs, cl = fs.attrs["context_start"], fs.attrs["context_len"]
    np.testing.assert_array_equal(cs, 0)
    # Causal: every word sees all the run's tokens up to its own; masked: the whole run.
    np.testing.assert_array_equal(cl, al.word_stop if lm.kind == "causal" else al.n_tokens)
    ref = direct_features(lm, al, cs, cs + cl)
    for layer in fs.layer_indices:
        assert max_rel_err(fs[layer], ref[layer]) < TOL
    assert (fs.attrs["context_tokens"], fs.attrs["stride"]) == ("full", None)
    # The same as a number of context tokens that covers the run.
    big = extract_features(transcript, lm, context_tokens=al.n_tokens, prepend_bos=False)
    for layer in fs.layer_indices:
        np.testing.assert_allclose(fs[layer], big[layer], rtol=1e-5, atol=1e-5)


def test_full_context_with_window_policy(models, transcript):
    lm = models["gpt2"]
    fs = extract_features(transcript[:20], lm, context_tokens="full", policy="window", prepend_bos=False)
    al = align_tokens(transcript[:20], lm.tokenizer)
    np.testing.assert_array_equal(fs.attrs["context_start"], 0)
    np.testing.assert_array_equal(fs.attrs["context_len"], al.word_stop)
    assert fs.attrs["n_token_forwards"] == int(al.word_stop.sum())  # one pass per word


def test_full_context_that_does_not_fit_is_an_error(transcript):
    lm = tiny_gpt2(n_layer=1, n_embd=32, n_positions=32)
    n_tok = align_tokens(transcript, lm.tokenizer).n_tokens
    assert n_tok > 32
    with pytest.raises(ValueError, match=(
            rf"context_tokens='full' puts all of run 'tiny' in one forward sequence: its {n_tok} tokens \+ 0 "
            rf"special token\(s\) need {n_tok} positions, but model 'tiny-gpt2' has at most 32 \(its "
            r"maximum positions\)\. Give context_tokens a number instead \(e\.g\. context_tokens=21")):
        extract_features(transcript, lm, context_tokens="full", prepend_bos=False)
    # A run of as many tokens as the model has positions fits; a BOS takes one more position.
    fit = _run_of_tokens(lm, 32)
    n = align_tokens(fit, lm.tokenizer).n_tokens
    lm = tiny_gpt2(n_layer=1, n_embd=32, n_positions=n)
    assert extract_features(fit, lm, context_tokens="full", prepend_bos=False).n_words == len(fit)
    with pytest.raises(ValueError, match=rf"its {n} tokens \+ 1 special token\(s\) need {n + 1} positions, "
                                         rf"but model 'tiny-gpt2' has at most {n}"):
        extract_features(fit, lm, context_tokens="full", prepend_bos=True)


def test_full_context_bad_combinations(models, transcript):
    lm = models["gpt2"]
    with pytest.raises(ValueError, match="stride=4 applies to a number of context_tokens, but "
                                         "context_tokens='full'"):
        extract_features(transcript, lm, context_tokens="full", stride=4)
    with pytest.raises(ValueError, match=r"context_tokens must be an int >= 0 or 'full'; got 'fll'"):
        extract_features(transcript, lm, context_tokens="fll")
    paths = {str(FeatureExtractor(lm, cache_dir="c", context_tokens=c).cache_path(transcript))
             for c in ("full", 256, 10_000)}
    assert len(paths) == 3


# ---------------------------------------------------------------------- prepend_bos
def test_sequence_prefix_known_answers(models):
    gpt2, llama, nobos, bert = (models[k] for k in ("gpt2", "llama", "llama_nobos", "bert"))
    bos = gpt2.tokenizer.bos_token_id
    assert [sequence_prefix(gpt2, v) for v in (False, True, "auto")] == [[], [bos], [bos]]
    # A tokenizer that adds the BOS itself never gets a second one.
    assert [sequence_prefix(llama, v) for v in (False, True, "auto")] == [[bos], [bos], [bos]]
    assert [sequence_prefix(nobos, v) for v in (False, True, "auto")] == [[], [bos], [bos]]
    # Masked models keep their tokenizer's [CLS] ... [SEP].
    cls = bert.tokenizer.cls_token_id
    assert [sequence_prefix(bert, v) for v in (False, True, "auto")] == [[cls], [cls], [cls]]
    for bad in (1, "yes", None):
        with pytest.raises(ValueError, match=r"Invalid value for 'prepend_bos'. Allowed values are "
                                             rf"True, False, 'auto', but got {bad!r}"):
            sequence_prefix(gpt2, bad)


def test_prepend_bos_without_a_bos_token(models):
    tok = tiny_tokenizer("bpe")
    tok.bos_token = None
    lm = LoadedModel.from_objects(models["gpt2"].model, tok, name="no-bos")
    assert sequence_prefix(lm, "auto") == []
    with pytest.raises(ValueError, match="prepend_bos=True, but the tokenizer of model 'no-bos' has no "
                                         r"BOS token .*Use prepend_bos='auto'"):
        sequence_prefix(lm, True)


@pytest.mark.parametrize("policy", ["strided", "window"])
def test_prepend_bos_features_equal_direct_forward_after_a_bos(models, transcript, policy):
    lm = models["gpt2"]
    bos = lm.tokenizer.bos_token_id
    fs = extract_features(transcript, lm, context_tokens=10, stride=4, policy=policy, prepend_bos=True)
    plain = extract_features(transcript, lm, context_tokens=10, stride=4, policy=policy, prepend_bos=False)
    al = align_tokens(transcript, lm.tokenizer)
    cs, cl = fs.attrs["context_start"], fs.attrs["context_len"]
    np.testing.assert_array_equal(cs, plain.attrs["context_start"])
    ref = direct_features(lm, al, cs, cs + cl, prefix=[bos])
    for layer in fs.layer_indices:
        assert max_rel_err(fs[layer], ref[layer]) < TOL
    assert np.abs(fs[2] - plain[2]).max() > 1e-2
    assert fs.attrs["prefix_ids"] == [bos] and plain.attrs["prefix_ids"] == []
    n_sequences = len(np.unique(cs)) if policy == "strided" else al.n_words
    assert fs.attrs["n_token_forwards"] == plain.attrs["n_token_forwards"] + n_sequences


def _run_of_tokens(lm, n_tokens):
    """The longest start of TINY_TEXT with at most ``n_tokens`` tokens, as a transcript."""
    words = TINY_TEXT.split()
    k = 1
    while align_tokens(words[:k + 1], lm.tokenizer).n_tokens <= n_tokens:
        k += 1
    return Transcript(words[:k], np.arange(k) * 0.3, name="fits")


def test_a_bos_takes_a_position(transcript):
    lm = tiny_gpt2(n_layer=1, n_embd=32, n_positions=16)
    run = _run_of_tokens(lm, 16)
    # The worst case is checked before tokenising: context + stride + special tokens.
    extract_features(run, lm, context_tokens=11, stride=5, layers=[0], prepend_bos=False)
    with pytest.raises(ValueError, match=r"context_tokens=11 \+ stride=5 \+ 1 special token\(s\) need 17 "
                                         r"positions, but model 'tiny-gpt2' has at most 16"):
        extract_features(run, lm, context_tokens=11, stride=5, prepend_bos=True)
    # ... and the sequences as planned: a window of 16 story tokens fits only without a BOS.
    n_last = int(align_tokens(run, lm.tokenizer).word_n_tokens[-1])
    extract_features(run, lm, context_tokens=16 - n_last, policy="window", prepend_bos=False)
    with pytest.raises(ValueError, match=r"need 17 positions, but model .tiny-gpt2. has at most 16"):
        extract_features(run, lm, context_tokens=16 - n_last, policy="window", prepend_bos=True)


def test_word_at_position_zero_without_bos_is_a_warning(models, transcript, caplog, tmp_path):
    gpt2, llama = models["gpt2"], models["llama"]
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        fs = extract_features(transcript, gpt2, context_tokens=10, stride=4, cache_dir=tmp_path, prepend_bos=False)
    message = ("1 word(s) of run 'tiny' sit at position 0 of their forward sequence with no BOS token "
               "before them (first: word 0 'Alice')")
    assert message in caplog.text and "prepend_bos='auto'" in caplog.text
    assert len(fs.attrs["warnings"]) == 1 and fs.attrs["warnings"][0].startswith(message)
    # Recorded in the file, and said again when the cached features are reused.
    assert load_features(fs.attrs["path"]).attrs["warnings"] == fs.attrs["warnings"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        extract_features(transcript, gpt2, context_tokens=10, stride=4, cache_dir=tmp_path, prepend_bos=False)
    assert message in caplog.text
    # Every word of a window without left context sits at position 0.
    win = extract_features(transcript[:12], gpt2, context_tokens=0, policy="window", prepend_bos=False)
    assert win.attrs["warnings"][0].startswith("12 word(s) of run 'tiny'")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        for lm, bos in ((gpt2, "auto"), (gpt2, True), (llama, False)):
            assert extract_features(transcript, lm, context_tokens=10, prepend_bos=bos).attrs["warnings"] == []
    assert "position 0" not in caplog.text


def test_prepend_bos_provenance_and_cache_key(models, transcript, tmp_path):
    lm = models["gpt2"]
    paths = {bos: FeatureExtractor(lm, cache_dir=tmp_path, context_tokens=8, prepend_bos=bos)
             .cache_path(transcript) for bos in (False, True, "auto")}
    assert len(set(paths.values())) == 3
    fs = extract_features(transcript, lm, context_tokens=8, prepend_bos="auto", cache_dir=tmp_path)
    assert fs.attrs["path"] == str(paths["auto"])
    with h5py.File(fs.attrs["path"], "r") as f:
        assert f.attrs["prepend_bos"] == "auto" and f.attrs["prefix_ids"] == "[0]"
        assert f.attrs["last_layer"] == "normed" and f.attrs["context_tokens"] == 8
    back = load_features(fs.attrs["path"])
    assert back.attrs["prepend_bos"] == "auto" and back.attrs["prefix_ids"] == [0]


# ---------------------------------------------------------------------- last_layer
def _last_block_by_hand(lm, ids):
    """The last block's output over ``ids``, computed by calling the block on the hidden state
    before it; and the final norm applied to it (``None`` for models without one)."""
    m = lm.model
    with torch.inference_mode():
        states = lm.hidden_states(torch.tensor([ids]))
        h = states[-2]
        if hasattr(m, "h"):  # GPT-2
            out, norm = m.h[-1](h), m.ln_f
        else:  # Llama
            pos = torch.arange(len(ids))[None]
            out = m.layers[-1](h, attention_mask=None, position_embeddings=m.rotary_emb(h, position_ids=pos),
                               position_ids=pos)
            norm = m.norm
        out = out[0] if isinstance(out, tuple) else out
        return out[0].numpy(), norm(out)[0].numpy(), states[-1][0].numpy()


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_pre_norm_last_layer_is_the_last_block_output(models, transcript, name):
    lm = models[name]
    tr = transcript[:40]
    pre = extract_features(tr, lm, context_tokens="full", last_layer="pre-norm")
    normed = extract_features(tr, lm, context_tokens="full")
    al = align_tokens(tr, lm.tokenizer)
    prefix = list(pre.attrs["prefix_ids"])  # the default prepend_bos="auto": a BOS first
    assert prefix == [lm.tokenizer.bos_token_id] and normed.attrs["prefix_ids"] == prefix
    block, block_normed, hf_last = _last_block_by_hand(lm, prefix + al.input_ids.tolist())
    rows = len(prefix) + al.word_stop - 1  # pooling "last"
    last = lm.n_layers - 1
    assert max_rel_err(pre[last], block[rows]) < TOL
    # "normed" is transformers' last hidden state, the final norm of the block's output.
    assert max_rel_err(normed[last], hf_last[rows]) < TOL
    assert max_rel_err(block_normed, hf_last) < TOL
    assert np.abs(pre[last] - normed[last]).max() > 0.1
    for layer in range(last):
        np.testing.assert_array_equal(pre[layer], normed[layer])
    assert pre.attrs["last_layer"] == "pre-norm" and normed.attrs["last_layer"] == "normed"


def test_pre_norm_equals_normed_without_a_final_norm(models, transcript):
    """BERT-like encoders have no final norm: their last hidden state is the last block's
    output, so "pre-norm" gives the same features (documented, not refused)."""
    lm = models["bert"]
    pre = extract_features(transcript, lm, context_tokens=10, last_layer="pre-norm")
    normed = extract_features(transcript, lm, context_tokens=10)
    for layer in pre.layer_indices:
        np.testing.assert_array_equal(pre[layer], normed[layer])


def test_pre_norm_hook_is_removed(models, transcript, monkeypatch):
    lm = models["llama"]
    block = lm.model.layers[-1]
    n_hooks = len(block._forward_hooks)  # transformers keeps hooks of its own there
    with capture_last_block(lm) as capture:
        assert len(block._forward_hooks) == n_hooks + 1
        with torch.inference_mode():
            states = lm.hidden_states(torch.tensor([[0, 5, 6, 7]]))
        replaced = capture.replace(states)
        assert replaced[-1] is not states[-1] and replaced[0] is states[0]
        with pytest.raises(RuntimeError, match="the hook on the last block .* did not run"):
            capture.replace(states)
    assert len(block._forward_hooks) == n_hooks
    # Also when the forward pass fails.
    monkeypatch.setattr(LoadedModel, "hidden_states", lambda *a, **k: (_ for _ in ()).throw(MemoryError()))
    with pytest.raises(MemoryError):
        extract_features(transcript, lm, context_tokens=8, last_layer="pre-norm")
    assert len(block._forward_hooks) == n_hooks


def test_last_layer_bad_value_and_cache_key(models, transcript, tmp_path):
    lm = models["gpt2"]
    with pytest.raises(ValueError, match=r"Invalid value for 'last_layer'. Allowed values are 'normed', "
                                         r"'pre-norm', but got 'prenorm' instead"):
        extract_features(transcript, lm, last_layer="prenorm")
    a = FeatureExtractor(lm, cache_dir=tmp_path, context_tokens=8).cache_path(transcript)
    b = FeatureExtractor(lm, cache_dir=tmp_path, context_tokens=8, last_layer="pre-norm").cache_path(transcript)
    assert a != b


# ---------------------------------------------------------------------- config and CLI
def _config(**model):
    return config_from_dict({"dataset": {"loader": "alice"}, "model": model}, source="run.yaml")


def test_config_model_options():
    params = extractor_params(_config(context_tokens="full", prepend_bos="auto", last_layer="pre-norm"))
    assert params == {"context_tokens": "full", "prepend_bos": "auto", "last_layer": "pre-norm"}
    # nothing given: nothing passed, the extractor's defaults apply (and the config reads them)
    config = _config()
    assert extractor_params(config) == {}
    assert (config.model.context_tokens, config.model.stride, config.model.prepend_bos,
            config.model.last_layer) == (256, None, "auto", "normed")
    assert extractor_params(_config(context_tokens=64, stride=16))["stride"] == 16
    # one bound for context_tokens (the extractor's, >= 0): 0 is valid everywhere
    assert extractor_params(_config(context_tokens=0))["context_tokens"] == 0
    bad = [
        (dict(context_tokens="abc"), r"model.context_tokens in 'run.yaml' must be an int >= 0 or 'full'; "
                                     r"got 'abc'"),
        (dict(context_tokens=-1), r"model.context_tokens .* got -1"),
        (dict(context_tokens="full", stride=8), r"model settings in 'run.yaml': stride=8 applies to a number "
                                                r"of context_tokens, but context_tokens='full'"),
        (dict(stride="8"), r"model.stride in 'run.yaml' must be null or an int >= 1; got '8'"),
        (dict(prepend_bos="yes"), r"model.prepend_bos in 'run.yaml' must be true, false or 'auto'; got 'yes'"),
        (dict(last_layer="pre"), r"Invalid value for 'model.last_layer' in 'run.yaml'. Allowed values are "
                                 r"'normed', 'pre-norm', but got 'pre'"),
    ]
    for model, message in bad:
        with pytest.raises(ConfigError, match=message):
            _config(**model)


def test_extract_command_options(tmp_path, capsys):
    tiny_gpt2(n_layer=2, n_embd=32, path=tmp_path / "model")
    (tmp_path / "story.txt").write_text(" ".join(TINY_TEXT.split()[:30]))
    base = ["-q", "extract", "--model", str(tmp_path / "model"), "--transcript", str(tmp_path / "story.txt")]
    out = tmp_path / "f.h5"
    assert main(base + ["--context-tokens", "full", "--prepend-bos", "auto", "--last-layer", "pre-norm",
                        "--out", str(out)]) == 0
    assert "context full" in capsys.readouterr().out
    fs = load_features(out)
    assert (fs.attrs["context_tokens"], fs.attrs["prepend_bos"], fs.attrs["last_layer"]) == (
        "full", "auto", "pre-norm")
    assert fs.attrs["prefix_ids"] == [0] and fs.attrs["n_token_forwards"] == fs.attrs["n_tokens"] + 1
    assert main(base + ["--context-tokens", "full", "--stride", "4", "--out", str(out)]) == 1
    assert ("--stride applies to a number of --context-tokens; --context-tokens full puts the whole run"
            in capsys.readouterr().err)
    with pytest.raises(SystemExit):
        main(base + ["--prepend-bos", "maybe", "--out", str(out)])
    assert "argument --prepend-bos: invalid value 'maybe': must be true, false or 'auto'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(base + ["--context-tokens", "whole", "--out", str(out)])
    assert "argument --context-tokens: invalid value 'whole': must be an int >= 0 or 'full'" in capsys.readouterr().err
