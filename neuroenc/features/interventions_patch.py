"""Apply an :class:`~neuroenc.features.interventions.Intervention` to a loaded transformers model.

:func:`apply_intervention` is a context manager: on entry it routes the ``forward`` of the
affected block positions (and, for ``no-attention``, of their attention sub-modules) to the
intervention's plan; on exit (also after an exception) it puts every ``forward`` back and
removes its hooks, leaving the model exactly as it was. No model code is copied: the plan
calls the model's own blocks.

How it works, and what hidden states mean
-----------------------------------------
The model keeps its list of blocks, in place and in order, and its own loop still calls block
position ``p`` exactly once per forward pass. Only *what position p computes* changes (see
:meth:`Intervention.plan`): it may run another block, several blocks, none, or the average of
several. So the model still returns ``n_blocks + 1`` hidden states with
``output_hidden_states=True`` (transformers records them with forward hooks on the block
modules, which fire once per position), and every hook on position ``p`` (transformers' or
the extractor's) sees the output of position ``p``: hidden state ``p + 1``. Layer indices stay
comparable with the intact model: a skipped block's output is its input.

The blocks a position runs are called through their original ``forward`` (not ``__call__``),
so their own hooks do not fire a second time. The key/value cache is switched off (a block run
twice would otherwise append its keys to the cache twice): interventions are for full-sequence
forward passes, such as feature extraction, and a cache that already holds tokens is an error.

Supported families: Llama-like decoders (``model.layers``, attention ``self_attn``: Llama,
SmolLM2, Mistral, Qwen2...), GPT-2-like (``transformer.h``, attention ``attn``) and BERT-like
encoders (``encoder.layer``, attention ``attention`` with its residual and LayerNorm inside).
"""
from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from .block_io import hidden_of, replace_hidden, split_hidden
from .interventions import Intervention, Step, parse_intervention

logger = logging.getLogger(__name__)

# Names of the block list, and of the attention sub-module with how to skip it:
# "zero" - pre-norm blocks add the attention output to the residual stream: return zeros;
# "identity" - post-norm BERT blocks wrap residual + LayerNorm inside: return the input.
_BLOCK_LIST_NAMES = ("layers", "h", "layer", "blocks")
_ATTENTION = (("self_attn", "zero"), ("attn", "zero"), ("attention", "identity"))
_CACHE_ARGS = ("cache", "past_key_values", "past_key_value", "layer_past")


