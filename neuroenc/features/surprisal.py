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
from .models import LoadedModel, load_model, sequence_prefix
from .stimulus_plan import STIMULUS_CONTEXTS, check_stimuli, plan_stimuli
from .tokens import align_tokens

logger = logging.getLogger(__name__)

LOG2 = float(np.log(2.0))


def output_head(lm: LoadedModel):
    """The model's output head (last hidden state -> logits), as a callable on a tensor.

    The head kept by :meth:`LoadedModel.from_objects`; else the input embeddings when the
    model ties them to its output (GPT-2, SmolLM2...); else the head loaded once from the
    model's files with ``AutoModelForCausalLM`` (kept on ``lm.head``).

    Raises
    ------
    ValueError
        For a masked model (no next-token distribution).
    """
    if lm.kind != "causal":
        raise ValueError(f"Surprisal needs a causal language model, but {lm.name!r} is {lm.kind}: a masked "
                         "model does not predict the next token. Use a causal model (e.g. smollm2-135m).")
    if lm.head is not None:
        return lm.head
    config = lm.model.config
    if getattr(config, "tie_word_embeddings", False) and lm.model.get_input_embeddings() is not None:
        weight = lm.model.get_input_embeddings().weight

        def tied(h):
            return h @ weight.T

        lm.head = tied
        return tied
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": lm.dtype}
    if lm.gguf_file:
        kwargs["gguf_file"] = lm.gguf_file
    if lm.revision and lm.from_hub:
        kwargs["revision"] = lm.revision
    full = AutoModelForCausalLM.from_pretrained(lm.source, **kwargs).to(lm.device).eval()
    lm.head = full.get_output_embeddings()
    return lm.head


class SurprisalAccumulator:
    """Sums the surprisal (bits) of the tokens ``[start[i], stop[i])`` of each unit ``i``, batch
    by batch, from the last hidden states of the forward sequences that read them.

    Used by :func:`word_surprisal` and :func:`stimulus_surprisal`, and by the stimulus extractor
    to get surprisal from the same forward passes as the features (``surprisal=True``).

    Parameters
    ----------
    lm : LoadedModel
    input_ids : ndarray of int
        The token stream the plan's sequences index.
    plan : ContextPlan
        The sequences; unit ``i`` is read from ``plan.word_seq[i]``.
    start, stop : ndarray of int, shape (n_units,)
    n_prefix : int
        Special tokens before every sequence.
    """

    def __init__(self, lm: LoadedModel, input_ids: np.ndarray, plan: ContextPlan, start: np.ndarray,
                 stop: np.ndarray, n_prefix: int) -> None:
        self.lm, self.head = lm, output_head(lm)
        self.input_ids, self.plan = input_ids, plan
        self.start, self.stop, self.P = np.asarray(start), np.asarray(stop), int(n_prefix)
        self.values = np.zeros(self.start.size)
        self.undefined = np.zeros(self.start.size, dtype=bool)
        self.by_seq = np.argsort(plan.word_seq, kind="stable")
        self.bounds = np.searchsorted(plan.word_seq[self.by_seq], np.arange(plan.n_sequences + 1))
        self.added = np.zeros(plan.n_sequences, dtype=bool)

    def add(self, seqs: np.ndarray, last: Any, offset: np.ndarray) -> None:
        """Add the batch of sequences ``seqs`` (rows of ``last``: (batch, L, hidden), the last
        hidden state; ``offset``: the left padding of each row). A sequence already added is
        skipped (a batch the feature engine retries after running out of memory)."""
        import torch

        L = last.shape[1]
        flat, targets, owner = [], [], []
        for row, s in enumerate(seqs):
            if self.added[s]:
                continue
            for i in self.by_seq[self.bounds[s]:self.bounds[s + 1]]:
                toks = np.arange(self.start[i], self.stop[i])
                pos = self.P + toks - self.plan.seq_start[s]  # in-sequence position of each token
                ok = pos >= 1  # a token needs one before it to be predicted
                self.undefined[i] |= not ok.all()
                flat.append(row * L + int(offset[row]) + pos[ok] - 1)
                targets.append(self.input_ids[toks[ok]])
                owner.append(np.full(int(ok.sum()), i))
        if flat:
            index = torch.from_numpy(np.concatenate(flat)).to(last.device)
            h = last.reshape(-1, last.shape[-1]).index_select(0, index)
            logp = torch.log_softmax(self.head(h).float(), dim=-1)
            tgt = torch.from_numpy(np.concatenate(targets)).to(last.device)
            nll = -logp.gather(1, tgt[:, None])[:, 0].double().cpu().numpy() / LOG2
            np.add.at(self.values, np.concatenate(owner), nll)
        self.added[np.asarray(seqs, dtype=np.int64)] = True

    def result(self) -> np.ndarray:
        """The summed surprisal of each unit (NaN where a token had nothing before it)."""
        return np.where(self.undefined, np.nan, self.values)


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
