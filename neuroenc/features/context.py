"""Context policies: which tokens each forward pass holds, and which words it serves.

A *plan* lists the forward sequences (token ranges of the story) and, for every word, the
sequence its feature is read from and the exact context that feature saw.

``window`` (the reference)
    Each word gets its own sequence: the ``context_tokens`` tokens before the word's first
    token (or all the story has so far), the word's own tokens and, for masked models,
    ``right_context`` tokens after it. O(words x context) token-forwards.
``strided`` (default)
    Overlapping chunks start every ``stride`` tokens. A word whose first token is at ``a`` is
    read from the chunk starting at ``s = stride * floor((a - context_tokens) / stride)``
    (``s = 0`` when ``a < context_tokens + stride``), so it has between ``context_tokens``
    and ``context_tokens + stride - 1`` tokens of left context (or all the story has so
    far). A chunk ends at the last token of its last word (plus ``right_context`` for masked
    models). Each token is forwarded about ``(context_tokens + stride) / stride`` times.

What a feature saw
------------------
For a causal model, a word's state in a sequence depends only on the sequence's tokens up to
the word's last token, so its context is ``[context_start, context_start + context_len)``
with ``context_len = word_stop - context_start``: a direct forward pass over exactly those
tokens (with the model's prefix special tokens, e.g. BOS) gives the same hidden states.
For a masked model every token of the sequence is attended both ways, so the context is the
whole sequence. With ``window``, a masked model's word sees exactly ``context_tokens`` tokens
on the left and ``right_context`` tokens on the right (fewer at the story's edges); with
``strided``, it sees ``context_tokens`` to ``context_tokens + stride - 1`` tokens on the left
and, on the right, whatever the chunk holds after it (up to ``stride - 1`` tokens more
than ``right_context``). Use ``window`` for an exact right context.

``context_tokens="full"``
    Every word sees all the tokens of the run before it: with ``strided``, the whole run is
    one forward sequence (one pass; ``stride`` is unused); with ``window``, each word's
    sequence starts at the run's first token. The caller checks that the run fits the
    model's positions (:class:`~neuroenc.features.FeatureExtractor` does, and names the fix).
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np

from .._settings import Choices, Interval
from .._validation import _check_option, _check_positive, _check_type
from .tokens import TokenAlignment

POLICIES = ("strided", "window")
KINDS = ("causal", "masked")
#: The ``context_tokens`` value for "all the run's preceding tokens".
FULL = "full"
#: The values ``context_tokens`` takes: a number of tokens or :data:`FULL`. The one declaration
#: of its bound: the extractor checks it here, and the run config and ``neuroenc extract`` read
#: it from :attr:`FeatureExtractor._parameter_constraints`.
CONTEXT_TOKENS = [Interval(Integral, 0, None, closed="left"), Choices(FULL)]


def check_context_tokens(value: Any) -> int | str:
    """``context_tokens`` is an int >= 0 or ``"full"`` (:data:`CONTEXT_TOKENS`)."""
    tokens = CONTEXT_TOKENS[0]
    if isinstance(value, str):
        if value != FULL:
            raise ValueError(
                f"Invalid value for 'context_tokens': {value!r}. Use a number of tokens (an int >= "
                f"{tokens.left}) or {FULL!r} (the whole run in one forward pass)."
            )
        return value
    if isinstance(value, bool) or not isinstance(value, (Integral, np.integer)):
        raise TypeError(f"'context_tokens' must be an integer, got {value!r} ({type(value).__name__}).")
    if not tokens.is_satisfied_by(value):
        raise ValueError(f"'context_tokens' must be >= {tokens.left}, got {value!r}.")
    return int(value)


@dataclass(frozen=True)
class ContextPlan:
    """Forward sequences and, per word, where its feature comes from.

    Attributes
    ----------
    seq_start, seq_stop : ndarray of int64, shape (n_sequences,)
        Token range of each forward sequence (special tokens are added around it).
    word_seq : ndarray of int64, shape (n_words,)
        The sequence each word's feature is read from.
    context_start, context_len : ndarray of int64, shape (n_words,)
        The exact token range that determines each word's feature.
    """

    seq_start: np.ndarray
    seq_stop: np.ndarray
    word_seq: np.ndarray
    context_start: np.ndarray
    context_len: np.ndarray

    @property
    def n_sequences(self) -> int:
        """Number of forward sequences."""
        return int(self.seq_start.shape[0])

    @property
    def seq_len(self) -> np.ndarray:
        """Number of story tokens in each sequence (special tokens not counted)."""
        return self.seq_stop - self.seq_start

    def n_token_forwards(self, n_special: int = 0) -> int:
        """Tokens forwarded in all (with ``n_special`` special tokens per sequence)."""
        return int(self.seq_len.sum()) + n_special * self.n_sequences


def plan_contexts(
    alignment: TokenAlignment,
    policy: str = "strided",
    context_tokens: int | str = 256,
    stride: int = 128,
    right_context: int = 0,
    kind: str = "causal",
) -> ContextPlan:
    """Plan the forward sequences of a transcript (see the module docstring).

    Parameters
    ----------
    alignment : TokenAlignment
        Tokens and word spans (:func:`~neuroenc.features.tokens.align_tokens`).
    policy : {"strided", "window"}
    context_tokens : int | "full"
        Tokens of left context each word should see (before its first token); ``"full"``:
        all the run's tokens before it.
    stride : int
        Step between chunk starts (``strided`` only; unused with ``"full"``).
    right_context : int
        Tokens after each word (masked models only).
    kind : {"causal", "masked"}

    Returns
    -------
    plan : ContextPlan

    Raises
    ------
    ValueError
        For an unknown ``policy`` or ``kind``, a negative ``context_tokens`` (or a string
        other than ``"full"``) or ``right_context``, or a ``stride`` below 1.
    """
    _check_type("alignment", alignment, TokenAlignment, "TokenAlignment (from align_tokens)")
    _check_option("policy", policy, POLICIES)
    _check_option("kind", kind, KINDS)
    context_tokens = check_context_tokens(context_tokens)
    _check_positive("stride", stride, integer=True)
    _check_positive("right_context", right_context, strict=False, integer=True)
    a = alignment.word_start
    b = alignment.word_stop
    n_tok = alignment.n_tokens
    # "full": a left context as long as the run, so no word's context is ever cut (strided:
    # every word falls in the first chunk, which spans the run).
    C = n_tok if context_tokens == FULL else int(context_tokens)
    S, R = int(stride), int(right_context)
    if policy == "window":
        seq_start = np.maximum(a - C, 0)
        seq_stop = np.minimum(b + R, n_tok) if kind == "masked" else b.copy()
        word_seq = np.arange(a.shape[0], dtype=np.int64)
    else:
        k = np.where(a >= C, (a - C) // S, 0)
        chunks, word_seq = np.unique(k, return_inverse=True)
        word_seq = word_seq.reshape(-1).astype(np.int64)
        seq_start = (chunks * S).astype(np.int64)
        seq_stop = np.zeros(chunks.shape[0], dtype=np.int64)
        np.maximum.at(seq_stop, word_seq, b)
        if kind == "masked":
            seq_stop = np.minimum(seq_stop + R, n_tok)
    context_start = seq_start[word_seq]
    if kind == "masked":
        context_len = seq_stop[word_seq] - context_start
    else:
        context_len = b - context_start
    return ContextPlan(
        seq_start.astype(np.int64), seq_stop.astype(np.int64), word_seq,
        context_start.astype(np.int64), context_len.astype(np.int64),
    )