class InterventionHandle:
    """What :func:`apply_intervention` yields: the active intervention and its settings.

    Attributes
    ----------
    intervention : Intervention
        The active intervention.
    n_blocks : int
        Number of blocks of the model.
    seed : int
        The seed of ``random-context``'s random vectors (0 when ``random_state`` is None).
    query_positions : None | int | sequence of int | torch.Tensor
        For ``freeze-context`` / ``random-context``: the position of the current token in
        each sequence of the next forward passes. ``None`` (default) takes the last
        non-padding token of each row (from the ``attention_mask`` passed to the model, else
        the last position). Set it when the current token is elsewhere (e.g. before a
        trailing special token).
    """

    def __init__(self, intervention: Intervention, n_blocks: int, random_state: int | None) -> None:
        self.intervention = intervention
        self.n_blocks = n_blocks
        self.seed = 0 if random_state is None else int(random_state)
        self.query_positions: Any = None
        # swap-context: the source's intact hidden states, without and with the row's BOS.
        self._source: dict[int | None, tuple[torch.Tensor, ...]] = {}
        # Recorded by the base model's pre-hook at every forward pass.
        self._mask: torch.Tensor | None = None
        self._inputs: torch.Tensor | None = None
        # Set by paired_hidden_states while a paired pass runs (see neuroenc.features.paired_context).
        self._paired: Any = None

    def __repr__(self) -> str:
        return f"<InterventionHandle {str(self.intervention)!r} on {self.n_blocks} blocks>"

    def _queries(self, hidden: torch.Tensor) -> torch.Tensor:
        """The current-token position of each row, shape (batch,)."""
        batch, length = hidden.shape[:2]
        q = self.query_positions
        if q is None:
            mask = self._mask
            if mask is None:
                return torch.full((batch,), length - 1, dtype=torch.long, device=hidden.device)
            if mask.ndim != 2 or tuple(mask.shape) != (batch, length):
                raise ValueError(
                    f"intervention {str(self.intervention)!r} finds the current token of each row "
                    f"from a 2-D attention_mask of shape (batch, length) = ({batch}, {length}), got "
                    f"shape {tuple(mask.shape)}; set handle.query_positions instead."
                )
            real = mask.to(torch.bool)
            if not bool(real.any(dim=1).all()):
                raise ValueError(
                    f"intervention {str(self.intervention)!r}: a row of the attention_mask has no "
                    "token; drop empty rows before the forward pass."
                )
            flipped = torch.flip(real, dims=[1]).to(torch.int8)
            return (length - 1 - torch.argmax(flipped, dim=1)).to(device=hidden.device, dtype=torch.long)
        q = torch.as_tensor(q, dtype=torch.long, device=hidden.device).reshape(-1)
        if q.numel() == 1:
            q = q.expand(batch)
        if q.numel() != batch:
            raise ValueError(
                f"handle.query_positions has {q.numel()} entries but the batch has {batch} rows."
            )
        if bool((q < 0).any()) or bool((q >= length).any()):
            raise ValueError(
                f"handle.query_positions {q.tolist()} fall outside the sequence of {length} tokens."
            )
        return q


@contextlib.contextmanager
def apply_intervention(
    model: Any,
    intervention: str | dict | Intervention | None,
    *,
    tokenizer: Any = None,
    sources: Any = None,
) -> Iterator[InterventionHandle | None]:
    """Change a loaded transformers model by ``intervention`` inside a ``with`` block.

    Parameters
    ----------
    model : transformers.PreTrainedModel | object with a ``.model`` attribute holding one
        The model (e.g. ``LlamaForCausalLM``, ``GPT2LMHeadModel``, ``BertModel``) or the
        extractor's loaded-model wrapper.
    intervention : str | dict | Intervention | None
        The intervention (see :mod:`neuroenc.features.interventions` for the grammar).
        ``None`` changes nothing and yields ``None``.
    tokenizer : transformers tokenizer | None
        For ``swap-context``: tokenises the source prompt (default: the wrapper's
        ``.tokenizer``).
    sources : mapping of str -> str | StimulusSet | None
        For ``swap-context:K:stimulus=ID``: the text of each stimulus id (a dict, or a
        :class:`~neuroenc.stimuli.StimulusSet`, whose stimulus texts are used).

    Yields
    ------
    handle : InterventionHandle | None
        The active intervention; for ``freeze-context`` / ``random-context`` its
        ``query_positions`` says where the current token is (default: the last non-padding
        token of each row).

    Notes
    -----
    ``swap-context`` runs the intact model once on the source prompt on entry (and once more
    with the BOS token first, if the tokenizer has one): a row whose first token is that
    special token gets the source with it, so the sink position holds the same token. The
    previous tokens of a row take the source's states position by position, so the source
    needs at least as many tokens as the longest context (an error otherwise).

    The model is restored exactly on exit, also when the body raises: every ``forward``
    attribute and hook the intervention added is removed (parameters are never touched).
    ``random-context`` draws the random vector of each token from a generator seeded with the
    intervention's seed and a hash of its row's tokens up to and including it (non-padding
    ``input_ids``, or ``inputs_embeds``), so a token gets the same random state whatever the
    batch it is in, its row, the padding around it, the tokens after it or the calls before
    it (hence in one pass per token and in a paired pass alike).

    For the context kinds, a *paired pass*
    (:func:`~neuroenc.features.paired_context.paired_hidden_states`) reads every token of a
    causal model as the current one in one forward pass; outside it the current token of each
    row is ``handle.query_positions`` (default: the last real token).

    Examples
    --------
    >>> with apply_intervention(model, "skip:10-14"):            # doctest: +SKIP
    ...     out = model(input_ids, output_hidden_states=True)
    >>> len(out.hidden_states) == model.config.num_hidden_layers + 1   # doctest: +SKIP
    True
    """
    iv = parse_intervention(intervention)
    if iv is None:
        yield None
        return
    hf = unwrap_model(model)
    arch = Architecture(hf)
    iv.check(arch.n_blocks)
    handle = InterventionHandle(iv, arch.n_blocks, iv.seed)
    if iv.kind == "swap-context":
        _prepare_source(handle, arch, model, tokenizer, sources)
    patches = _Patches()
    try:
        _install(arch, iv, handle, patches)
        logger.debug("intervention %s applied to %s", iv, type(hf).__name__)
        yield handle
    finally:
        patches.restore()


