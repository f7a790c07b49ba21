"""The order: spec and its aliases, explicit ranges, keep-sink and swap-context (tiny Llama)."""
from __future__ import annotations

import pytest
import torch

from neuroenc.features.interventions import parse_intervention
from neuroenc.features.interventions_patch import apply_intervention, intervention_plan_table
from neuroenc.testing import tiny_gpt2, tiny_llama

N_BLOCKS = 6
SEQ = 10


@pytest.fixture(scope="module")
def lm():
    return tiny_llama(n_layer=N_BLOCKS, hidden_size=32)


@pytest.fixture(scope="module")
def gpt2():
    return tiny_gpt2(n_layer=N_BLOCKS, n_embd=32).model


@pytest.fixture(scope="module")
def ids():
    return torch.randint(5, 120, (2, SEQ), generator=torch.Generator().manual_seed(1))


def _hidden(model, ids, **kwargs):
    with torch.no_grad():
        return model(ids, output_hidden_states=True, use_cache=False, **kwargs).hidden_states


def _mask(n):
    return torch.full((n, n), float("-inf")).triu(1)[None, None]


def _block(llama, b, x, n=None):
    n = x.shape[1] if n is None else n
    pos = torch.arange(n)[None]
    pe = llama.rotary_emb(x, position_ids=pos)
    return llama.layers[b](x, attention_mask=_mask(n), position_ids=pos, position_embeddings=pe)


def _chain_by_hand(llama, ids, blocks):
    """The final (normed) state of running ``blocks`` in sequence on the embeddings."""
    with torch.no_grad():
        h = llama.embed_tokens(ids)
        for b in blocks:
            h = _block(llama, b, h)
        return llama.norm(h)


@pytest.mark.parametrize("family", ["lm", "gpt2"])
@pytest.mark.parametrize("spec", ["skip:0", "skip:2-3", "skip:5", "repeat:1x3", "repeat:0",
                                  "repeat:5x2", "reverse:1-4", "reverse:0-5", "shuffle:0-5:seed=3",
                                  "swap:0,5", "swap:0-1,3-4"])
def test_each_alias_equals_its_order_form(family, spec, request, ids):
    model = request.getfixturevalue(family)
    model = getattr(model, "model", model)
    form = str(parse_intervention(spec).as_order(N_BLOCKS))
    assert form.startswith("order:")
    with apply_intervention(model, spec):
        alias = _hidden(model, ids)
    with apply_intervention(model, form):
        order = _hidden(model, ids)
    with apply_intervention(model, None):
        intact = _hidden(model, ids)
    assert len(order) == N_BLOCKS + 1
    for a, b in zip(alias, order):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(order[-1], intact[-1], atol=1e-4)


@pytest.mark.parametrize("order", ["0-1,2,2,2,5", "0-5,3-5", "0,5", "5-0", "2,2,2,2", "0-3,1,2,3,3,4-5"])
def test_order_final_state_equals_the_blocks_run_by_hand(lm, ids, order):
    iv = parse_intervention(f"order:{order}")
    with apply_intervention(lm.model, iv):
        out = _hidden(lm.model, ids)
    expected = _chain_by_hand(lm.model, ids, iv.order)
    torch.testing.assert_close(out[-1], expected, rtol=1e-5, atol=1e-5)


def test_order_alignment_keeps_matching_ends(lm, ids):
    """order:0-1,4-5 (skip 2-3): positions 2 and 3 pass through; Sun's middle repeat keeps depth."""
    with apply_intervention(lm.model, "order:0-1,4-5"):
        out = _hidden(lm.model, ids)
    intact = _hidden(lm.model, ids)
    assert torch.equal(out[2], intact[2]) and torch.equal(out[3], out[2]) and torch.equal(out[4], out[2])
    table = intervention_plan_table("order:0-1,2,2,2,5", N_BLOCKS)
    assert table == ["0: block 0", "1: block 1", "2: block 2", "3: block 2", "4: block 2", "5: block 5"]
    assert intervention_plan_table("order:0-5,3-5", N_BLOCKS)[-1] == "5: block 5 -> block 3 -> block 4 -> block 5"
    assert intervention_plan_table("order:5,0-5", N_BLOCKS)[0] == "0: block 5 -> block 0"


def test_order_spec_round_trips_and_checks_blocks():
    iv = parse_intervention("order:0-13,14,14,14,17-29")
    assert len(iv.order) == 30 and iv.order[14:17] == (14, 14, 14)
    assert parse_intervention(str(iv)) == iv and parse_intervention(iv.to_dict()) == iv
    assert parse_intervention("order:3-1").order == (3, 2, 1)
    for spec in ("order:3-1", "order:5,0-5", "order:2,2,2,2"):
        other = parse_intervention(spec)
        assert parse_intervention(other.to_dict()) == other and parse_intervention(str(other)) == other
    with pytest.raises(ValueError, match="needs block 29 but the model has 6 blocks"):
        iv.check(N_BLOCKS)
    with pytest.raises(ValueError, match="'order' needs a non-empty list of blocks"):
        parse_intervention({"kind": "order", "start": 0, "order": []})
    with pytest.raises(ValueError, match="'skip:0-5' leaves no block to run; it has no order: form"):
        parse_intervention("skip:0-5").as_order(N_BLOCKS)
    assert intervention_plan_table("skip:0-5", N_BLOCKS)[0] == "0: pass-through"
    with pytest.raises(ValueError, match="is not a block order"):
        parse_intervention("parallel:1-2").as_order(N_BLOCKS)


