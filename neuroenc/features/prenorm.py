"""The last block's output before the model's final norm (``last_layer="pre-norm"``).

``transformers`` returns the last hidden state *after* the model's final norm when it has
one (Llama family: ``model.norm``; GPT-2: ``ln_f``; OPT, GPT-NeoX...), while every other
hidden state is a block's raw output, the residual stream. ``last_layer="pre-norm"`` makes
the last layer comparable to the others: a forward hook on the last block records its
output, which replaces ``hidden_states[-1]``. A model without a final norm (BERT-like
encoders: each block ends in its own LayerNorm) already returns the last block's output:
there ``"pre-norm"`` equals ``"normed"``.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .._validation import _check_option

if TYPE_CHECKING:
    import torch

    from .models import LoadedModel

#: Values of ``last_layer``.
LAST_LAYERS = ("normed", "pre-norm")


class LastBlockOutput:
    """What the hook on the last block recorded in the latest forward pass.

    Use :meth:`replace` on the hidden states of that pass.
    """

    def __init__(self, n_layers: int, block_name: str) -> None:
        self.n_layers = int(n_layers)
        self.block_name = block_name
        self.output: torch.Tensor | None = None

    def hook(self, module: Any, args: Any, output: Any) -> None:
        """A forward hook: keep the block's output hidden states."""
        self.output = output[0] if isinstance(output, tuple) else output

    def replace(self, states: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """``states`` with the last one replaced by the last block's recorded output."""
        out, self.output = self.output, None
        if out is None:
            raise RuntimeError(
                f"last_layer='pre-norm': the hook on the last block ({self.block_name}) did not run "
                "during the forward pass; this model's blocks are not called as modules."
            )
        if len(states) != self.n_layers or tuple(out.shape) != tuple(states[-1].shape):
            raise RuntimeError(
                f"last_layer='pre-norm': the last block ({self.block_name}) gave an output of shape "
                f"{tuple(out.shape)}, but the last of the {len(states)} hidden states has shape "
                f"{tuple(states[-1].shape)}."
            )
        return (*states[:-1], out)


@contextlib.contextmanager
def capture_last_block(lm: LoadedModel) -> Iterator[LastBlockOutput]:
    """Record the output of ``lm``'s last transformer block in each forward pass.

    A temporary forward hook, removed on exit (also on error).

    Parameters
    ----------
    lm : LoadedModel

    Yields
    ------
    capture : LastBlockOutput
        After a forward pass, ``capture.replace(hidden_states)`` puts the last block's output
        (before the final norm) in place of the last hidden state.

    Raises
    ------
    ValueError
        If the model's list of blocks cannot be found, or does not match its hidden states.
    """
    from .interventions_patch import Architecture, unwrap_model

    try:
        arch = Architecture(unwrap_model(lm.model))
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"last_layer='pre-norm' needs the list of transformer blocks of {lm.name!r}: {err} "
            "Use last_layer='normed'."
        ) from None
    if arch.n_blocks + 1 != lm.n_layers:
        raise ValueError(
            f"last_layer='pre-norm': model {lm.name!r} has {lm.n_layers} hidden states but "
            f"{arch.n_blocks} blocks in {arch.path!r} (expected {lm.n_layers - 1}). Use "
            "last_layer='normed'."
        )
    capture = LastBlockOutput(lm.n_layers, f"{arch.path}.{arch.n_blocks - 1}")
    handle = arch.blocks[-1].register_forward_hook(capture.hook)
    try:
        yield capture
    finally:
        handle.remove()
        capture.output = None


def check_last_layer(value: Any) -> str:
    """``last_layer`` is one of :data:`LAST_LAYERS` (``"normed"``, ``"pre-norm"``)."""
    return _check_option("last_layer", value, LAST_LAYERS)
