"""Interventions on tiny random Llama, GPT-2 and BERT models, checked against hand-run blocks."""
from __future__ import annotations

import pytest
import torch

from neuroenc.features.interventions import Step, parse_intervention
from neuroenc.features.interventions_patch import apply_intervention
from neuroenc.testing import tiny_bert, tiny_gpt2, tiny_llama

N_BLOCKS = 4
SEQ = 12


@pytest.fixture(scope="module")
def llama():
    return tiny_llama(n_layer=N_BLOCKS, hidden_size=32).model  # LlamaModel


@pytest.fixture(scope="module")
def gpt2():
    return tiny_gpt2(n_layer=N_BLOCKS, n_embd=32).model  # GPT2Model


@pytest.fixture(scope="module")
def bert():
    return tiny_bert(n_layer=N_BLOCKS, hidden_size=32).model  # BertModel


@pytest.fixture(scope="module")
def ids():
    return torch.randint(5, 120, (2, SEQ), generator=torch.Generator().manual_seed(0))


def _hidden(model, ids, **kwargs):
    with torch.no_grad():
        return model(ids, output_hidden_states=True, **kwargs).hidden_states


def _causal_mask(n):
    return torch.full((n, n), float("-inf")).triu(1)[None, None]


# ------------------------------------------------------------------ hand-run references
def _run_by_hand(model, ids, plan, mlp_only=()):
    """All hidden states from calling the model's pieces by hand, following ``plan``.

    ``plan[p]`` is a ``Step``; ``mlp_only`` lists blocks whose attention is left out.
    """
    family = type(model).__name__
    n = ids.shape[1]
    with torch.no_grad():
        if family == "LlamaModel":
            h = model.embed_tokens(ids)
            pos = torch.arange(n)[None]
            pe = model.rotary_emb(h, position_ids=pos)

            def block(b, x):
                layer = model.layers[b]
                if b in mlp_only:
                    return x + layer.mlp(layer.post_attention_layernorm(x))
                return layer(x, attention_mask=_causal_mask(n), position_ids=pos, position_embeddings=pe)

            final = model.norm
        elif family == "GPT2Model":
            h = model.wte(ids) + model.wpe(torch.arange(n)[None])

            def block(b, x):
                layer = model.h[b]
                if b in mlp_only:
                    return x + layer.mlp(layer.ln_2(x))
                return layer(x, attention_mask=_causal_mask(n))

            final = model.ln_f
        else:
            h = model.embeddings(input_ids=ids)

            def block(b, x):
                layer = model.encoder.layer[b]
                if b in mlp_only:
                    return layer.output(layer.intermediate(x), x)
                return layer(x)

            final = None
        states = [h]
        for step in plan:
            if step.mode == "mean":
                h = torch.stack([block(b, h) for b in step.blocks]).mean(0)
            else:
                for b in step.blocks:
                    h = block(b, h)
            states.append(h)
        if final is not None:
            states[-1] = final(states[-1])
    return states


def _max_rel_err(a_states, b_states):
    return max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(a_states, b_states))


# ------------------------------------------------------------------ tests
@pytest.mark.parametrize("family", ["llama", "gpt2", "bert"])
def test_no_intervention_is_bit_identical(family, request, ids):
    model = request.getfixturevalue(family)
    ref = _hidden(model, ids)
    with apply_intervention(model, None) as handle:
        assert handle is None
        out = _hidden(model, ids)
    assert all(torch.equal(a, b) for a, b in zip(out, ref))
    # The intact reference by hand agrees too (checks the reference itself).
    intact = [Step("chain", (p,)) for p in range(N_BLOCKS)]
    assert _max_rel_err(_run_by_hand(model, ids, intact), ref) < 1e-5


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert"])
@pytest.mark.parametrize("spec", ["skip:0", "skip:2", "skip:1-2", "repeat:1x3", "reverse:0-3",
                                  "shuffle:0-3:seed=1", "swap:0,3", "swap:0-1,2-3",
                                  "parallel:1-3"])
