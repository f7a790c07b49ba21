"""Token <-> word mapping from the tokenizer's offset mapping on the joined text.

The words of a transcript are joined by single spaces and tokenised once; each token's
character span (the tokenizer's ``offset_mapping``) says which word it belongs to. There are
no hand-coded cases: whatever the tokenizer does with punctuation, apostrophes or accents,
its offsets say which characters each token covers.

Rules
-----
- A token belongs to the word that holds the *last* non-space character of its span, so a
  word's tokens never include characters of a later word (no look-ahead).
- Tokens whose span holds only spaces or is empty (special tokens) belong to no word; they
  stay in the token stream as context.
- Every word must own at least one token; a word the tokenizer drops (e.g. control
  characters removed by a BERT normaliser) is an error naming the word and its index.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


class TokenMappingError(ValueError):
    """A word of the transcript maps to no token."""


@dataclass(frozen=True)
class TokenAlignment:
    """The tokens of a transcript and the token span of each word.

    Attributes
    ----------
    input_ids : ndarray of int64, shape (n_tokens,)
        The token ids of the joined text, without special tokens.
    offsets : ndarray of int64, shape (n_tokens, 2)
        Character span of each token in ``text``.
    token_word : ndarray of int64, shape (n_tokens,)
        The word each token belongs to, or -1.
    word_start, word_stop : ndarray of int64, shape (n_words,)
        Each word owns tokens ``word_start[i] <= t < word_stop[i]`` (a contiguous span that may
        include tokens belonging to no word, e.g. a lone space token).
    text : str
        The joined text.
    """

    input_ids: np.ndarray
    offsets: np.ndarray
    token_word: np.ndarray
    word_start: np.ndarray
    word_stop: np.ndarray
    text: str

    @property
    def n_tokens(self) -> int:
        """Number of tokens."""
        return int(self.input_ids.shape[0])

    @property
    def n_words(self) -> int:
        """Number of words."""
        return int(self.word_start.shape[0])

    @property
    def word_n_tokens(self) -> np.ndarray:
        """Number of tokens of each word."""
        return self.word_stop - self.word_start


def align_tokens(words: Any, tokenizer: Any) -> TokenAlignment:
    """Tokenise words joined by spaces and map every token to its word.

    Parameters
    ----------
    words : sequence of str | Transcript
        The words (a :class:`~neuroenc.stimuli.Transcript` uses its ``words``).
    tokenizer : transformers.PreTrainedTokenizerFast
        A fast tokenizer (one that returns ``offset_mapping``).

    Returns
    -------
    alignment : TokenAlignment

    Raises
    ------
    TokenMappingError
        If a word maps to no token; the message names the word and its index.
    """
    words = list(getattr(words, "words", words))
    if not words:
        raise ValueError("Cannot align tokens of an empty transcript: it has no words.")
    text = " ".join(str(w) for w in words)
    # verbose=False: the whole story is longer than the model's window on purpose (the
    # context policies cut it), so the tokenizer's "sequence too long" warning does not apply.
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    ids = np.asarray(enc["input_ids"], dtype=np.int64).reshape(-1)
    offsets = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)

    # Which word each character belongs to (-1 for the joining spaces).
    lengths = np.fromiter((len(str(w)) for w in words), dtype=np.int64, count=len(words))
    starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
    char_word = np.full(len(text), -1, dtype=np.int64)
    word_of_char = np.repeat(np.arange(len(words)), lengths)
    char_pos = (np.repeat(starts, lengths) + concatenated_ranges(lengths)).astype(np.int64)
    char_word[char_pos] = word_of_char
    # Spaces inside words (a word like "New York") are not joining spaces but still spaces.
    is_space = np.fromiter((c.isspace() for c in text), dtype=bool, count=len(text))

    # Each token belongs to the word of the last non-space character of its span.
    valid = np.where(~is_space, char_word, -1)
    # last_valid[c] = index of the last non-space word character at or before c.
    idx = np.where(valid >= 0, np.arange(len(text)), -1)
    last_valid = np.maximum.accumulate(idx) if len(text) else idx
    token_word = np.full(ids.shape[0], -1, dtype=np.int64)
    stop = offsets[:, 1]
    begin = offsets[:, 0]
    has_span = stop > begin
    cand = np.where(has_span, last_valid[np.clip(stop - 1, 0, max(len(text) - 1, 0))], -1)
    ok = has_span & (cand >= begin)
    token_word[ok] = valid[cand[ok]]

    counts = np.bincount(token_word[token_word >= 0], minlength=len(words))
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        i = int(missing[0])
        more = ""
        if missing.size > 1:
            more = f" ({missing.size} words in all, e.g. indices {missing[:5].tolist()})"
        raise TokenMappingError(
            f"Word {i} ({words[i]!r}) maps to no token of {type(tokenizer).__name__} "
            f"{getattr(tokenizer, 'name_or_path', '')!r}{more}: the tokenizer drops its characters. "
            "Remove or replace such words in the transcript (e.g. control or zero-width characters)."
        )
    owned = np.flatnonzero(token_word >= 0)
    owner = token_word[owned]
    word_start = np.full(len(words), ids.shape[0], dtype=np.int64)
    word_stop = np.zeros(len(words), dtype=np.int64)
    np.minimum.at(word_start, owner, owned)
    np.maximum.at(word_stop, owner, owned + 1)
    if np.any(word_start[1:] < word_stop[:-1]):
        i = int(np.flatnonzero(word_start[1:] < word_stop[:-1])[0]) + 1
        raise TokenMappingError(
            f"Word {i} ({words[i]!r}) shares tokens with word {i - 1} ({words[i - 1]!r}) in the "
            f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r}; tokens must follow word order."
        )
    return TokenAlignment(ids, offsets, token_word, word_start, word_stop, text)


def concatenated_ranges(lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(n) for n in lengths])`` without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    reset = np.repeat(ends - lengths, lengths)
    return np.arange(total, dtype=np.int64) - reset
