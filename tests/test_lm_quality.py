"""lm_quality: surprisal, perplexity and accuracy under interventions, against hand-run references."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuroenc.cli import main
from neuroenc.features import lm_quality, word_surprisal
from neuroenc.features.interventions import parse_intervention
from neuroenc.features.interventions_patch import apply_intervention
from neuroenc.features.quality import LMQuality, compare_quality
from neuroenc.features.surprisal import stimulus_surprisal
from neuroenc.features.tokens import align_tokens
from neuroenc.stimuli import StimulusSet
from neuroenc.testing import tiny_llama

N_BLOCKS = 4
TEXT = "the cat sat on the mat and the dog ran to the old red barn at night"
SOURCE = "a bird flew over the green hill and then the fox slept by the river bank under a tall tree"


@pytest.fixture(scope="module")
def lm():
    return tiny_llama(n_layer=N_BLOCKS, hidden_size=32)


def _mask(n):
    return torch.full((n, n), float("-inf")).triu(1)[None, None]


def _tokens(lm, text):
    al = align_tokens(text.split(), lm.tokenizer)
    return al, [lm.tokenizer.bos_token_id] + [int(i) for i in al.input_ids]


def _word_bits(al, token_bits):
    return np.array([sum(token_bits[t] for t in range(a, b)) for a, b in zip(al.word_start, al.word_stop)])


# Each structural intervention as the blocks a plain transformers loop runs, written out by hand:
# ("b", k) block k, ("mlp", k) block k without attention, ("mean", (i, j)) the mean of blocks i..j.
HAND = {
    None: [("b", 0), ("b", 1), ("b", 2), ("b", 3)],
    "skip:1-2": [("b", 0), ("b", 3)],
    "order:0,1,1,1": [("b", 0), ("b", 1), ("b", 1), ("b", 1)],  # Sun et al.'s middle repeat
    "reverse:1-3": [("b", 0), ("b", 3), ("b", 2), ("b", 1)],
    "parallel:1-2": [("b", 0), ("mean", (1, 2)), ("b", 3)],
    "no-attention:2": [("b", 0), ("b", 1), ("mlp", 2), ("mlp", 3)],
}


def _hand_run_bits(lm, text, steps):
    """Per-word bits from the model's pieces, one pass over BOS + the text (plain transformers)."""
    llama = lm.model
    al, ids = _tokens(lm, text)
    x = torch.tensor([ids])
    n = x.shape[1]
    pos = torch.arange(n)[None]
    with torch.no_grad():
        h = llama.embed_tokens(x)
        pe = llama.rotary_emb(h, position_ids=pos)

        def block(b, h):
            layer = llama.layers[b]
            return layer(h, attention_mask=_mask(n), position_ids=pos, position_embeddings=pe)

        for kind, arg in steps:
            if kind == "b":
                h = block(arg, h)
            elif kind == "mlp":
                layer = llama.layers[arg]
                h = h + layer.mlp(layer.post_attention_layernorm(h))
            else:
                h = torch.stack([block(b, h) for b in range(arg[0], arg[1] + 1)]).mean(0)
        logits = llama.norm(h)[0] @ llama.embed_tokens.weight.T
        logp = torch.log_softmax(logits.double(), dim=-1) / math.log(2)
    token_bits = {t: -float(logp[t, ids[t + 1]]) for t in range(len(ids) - 1)}  # position t predicts t+1
    top = logits.argmax(-1)
    correct = {t: float(top[t] == ids[t + 1]) for t in range(len(ids) - 1)}
    return al, _word_bits(al, token_bits), correct


