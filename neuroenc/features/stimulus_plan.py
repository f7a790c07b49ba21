"""The forward sequences of a stimulus set: its tokens, and what each stimulus is read after.

:func:`plan_stimuli` tokenises a :class:`~neuroenc.stimuli.StimulusSet` and plans the forward
sequences that read it (each stimulus alone, or after the earlier stimuli of its group), for
both :class:`~neuroenc.features.StimulusExtractor` (features) and
:func:`~neuroenc.features.surprisal.stimulus_surprisal` (surprisal), so that the two read exactly the same
sequences.
"""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .._validation import _check_option, _check_positive
from ..stimuli.stimulus_set import StimulusSet
from .context import FULL, ContextPlan, check_context_tokens
from .tokens import TokenAlignment, align_tokens, concatenated_ranges

#: What a stimulus is read after: nothing, or the stimuli before it in its group.
STIMULUS_CONTEXTS = ("none", "group")


def check_stimuli(stimuli: Any) -> StimulusSet:
    """``stimuli`` if it is a :class:`~neuroenc.stimuli.StimulusSet`, else a TypeError that says how
    to make one."""
    if isinstance(stimuli, StimulusSet):
        return stimuli
    raise TypeError(
        f"'stimuli' must be a neuroenc StimulusSet, got {type(stimuli).__name__}. Read one with "
        "neuroenc.stimuli.read_stimuli(path, text_column=...) or build StimulusSet(ids, texts, groups)."
    )


class StimulusTokens:
    """The token streams of a stimulus set and the forward sequences that read them.

    Attributes
    ----------
    input_ids : ndarray of int64
        The token ids of every unit (a stimulus alone, or a group) one after the other.
    stim_start, stim_stop, last_word_start : ndarray of int64, shape (n_stimuli,)
        Each stimulus's tokens, and the first token of its last word (in ``input_ids``).
    plan : ContextPlan
        The forward sequences (in ``input_ids``) and, per stimulus, the sequence it is read from.
    context_start, context_len : ndarray of int64, shape (n_stimuli,)
        The exact context of each stimulus in tokens of its unit's own text (0 = the unit's
        first token), as the story path records it.
    context_text : list of str
        The text read before each stimulus in its sequence.
    """

    def __init__(self, input_ids, stim_start, stim_stop, last_word_start, plan, context_start, context_len,
                 context_text) -> None:
        self.input_ids = input_ids
        self.stim_start = stim_start
        self.stim_stop = stim_stop
        self.last_word_start = last_word_start
        self.plan = plan
        self.context_start = context_start
        self.context_len = context_len
        self.context_text = context_text


