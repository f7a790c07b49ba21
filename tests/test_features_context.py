"""Context policies: known plans and the guarantees of the strided policy."""
from __future__ import annotations

import numpy as np
import pytest

from neuroenc.features.context import plan_contexts
from neuroenc.features.tokens import TokenAlignment


def _alignment(n_tokens_per_word):
    """A synthetic alignment: word i owns the next n_tokens_per_word[i] tokens."""
    counts = np.asarray(n_tokens_per_word, dtype=np.int64)
    stop = np.cumsum(counts)
    start = stop - counts
    n = int(stop[-1])
    owner = np.repeat(np.arange(counts.size), counts)
    return TokenAlignment(np.arange(n), np.stack([np.arange(n), np.arange(n) + 1], 1), owner,
                          start, stop, "x" * n)


# Ten words of one token each, except word 4 with two: tokens 0..10.
AL = _alignment([1, 1, 1, 1, 2, 1, 1, 1, 1, 1])


def test_strided_plan_known_answer_causal():
    plan = plan_contexts(AL, "strided", context_tokens=3, stride=2, kind="causal")
    np.testing.assert_array_equal(plan.seq_start, [0, 2, 4, 6])
    np.testing.assert_array_equal(plan.seq_stop, [6, 7, 9, 11])
    np.testing.assert_array_equal(plan.word_seq, [0, 0, 0, 0, 0, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(plan.context_start, [0, 0, 0, 0, 0, 2, 4, 4, 6, 6])
    np.testing.assert_array_equal(plan.context_len, [1, 2, 3, 4, 6, 5, 4, 5, 4, 5])
    assert plan.n_token_forwards() == 6 + 5 + 5 + 5
    assert plan.n_token_forwards(n_special=1) == 21 + 4


def test_strided_plan_known_answer_masked_right_context():
    plan = plan_contexts(AL, "strided", context_tokens=3, stride=2, right_context=1, kind="masked")
    np.testing.assert_array_equal(plan.seq_stop, [7, 8, 10, 11])
    # A masked model's word sees its whole sequence.
    np.testing.assert_array_equal(plan.context_len, [7, 7, 7, 7, 7, 6, 6, 6, 5, 5])


def test_window_plan_known_answer():
    plan = plan_contexts(AL, "window", context_tokens=3, kind="causal")
    np.testing.assert_array_equal(plan.seq_start, [0, 0, 0, 0, 1, 3, 4, 5, 6, 7])
    np.testing.assert_array_equal(plan.seq_stop, AL.word_stop)
    np.testing.assert_array_equal(plan.context_len, AL.word_stop - plan.seq_start)
    masked = plan_contexts(AL, "window", context_tokens=3, right_context=2, kind="masked")
    np.testing.assert_array_equal(masked.seq_stop, np.minimum(AL.word_stop + 2, 11))


@pytest.mark.parametrize("C,S", [(8, 4), (16, 16), (5, 3), (0, 1)])
def test_strided_left_context_bounds(C, S, rng):
    """Every word sees C .. C+S-1 tokens before its first token, or all the story so far."""
    al = _alignment(rng.integers(1, 4, size=300))
    plan = plan_contexts(al, "strided", context_tokens=C, stride=S)
    left = al.word_start - plan.context_start
    early = al.word_start < C + S
    assert ((left >= C) & (left < C + S) | (early & (plan.context_start == 0))).all()
    # Each word's tokens lie inside its sequence.
    assert (al.word_stop <= plan.seq_stop[plan.word_seq]).all()
    np.testing.assert_array_equal(plan.context_start + plan.context_len, al.word_stop)


def test_strided_token_forwards_per_token():
    """Each token is forwarded about (C + S) / S times, the window policy about C times."""
    al = _alignment(np.ones(5000, dtype=int))
    C, S = 64, 32
    strided = plan_contexts(al, "strided", C, S).n_token_forwards() / al.n_tokens
    window = plan_contexts(al, "window", C).n_token_forwards() / al.n_tokens
    assert strided == pytest.approx((C + S) / S, rel=0.02)
    assert window == pytest.approx(C + 1, rel=0.02)


def test_plan_contexts_bad_input():
    with pytest.raises(ValueError, match="Invalid value for 'policy'. Allowed values are 'strided', 'window', "
                       "but got 'sliding' instead"):
        plan_contexts(AL, "sliding", context_tokens=3, stride=2)
    with pytest.raises(ValueError, match="Invalid value for 'kind'. Allowed values are 'causal', 'masked', "
                       "but got 'seq2seq' instead"):
        plan_contexts(AL, "window", context_tokens=3, kind="seq2seq")
    with pytest.raises(ValueError, match="'stride' must be > 0, got 0"):
        plan_contexts(AL, "strided", context_tokens=3, stride=0)
    with pytest.raises(ValueError, match="'context_tokens' must be >= 0, got -1"):
        plan_contexts(AL, "strided", context_tokens=-1, stride=2)
    with pytest.raises(ValueError, match="'right_context' must be >= 0, got -2"):
        plan_contexts(AL, "window", context_tokens=3, right_context=-2, kind="masked")
    with pytest.raises(TypeError, match="'stride' must be an integer, got 2.5"):
        plan_contexts(AL, "strided", context_tokens=3, stride=2.5)
    with pytest.raises(TypeError, match="'alignment' must be an instance of TokenAlignment"):
        plan_contexts([1, 2, 3], "window")