@pytest.mark.parametrize("spec", list(HAND))
def test_bits_per_word_equal_a_hand_run_transformers_loop(lm, spec):
    q = lm_quality(TEXT, lm, intervention=spec)
    al, expected, correct = _hand_run_bits(lm, TEXT, HAND[spec])
    np.testing.assert_allclose(q.word_surprisal, expected, atol=1e-4, rtol=0)
    assert abs(q.bits_per_word - expected.mean()) <= 1e-4
    scored = [t for a, b in zip(al.word_start, al.word_stop) for t in range(a, b)]
    assert q.accuracy == pytest.approx(np.mean([correct[t] for t in scored]))
    assert q.perplexity == pytest.approx(2 ** np.mean(q.token_surprisal[scored]))
    assert q.intervention == (None if spec is None else str(parse_intervention(spec)))
    # word_surprisal takes the intervention too, with the same values.
    np.testing.assert_allclose(word_surprisal(TEXT.split(), lm, intervention=spec), expected, atol=1e-4)


def _per_position_reference(lm, text, spec, context_tokens="full"):
    """One unbatched forward pass per predicted token, ending at the position predicting it."""
    al, ids = _tokens(lm, text)
    W = lm.model.embed_tokens.weight
    bits = {}
    for a, b in zip(al.word_start, al.word_stop):
        start = 0 if context_tokens == "full" else max(0, a - context_tokens)
        for t in range(a, b):
            seq = torch.tensor([[ids[0]] + ids[1 + start:1 + t]])
            with apply_intervention(lm, spec), torch.no_grad():
                last = lm.model(seq, output_hidden_states=True, use_cache=False).hidden_states[-1]
                logp = torch.log_softmax((last[0, -1] @ W.T).double(), -1) / math.log(2)
            bits[t] = -float(logp[ids[1 + t]])
    return al, bits


@pytest.mark.parametrize("spec", ["freeze-context:1", "freeze-context:1-2", "random-context:2:keep-sink",
                                  f"swap-context:2:text={SOURCE}"])
@pytest.mark.parametrize("context_tokens", ["full", 3])
def test_context_kinds_equal_one_pass_per_position(lm, spec, context_tokens):
    q = lm_quality(TEXT, lm, intervention=spec, context_tokens=context_tokens, batch_size=5)
    al, bits = _per_position_reference(lm, TEXT, spec, context_tokens)
    for t, value in bits.items():
        assert abs(q.token_surprisal[t] - value) <= 1e-5, (t, q.token_surprisal[t], value)
    np.testing.assert_allclose(q.word_surprisal, _word_bits(al, bits), atol=1e-5)
    if context_tokens == "full":  # one paired pass (neuroenc.features.paired_context)
        assert q.settings["n_forward_passes"] == 1 and q.settings["paired"]
    else:
        assert q.settings["n_forward_passes"] == sum(int(b - a) for a, b in zip(al.word_start, al.word_stop))
        assert not q.settings["paired"]


def test_context_kind_is_not_one_pass_garbage(lm):
    """One pass with freeze-context treats every token but the last as context: wrong values."""
    q = lm_quality(TEXT, lm, intervention="freeze-context:1")
    al, ids = _tokens(lm, TEXT)
    with apply_intervention(lm, "freeze-context:1"), torch.no_grad():
        last = lm.model(torch.tensor([ids]), output_hidden_states=True, use_cache=False).hidden_states[-1]
        logp = torch.log_softmax((last[0] @ lm.model.embed_tokens.weight.T).double(), -1) / math.log(2)
    one_pass = _word_bits(al, {t: -float(logp[t, ids[t + 1]]) for t in range(len(ids) - 1)})
    assert np.abs(q.word_surprisal - one_pass).max() > 1e-3
    with pytest.raises(ValueError, match="word_surprisal reads many words in one forward pass"):
        word_surprisal(TEXT.split(), lm, intervention="freeze-context:1")


def test_freeze_context_at_the_last_block_is_intact(lm):
    """Freezing the context at hidden state K changes blocks after K only: K = last is intact."""
    intact = lm_quality(TEXT, lm)
    frozen = lm_quality(TEXT, lm, intervention=f"freeze-context:{N_BLOCKS - 1}")
    np.testing.assert_allclose(frozen.word_surprisal, intact.word_surprisal, atol=1e-5)
    assert abs(lm_quality(TEXT, lm, intervention="freeze-context:0").bits_per_word - intact.bits_per_word) > 1e-3


