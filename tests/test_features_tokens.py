"""Token <-> word mapping from the tokenizer's offset mapping."""
from __future__ import annotations

import re

import numpy as np
import pytest

from neuroenc.features.tokens import TokenMappingError, align_tokens
from neuroenc.testing import tiny_tokenizer

WORDS = ["Alice", "was", "beginning,", "'Oh", "dear!", "Café", "rabbit-hole"]


def test_align_tokens_known_answer_bpe():
    """Byte-level BPE: the space goes with the next word's first token; a lone space token
    (before 'Café', whose 'ĠC' merge is not in the tiny vocabulary) belongs to no word."""
    al = align_tokens(WORDS, tiny_tokenizer("bpe"))
    assert al.n_tokens == 24 and al.n_words == 7
    np.testing.assert_array_equal(al.word_start, [0, 1, 2, 7, 9, 13, 18])
    np.testing.assert_array_equal(al.word_stop, [1, 2, 7, 9, 12, 18, 24])
    assert al.token_word[12] == -1  # the lone space
    np.testing.assert_array_equal(al.word_n_tokens, [1, 1, 5, 2, 3, 5, 6])
    assert al.text == " ".join(WORDS)


def test_align_tokens_known_answer_wordpiece():
    """WordPiece lower-cases and strips accents, yet offsets point into the original text."""
    al = align_tokens(WORDS, tiny_tokenizer("wordpiece"))
    np.testing.assert_array_equal(al.word_start, [0, 1, 2, 4, 6, 8, 12])
    np.testing.assert_array_equal(al.word_stop, [1, 2, 4, 6, 8, 12, 15])
    assert (al.token_word >= 0).all()


@pytest.mark.parametrize("kind,bos", [("bpe", False), ("bpe", True), ("wordpiece", False)])
def test_each_word_span_covers_exactly_the_word(kind, bos):
    """The characters of a word's tokens, spaces stripped, are the word itself (any tokenizer)."""
    words = "So she was considering in her own mind (as well as she could, for the hot day".split()
    words += ["don't", "'and", "what?'", "naïve", "1865."]
    al = align_tokens(words, tiny_tokenizer(kind, bos=bos))
    for i, word in enumerate(words):
        s, e = al.word_start[i], al.word_stop[i]
        text = al.text[al.offsets[s, 0]:al.offsets[e - 1, 1]].strip()
        assert text == word
    # Tokens follow word order and every word has at least one.
    assert (al.word_stop > al.word_start).all()
    assert (al.word_start[1:] >= al.word_stop[:-1]).all()


def test_word_without_tokens_is_an_error_naming_it():
    # BERT's normaliser drops control characters: the word '\x07' has no token.
    with pytest.raises(TokenMappingError, match=re.escape("Word 1 ('\\x07') maps to no token")):
        align_tokens(["Alice", "\x07", "was"], tiny_tokenizer("wordpiece"))


def test_empty_word_list_is_an_error():
    with pytest.raises(ValueError, match="empty transcript"):
        align_tokens([], tiny_tokenizer("bpe"))


class _ReversedTokenizer:
    """A (broken) tokenizer whose tokens do not follow the text's order."""

    name_or_path = "reversed"

    def __call__(self, text, **kwargs):
        return {"input_ids": [1, 2], "offset_mapping": [(3, 5), (0, 2)]}


def test_tokens_out_of_word_order_are_an_error():
    with pytest.raises(TokenMappingError, match="Word 1 \\('cd'\\) shares tokens with word 0"):
        align_tokens(["ab", "cd"], _ReversedTokenizer())