# ------------------------------------------------------------------ model anatomy
def unwrap_model(model: Any) -> nn.Module:
    from transformers import PreTrainedModel

    if isinstance(model, PreTrainedModel):
        return model
    inner = getattr(model, "model", None)
    if isinstance(inner, PreTrainedModel):
        return inner
    raise TypeError(
        "apply_intervention needs a transformers PreTrainedModel or an object whose .model is "
        f"one, got {type(model).__name__}."
    )


class Architecture:
    """Where the blocks, their attention and the owning base model are."""

    def __init__(self, model: nn.Module) -> None:
        config = getattr(model, "config", None)
        n_layers = getattr(config, "num_hidden_layers", None)
        candidates = []
        for name, module in model.named_modules():
            last = name.rsplit(".", 1)[-1]
            if isinstance(module, nn.ModuleList) and last in _BLOCK_LIST_NAMES and len(module) > 0:
                if n_layers is None or len(module) == n_layers:
                    candidates.append((name, module))
        if len(candidates) != 1:
            found = [name for name, _ in candidates] or "none"
            raise ValueError(
                f"apply_intervention supports models with one list of transformer blocks (Llama-, "
                f"GPT-2- and BERT-like); in {type(model).__name__} it found {found}."
            )
        self.path, self.blocks = candidates[0]
        self.n_blocks = len(self.blocks)
        first = self.blocks[0]
        self.attention_name, self.attention_mode = None, None
        for attr, mode in _ATTENTION:
            if isinstance(getattr(first, attr, None), nn.Module):
                self.attention_name, self.attention_mode = attr, mode
                break
        # The deepest PreTrainedModel that owns the blocks: its forward gets the 2-D mask.
        from transformers import PreTrainedModel

        best = ("", model)
        for name, module in model.named_modules():
            if isinstance(module, PreTrainedModel) and (name == "" or self.path.startswith(name + ".")):
                if len(name) >= len(best[0]):
                    best = (name, module)
        self.base = best[1]

    def attention(self, block: nn.Module) -> nn.Module:
        if self.attention_name is None:
            raise ValueError(
                f"'no-attention' needs an attention sub-module named one of "
                f"{[a for a, _ in _ATTENTION]} in {type(block).__name__}; none was found."
            )
        return getattr(block, self.attention_name)


class _Patches:
    """The changes made to modules, undone in reverse order by :meth:`restore`."""

    _MISSING = object()

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def set_forward(self, module: nn.Module, forward: Callable) -> None:
        previous = module.__dict__.get("forward", self._MISSING)

        def undo() -> None:
            if previous is self._MISSING:
                module.__dict__.pop("forward", None)
            else:
                module.__dict__["forward"] = previous

        self._undo.append(undo)
        module.forward = forward

    def add_hook(self, handle: Any) -> None:
        self._undo.append(handle.remove)

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()