def test_compare_quality_paired_difference(lm):
    a = lm_quality(TEXT, lm)
    b = lm_quality(TEXT, lm, intervention="skip:1-2")
    d = compare_quality(a, b)
    diff = b.word_surprisal - a.word_surprisal
    assert d.n == len(diff) and d.mean == pytest.approx(diff.mean())
    assert d.se == pytest.approx(diff.std(ddof=1) / np.sqrt(diff.size))
    assert d.t == pytest.approx(d.mean / d.se)
    acc = compare_quality(a, b, metric="accuracy")
    assert acc.mean == pytest.approx(np.mean(b.word_accuracy - a.word_accuracy))
    with pytest.raises(ValueError, match="the runs read different texts"):
        compare_quality(a, lm_quality("the cat sat", lm))
    with pytest.raises(ValueError, match="Invalid value for 'metric'"):
        compare_quality(a, b, metric="bits")
    with pytest.raises(TypeError, match="'b' must be an LMQuality"):
        compare_quality(a, 3.0)


def test_quality_round_trips_through_hdf5(lm, tmp_path):
    q = lm_quality(TEXT, lm, intervention="skip:1")
    path = q.save(tmp_path / "m.h5")
    back = LMQuality.load(path)
    assert back.words == q.words and back.intervention == "skip:1" and back.model == q.model
    np.testing.assert_allclose(back.word_surprisal, q.word_surprisal)
    assert len(q.to_frame()) == len(q.words)
    with pytest.raises(KeyError, match="has no group 'other'"):
        LMQuality.load(path, group="other")


def test_bad_inputs(lm):
    with pytest.raises(ValueError, match="stride=2 applies to a number of context_tokens"):
        lm_quality(TEXT, lm, stride=2)
    with pytest.raises(ValueError, match="reads one pass per token; drop stride"):
        lm_quality(TEXT, lm, intervention="freeze-context:1", context_tokens=4, stride=2)
    with pytest.raises(ValueError, match="without words"):
        lm_quality("   ", lm)
    with pytest.raises(ValueError, match="needs block 9 but the model has 4 blocks"):
        lm_quality(TEXT, lm, intervention="skip:9")
    stimuli = StimulusSet(ids=["a", "b"], texts=["cat", "barn"])  # one word each: the word's surprisal
    with pytest.raises(ValueError, match="stimulus_surprisal reads each stimulus's tokens in one forward pass"):
        stimulus_surprisal(stimuli, lm, intervention="freeze-context:1")
    np.testing.assert_allclose(stimulus_surprisal(stimuli, lm, intervention="skip:1-2"),
                               [lm_quality(t, lm, intervention="skip:1-2").word_surprisal[0]
                                for t in ["cat", "barn"]], atol=1e-4)
    assert not np.allclose(stimulus_surprisal(stimuli, lm), stimulus_surprisal(stimuli, lm, intervention="skip:1-2"))


def test_cli_metrics_quality(lm, tmp_path, capsys):
    folder = tmp_path / "model"
    tiny_llama(n_layer=N_BLOCKS, hidden_size=32, path=folder)
    text = tmp_path / "story.txt"
    text.write_text(TEXT + "\n", encoding="utf-8")
    out = tmp_path / "metrics.h5"
    assert main(["metrics", "--quality", str(text), "--model", str(folder), "--intervention", "skip:1-2",
                 "--out", str(out)]) == 0
    assert "bits_per_word" in capsys.readouterr().out
    q = LMQuality.load(out)
    assert q.intervention == "skip:1-2"
    np.testing.assert_allclose(q.word_surprisal, _hand_run_bits(lm, TEXT, HAND["skip:1-2"])[1], atol=1e-4)
    assert main(["metrics", "--out", str(out)]) == 1
    assert "needs --features FILE (layer metrics) or --quality TEXTFILE" in capsys.readouterr().err
    assert main(["metrics", "--quality", str(text), "--out", str(out)]) == 1
    assert "--quality needs --model" in capsys.readouterr().err
