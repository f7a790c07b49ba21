"""Stimulus-level features: pooling, context, batching with padding, cache, surprisal."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from _features_helpers import one_torch_thread  # noqa: F401
from _stimuli_fixtures import SENTENCES, write_sentences

from neuroenc.cli import main
from neuroenc.features import StimulusExtractor, load_features, load_stimulus_features, word_surprisal
from neuroenc.features.models import sequence_prefix
from neuroenc.features.stimulus_features import is_stimulus_file
from neuroenc.features.surprisal import stimulus_surprisal
from neuroenc.features.tokens import align_tokens
from neuroenc.stimuli import StimulusSet
from neuroenc.testing import tiny_bert, tiny_gpt2, tiny_llama

MODELS = {"gpt2": tiny_gpt2, "llama": tiny_llama, "bert": tiny_bert}


@pytest.fixture(scope="module")
def models():
    return {name: make() for name, make in MODELS.items()}


def _stimuli(n=9):
    groups = [f"p{i // 3}" for i in range(n)]
    return StimulusSet([f"s{i}" for i in range(n)], SENTENCES[:n], groups, name="tiny-sentences")


def _direct(lm, words_before, words, pooling, prepend_bos="auto"):
    """The feature of ``words`` read after ``words_before``: one forward pass, no batching."""
    allw = list(words_before) + list(words)
    al = align_tokens(allw, lm.tokenizer)
    prefix = sequence_prefix(lm, prepend_bos)
    ids = prefix + al.input_ids.tolist() + list(lm.suffix_ids)
    with torch.inference_mode():
        states = lm.hidden_states(torch.tensor([ids]))
    first = len(words_before)
    a, b = al.word_start[first], al.word_stop[-1]
    if pooling == "last-word":
        a = al.word_start[-1]
    P = len(prefix)
    sl = slice(P + b - 1, P + b) if pooling == "last" else slice(P + a, P + b)
    return {i: s[0, sl].float().mean(0).numpy() for i, s in enumerate(states)}


@pytest.mark.parametrize("model", ["gpt2", "llama", "bert"])
@pytest.mark.parametrize("pooling", ["mean", "last", "last-word"])
def test_alone_equals_a_direct_forward_pass(models, model, pooling):
    lm = models[model]
    s = _stimuli()
    fs = StimulusExtractor(lm, pooling=pooling, batch_size=4).transform(s)
    for i in (0, 4, 8):
        ref = _direct(lm, [], s.texts[i].split(), pooling)
        for layer in fs:
            np.testing.assert_allclose(fs[layer][i], ref[layer], rtol=1e-4, atol=1e-4)
    assert fs.attrs["context_text"] == [""] * len(s) and fs.attrs["policy"] == "alone"


@pytest.mark.parametrize("model", ["gpt2", "llama", "bert"])
def test_group_context_equals_reading_the_group_so_far(models, model):
    lm = models[model]
    s = _stimuli()
    fs = StimulusExtractor(lm, context="group", pooling="mean", batch_size=3).transform(s)
    for i in range(len(s)):
        before = [w for j in s.preceding(i) for w in s.texts[j].split()]
        ref = _direct(lm, before, s.texts[i].split(), "mean")
        np.testing.assert_allclose(fs[3][i], ref[3], rtol=1e-4, atol=1e-4)
    assert fs.attrs["context_text"][2] == f"{SENTENCES[0]} {SENTENCES[1]} "
    assert fs.attrs["context_text"][3] == ""  # first of its group
    assert fs.attrs["policy"] == ("window" if model == "bert" else "strided")


def test_masked_model_never_sees_later_stimuli(models):
    lm = models["bert"]
    s = _stimuli(3)
    changed = StimulusSet(s.ids, s.texts[:2] + ["Something else entirely happened."], s.groups)
    a = StimulusExtractor(lm, context="group").transform(s)
    b = StimulusExtractor(lm, context="group").transform(changed)
    # batches padded to other lengths: equal to float32 rounding, not bit for bit
    np.testing.assert_allclose(a[2][:2], b[2][:2], rtol=1e-5, atol=1e-6)
    assert not np.allclose(a[2][2], b[2][2])


@pytest.mark.parametrize("model", ["gpt2", "llama", "bert"])
@pytest.mark.parametrize("context", ["none", "group"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_batched_equals_one_at_a_time(models, model, context, side):
    lm = models[model]
    s = _stimuli()
    one = StimulusExtractor(lm, context=context, batch_size=1).transform(s)
    batched = StimulusExtractor(lm, context=context, batch_size=9, padding_side=side).transform(s)
    for layer in one:
        np.testing.assert_allclose(batched[layer], one[layer], rtol=1e-4, atol=1e-4)


def test_left_padding_needs_position_ids(models, monkeypatch):
    """Without the explicit position ids, left padding shifts the positions of a causal model
    with learned positions, and the features change: the ids are what keeps them equal."""
    import neuroenc.features.extract as ex

    lm = models["gpt2"]
    s = _stimuli()
    ref = StimulusExtractor(lm, batch_size=9, padding_side="left").transform(s)
    real = ex.batch_inputs

    def no_positions(*args, **kwargs):
        ids, mask, _, offset, L = real(*args, **kwargs)
        return ids, mask, None, offset, L

    monkeypatch.setattr(ex, "batch_inputs", no_positions)
    broken = StimulusExtractor(lm, batch_size=9, padding_side="left").transform(s)
    assert not np.allclose(broken[2], ref[2], atol=1e-3)


def test_group_too_long_is_an_error(models):
    lm = models["bert"]  # 128 positions
    text = " ".join(["word"] * 20)
    n_tok = align_tokens(text.split(), lm.tokenizer).n_tokens
    assert 2 * n_tok + 2 > 128 > n_tok + 18
    s = StimulusSet(["a", "b"], [text, text], ["g", "g"])
    with pytest.raises(ValueError, match=r"group 'g' needs a forward sequence of \d+ positions.*at most 128: "
                                         r"give context_tokens a number.*never truncates"):
        StimulusExtractor(lm, context="group").transform(s)
    fs = StimulusExtractor(lm, context="group", context_tokens=16).transform(s)
    assert fs.attrs["context_len"].tolist() == [n_tok, 16 + n_tok]
    assert fs.attrs["context_text"][1].endswith("word ")


def test_option_errors(models):
    with pytest.raises(ValueError, match="context_tokens and stride apply to context='group'"):
        StimulusExtractor(models["gpt2"], context_tokens=8).transform(_stimuli())
    with pytest.raises(ValueError, match="Invalid value for 'pooling'.*'last-word'.*'first'"):
        StimulusExtractor(models["gpt2"], pooling="first").transform(_stimuli())
    with pytest.raises(TypeError, match="must be a neuroenc StimulusSet"):
        StimulusExtractor(models["gpt2"]).transform(["a sentence"])


def test_cache_and_file(models, tmp_path):
    lm = models["gpt2"]
    s = _stimuli()
    ext = StimulusExtractor(lm, layers=[0, 2, 4], cache_dir=tmp_path)
    first = ext.transform(s)
    path = ext.cached_path(s)
    assert path is not None and is_stimulus_file(path)
    again = StimulusExtractor(lm, layers=[0, 2, 4], cache_dir=tmp_path).transform(s)
    assert again.attrs["path"] == str(path)
    np.testing.assert_array_equal(again[4], first[4])
    loaded = load_stimulus_features(path, layers=[4])
    assert loaded.ids == s.ids and loaded.groups == s.groups and loaded.texts == s.texts
    assert loaded.attrs["pooling"] == "mean" and loaded.attrs["kind"] == "stimuli"
    import h5py

    with h5py.File(path) as f:
        assert [x.decode() for x in f["stimulus_ids"][()]] == s.ids
    with pytest.raises(ValueError, match="holds stimulus-level features.*load_stimulus_features"):
        load_features(path)
    other = StimulusExtractor(lm, layers=[0, 2, 4], pooling="last", cache_dir=tmp_path)
    assert other.cache_path(s) != path


# ---------------------------------------------------------------------- surprisal
def _reference_surprisal(lm, words):
    al = align_tokens(words, lm.tokenizer)
    prefix = sequence_prefix(lm, "auto")
    ids = torch.tensor([prefix + al.input_ids.tolist()])
    with torch.inference_mode():
        h = lm.model(ids).last_hidden_state
        logp = torch.log_softmax(lm.head(h), -1)[0]
    P = len(prefix)
    tok = torch.tensor(al.input_ids)
    nll = -logp[P - 1:-1].gather(1, tok[:, None])[:, 0].double().numpy() / np.log(2)
    return al, nll


@pytest.mark.parametrize("model", ["gpt2", "llama"])
def test_word_surprisal_equals_the_lm_head(models, model):
    lm = models[model]
    words = " ".join(SENTENCES[:4]).split()
    al, nll = _reference_surprisal(lm, words)
    ref = np.array([nll[a:b].sum() for a, b in zip(al.word_start, al.word_stop)])
    np.testing.assert_allclose(word_surprisal(words, lm), ref, rtol=1e-5)
    strided = word_surprisal(words, lm, context_tokens=6, stride=3)
    np.testing.assert_allclose(strided[:3], ref[:3], rtol=1e-5)  # within the first chunk: same context
    assert not np.allclose(strided, ref)


def test_stimulus_surprisal_sums_the_stimulus_tokens(models):
    lm = models["gpt2"]
    s = _stimuli(3)
    words = " ".join(s.texts).split()
    al, nll = _reference_surprisal(lm, words)
    ends = np.cumsum([len(t.split()) for t in s.texts])
    starts = np.concatenate([[0], ends[:-1]])
    ref = [nll[al.word_start[a]:al.word_stop[b - 1]].sum() for a, b in zip(starts, ends)]
    np.testing.assert_allclose(stimulus_surprisal(s, lm, context="group"), ref, rtol=1e-5)
    alone = stimulus_surprisal(s, lm)
    np.testing.assert_allclose(alone[0], ref[0], rtol=1e-5)
    assert alone[1] > 0 and not np.isclose(alone[1], ref[1])


def test_surprisal_errors(models):
    with pytest.raises(ValueError, match="Surprisal needs a causal language model, but 'tiny-bert' is masked"):
        word_surprisal(["a", "b"], models["bert"])


# ---------------------------------------------------------------------- CLI
def test_extract_cli_stimuli(tmp_path, capsys):
    tiny_gpt2(n_layer=2, path=tmp_path / "model")
    write_sentences(tmp_path / "sentences.csv", n_passages=2)
    out = tmp_path / "f.h5"
    code = main(["extract", "--model", str(tmp_path / "model"), "--stimuli", str(tmp_path / "sentences.csv"),
                 "--text-column", "sentence", "--group-column", "passage", "--pooling", "mean",
                 "--context", "group", "--out", str(out)])
    assert code == 0 and "6 stimuli x 3 layers" in capsys.readouterr().out
    fs = load_stimulus_features(out)
    assert fs.ids == [f"s0{i}" for i in range(1, 7)] and fs.attrs["context"] == "group"
    assert fs.attrs["context_text"][1] == SENTENCES[0] + " "


@pytest.mark.parametrize("extra, match", [
    (["--transcript", "x.txt"], "give either --transcript .* or --stimuli"),
    (["--policy", "window"], r"--policy applies to --transcript only"),
    (["--pooling", "first"], r"--pooling first applies to --transcript only; with --stimuli give 'mean', 'last' "
                             r"or 'last-word'"),
    (["--context-tokens", "8"], "--context-tokens applies to --context group"),
])
def test_extract_cli_stimuli_errors(tmp_path, capsys, extra, match):
    write_sentences(tmp_path / "sentences.csv", n_passages=1)
    code = main(["extract", "--model", "unused", "--stimuli", str(tmp_path / "sentences.csv"),
                 "--text-column", "sentence", "--out", str(tmp_path / "f.h5"), *extra])
    assert code == 1
    assert __import__("re").search(match, capsys.readouterr().err)


@pytest.mark.parametrize("context", ["none", "group"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_surprisal_from_the_feature_pass(models, tmp_path, context, side):
    lm = models["llama"]
    s = _stimuli()
    ext = StimulusExtractor(lm, context=context, surprisal=True, batch_size=4, padding_side=side, cache_dir=tmp_path)
    fs = ext.transform(s)
    np.testing.assert_allclose(fs.attrs["surprisal"], stimulus_surprisal(s, lm, context=context), rtol=1e-5)
    back = load_stimulus_features(ext.cached_path(s))
    np.testing.assert_array_equal(back.attrs["surprisal"], fs.attrs["surprisal"])
    assert ext.cached_path(s) != StimulusExtractor(lm, context=context, cache_dir=tmp_path).cache_path(s)
