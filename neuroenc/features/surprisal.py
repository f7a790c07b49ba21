"""Surprisal from a causal language model's logits: per word of a story, or per stimulus.

A word's surprisal is ``-log2 p(word | context)``: the sum over its tokens of ``-log2 p(token |
the tokens before it)``, from the model's next-token logits (the last hidden state, after the
final norm, through the model's output head). It is one number per word, not a layer's
hidden state; the extractors read it from their own forward passes with ``surprisal=True``
(:class:`~neuroenc.features.FeatureExtractor` for stories,
:class:`~neuroenc.features.stimuli.StimulusExtractor` for stimuli), and these functions compute
it alone:

- :func:`word_surprisal` for a story (a :class:`~neuroenc.stimuli.Transcript` or a list of
  words): the words tokenised as one text, read in strided chunks as the story path reads
  them (``context_tokens="full"``: the whole run in one pass);
- :func:`stimulus_surprisal` for a :class:`~neuroenc.stimuli.StimulusSet`: each stimulus
  alone or after the earlier stimuli of its group (``context``), the sum over the stimulus's
  tokens, read with exactly the sequences of :class:`~neuroenc.features.stimuli.StimulusExtractor`.

A token needs a token before it to be predicted: the first token of a sequence is predicted
from the prefix special token (a BOS with ``prepend_bos``, the default ``"auto"``); a word whose
first token has nothing before it gets NaN (and a warning). For a story, wrap the values as a
one-column feature set to use them as a regressor, e.g. ``FeatureSet({0: s[:, None]},
transcript.onsets, transcript.offsets, run=transcript.name)``.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from .._validation import _check_option
from .context import FULL, ContextPlan, check_context_tokens, plan_contexts
from .extract import AUTO_TOKEN_BUDGET, batch_inputs, check_positions
from .logits import LOG2, SurprisalAccumulator, output_head
from .models import LoadedModel, load_model, sequence_prefix
from .stimulus_plan import STIMULUS_CONTEXTS, check_stimuli, plan_stimuli
from .tokens import align_tokens

logger = logging.getLogger(__name__)

__all__ = ["LOG2", "SurprisalAccumulator", "output_head", "stimulus_surprisal", "word_surprisal"]


def _run_surprisal(lm: LoadedModel, input_ids: np.ndarray, plan: ContextPlan, start: np.ndarray,
                   stop: np.ndarray, prefix: Sequence[int], batch_size: int | str = "auto",
                   intervention: Any = None) -> np.ndarray:
    """Summed surprisal (bits) of the tokens ``[start[i], stop[i])`` of each unit ``i``, each read
    from sequence ``plan.word_seq[i]`` (``input_ids`` coordinates), under a structural
    ``intervention`` (one that changes every position alike)."""
    import torch

    from .interventions_patch import apply_intervention

    acc = SurprisalAccumulator(lm, input_ids, plan, start, stop, len(prefix))
    prefix = np.asarray(list(prefix), dtype=np.int64)
    lengths = plan.seq_len + prefix.size
    pad_id = int(getattr(lm.tokenizer, "pad_token_id", None) or 0)
    if batch_size == "auto":
        size = max(1, AUTO_TOKEN_BUDGET.get(lm.device.type, 4096) // max(int(lengths.max()), 1))
    else:
        size = int(batch_size)
    order = np.argsort(-lengths, kind="stable")
    tokens = SimpleNamespace(input_ids=input_ids)  # what batch_inputs reads of an alignment
    with apply_intervention(lm, intervention), torch.inference_mode():
        for b0 in range(0, plan.n_sequences, size):
            seqs = order[b0:b0 + size]
            ids_t, mask, _, offset, _ = batch_inputs(lm, tokens, plan, seqs, lengths, prefix,
                                                      np.zeros(0, dtype=np.int64), pad_id)
            acc.add(seqs, lm.hidden_states(ids_t, mask)[-1], offset)
    return acc.result()


def word_surprisal(words: Any, model: Any, context_tokens: int | str = "full", stride: int | None = None,
                   prepend_bos: bool | str = "auto", batch_size: int | str = "auto",
                   device: Any = "auto", dtype: Any = "auto", intervention: Any = None) -> np.ndarray:
    """Surprisal (bits) of each word of a story given the words before it.

    Parameters
    ----------
    words : Transcript | sequence of str
        The story's words (tokenised joined by spaces, as the feature extractor does).
    model : str | path | LoadedModel
        A causal language model (loaded here when a name is given).
    context_tokens : int | "full"
        Tokens before each word's first token that it is predicted from: ``"full"`` (default,
        the whole run in one pass, an error if it does not fit the model) or a number (strided
        chunks, as :class:`~neuroenc.features.FeatureExtractor`).
    stride : int | None
        Step between chunks with a number of ``context_tokens`` (default half of it).
    prepend_bos : {"auto", True, False}
        A BOS token before every sequence, so the first word is predicted too.
    batch_size, device, dtype
        As for feature extraction.
    intervention : str | dict | Intervention | None
        Read the words under a structural intervention (``order``, ``skip``, ``parallel``,
        ``no-attention``...; grammar in :mod:`neuroenc.features.interventions`). The context
        kinds (``freeze-context``, ``random-context``, ``swap-context``) are refused: they need
        one forward pass per token, which :func:`~neuroenc.features.lm_quality` runs.

    Returns
    -------
    surprisal : ndarray, shape (n_words,)
        ``-log2 p(word | context)``, summed over the word's tokens; NaN for a word whose first
        token has nothing before it (no BOS).

    Examples
    --------
    >>> from neuroenc.testing import tiny_gpt2
    >>> s = word_surprisal("the cat sat on the mat".split(), tiny_gpt2())
    >>> s.shape, bool(np.all(s > 0))
    ((6,), True)
    """
    from .interventions import parse_intervention

    lm = load_model(model, device=device, dtype=dtype)
    words = list(getattr(words, "words", words))
    iv = parse_intervention(intervention)
    if iv is not None and iv.needs_last_token:
        raise ValueError(
            f"word_surprisal reads many words in one forward pass, but intervention {str(iv)!r} treats every "
            "token of a pass but the last as context, which would give wrong surprisal; use "
            "neuroenc.features.lm_quality(words, model, intervention=...).word_surprisal (one pass per token)."
        )
    prefix = sequence_prefix(lm, prepend_bos)
    C = check_context_tokens(context_tokens)
    al = align_tokens(words, lm.tokenizer)
    if C == FULL:
        check_positions(lm, al.n_tokens + len(prefix), f"context_tokens='full' (all {al.n_tokens} tokens of the run)")
        plan = plan_contexts(al, "strided", FULL, 1, 0, "causal")
    else:
        S = max(int(C) // 2, 1) if stride is None else int(stride)
        check_positions(lm, int(C) + S + len(prefix), f"context_tokens={C} + stride={S}")
        plan = plan_contexts(al, "strided", C, S, 0, "causal")
    out = _run_surprisal(lm, al.input_ids, plan, al.word_start, al.word_stop, prefix, batch_size, iv)
    _warn_undefined(out, "word(s)")
    return out


def stimulus_surprisal(stimuli: Any, model: Any, context: str = "none", context_tokens: Any = None,
                       stride: int | None = None, prepend_bos: bool | str = "auto",
                       batch_size: int | str = "auto", device: Any = "auto", dtype: Any = "auto",
                       intervention: Any = None) -> np.ndarray:
    """Surprisal (bits) of each stimulus: the sum over its tokens given its context.

    Parameters
    ----------
    stimuli : StimulusSet
    model : str | path | LoadedModel
        A causal language model.
    context : {"none", "group"}
        Each stimulus alone, or after the earlier stimuli of its group (as
        :class:`~neuroenc.features.stimuli.StimulusExtractor`, with the same sequences).
    context_tokens, stride, prepend_bos, batch_size, device, dtype
        As :class:`~neuroenc.features.stimuli.StimulusExtractor`.
    intervention : str | dict | Intervention | None
        A structural intervention (``order``, ``skip``, ``parallel``, ``no-attention``...).
        The context kinds are refused: a stimulus's tokens are read in one pass, where all
        but the last would count as context; use :func:`~neuroenc.features.lm_quality` on
        the stimulus's text.

    Returns
    -------
    surprisal : ndarray, shape (n_stimuli,)
        For a one-word stimulus, that word's surprisal; NaN where the first token has nothing
        before it.
    """
    from .interventions import parse_intervention

    stimuli = check_stimuli(stimuli)
    _check_option("context", context, STIMULUS_CONTEXTS)
    iv = parse_intervention(intervention)
    if iv is not None and iv.needs_last_token:
        raise ValueError(
            f"stimulus_surprisal reads each stimulus's tokens in one forward pass, but intervention "
            f"{str(iv)!r} treats every token of a pass but the last as context, which would give wrong "
            "surprisal; use neuroenc.features.lm_quality(text, model, intervention=...) on each stimulus's "
            "text (one pass per token)."
        )
    lm = load_model(model, device=device, dtype=dtype)
    prefix = sequence_prefix(lm, prepend_bos)
    C = S = None
    if context == "group":
        C = check_context_tokens(FULL if context_tokens is None else context_tokens)
        S = None if C == FULL else (max(int(C) // 2, 1) if stride is None else int(stride))
    tokens = plan_stimuli(stimuli, lm, context, C, S, len(prefix))
    out = _run_surprisal(lm, tokens.input_ids, tokens.plan, tokens.stim_start, tokens.stim_stop, prefix,
                         batch_size, iv)
    _warn_undefined(out, "stimulus(es)")
    return out


def _warn_undefined(values: np.ndarray, what: str) -> None:
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        logger.warning("%d %s start a sequence with no token before them (first: index %d); their surprisal "
                       "is NaN: pass prepend_bos='auto' or True.", bad.size, what, int(bad[0]))
