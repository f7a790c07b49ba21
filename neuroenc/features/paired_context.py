"""The context kinds in one forward pass: a context stream beside a current-token stream.

``freeze-context``, ``random-context`` and ``swap-context`` (Ben-Artzy & Schwartz 2024) define
"the previous tokens" relative to one *current* token, so read literally they need one
forward pass per token. In a causal model the previous tokens never see the current one, and
under each of these kinds their states do not depend on which token is current:

- below the range (blocks ``< K``) every token runs intact;
- ``freeze-context``: from block ``K`` the previous tokens hold their hidden state ``K``;
- ``random-context``: from block ``K`` they hold random vectors drawn per token (seeded by the
  intervention's seed and the tokens up to and including that one; see
  :func:`prefix_noise`), with the norms of their hidden state ``K``;
- ``swap-context``: in blocks ``K..J`` they take the source prompt's hidden states;
- after the range they run on as usual, attending to each other causally.

So a token's context states are one sequence, shared by every later token. :func:`paired_hidden_states`
runs the model once on twice the tokens: a *context stream* (positions ``0..L-1``: the
previous-token states as just described) and a *current stream* (the same tokens again, each
the current token of its own prediction). A 4-D attention mask lets current token ``t`` attend
to the context stream's tokens ``s < t`` and to itself, and the context stream only to itself,
causally; both streams get position ids ``0..L-1``. Every position of the current stream then
equals the last position of a pass over tokens ``0..t`` alone (up to float summation order):
the exact cached equivalent of one pass per token. Below block ``K`` both streams hold the
intact states, so those blocks run once on one stream (:func:`lower_block`); a paired pass
costs ``K`` blocks on ``L`` tokens plus the rest on ``2L``: at most twice an intact pass.

Only causal models qualify (a masked model's previous tokens see the current one);
:func:`~neuroenc.features.interventions_patch.apply_intervention` applies the per-block
changes, which read the stream layout from the handle this module sets.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .block_io import hidden_of, replace_hidden, split_hidden


@dataclass
class Pairing:
    """The layout of a paired pass, set on the intervention handle while it runs.

    Attributes
    ----------
    length : int
        ``L``: tokens per stream (the context stream is positions ``0..L-1`` of the doubled
        sequence, the current stream ``L..2L-1``).
    real : torch.Tensor of bool, shape (batch, L), on CPU
        Which positions of each row are tokens (not padding). Each row's tokens (the random
        context's seeds, the source's BOS check) are the first stream of the input ids the
        handle records (``handle._inputs[:, :L]``).
    """

    length: int
    real: torch.Tensor


def paired_mask(real: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The additive 4-D attention mask of a paired pass, shape (batch, 1, 2L, 2L).

    Context token ``i`` attends to the context tokens ``j <= i``; current token ``i`` to the
    context tokens ``j < i`` and to itself. Padding is never attended to, except by itself
    (so no row of the mask is empty).

    Parameters
    ----------
    real : torch.Tensor of bool, shape (batch, L)
        Which positions are tokens.
    dtype : torch.dtype
        The model's floating dtype (masked entries get its most negative value).
    """
    batch, length = real.shape
    i = torch.arange(length, device=real.device)
    keys = real[:, None, :]
    eye = (i[:, None] == i[None, :])[None]
    allow = torch.zeros((batch, 2 * length, 2 * length), dtype=torch.bool, device=real.device)
    allow[:, :length, :length] = ((i[None, :] <= i[:, None])[None] & keys) | eye
    allow[:, length:, :length] = (i[None, :] < i[:, None])[None] & keys
    allow[:, length:, length:] = eye
    mask = torch.zeros((batch, 1, 2 * length, 2 * length), dtype=dtype, device=real.device)
    return mask.masked_fill_(~allow[:, None], torch.finfo(dtype).min)