# ------------------------------------------------------------------ calling blocks
class _Caller:
    """Calls a block's original ``forward`` (not ``__call__``: its own hooks stay silent)."""

    def __init__(self, module: nn.Module) -> None:
        self.forward = module.forward  # bound original (or an accelerate-style instance forward)

    def __call__(self, hidden: torch.Tensor, args: tuple, kwargs: dict) -> Any:
        if args:
            return self.forward(hidden, *args[1:], **kwargs)
        return self.forward(**dict(kwargs, hidden_states=hidden))


# ------------------------------------------------------------------ installing
def _install(arch: Architecture, iv: Intervention, handle: InterventionHandle, patches: _Patches) -> None:
    callers = [_Caller(block) for block in arch.blocks]
    hook = arch.base.register_forward_pre_hook(_base_pre_hook(handle, arch.base), with_kwargs=True)
    patches.add_hook(hook)
    if iv.kind == "no-attention":
        for p in iv.block_range(arch.n_blocks):
            attention = arch.attention(arch.blocks[p])
            patches.set_forward(attention, _no_attention_forward(arch.attention_mode))
        return
    if iv.needs_last_token:
        for p in iv.block_range(arch.n_blocks):
            patches.set_forward(arch.blocks[p], _context_forward(callers[p], p, iv, handle))
        from .paired_context import lower_block

        for p in range(iv.block_range(arch.n_blocks).start):  # in a paired pass: one stream below the range
            patches.set_forward(arch.blocks[p], lower_block(callers[p], handle))
        return
    plan = iv.plan(arch.n_blocks)
    for p, step in enumerate(plan):
        if step != Step("chain", (p,)):
            patches.set_forward(arch.blocks[p], _step_forward(step, callers))


def _step_forward(step: Step, callers: Sequence[_Caller]) -> Callable:
    def forward(*args: Any, **kwargs: Any) -> Any:
        hidden = split_hidden(args, kwargs)
        if step.mode == "chain":
            out: Any = hidden
            for b in step.blocks:
                out = callers[b](hidden_of(out), args, kwargs)
            return out
        outputs = [callers[b](hidden, args, kwargs) for b in step.blocks]
        if len(outputs) == 1:
            return outputs[0]
        mean = torch.stack([hidden_of(o) for o in outputs]).mean(dim=0)
        return replace_hidden(outputs[-1], mean)

    return forward


def _no_attention_forward(mode: str) -> Callable:
    def forward(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, None]:
        hidden = split_hidden(args, kwargs)
        return (torch.zeros_like(hidden) if mode == "zero" else hidden), None

    return forward


def _base_pre_hook(handle: InterventionHandle, base: nn.Module) -> Callable:
    """Before the base model runs: switch the key/value cache off and record the 2-D mask.

    A block run twice (``repeat``) or out of order would write the cache twice or under another
    layer's index, so the cache is off under every intervention; a cache that already holds
    tokens (incremental decoding) is an error.
    """
    try:
        signature = inspect.signature(base.forward)
    except (TypeError, ValueError):  # pragma: no cover - a forward without a signature
        signature = None

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if args and signature is not None:
            bound = signature.bind_partial(*args, **kwargs)
            args, kwargs = (), dict(bound.arguments)
            var_kw = [n for n, p in signature.parameters.items() if p.kind is inspect.Parameter.VAR_KEYWORD]
            for name in var_kw:
                kwargs.update(kwargs.pop(name, {}))
        kwargs = dict(kwargs)
        for name in _CACHE_ARGS:
            cache = kwargs.get(name)
            if cache is not None:
                length = cache.get_seq_length() if hasattr(cache, "get_seq_length") else 0
                if length:
                    raise ValueError(
                        f"intervention {str(handle.intervention)!r} applies to full-sequence forward "
                        f"passes, but the key/value cache already holds {length} tokens; call the "
                        "model with use_cache=False and no past_key_values."
                    )
                kwargs[name] = None
        kwargs["use_cache"] = False
        mask = kwargs.get("attention_mask")
        handle._mask = mask if isinstance(mask, torch.Tensor) else None
        inputs = kwargs.get("input_ids")
        if not isinstance(inputs, torch.Tensor):
            inputs = kwargs.get("inputs_embeds")
        handle._inputs = inputs if isinstance(inputs, torch.Tensor) else None
        return args, kwargs

    return hook


