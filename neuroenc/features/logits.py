"""Next-token log-probabilities from a causal model's last hidden states: the model's output head
(:func:`output_head`) and the per-unit surprisal of tokens read from forward sequences
(:class:`SurprisalAccumulator`).

Kept apart from :mod:`neuroenc.features.surprisal` (which plans and runs its own passes with the
extractor's engine) so that the feature extractor can read surprisal from its own passes
(``surprisal=True``) without importing the module that imports it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .context import ContextPlan
from .models import LoadedModel

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