def plan_stimuli(stimuli: StimulusSet, lm: Any, context: str = "none", context_tokens: Any = None,
                 stride: int | None = None, n_special: int = 0, window: bool = False) -> StimulusTokens:
    """Tokenise a stimulus set and plan its forward sequences (see the module docstring).

    Every unit (a stimulus alone with ``context="none"``, a group with ``"group"``) is tokenised
    on its own, all in one call of the tokenizer, and the token-to-word mapping and the plan are
    computed for all units at once: the time is linear in the number of tokens, with no
    per-stimulus Python work but the slicing of each stimulus's context text. The result is the
    one that tokenising each unit with :func:`~neuroenc.features.tokens.align_tokens` and
    planning it with :func:`~neuroenc.features.context.plan_contexts` gives.

    Parameters
    ----------
    stimuli : StimulusSet
    lm : LoadedModel
    context : {"none", "group"}
    context_tokens : int | "full" | None
        With ``"group"``: tokens of the group before each stimulus (``"full"``: all).
    stride : int | None
        Causal models with a number of ``context_tokens``: the step between chunks.
    n_special : int
        Special tokens added to every sequence (prefix + suffix), to check the model's limit.
    window : bool
        With ``"group"``: one sequence per stimulus (its context and itself), for causal models
        too (the masked models' policy; the context interventions need it).

    Raises
    ------
    ValueError
        When a sequence would not fit the model's positions (naming the stimulus or group and
        the fix); never truncated silently.
    """
    _check_option("context", context, STIMULUS_CONTEXTS)
    n = len(stimuli)
    order, unit_of = _units(stimuli, context)  # stimuli in reading order, and the unit of each
    words_of = [stimuli.texts[i].split() for i in order]
    counts = np.fromiter((len(ws) for ws in words_of), dtype=np.int64, count=n)
    unit_first = np.flatnonzero(np.r_[True, unit_of[1:] != unit_of[:-1]])  # first stimulus of each unit
    unit_words = [" ".join(" ".join(ws) for ws in words_of[i:j])
                  for i, j in zip(unit_first, np.r_[unit_first[1:], n])]
    al, tok_off = _align_units(unit_words, lm.tokenizer)
    n_tok = np.diff(np.r_[tok_off, al.n_tokens])  # tokens of each unit

    first = np.r_[0, np.cumsum(counts)[:-1]]  # first word of each stimulus (in reading order)
    last = first + counts - 1
    a, b, lw = al.word_start[first], al.word_stop[last], al.word_start[last]  # global token indices
    u_off = tok_off[unit_of]
    a_loc, b_loc = a - u_off, b - u_off
    if context == "none":
        seq_start, seq_stop = a.copy(), b.copy()
        word_seq = np.arange(n, dtype=np.int64)
        ctx_start = a_loc
    else:
        C = check_context_tokens(context_tokens)
        policy = "strided" if lm.kind == "causal" and not window else "window"
        S = 1 if (C == FULL and lm.kind == "causal") else (stride or 1)
        S = int(_check_positive("stride", S, integer=True))
        C_u = n_tok[unit_of] if C == FULL else np.full(n, int(C), dtype=np.int64)
        if policy == "window":
            ctx_start = np.maximum(a_loc - C_u, 0)
            seq_start, seq_stop = ctx_start + u_off, b.copy()  # right_context 0: a stimulus ends its sequence
            word_seq = np.arange(n, dtype=np.int64)
        else:
            k = np.where(a_loc >= C_u, (a_loc - C_u) // S, 0)
            new = np.r_[True, (unit_of[1:] != unit_of[:-1]) | (k[1:] != k[:-1])]
            chunk_first = np.flatnonzero(new)
            word_seq = np.cumsum(new) - 1
            seq_start = u_off[chunk_first] + k[chunk_first] * S
            seq_stop = np.maximum.reduceat(b, chunk_first)
            ctx_start = (k * S)[chunk_first][word_seq]
    ctx_len = b_loc - ctx_start
    seq_unit = unit_of[np.r_[0, np.flatnonzero(np.diff(word_seq)) + 1]] if n else unit_of
    _check_lengths(stimuli, lm, context, context_tokens, n_special, order, unit_first, seq_unit,
                   seq_stop - seq_start)

    # the text read before each stimulus in its sequence (only a stimulus read after others)
    word_chars = np.fromiter((len(w) + 1 for ws in words_of for w in ws), dtype=np.int64, count=int(counts.sum()))
    char_start = np.r_[0, np.cumsum(word_chars)[:-1]][first]  # in al.text, the units' texts joined
    ctx_text_ordered = [""] * n
    for p in np.flatnonzero(ctx_start < a_loc):
        begin = int(al.offsets[u_off[p] + ctx_start[p], 0])
        ctx_text_ordered[p] = al.text[begin:int(char_start[p])]

    def by_index(values: np.ndarray) -> np.ndarray:
        out = np.empty(n, dtype=np.int64)
        out[order] = values
        return out

    ctx_text = [""] * n
    for p, i in enumerate(order):
        ctx_text[i] = ctx_text_ordered[p]
    ctx_start_i, ctx_len_i = by_index(ctx_start), by_index(ctx_len)
    plan = ContextPlan(np.asarray(seq_start, dtype=np.int64), np.asarray(seq_stop, dtype=np.int64),
                       by_index(word_seq), ctx_start_i, ctx_len_i)
    return StimulusTokens(al.input_ids, by_index(a), by_index(b), by_index(lw), plan, ctx_start_i, ctx_len_i,
                          ctx_text)


def _units(stimuli: StimulusSet, context: str) -> tuple[np.ndarray, np.ndarray]:
    """The stimuli in reading order (units one after the other: each stimulus alone, or each
    group in order of first appearance, its stimuli in order) and the unit of each."""
    n = len(stimuli)
    if context == "none" or stimuli.groups is None:
        order = np.arange(n, dtype=np.int64)
        return order, (order.copy() if context == "none" else np.zeros(n, dtype=np.int64))
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(g, len(index)) for g in stimuli.groups), dtype=np.int64, count=n)
    order = np.argsort(codes, kind="stable").astype(np.int64)
    return order, codes[order]