def _context_forward(caller: _Caller, position: int, iv: Intervention, handle: InterventionHandle) -> Callable:
    """Block ``position`` of a context intervention (blocks ``iv.start``..``iv.stop``).

    ``freeze-context`` / ``random-context``: the block runs on its input as usual, but only the
    current token's output is kept: every other position leaves the block with the hidden
    state it entered with, so in blocks ``iv.start``..``iv.stop`` the previous tokens hold
    their hidden state ``iv.start`` (or, for ``random-context``, random vectors with its norms,
    drawn at block ``iv.start``) and the current token attends to them.
    ``swap-context``: the previous positions' input is the source's hidden state ``position``
    and the block's whole output is kept (in a causal model the previous positions then leave
    with the source's next state).
    """

    def forward(*args: Any, **kwargs: Any) -> Any:
        hidden = split_hidden(args, kwargs)
        if handle._paired is not None:  # a paired pass: every token is a current token
            from .paired_context import paired_block

            return paired_block(caller, position, handle, hidden, args, kwargs)
        queries = handle._queries(hidden)
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        if iv.kind == "swap-context":
            hidden = _swap_context(hidden, queries, position, handle)
            return caller(hidden, args, kwargs)
        if iv.kind == "random-context" and position == iv.start:
            hidden = _randomise_context(hidden, rows, queries, handle)
        out = caller(hidden, args, kwargs)
        new = hidden.clone()
        new[rows, queries] = hidden_of(out)[rows, queries]
        return replace_hidden(out, new)

    return forward


def _source_text(source: str, sources: Any) -> str:
    key, _, value = source.partition("=")
    if key == "text":
        return value
    if sources is None:
        raise ValueError(
            f"swap-context source {source!r} names a stimulus, but no stimuli were given; pass "
            "sources={id: text} (or a StimulusSet), or write the source as text=WORDS."
        )
    texts = getattr(sources, "texts", None)
    ids = getattr(sources, "ids", None)
    if texts is not None and ids is not None:
        sources = dict(zip([str(i) for i in ids], texts))
    if value not in sources:
        known = sorted(map(str, sources))
        raise ValueError(
            f"swap-context source {source!r}: no stimulus {value!r} among the {len(known)} given "
            f"(first: {known[:5]}); pick one of them."
        )
    return str(sources[value])


def _prepare_source(handle: InterventionHandle, arch: Architecture, model: Any, tokenizer: Any,
                    sources: Any) -> None:
    """Run the intact model on the source prompt (alone and after the BOS token)."""
    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise ValueError(
            f"intervention {str(handle.intervention)!r} tokenises its source prompt, but no tokenizer "
            "was given; pass tokenizer= (or the extractor's loaded model, which has one)."
        )
    text = _source_text(handle.intervention.source, sources)
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if not ids:
        raise ValueError(f"swap-context source {handle.intervention.source!r} has no tokens.")
    bos = getattr(tokenizer, "bos_token_id", None)
    variants: dict[int | None, list[int]] = {None: ids}
    if bos is not None and ids[0] != bos:
        variants[int(bos)] = [int(bos)] + ids
    # A context never holds more tokens than the model has positions: the source's states past
    # them could never be used (nor computed), so the source is read up to that length.
    from .models import config_max_positions

    limit = config_max_positions(getattr(arch.base, "config", None))
    if limit is not None:
        variants = {key: seq[:limit] for key, seq in variants.items()}
    device = next(arch.base.parameters()).device
    with torch.no_grad():
        for key, seq in variants.items():
            out = arch.base(input_ids=torch.tensor([seq], device=device), output_hidden_states=True,
                            use_cache=False, return_dict=True)
            handle._source[key] = tuple(h[0] for h in out.hidden_states)


