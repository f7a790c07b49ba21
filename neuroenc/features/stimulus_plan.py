"""The forward sequences of a stimulus set: its tokens, and what each stimulus is read after.

:func:`plan_stimuli` tokenises a :class:`~neuroenc.stimuli.StimulusSet` and plans the forward
sequences that read it (each stimulus alone, or after the earlier stimuli of its group), for
both :class:`~neuroenc.features.StimulusExtractor` (features) and
:func:`~neuroenc.features.stimulus_surprisal` (surprisal), so that the two read exactly the same
sequences.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import _check_option
from ..stimuli.stimulus_set import StimulusSet
from .context import FULL, ContextPlan, plan_contexts
from .tokens import TokenAlignment, align_tokens

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
                 stride: int | None = None, n_special: int = 0) -> StimulusTokens:
    """Tokenise a stimulus set and plan its forward sequences (see the module docstring).

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

    Raises
    ------
    ValueError
        When a sequence would not fit the model's positions (naming the stimulus or group and
        the fix); never truncated silently.
    """
    _check_option("context", context, STIMULUS_CONTEXTS)
    units = [[i] for i in range(len(stimuli))] if context == "none" else \
        [list(u) for u in stimuli.group_indices()]
    n = len(stimuli)
    stim_start = np.zeros(n, dtype=np.int64)
    stim_stop = np.zeros(n, dtype=np.int64)
    last_word = np.zeros(n, dtype=np.int64)
    ctx_start = np.zeros(n, dtype=np.int64)
    ctx_len = np.zeros(n, dtype=np.int64)
    ctx_text = [""] * n
    ids_parts, seq_start, seq_stop, word_seq = [], [], [], np.zeros(n, dtype=np.int64)
    offset = n_seq = 0
    limit = lm.max_positions
    for unit in units:
        words_of = [stimuli.texts[i].split() for i in unit]
        words = [w for ws in words_of for w in ws]
        al = align_tokens(words, lm.tokenizer)
        counts = np.asarray([len(ws) for ws in words_of])
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        last = first + counts - 1
        a, b, lw = al.word_start[first], al.word_stop[last], al.word_start[last]
        # character start of each stimulus in the unit's joined text
        lengths = np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
        char_start = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])[first]
        if context == "none":
            plan = ContextPlan(a.copy(), b.copy(), np.zeros(1, dtype=np.int64), a.copy(), b - a)
        else:
            spans = TokenAlignment(al.input_ids, al.offsets, al.token_word, a, b, al.text)
            C = context_tokens
            policy = "strided" if lm.kind == "causal" else "window"
            if C == FULL and lm.kind == "causal":
                plan = plan_contexts(spans, "strided", FULL, 1, 0, "causal")
            else:
                plan = plan_contexts(spans, policy, C, stride or 1, 0, lm.kind)
        longest = int(plan.seq_len.max()) + n_special
        if limit is not None and longest > limit:
            what = (f"stimulus {stimuli.ids[unit[0]]!r}" if context == "none"
                    else f"group {stimuli.groups[unit[0]]!r}" if stimuli.groups else "the stimuli")
            fix = ("shorten it" if context == "none" else
                   f"give context_tokens a number (e.g. {max((limit - n_special) * 2 // 3, 1)}: context + "
                   "stride + special tokens must fit)" if context_tokens == FULL else
                   "lower context_tokens (or stride)")
            raise ValueError(
                f"{what} needs a forward sequence of {longest} positions ({n_special} special token(s) "
                f"included), but model {lm.name!r} has at most {limit}: {fix}; neuroenc never truncates "
                "silently."
            )
        for k, i in enumerate(unit):
            cs = int(plan.context_start[k])
            stim_start[i], stim_stop[i], last_word[i] = a[k] + offset, b[k] + offset, lw[k] + offset
            ctx_start[i], ctx_len[i] = cs, int(plan.context_len[k])
            word_seq[i] = int(plan.word_seq[k]) + n_seq
            if cs < a[k]:
                ctx_text[i] = al.text[int(al.offsets[cs, 0]):int(char_start[k])]
        ids_parts.append(al.input_ids)
        seq_start.append(plan.seq_start + offset)
        seq_stop.append(plan.seq_stop + offset)
        offset += al.n_tokens
        n_seq += plan.n_sequences
    seq_start_arr = np.concatenate(seq_start).astype(np.int64)
    full_plan = ContextPlan(seq_start_arr, np.concatenate(seq_stop).astype(np.int64), word_seq,
                            ctx_start, ctx_len)
    return StimulusTokens(np.concatenate(ids_parts).astype(np.int64), stim_start, stim_stop, last_word,
                          full_plan, ctx_start, ctx_len, ctx_text)