def _align_units(units: list[str], tokenizer: Any) -> tuple[TokenAlignment, np.ndarray]:
    """The tokens of every unit's text (each tokenised alone, in one call) mapped to their words,
    as one :class:`~neuroenc.features.tokens.TokenAlignment` of the units' texts joined by
    spaces (token and word indices run on across units), and the first token of each unit.
    The same mapping as :func:`~neuroenc.features.tokens.align_tokens` of each unit, shifted; a
    unit it would refuse is refused with its message."""
    enc = tokenizer(units, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    per_unit = np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64, count=len(units))
    ids = np.fromiter(itertools.chain.from_iterable(enc["input_ids"]), dtype=np.int64, count=int(per_unit.sum()))
    offsets = np.fromiter(itertools.chain.from_iterable(itertools.chain.from_iterable(enc["offset_mapping"])),
                          dtype=np.int64, count=2 * ids.size).reshape(-1, 2)
    tok_off = np.r_[0, np.cumsum(per_unit)[:-1]].astype(np.int64)
    unit_len = np.fromiter((len(u) for u in units), dtype=np.int64, count=len(units))
    char_off = np.r_[0, np.cumsum(unit_len + 1)[:-1]].astype(np.int64)
    offsets = offsets + np.repeat(char_off, per_unit)[:, None]
    text = " ".join(units)
    words = text.split(" ")  # the units' words: each unit is its words joined by single spaces
    al = _map_tokens(ids, offsets, words, text)
    bad = _bad_unit(al, units, words)
    if bad is not None:
        align_tokens(units[bad].split(" "), tokenizer)  # raises its TokenMappingError
        raise ValueError(f"the tokens of stimulus unit {bad} do not map to its words")  # pragma: no cover
    return al, tok_off


def _map_tokens(ids: np.ndarray, offsets: np.ndarray, words: list[str], text: str) -> TokenAlignment:
    """:func:`~neuroenc.features.tokens.align_tokens`'s mapping, from tokens already made, for
    ``words`` without spaces (a word with no token gets ``word_start > word_stop``)."""
    lengths = np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
    starts = np.r_[0, np.cumsum(lengths + 1)[:-1]]
    char_word = np.full(len(text), -1, dtype=np.int64)
    char_word[(np.repeat(starts, lengths) + concatenated_ranges(lengths)).astype(np.int64)] = \
        np.repeat(np.arange(len(words)), lengths)
    valid = char_word  # words come from str.split(): no character of a word is a space
    idx = np.where(valid >= 0, np.arange(len(text)), -1)
    last_valid = np.maximum.accumulate(idx) if len(text) else idx
    token_word = np.full(ids.shape[0], -1, dtype=np.int64)
    begin, stop = offsets[:, 0], offsets[:, 1]
    has_span = stop > begin
    cand = np.where(has_span, last_valid[np.clip(stop - 1, 0, max(len(text) - 1, 0))], -1)
    ok = has_span & (cand >= begin)
    token_word[ok] = valid[cand[ok]]
    owned = np.flatnonzero(token_word >= 0)
    word_start = np.full(len(words), ids.shape[0], dtype=np.int64)
    word_stop = np.zeros(len(words), dtype=np.int64)
    np.minimum.at(word_start, token_word[owned], owned)
    np.maximum.at(word_stop, token_word[owned], owned + 1)
    return TokenAlignment(ids, offsets, token_word, word_start, word_stop, text)


def _bad_unit(al: TokenAlignment, units: list[str], words: list[str]) -> int | None:
    """The first unit with a word that owns no token, or whose words share tokens."""
    bad = np.flatnonzero(al.word_stop <= al.word_start)
    if al.n_words > 1:
        bad = np.r_[bad, np.flatnonzero(al.word_start[1:] < al.word_stop[:-1]) + 1]
    if not bad.size:
        return None
    per_unit = np.fromiter((u.count(" ") + 1 for u in units), dtype=np.int64, count=len(units))
    return int(np.searchsorted(np.cumsum(per_unit), int(bad.min()), side="right"))


def _check_lengths(stimuli: StimulusSet, lm: Any, context: str, context_tokens: Any, n_special: int,
                   order: np.ndarray, unit_first: np.ndarray, seq_unit: np.ndarray, seq_len: np.ndarray) -> None:
    """A ValueError naming the first unit with a sequence longer than the model's positions."""
    limit = lm.max_positions
    if limit is None or not seq_len.size or int(seq_len.max()) + n_special <= limit:
        return
    u = int(seq_unit[np.flatnonzero(seq_len + n_special > limit)[0]])
    longest = int(seq_len[seq_unit == u].max()) + n_special
    i = int(order[unit_first[u]])
    what = (f"stimulus {stimuli.ids[i]!r}" if context == "none"
            else f"group {stimuli.groups[i]!r}" if stimuli.groups else "the stimuli")
    fix = ("shorten it" if context == "none" else
           f"give context_tokens a number (e.g. {max((limit - n_special) * 2 // 3, 1)}: context + "
           "stride + special tokens must fit)" if context_tokens == FULL else
           "lower context_tokens (or stride)")
    raise ValueError(
        f"{what} needs a forward sequence of {longest} positions ({n_special} special token(s) "
        f"included), but model {lm.name!r} has at most {limit}: {fix}; neuroenc never truncates "
        "silently."
    )
