"""Paired passes: the context kinds for every token in one forward pass, equal to one pass per token."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroenc.features.interventions_patch import apply_intervention
from neuroenc.features.paired_context import paired_hidden_states, paired_mask, prefix_noise
from neuroenc.testing import tiny_bert, tiny_gpt2, tiny_llama

SOURCE = "text=" + " ".join(["the cat sat on a mat"] * 5)
SPECS = ["freeze-context:1", "freeze-context:2-2", "random-context:1:seed=5", "random-context:2:keep-sink",
         f"swap-context:1-2:{SOURCE}"]


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def lm(request):
    torch.manual_seed(0)
    return tiny_llama(n_layer=4, hidden_size=32) if request.param == "llama" else tiny_gpt2(n_layer=4, n_embd=32)


@pytest.fixture(scope="module")
def ids():
    return torch.randint(5, 300, (1, 18), generator=torch.Generator().manual_seed(1))


def test_paired_mask_layout():
    real = torch.tensor([[True, True, True, False]])
    allow = paired_mask(real, torch.float32)[0, 0] == 0
    L = 4
    # context token 2 attends to context tokens 0..2, never to the current stream
    assert allow[2, :L].tolist() == [True, True, True, False] and not allow[2, L:].any()
    # current token 2 attends to context tokens 0..1 and to itself only
    assert allow[L + 2, :L].tolist() == [True, True, False, False]
    assert allow[L + 2, L:].tolist() == [False, False, True, False]
    # padding is attended only by itself: no row is empty
    assert allow[:, 3].tolist() == [False, False, False, True, False, False, False, False]
    assert bool(allow.any(dim=1).all())


@pytest.mark.parametrize("spec", SPECS)
def test_paired_pass_equals_one_pass_per_token(lm, ids, spec):
    with apply_intervention(lm, spec, tokenizer=lm.tokenizer) as handle, torch.inference_mode():
        paired = paired_hidden_states(lm, handle, ids)
        for t in range(1, ids.shape[1]):
            alone = lm.hidden_states(ids[:, :t + 1])  # token t current, tokens before it the context
            for p, a in zip(paired, alone):
                np.testing.assert_allclose(p[0, t].numpy(), a[0, -1].numpy(), rtol=1e-5, atol=1e-5)
    with torch.inference_mode():
        intact = lm.hidden_states(ids)
    assert float((paired[-1][0, 5:] - intact[-1][0, 5:]).abs().max()) > 1e-3  # the intervention acts


@pytest.mark.parametrize("spec", ["freeze-context:1", "random-context:1:seed=5", f"swap-context:1:{SOURCE}"])
def test_paired_pass_does_not_depend_on_batching_or_padding(lm, ids, spec):
    batch = torch.cat([ids, ids, ids], 0)
    mask = torch.ones_like(batch)
    mask[1, 11:] = 0
    with apply_intervention(lm, spec, tokenizer=lm.tokenizer) as handle, torch.inference_mode():
        one = paired_hidden_states(lm, handle, ids)
        many = paired_hidden_states(lm, handle, batch, mask)
        # left padding with explicit positions: the row's tokens keep their positions
        left = torch.cat([torch.zeros((1, 4), dtype=ids.dtype), ids], 1)
        lmask = torch.cat([torch.zeros((1, 4), dtype=torch.long), torch.ones_like(ids)], 1)
        pos = torch.clamp(torch.arange(left.shape[1]) - 4, min=0)[None]
        shifted = paired_hidden_states(lm, handle, left, lmask, pos)
    for a, b, c in zip(one, many, shifted):
        np.testing.assert_allclose(b[0].numpy(), a[0].numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(b[1, :11].numpy(), a[0, :11].numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(c[0, 4:].numpy(), a[0].numpy(), rtol=1e-5, atol=1e-5)


def test_prefix_noise_depends_on_the_prefix_only():
    a = prefix_noise(torch.tensor([5, 6, 7, 8]), seed=3, dim=6)
    b = prefix_noise(torch.tensor([5, 6, 9]), seed=3, dim=6)
    np.testing.assert_array_equal(a[:2].numpy(), b[:2].numpy())  # same tokens up to s: same vector
    assert not torch.allclose(a[2], b[2])
    assert not torch.allclose(prefix_noise(torch.tensor([5, 6]), seed=4, dim=6), a[:2])
    assert a.shape == (4, 6) and abs(float(a.std()) - 1.0) < 0.6


def test_paired_pass_needs_a_causal_model_and_a_context_kind(ids):
    bert = tiny_bert(n_layer=2)
    with apply_intervention(bert, "freeze-context:1") as handle, \
            pytest.raises(ValueError, match="needs a causal model; .* is 'masked'"):
        paired_hidden_states(bert, handle, ids)
    lm = tiny_gpt2(n_layer=2, n_embd=32)
    with apply_intervention(lm, "skip:1") as handle, pytest.raises(ValueError, match="needs a context intervention"):
        paired_hidden_states(lm, handle, ids)


def test_blocks_below_the_range_run_one_stream(lm, ids):
    """Below block K both streams hold the intact states: those blocks run once, on L tokens."""
    from neuroenc.features.interventions_patch import Architecture, unwrap_model

    blocks = Architecture(unwrap_model(lm.model)).blocks
    seen = {}
    hooks = [b.mlp.register_forward_pre_hook(lambda m, a, p=p: seen.__setitem__(p, a[0].shape[1]))
             for p, b in enumerate(blocks)]
    try:
        with apply_intervention(lm, "freeze-context:2") as handle, torch.inference_mode():
            paired_hidden_states(lm, handle, ids)
            paired = dict(seen)
            lm.hidden_states(ids)  # outside a paired pass the patched blocks are the model's own
    finally:
        for h in hooks:
            h.remove()
    L = ids.shape[1]
    assert paired == {0: L, 1: L, 2: 2 * L, 3: 2 * L} and seen == {0: L, 1: L, 2: L, 3: L}