def paired_hidden_states(lm: Any, handle: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                         position_ids: torch.Tensor | None = None, last_block: Any = None) -> tuple[torch.Tensor, ...]:
    """Every hidden state of a batch under a context intervention, every token the current one.

    Call it under :func:`torch.inference_mode`, inside
    :func:`~neuroenc.features.interventions_patch.apply_intervention` with a context kind.

    Parameters
    ----------
    lm : LoadedModel
        A causal model.
    handle : InterventionHandle
        What ``apply_intervention`` yielded.
    input_ids : torch.Tensor, shape (batch, L)
    attention_mask : torch.Tensor | None, shape (batch, L)
        1 for tokens, 0 for padding (None: no padding).
    position_ids : torch.Tensor | None, shape (batch, L)
        Needed with left padding (default: ``0..L-1``).
    last_block : LastBlockOutput | None
        With ``last_layer="pre-norm"``: the capture of the last block's output, cut here to
        the current stream (then ``last_block.replace(states)`` as after any pass).

    Returns
    -------
    states : tuple of torch.Tensor, each (batch, L, hidden)
        The current stream's hidden states: position ``t`` is token ``t`` read as the current
        token, with tokens ``0..t-1`` as its context.

    Raises
    ------
    ValueError
        If the model is not causal or the handle's intervention is not a context kind.
    """
    if getattr(lm, "kind", None) != "causal":
        raise ValueError(
            f"a paired pass reads every token as the current one, which needs a causal model; "
            f"{getattr(lm, 'name', lm)!r} is {getattr(lm, 'kind', 'unknown')!r}. Use one pass per word "
            "(policy='window', pooling='last')."
        )
    if handle is None or not handle.intervention.needs_last_token:
        raise ValueError("paired_hidden_states needs a context intervention (freeze-, random- or swap-context) "
                         "applied with apply_intervention.")
    batch, length = input_ids.shape
    device = input_ids.device
    real = (torch.ones((batch, length), dtype=torch.bool, device=device) if attention_mask is None
            else attention_mask.to(torch.bool))
    if position_ids is None:
        position_ids = torch.arange(length, device=device).expand(batch, length)
    dtype = next(lm.model.parameters()).dtype
    mask = paired_mask(real, dtype if dtype.is_floating_point else torch.float32)
    handle._paired = Pairing(length, real.cpu())
    try:
        states = lm.hidden_states(torch.cat([input_ids, input_ids], dim=1), mask,
                                  torch.cat([position_ids, position_ids], dim=1))
    finally:
        handle._paired = None
    if last_block is not None and last_block.output is not None:
        last_block.output = last_block.output[:, length:]
    return tuple(h[:, length:] for h in states)


def prefix_noise(tokens: torch.Tensor, seed: int, dim: int) -> torch.Tensor:
    """One standard Gaussian vector per token, seeded by ``seed`` and the tokens up to it.

    Token ``s``'s vector depends on ``seed`` and ``tokens[:s + 1]`` only, so a token gets the
    same random state whatever comes after it: in one pass per token and in a paired pass,
    in any batch, row or padding.

    Parameters
    ----------
    tokens : torch.Tensor, shape (n, ...)
        A sequence's tokens (ids, or embeddings), padding left out.
    seed : int
    dim : int
        Length of each vector.

    Returns
    -------
    noise : torch.Tensor, shape (n, dim), float32, on CPU
    """
    data = np.ascontiguousarray(tokens.detach().cpu().numpy())
    digest = hashlib.sha256(
        f"neuroenc-random-context:{int(seed)}:{data.dtype.str}:{tuple(data.shape[1:])}:".encode("ascii"))
    out = torch.empty((data.shape[0], dim), dtype=torch.float32)
    generator = torch.Generator(device="cpu")
    for s in range(data.shape[0]):
        digest.update(data[s].tobytes())
        generator.manual_seed(int.from_bytes(digest.copy().digest()[:8], "little") & ((1 << 63) - 1))
        out[s] = torch.randn(dim, generator=generator, dtype=torch.float32)
    return out


def random_states(hidden: torch.Tensor, real: torch.Tensor, inputs: torch.Tensor, seed: int,
                  keep_sink: bool) -> torch.Tensor:
    """``hidden`` with every real token's state replaced by its random vector, at its norm.

    Parameters
    ----------
    hidden : torch.Tensor, shape (batch, L, dim)
    real : torch.Tensor of bool, shape (batch, L), on CPU
    inputs : torch.Tensor, shape (batch, L, ...)
        The rows' tokens (the seeds of :func:`prefix_noise`).
    seed : int
    keep_sink : bool
        The first real token of each row (the attention sink) keeps its state.

    Returns
    -------
    states : torch.Tensor, shape (batch, L, dim)
        Padding keeps its state.
    """
    batch, length, dim = hidden.shape
    noise = torch.zeros((batch, length, dim), dtype=torch.float32)
    for row in range(batch):
        positions = torch.nonzero(real[row]).reshape(-1)
        noise[row, positions] = prefix_noise(inputs[row, positions.to(inputs.device)], seed, dim)
    noise = noise.to(hidden.device, hidden.dtype)
    scale = hidden.norm(dim=-1, keepdim=True) / noise.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    keep = ~real
    if keep_sink:
        first = torch.argmax(real.to(torch.int8), dim=1)
        keep[torch.arange(batch), first] = True
    return torch.where(keep.to(hidden.device)[..., None], hidden, noise * scale)