def test_no_attention_explicit_range(lm, ids):
    with apply_intervention(lm.model, "no-attention:2"):
        open_end = _hidden(lm.model, ids)
    with apply_intervention(lm.model, f"no-attention:2-{N_BLOCKS - 1}"):
        closed = _hidden(lm.model, ids)
    with apply_intervention(lm.model, "no-attention:2-2"):
        one = _hidden(lm.model, ids)
    intact = _hidden(lm.model, ids)
    assert all(torch.equal(a, b) for a, b in zip(open_end, closed))
    assert torch.equal(one[3], open_end[3]) and not torch.allclose(one[3], intact[3])
    # Block 3 runs with its attention in "no-attention:2-2": by hand from hidden state 3.
    with torch.no_grad():
        torch.testing.assert_close(one[4], _block(lm.model, 3, one[3]), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(one[4], open_end[4], atol=1e-4)


def test_freeze_context_range_ends_at_j(lm, ids):
    """freeze-context:1-2: previous tokens hold hidden state 1 through block 2, then run on."""
    k, j = 1, 2
    ref = _hidden(lm.model, ids)
    with apply_intervention(lm.model, f"freeze-context:{k}-{j}"):
        out = _hidden(lm.model, ids)
    for layer in range(k + 1, j + 2):
        assert torch.equal(out[layer][:, :-1], ref[k][:, :-1])
    with torch.no_grad():  # causal: the previous tokens after the range see only each other
        after = _block(lm.model, j + 1, ref[k][:, :-1])
    torch.testing.assert_close(out[j + 2][:, :-1], after, rtol=1e-5, atol=1e-5)
    with apply_intervention(lm.model, f"freeze-context:{k}-{N_BLOCKS - 1}"):
        closed = _hidden(lm.model, ids)
    with apply_intervention(lm.model, f"freeze-context:{k}"):
        open_end = _hidden(lm.model, ids)
    assert all(torch.equal(a, b) for a, b in zip(open_end, closed))


def test_random_context_keep_sink(lm, ids):
    k = 1
    ref = _hidden(lm.model, ids)
    with apply_intervention(lm.model, f"random-context:{k}:keep-sink"):
        kept = _hidden(lm.model, ids)
    with apply_intervention(lm.model, f"random-context:{k}"):
        plain = _hidden(lm.model, ids)
    assert torch.equal(kept[k + 1][:, 0], ref[k][:, 0])  # the sink keeps its hidden state k
    assert not torch.allclose(plain[k + 1][:, 0], ref[k][:, 0])  # ... unless keep-sink is off
    torch.testing.assert_close(kept[k + 1][:, 1:-1], plain[k + 1][:, 1:-1], rtol=0, atol=0)  # same draw


def test_swap_context_matches_hand_run(lm, ids):
    k = 2
    source = "the cat sat on the mat and then the dog ran far away"
    src = torch.tensor([lm.tokenizer(source, add_special_tokens=False)["input_ids"]])
    assert src.shape[1] >= SEQ - 1
    with apply_intervention(lm, f"swap-context:{k}:text={source}"):
        out = _hidden(lm.model, ids)
    ref = _hidden(lm.model, ids)
    src_states = _hidden(lm.model, src)
    for layer in range(k + 1):
        assert torch.equal(out[layer], ref[layer])
    # Previous tokens carry the source's states from block k on (causal: exactly the source's).
    for layer in range(k + 1, N_BLOCKS + 1):
        torch.testing.assert_close(out[layer][:, :-1], src_states[layer][:, : SEQ - 1].expand(2, -1, -1),
                                   rtol=1e-5, atol=1e-5)
    # The current token attends to the source's states in blocks k..last.
    with torch.no_grad():
        current = ref[k][:, -1:]
        for b in range(k, N_BLOCKS):
            x = torch.cat([src_states[b][:, : SEQ - 1].expand(2, -1, -1), current], dim=1)
            current = _block(lm.model, b, x)[:, -1:]
        expected = lm.model.norm(current)[:, 0]
    torch.testing.assert_close(out[-1][:, -1], expected, rtol=1e-5, atol=1e-5)


def test_swap_context_source_by_stimulus_id_and_bos(lm, ids):
    text = "the dog ran far away and the cat sat on the mat again"
    bos = lm.tokenizer.bos_token_id
    with_bos = torch.cat([torch.full((2, 1), bos), ids[:, 1:]], dim=1)
    with apply_intervention(lm, "swap-context:1:text=" + text):
        by_text = _hidden(lm.model, with_bos)
    with apply_intervention(lm, "swap-context:1:stimulus=s2", sources={"s1": "x", "s2": text}):
        by_id = _hidden(lm.model, with_bos)
    assert all(torch.equal(a, b) for a, b in zip(by_text, by_id))
    # A row starting with BOS gets the source after BOS: the sink keeps its own state.
    ref = _hidden(lm.model, with_bos)
    torch.testing.assert_close(by_text[3][:, 0], ref[3][:, 0], rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="no stimulus 'nope' among the 2 given"):
        with apply_intervention(lm, "swap-context:1:stimulus=nope", sources={"s1": "x", "s2": text}):
            pass
    with pytest.raises(ValueError, match="names a stimulus, but no stimuli were given"):
        with apply_intervention(lm, "swap-context:1:stimulus=s1"):
            pass
    with pytest.raises(ValueError, match="no tokenizer was given"):
        with apply_intervention(lm.model, "swap-context:1:text=the cat"):
            pass
    with apply_intervention(lm, "swap-context:1:text=the cat"):
        with pytest.raises(ValueError, match=r"the source prompt has \d+ token\(s\) but a context has 9"):
            _hidden(lm.model, ids)