def _swap_context(hidden: torch.Tensor, queries: torch.Tensor, position: int,
                  handle: InterventionHandle) -> torch.Tensor:
    """The previous real positions of each row get the source's hidden state ``position``."""
    from .paired_context import source_states

    real = _real_positions(hidden, handle)
    before = (real & (torch.arange(hidden.shape[1])[None, :] < queries.cpu()[:, None])).sum(dim=1)
    return source_states(hidden, real, handle._inputs, position, handle, before)


def _real_positions(hidden: torch.Tensor, handle: InterventionHandle) -> torch.Tensor:
    """Which positions of each row are tokens (not padding), shape (batch, length), on CPU."""
    batch, length = hidden.shape[:2]
    mask = handle._mask
    if mask is None or mask.ndim != 2 or tuple(mask.shape) != (batch, length):
        return torch.ones((batch, length), dtype=torch.bool)
    return mask.detach().to("cpu").to(torch.bool)


def _randomise_context(hidden: torch.Tensor, rows: torch.Tensor, queries: torch.Tensor,
                       handle: InterventionHandle) -> torch.Tensor:
    """Random Gaussian directions scaled to each token's norm, except at the query tokens.

    Each token's vector comes from a generator seeded with the intervention's seed and a hash
    of the row's tokens up to and including it (padding left out; see
    :func:`~neuroenc.features.paired_context.prefix_noise`), so it does not depend on
    batching, on the tokens after it, or on which token is current. Padding positions keep
    their hidden state.
    """
    from .paired_context import random_states

    batch, length, dim = hidden.shape
    real = _real_positions(hidden, handle)
    inputs = handle._inputs
    if inputs is None or tuple(inputs.shape[:2]) != (batch, length):
        raise ValueError(
            f"intervention {str(handle.intervention)!r} seeds each sequence's random context from "
            f"its tokens, but found no input_ids or inputs_embeds of shape (batch, length) = "
            f"({batch}, {length}) passed to the model (was a block called on its own?); call the "
            "whole model with input_ids."
        )
    out = random_states(hidden, real, inputs, handle.seed, handle.intervention.keep_sink)
    out[rows, queries] = hidden[rows, queries]
    return out


def intervention_plan_table(intervention: str | dict | Intervention, n_blocks: int) -> list[str]:
    """One readable line per block position: what it computes under ``intervention``.

    Examples
    --------
    >>> intervention_plan_table("parallel:1-2", 4)
    ['0: block 0', '1: pass-through', '2: mean(blocks 1, 2)', '3: block 3']
    """
    iv = parse_intervention(intervention)
    if iv is None:
        return [f"{p}: block {p}" for p in range(n_blocks)]
    lines = []
    for p, step in enumerate(iv.plan(n_blocks)):
        if step.mode == "mean":
            what = "mean(blocks " + ", ".join(str(b) for b in step.blocks) + ")"
        elif not step.blocks:
            what = "pass-through"
        else:
            what = " -> ".join(f"block {b}" for b in step.blocks)
        if iv.kind == "no-attention" and p in iv.block_range(n_blocks):
            what += " (MLP only)"
        if iv.needs_last_token and p in iv.block_range(n_blocks):
            what += {"freeze-context": f" (context frozen at hidden state {iv.start})",
                     "random-context": f" (context random from hidden state {iv.start})",
                     "swap-context": f" (context from {iv.source})"}[iv.kind]
        lines.append(f"{p}: {what}")
    return lines


__all__ = ["apply_intervention", "InterventionHandle", "intervention_plan_table"]