def source_states(hidden: torch.Tensor, real: torch.Tensor, inputs: torch.Tensor | None, block: int,
                  handle: Any, needed: torch.Tensor, count: torch.Tensor | None = None) -> torch.Tensor:
    """``hidden`` with each row's first real positions replaced by the source's hidden state ``block``.

    Parameters
    ----------
    hidden : torch.Tensor, shape (batch, L, dim)
    real : torch.Tensor of bool, shape (batch, L), on CPU
    inputs : torch.Tensor | None, shape (batch, L)
        The rows' input ids: a row that starts with the BOS token takes the source read after
        the BOS token (so the sink position holds the same token).
    block : int
        Which hidden state of the source.
    handle : InterventionHandle
        Holds the source's states.
    needed : torch.Tensor of int, shape (batch,)
        How many real positions of each row must take the source (its context).
    count : torch.Tensor of int, shape (batch,) | None
        How many real positions of each row take the source where it is long enough (default:
        ``needed``).

    Raises
    ------
    ValueError
        If the source has fewer tokens than a row needs.
    """
    out = hidden.clone()
    for row in range(hidden.shape[0]):
        positions = torch.nonzero(real[row]).reshape(-1)
        n = int(needed[row])
        take = n if count is None else int(count[row])
        if take == 0 or positions.numel() == 0:
            continue
        first = None
        if inputs is not None and inputs.dtype in (torch.long, torch.int):
            token = int(inputs[row, int(positions[0])])
            first = token if token in handle._source else None
        states = handle._source[first][block]
        if states.shape[0] < n:
            raise ValueError(
                f"intervention {str(handle.intervention)!r}: the source prompt has {states.shape[0]} "
                f"token(s) but a context has {n}; give a source at least as long as the longest context "
                "(or shorter contexts)."
            )
        m = min(take, positions.numel(), states.shape[0])
        out[row, positions[:m].to(hidden.device)] = states[:m].to(hidden.dtype)
    return out


def _first_stream(value: Any, length: int) -> Any:
    """``value`` cut to the first stream: 4-D masks to their first L x L, per-token tensors
    (position ids, cache positions, rotary cos/sin) to their first L positions."""
    if isinstance(value, torch.Tensor):
        if value.ndim == 4 and value.shape[-1] == value.shape[-2] == 2 * length:
            return value[..., :length, :length]
        if value.ndim == 1 and value.shape[0] == 2 * length:
            return value[:length]
        if value.ndim >= 2 and value.shape[1] == 2 * length:
            return value[:, :length]
        return value
    if isinstance(value, tuple) and value and all(isinstance(v, torch.Tensor) for v in value):
        return tuple(_first_stream(v, length) for v in value)
    return value


def lower_block(caller: Any, handle: Any) -> Any:
    """The forward of a block below the intervention's range.

    Outside a paired pass it is the block's own. In a paired pass both streams hold the intact
    states below the range (the context stream is causal; each current token attends to the
    earlier context tokens, which equal its own stream's, and to itself), so the block runs
    once, causally, on the first stream (its mask, positions and rotary embeddings cut to it),
    and both streams take the result: exact, and the blocks below ``K`` cost one stream.
    """
    def forward(*args: Any, **kwargs: Any) -> Any:
        hidden = split_hidden(args, kwargs)
        pair = handle._paired
        if pair is None:
            return caller(hidden, args, kwargs)
        length = pair.length
        first = hidden[:, :length]
        cut_args = (first,) + tuple(_first_stream(a, length) for a in args[1:]) if args else ()
        cut_kwargs = {k: _first_stream(v, length) for k, v in kwargs.items() if k != "hidden_states"}
        out = caller(first, cut_args, cut_kwargs)
        h = hidden_of(out)
        return replace_hidden(out, torch.cat([h, h], dim=1))

    return forward


def paired_block(caller: Any, block: int, handle: Any, hidden: torch.Tensor, args: tuple,
                 kwargs: dict) -> Any:
    """Block ``block`` (in the intervention's range) of a paired pass.

    The context stream (the first ``L`` positions) is changed as the intervention says; the
    current stream runs the block as usual.
    """
    pair = handle._paired
    iv = handle.intervention
    length = pair.length
    context = hidden[:, :length]
    inputs = handle._inputs[:, :length]
    if iv.kind == "swap-context":
        # every context token but the row's last is some current token's context
        count = pair.real.sum(dim=1)
        context = source_states(context, pair.real, inputs, block, handle, (count - 1).clamp_min(0), count)
        return caller(torch.cat([context, hidden[:, length:]], dim=1), args, kwargs)
    if iv.kind == "random-context" and block == iv.start:
        context = random_states(context, pair.real, inputs, handle.seed, iv.keep_sink)
        hidden = torch.cat([context, hidden[:, length:]], dim=1)
    out = caller(hidden, args, kwargs)
    return replace_hidden(out, torch.cat([context, hidden_of(out)[:, length:]], dim=1))


__all__ = ["Pairing", "paired_hidden_states", "paired_mask", "prefix_noise"]