def test_structural_interventions_match_hand_run_blocks(family, spec, request, ids):
    model = request.getfixturevalue(family)
    iv = parse_intervention(spec)
    with apply_intervention(model, spec):
        out = _hidden(model, ids)
    assert len(out) == N_BLOCKS + 1
    ref = _run_by_hand(model, ids, iv.plan(N_BLOCKS))
    assert _max_rel_err(out, ref) < 1e-5
    # Blocks before the first changed position are untouched, bit for bit.
    first = iv.blocks(N_BLOCKS)[0]
    intact = _hidden(model, ids)
    for layer in range(first + 1):
        assert torch.equal(out[layer], intact[layer])
    assert not torch.allclose(out[-1], intact[-1], atol=1e-3)  # and the intervention did something


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_skip_keeps_layer_indices(family, request, ids):
    model = request.getfixturevalue(family)
    with apply_intervention(model, "skip:1"):
        out = _hidden(model, ids)
    # A skipped block's output is its input: hidden state 2 equals hidden state 1.
    assert torch.equal(out[2], out[1])


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert"])
def test_parallel_over_one_block_is_intact(family, request, ids):
    model = request.getfixturevalue(family)
    ref = _hidden(model, ids)
    with apply_intervention(model, "parallel:2"):
        out = _hidden(model, ids)
    assert all(torch.equal(a, b) for a, b in zip(out, ref))


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert"])
def test_no_attention_matches_mlp_only_blocks(family, request, ids):
    model = request.getfixturevalue(family)
    iv = parse_intervention("no-attention:2")
    with apply_intervention(model, iv):
        out = _hidden(model, ids)
    ref = _run_by_hand(model, ids, iv.plan(N_BLOCKS), mlp_only=(2, 3))
    assert _max_rel_err(out, ref) < 1e-5
    intact = _hidden(model, ids)
    assert torch.equal(out[2], intact[2]) and not torch.allclose(out[3], intact[3])


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert"])
def test_freeze_context_at_last_block_changes_only_that_layer(family, request, ids):
    model = request.getfixturevalue(family)
    ref = _hidden(model, ids)
    with apply_intervention(model, f"freeze-context:{N_BLOCKS - 1}"):
        out = _hidden(model, ids)
    for layer in range(N_BLOCKS):
        assert torch.equal(out[layer], ref[layer])
    assert not torch.allclose(out[-1][:, :-1], ref[-1][:, :-1])
    if family != "bert":  # causal: the current token's own state is unchanged
        assert torch.allclose(out[-1][:, -1], ref[-1][:, -1], rtol=1e-6, atol=1e-6)


def test_freeze_context_matches_hand_run_definition(llama, ids):
    k = 1
    with apply_intervention(llama, f"freeze-context:{k}"):
        out = _hidden(llama, ids)
    ref = _hidden(llama, ids)
    for layer in range(k + 1):
        assert torch.equal(out[layer], ref[layer])
    # Previous tokens keep hidden state k in every later block (the last state is normed).
    for layer in range(k + 1, N_BLOCKS):
        assert torch.equal(out[layer][:, :-1], ref[k][:, :-1])
    # The current token runs every later block attending to the frozen context.
    n = ids.shape[1]
    pos = torch.arange(n)[None]
    with torch.no_grad():
        context = ref[k][:, :-1]
        current = ref[k][:, -1:]
        pe = llama.rotary_emb(current, position_ids=pos)
        for b in range(k, N_BLOCKS):
            x = torch.cat([context, current], dim=1)
            y = llama.layers[b](x, attention_mask=_causal_mask(n), position_ids=pos, position_embeddings=pe)
            current = y[:, -1:]
        expected = llama.norm(current)[:, 0]
    assert float((out[-1][:, -1] - expected).abs().max() / expected.abs().max()) < 1e-5


