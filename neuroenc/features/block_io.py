"""A transformer block's hidden states in its arguments and in its output.

Blocks take the hidden states first (positionally or as ``hidden_states=``) and return them
alone or first in a tuple; these helpers read and replace them whatever the form, for the code
that routes a block's ``forward`` (:mod:`neuroenc.features.interventions_patch`,
:mod:`neuroenc.features.paired_context`).
"""
from __future__ import annotations

from typing import Any

import torch


def hidden_of(output: Any) -> torch.Tensor:
    """The hidden states a block returned (alone or first in a tuple)."""
    return output[0] if isinstance(output, tuple) else output


def replace_hidden(output: Any, hidden: torch.Tensor) -> Any:
    """A block's output with its hidden states replaced (the rest of a tuple kept)."""
    return (hidden,) + tuple(output[1:]) if isinstance(output, tuple) else hidden


def split_hidden(args: tuple, kwargs: dict) -> torch.Tensor:
    """The hidden states passed to a block (its first argument, or ``hidden_states=``)."""
    return args[0] if args else kwargs["hidden_states"]


__all__ = ["hidden_of", "replace_hidden", "split_hidden"]