def test_freeze_context_finds_current_token_with_right_padding(llama, ids):
    short = ids[1:, : SEQ - 3]
    padded = torch.cat([ids[:1], torch.cat([short, torch.zeros(1, 3, dtype=ids.dtype)], 1)])
    mask = torch.ones_like(padded)
    mask[1, SEQ - 3:] = 0
    with apply_intervention(llama, "freeze-context:1"):
        both = _hidden(llama, padded, attention_mask=mask)
        alone = _hidden(llama, short)
        first = _hidden(llama, ids[:1])
    for layer in range(N_BLOCKS + 1):
        torch.testing.assert_close(both[layer][1, : SEQ - 3], alone[layer][0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(both[layer][0], first[layer][0], rtol=1e-5, atol=1e-5)


def test_query_positions_set_on_the_handle(llama, ids):
    q = 6
    with apply_intervention(llama, "freeze-context:1") as handle:
        handle.query_positions = q
        out = _hidden(llama, ids)
        cut = _hidden(llama, ids[:, : q + 1])
    # Tokens after the query token do not influence it (causal), so it matches a cut sequence.
    torch.testing.assert_close(out[-1][:, q], cut[-1][:, q], rtol=1e-5, atol=1e-5)
    with apply_intervention(llama, "freeze-context:1") as handle:
        handle.query_positions = [0, 1, 2]
        with pytest.raises(ValueError, match="query_positions has 3 entries but the batch has 2 rows"):
            _hidden(llama, ids)
        handle.query_positions = SEQ
        with pytest.raises(ValueError, match=r"fall outside the sequence of 12 tokens"):
            _hidden(llama, ids)
        handle.query_positions = None
        with pytest.raises(ValueError, match="a row of the attention_mask has no token"):
            _hidden(llama, ids, attention_mask=torch.zeros_like(ids).index_fill_(0, torch.tensor([0]), 1))


def test_random_context_matches_norms_and_is_seeded(llama, ids):
    k = 1
    ref = _hidden(llama, ids)
    runs = {}
    for seed in (0, 0, 1):
        with apply_intervention(llama, f"random-context:{k}:seed={seed}"):
            runs.setdefault(seed, []).append(_hidden(llama, ids))
    a, b, c = runs[0][0], runs[0][1], runs[1][0]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.allclose(a[k + 1], c[k + 1])
    for layer in range(k + 1):
        assert torch.equal(a[layer], ref[layer])
    context = a[k + 1][:, :-1]
    torch.testing.assert_close(context.norm(dim=-1), ref[k][:, :-1].norm(dim=-1), rtol=1e-5, atol=1e-6)
    cos = torch.nn.functional.cosine_similarity(context, ref[k][:, :-1], dim=-1)
    assert float(cos.abs().mean()) < 0.5  # random directions in 32-D
    assert torch.equal(a[k + 2][:, :-1], context)  # then frozen


def test_random_context_is_drawn_per_sequence(llama, ids):
    """A row's random context depends on its own tokens only: not on the batch, its row, the
    padding after it or the forward calls before it (one generator per batch made it all four)."""
    short = ids[1:, : SEQ - 3]
    padded = torch.cat([ids[:1], torch.cat([short, torch.zeros(1, 3, dtype=ids.dtype)], 1)])
    mask = torch.ones_like(padded)
    mask[1, SEQ - 3:] = 0
    with apply_intervention(llama, "random-context:1:seed=5"):
        alone = _hidden(llama, short)
        _hidden(llama, ids)  # an unrelated call in between changes nothing
        both = _hidden(llama, padded, attention_mask=mask)
        again = _hidden(llama, short)
        swapped = _hidden(llama, torch.cat([padded[1:], padded[:1]]), attention_mask=torch.cat([mask[1:], mask[:1]]))
        embeds = llama(inputs_embeds=llama.embed_tokens(short), output_hidden_states=True).hidden_states
        embeds_again = llama(inputs_embeds=llama.embed_tokens(short), output_hidden_states=True).hidden_states
    for layer in range(N_BLOCKS + 1):
        assert torch.equal(again[layer], alone[layer])
        torch.testing.assert_close(both[layer][1, : SEQ - 3], alone[layer][0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(swapped[layer][0, : SEQ - 3], alone[layer][0], rtol=1e-5, atol=1e-5)
        assert torch.equal(embeds[layer], embeds_again[layer])
    # Padding keeps its hidden state; the same tokens with another seed get another context.
    ref = _hidden(llama, padded, attention_mask=mask)
    assert torch.equal(both[2][1, SEQ - 3:], ref[1][1, SEQ - 3:])
    with apply_intervention(llama, "random-context:1:seed=6"):
        other = _hidden(llama, short)
    assert not torch.allclose(other[2], alone[2], atol=1e-3)


def test_random_context_block_called_alone_is_an_error(llama):
    hidden = torch.randn(1, 5, 32, generator=torch.Generator().manual_seed(0))
    position_ids = torch.arange(5)[None]
    pe = llama.rotary_emb(hidden, position_ids=position_ids)
    with apply_intervention(llama, "random-context:1"):
        with pytest.raises(ValueError, match=r"found no input_ids or inputs_embeds of shape \(batch, length\) "
                           r"= \(1, 5\) passed to the model \(was a block called on its own\?\)"):
            llama.layers[1](hidden, attention_mask=_causal_mask(5), position_ids=position_ids,
                            position_embeddings=pe)


def test_model_is_restored_after_exit_and_exception(llama, ids):
    ref = _hidden(llama, ids)  # installs transformers' own capture hooks first

    def snapshot():
        return [
            (name, "forward" in m.__dict__, tuple(m._forward_hooks), tuple(m._forward_pre_hooks))
            for name, m in llama.named_modules()
        ]

    before = snapshot()
    params = {k: v.clone() for k, v in llama.state_dict().items()}
    for spec in ("skip:1-2", "parallel:0-3", "no-attention:1", "freeze-context:2", "random-context:0"):
        with pytest.raises(RuntimeError, match="boom"):
            with apply_intervention(llama, spec):
                _hidden(llama, ids)
                raise RuntimeError("boom")
        assert snapshot() == before
        with apply_intervention(llama, spec):
            _hidden(llama, ids)
        assert snapshot() == before
    assert all(torch.equal(v, params[k]) for k, v in llama.state_dict().items())
    assert all(torch.equal(a, b) for a, b in zip(_hidden(llama, ids), ref))


def test_instance_forward_set_by_others_is_restored(gpt2, ids):
    block = gpt2.h[1]
    calls = []
    original = block.forward

    def wrapped(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    block.forward = wrapped  # as accelerate's hooks do
    try:
        with apply_intervention(gpt2, "skip:1"):
            _hidden(gpt2, ids)
        assert calls == []  # skipped
        with apply_intervention(gpt2, "repeat:1x2"):
            _hidden(gpt2, ids)
        assert calls == [1, 1]  # the instance forward is what runs
        assert block.__dict__["forward"] is wrapped
    finally:
        del block.forward


def test_causal_lm_with_cache(ids):
    from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=320, hidden_size=32, intermediate_size=64, num_hidden_layers=N_BLOCKS,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        lm = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        # use_cache defaults to True for a causal LM: running a block twice must still be exact.
        with apply_intervention(lm, "repeat:1x2"):
            out = lm(ids, output_hidden_states=True)
        plan = parse_intervention("repeat:1x2").plan(N_BLOCKS)
        assert _max_rel_err(out.hidden_states, _run_by_hand(lm.model, ids, plan)) < 1e-5
        cache = DynamicCache(config=lm.config)
        lm(ids, cache=cache, use_cache=True)
        with apply_intervention(lm, "skip:1"):
            with pytest.raises(ValueError, match="the key/value cache already holds 12 tokens"):
                lm(ids[:, :1], cache=cache, use_cache=True)


def test_loaded_model_wrapper(ids):
    loaded = tiny_llama(n_layer=N_BLOCKS, hidden_size=32)  # a LoadedModel: .model is the LlamaModel
    ref = _hidden(loaded.model, ids)
    with apply_intervention(loaded, "skip:1") as handle:
        assert handle.n_blocks == N_BLOCKS and "skip:1" in repr(handle)
        out = _hidden(loaded.model, ids)
    assert torch.equal(out[1], ref[1]) and torch.equal(out[2], ref[1])


def test_bad_models():
    with pytest.raises(TypeError, match="needs a transformers PreTrainedModel"):
        with apply_intervention(torch.nn.Linear(2, 2), "skip:0"):
            pass
    loaded = tiny_gpt2(n_layer=2, n_embd=16)
    with pytest.raises(ValueError, match=r"needs block 5 but the model has 2 blocks \(0..1\)"):
        with apply_intervention(loaded, "skip:5"):
            pass


def test_unsupported_architecture():
    from transformers import T5Config, T5Model

    t5 = T5Model(T5Config(vocab_size=50, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_heads=2)).eval()
    with pytest.raises(ValueError,
                       match=r"one list of transformer blocks .* in T5Model it found \[.encoder.block.0.layer"):
        with apply_intervention(t5, "skip:0"):
            pass
