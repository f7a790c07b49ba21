"""Language-model quality of a text under an intervention: surprisal, perplexity, top-1 accuracy.

:func:`lm_quality` reads a text with a causal language model, intact or under any
:mod:`intervention <neuroenc.features.interventions>`, and returns an :class:`LMQuality`: the
surprisal of every token and word (bits), mean bits per word, perplexity and next-token top-1
accuracy, with the per-word values that paired statistics need; :func:`compare_quality` gives
the mean difference of two runs over the same words and its paired standard error.

How each token is predicted
---------------------------
Token ``t`` is predicted from the logits at the position before it (the model's output head
on the last hidden state, after the final norm).

- Intact and structural interventions (``order``, ``skip``, ``repeat``, ``reverse``,
  ``shuffle``, ``swap``, ``parallel``, ``no-attention``) change every position alike, so one
  forward pass reads many tokens: the whole text (``context_tokens="full"``) or strided chunks
  (a number), as :func:`~neuroenc.features.word_surprisal` reads them.
- The context kinds (``freeze-context``, ``random-context``, ``swap-context``) define "the
  previous tokens" relative to *one* current token: in a pass, every position but the
  current one is context. So each predicted token is read as the current token of its own
  prediction, with only the earlier tokens as context: the tokens of word ``i`` are
  predicted from the ``context_tokens`` tokens before the word's first token (all of them
  with ``"full"``) plus the word's own earlier tokens. Reading many tokens in one ordinary
  pass would treat later tokens' context wrongly (the error that made ``word_surprisal``
  under ``freeze-context`` 39 bits/word instead of 7), so it is never done.

  - ``"full"``: one *paired* pass over the whole text (a context stream beside a
    current-token stream, :mod:`~neuroenc.features.paired_context`): every token is the
    current token of its prediction, exactly as in one pass per token (to float summation
    order), at most twice the cost of the intact pass.
  - a number: each word's window starts at its own place, so each predicted token gets its
    own forward pass that ends at the position predicting it; the passes are batched (right
    padding, the current token found from the attention mask), which changes nothing in the
    result. It costs one pass per token (quadratic in the context length).

A token with nothing before it (the first token of a sequence without a BOS) has no
prediction: its surprisal and accuracy are NaN, and so are its word's.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._settings import Choices, Interval, declare
from .context import CONTEXT_TOKENS, FULL, check_context_tokens, plan_contexts
from .extract import AUTO_TOKEN_BUDGET, check_positions
from .interventions import parse_intervention
from .models import load_model, sequence_prefix
from .surprisal import LOG2, output_head
from .tokens import align_tokens

logger = logging.getLogger(__name__)


@dataclass
class LMQuality:
    """Language-model quality of one text under one intervention.

    Attributes
    ----------
    words : list of str
    word_surprisal : ndarray, shape (n_words,)
        ``-log2 p(word | context)``: the sum over the word's tokens (bits); NaN where a token
        has no prediction.
    word_accuracy : ndarray, shape (n_words,)
        Fraction of the word's tokens that were the model's top-1 next-token prediction.
    token_surprisal : ndarray, shape (n_tokens,)
        Bits per token of the text (NaN: no prediction, or a token of no word, such as a
        white-space token between words, which is not scored).
    token_correct : ndarray, shape (n_tokens,)
        1.0 where the token was the top-1 prediction, 0.0 where not, NaN where not scored.
    token_word : ndarray of int, shape (n_tokens,)
        The word of each token (-1: none).
    model : str
    intervention : str | None
    settings : dict
    """

    words: list[str]
    word_surprisal: np.ndarray
    word_accuracy: np.ndarray
    token_surprisal: np.ndarray
    token_correct: np.ndarray
    token_word: np.ndarray
    model: str = ""
    intervention: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def n_words(self) -> int:
        """Number of words."""
        return len(self.words)

    @property
    def bits_per_word(self) -> float:
        """Mean word surprisal (bits) over the words with a prediction."""
        return float(np.nanmean(self.word_surprisal))

    @property
    def perplexity(self) -> float:
        """Per-token perplexity: ``2 ** (mean bits per predicted token)``."""
        return float(2.0 ** np.nanmean(self.token_surprisal))

    @property
    def accuracy(self) -> float:
        """Next-token top-1 accuracy over the predicted tokens."""
        return float(np.nanmean(self.token_correct))

    def summary(self) -> dict[str, Any]:
        """The headline numbers as a dict (bits_per_word, perplexity, accuracy, counts)."""
        return {
            "model": self.model,
            "intervention": self.intervention or "none",
            "bits_per_word": self.bits_per_word,
            "perplexity": self.perplexity,
            "accuracy": self.accuracy,
            "n_words": self.n_words,
            "n_tokens": int((self.token_word >= 0).sum()),
            "n_predicted_tokens": int(np.isfinite(self.token_surprisal).sum()),
        }

    def save(self, path: str | os.PathLike, group: str = "quality") -> Path:
        """Write the values into ``group`` of an HDF5 file (e.g. a metrics file), atomically.

        An existing file keeps its other contents (it is copied, the group replaced, and the
        copy moved into place); a new file gets only the group. Layout: ``<group>/words``,
        ``word_surprisal``, ``word_accuracy``, ``token_surprisal``, ``token_correct``,
        ``token_word`` and attributes ``summary`` and ``settings`` (JSON).
        """
        import json
        import shutil

        import h5py

        from .._io import atomic_path, json_default

        path = Path(path)
        with atomic_path(path) as tmp:
            if path.exists():
                shutil.copyfile(path, tmp)
            with h5py.File(tmp, "a") as f:
                if group in f:
                    del f[group]
                g = f.create_group(group)
                g.create_dataset("words", data=np.array(self.words, dtype=object), dtype=h5py.string_dtype())
                for name in ("word_surprisal", "word_accuracy", "token_surprisal", "token_correct", "token_word"):
                    g.create_dataset(name, data=getattr(self, name))
                g.attrs["summary"] = json.dumps(self.summary(), default=json_default)
                g.attrs["settings"] = json.dumps(self.settings, default=json_default)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, group: str = "quality") -> "LMQuality":
        """Read what :meth:`save` wrote."""
        import json

        import h5py

        from .._validation import _check_path_exists

        path = _check_path_exists(path, "quality file")
        with h5py.File(path, "r") as f:
            if group not in f:
                raise KeyError(f"{str(path)!r} has no group {group!r} (written by `neuroenc metrics --quality`).")
            g = f[group]
            summary = json.loads(g.attrs["summary"])
            return cls(
                words=[w.decode() if isinstance(w, bytes) else str(w) for w in g["words"][()]],
                **{k: g[k][()] for k in ("word_surprisal", "word_accuracy", "token_surprisal",
                                         "token_correct", "token_word")},
                model=summary["model"],
                intervention=None if summary["intervention"] == "none" else summary["intervention"],
                settings=json.loads(g.attrs["settings"]),
            )

    def to_frame(self) -> pd.DataFrame:
        """One row per word: word, surprisal (bits), accuracy, model, intervention."""
        return pd.DataFrame({
            "word": self.words,
            "surprisal": self.word_surprisal,
            "accuracy": self.word_accuracy,
            "model": self.model,
            "intervention": self.intervention or "none",
        })


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``b - a`` over paired words, with its paired standard error.

    Attributes
    ----------
    metric : str
    mean : float
        Mean of the per-word differences (``b - a``).
    se : float
        Paired standard error: ``std(d, ddof=1) / sqrt(n)``.
    n : int
        Words with a value in both runs.
    t : float
        ``mean / se``.
    """

    metric: str
    mean: float
    se: float
    n: int
    t: float


def compare_quality(a: LMQuality, b: LMQuality, metric: str = "surprisal") -> PairedDifference:
    """Paired comparison of two runs over the same words: mean of ``b - a`` and its SE.

    Parameters
    ----------
    a, b : LMQuality
        Two runs of :func:`lm_quality` on the same text (e.g. intact and an intervention).
    metric : {"surprisal", "accuracy"}
        Per-word surprisal (bits) or per-word top-1 accuracy.

    Returns
    -------
    diff : PairedDifference

    Examples
    --------
    >>> from neuroenc.testing import tiny_gpt2
    >>> lm = tiny_gpt2()
    >>> text = "the cat sat on the mat and the dog sat on the log"
    >>> d = compare_quality(lm_quality(text, lm), lm_quality(text, lm, intervention="skip:1"))
    >>> d.n, bool(d.se > 0)
    (13, True)
    """
    from .._validation import _check_option

    _check_option("metric", metric, ("surprisal", "accuracy"))
    for name, run in (("a", a), ("b", b)):
        if not isinstance(run, LMQuality):
            raise TypeError(f"compare_quality: {name!r} must be an LMQuality (from lm_quality), got "
                            f"{type(run).__name__}.")
    if a.words != b.words:
        raise ValueError(
            f"compare_quality pairs words, but the runs read different texts ({a.n_words} and "
            f"{b.n_words} words); run lm_quality on the same text."
        )
    x = a.word_surprisal if metric == "surprisal" else a.word_accuracy
    y = b.word_surprisal if metric == "surprisal" else b.word_accuracy
    d = (y - x)[np.isfinite(x) & np.isfinite(y)]
    if d.size < 2:
        raise ValueError(f"compare_quality needs at least 2 words with a value in both runs, got {d.size}.")
    mean = float(d.mean())
    se = float(d.std(ddof=1) / np.sqrt(d.size))
    return PairedDifference(metric, mean, se, int(d.size), mean / se if se > 0 else float("inf"))


def _words_of(text: Any) -> list[str]:
    if isinstance(text, (str, os.PathLike)) and not isinstance(text, str):
        text = str(text)
    if isinstance(text, str):
        words = text.split()
    else:
        words = [str(w) for w in getattr(text, "words", text)]
    if not words:
        raise ValueError("lm_quality got a text without words; give a non-empty text or transcript.")
    return words


@declare({
    "model": [str, os.PathLike, object],
    "intervention": [None, str, dict],
    "context_tokens": CONTEXT_TOKENS,
    "stride": [None, Interval(Integral, 1, None, closed="left")],
    "prepend_bos": ["boolean", Choices("auto")],
    "batch_size": [Interval(Integral, 1, None, closed="left"), Choices("auto")],
    "device": [str],
    "dtype": [str],
})
def lm_quality(
    text: Any,
    model: Any,
    intervention: Any = None,
    context_tokens: int | str = "full",
    stride: int | None = None,
    prepend_bos: bool | str = "auto",
    batch_size: int | str = "auto",
    device: str = "auto",
    dtype: str = "auto",
    *,
    sources: Any = None,
) -> LMQuality:
    """Surprisal, perplexity and top-1 accuracy of a causal LM on a text, under an intervention.

    Parameters
    ----------
    text : str | Transcript | sequence of str
        The text (split on white space), a transcript or its words.
    model : str | path | LoadedModel
        A causal language model (loaded here when a name is given).
    intervention : str | dict | Intervention | None
        The intervention, e.g. ``"skip:10-14"``, ``"order:0-13,14,14,14,17-29"`` or
        ``"freeze-context:20"`` (grammar in :mod:`neuroenc.features.interventions`); None:
        the intact model. The context kinds read every predicted token as the current one:
        in one paired pass with ``"full"``, in one pass per token with a number.
    context_tokens : int | "full"
        Tokens before each word's first token that it is predicted from: ``"full"``
        (default: all of them; one pass over the whole text for the intact model and the
        structural kinds) or a number (strided chunks, or, for the context kinds, that many
        tokens before each word).
    stride : int | None
        Step between chunks with a number of ``context_tokens`` and a structural (or no)
        intervention (default: half of ``context_tokens``).
    prepend_bos : {"auto", True, False}
        A BOS token before every sequence, so the first word is predicted too.
    batch_size : int | "auto"
        Sequences per forward batch (``"auto"``: from a token budget per device).
    device, dtype : str
        Where and in what precision to run the model.
    sources : mapping of str -> str | StimulusSet | None
        For ``swap-context:K:stimulus=ID``: the text of each stimulus id.

    Returns
    -------
    quality : LMQuality

    Examples
    --------
    >>> from neuroenc.testing import tiny_llama
    >>> q = lm_quality("the cat sat on the mat", tiny_llama(), intervention="freeze-context:2")
    >>> q.word_surprisal.shape, q.bits_per_word > 0
    ((6,), True)
    """
    import torch

    from .interventions_patch import apply_intervention

    lm = load_model(model, device=device, dtype=dtype)
    iv = parse_intervention(intervention)
    C = check_context_tokens(context_tokens)
    if C == FULL and stride is not None:
        raise ValueError(f"stride={stride!r} applies to a number of context_tokens; drop it with "
                         "context_tokens='full'.")
    words = _words_of(text)
    head = output_head(lm)
    prefix = sequence_prefix(lm, prepend_bos)
    P = len(prefix)
    al = align_tokens(words, lm.tokenizer)
    ids = np.asarray(al.input_ids, dtype=np.int64)
    n_tokens = ids.size
    token_word = np.full(n_tokens, -1, dtype=np.int64)
    for w, (a, b) in enumerate(zip(al.word_start, al.word_stop)):
        token_word[a:b] = w
    paired = iv is not None and iv.needs_last_token and C == FULL
    if iv is not None and iv.needs_last_token and C != FULL:
        if stride is not None:
            raise ValueError(f"stride={stride!r} applies to strided chunks, but intervention {str(iv)!r} reads "
                             "one pass per token; drop stride.")
        passes = _per_token_passes(al, C, P)
        longest = max((e - s for s, e, _ in passes), default=0) + P
        check_positions(lm, longest, f"context_tokens={C!r} (one pass per token)")
    else:
        passes = _chunk_passes(lm, al, C, stride, P)
    bits = np.full(n_tokens, np.nan)
    correct = np.full(n_tokens, np.nan)
    lengths = np.array([P + e - s for s, e, _ in passes])
    order = np.argsort(-lengths, kind="stable")
    if batch_size == "auto":
        size = max(1, AUTO_TOKEN_BUDGET.get(lm.device.type, 4096) // max(int(lengths.max(initial=1)), 1))
    else:
        size = int(batch_size)
    pad_id = int(getattr(lm.tokenizer, "pad_token_id", None) or 0)
    with apply_intervention(lm, iv, sources=sources) as handle, torch.inference_mode():
        for b0 in range(0, len(order), size):
            batch = [passes[k] for k in order[b0:b0 + size] if passes[k][2]]
            if not batch:
                continue
            width = max(P + e - s for s, e, _ in batch)
            rows = np.full((len(batch), width), pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            flat, targets = [], []
            for r, (s, e, scored) in enumerate(batch):
                seq = np.concatenate([np.asarray(prefix, dtype=np.int64), ids[s:e]])
                rows[r, :seq.size], mask[r, :seq.size] = seq, 1
                for t in scored:
                    flat.append(r * width + P + t - s - 1)
                    targets.append(t)
            ids_t = torch.from_numpy(rows).to(lm.device)
            mask_t = torch.from_numpy(mask).to(lm.device)
            if paired:  # every token read as the current one, exactly (paired_context)
                from .paired_context import paired_hidden_states

                last = paired_hidden_states(lm, handle, ids_t, mask_t)[-1]
            else:
                last = lm.hidden_states(ids_t, mask_t)[-1]
            h = last.reshape(-1, last.shape[-1]).index_select(0, torch.tensor(flat, device=last.device))
            logp = torch.log_softmax(head(h).float(), dim=-1)
            tgt = torch.from_numpy(ids[np.asarray(targets)]).to(last.device)
            bits[targets] = -logp.gather(1, tgt[:, None])[:, 0].double().cpu().numpy() / LOG2
            correct[targets] = (logp.argmax(dim=-1) == tgt).double().cpu().numpy()
    word_bits = _per_word(bits, al, np.sum)
    word_acc = _per_word(correct, al, np.mean)
    if np.isnan(word_bits).any():
        logger.warning("lm_quality: %d word(s) have a token with nothing before it (no BOS); their values "
                       "are NaN: pass prepend_bos='auto' or True.", int(np.isnan(word_bits).sum()))
    settings = dict(context_tokens=C, stride=stride, prepend_bos=prepend_bos, prefix_ids=list(prefix),
                    n_forward_passes=len(passes), paired=bool(paired))
    return LMQuality(words, word_bits, word_acc, bits, correct, token_word, model=lm.name,
                     intervention=None if iv is None else str(iv), settings=settings)


def _per_word(values: np.ndarray, al: Any, reduce: Any) -> np.ndarray:
    out = np.full(len(al.word_start), np.nan)
    for w, (a, b) in enumerate(zip(al.word_start, al.word_stop)):
        v = values[a:b]
        if v.size and np.isfinite(v).all():
            out[w] = reduce(v)
    return out


def _chunk_passes(lm: Any, al: Any, C: Any, stride: int | None, P: int) -> list[tuple[int, int, list[int]]]:
    """(start, stop, scored tokens) of each strided chunk (one chunk with ``"full"``)."""
    if C == FULL:
        check_positions(lm, al.n_tokens + P, f"context_tokens='full' (all {al.n_tokens} tokens of the text)")
        plan = plan_contexts(al, "strided", FULL, 1, 0, "causal")
    else:
        S = max(int(C) // 2, 1) if stride is None else int(stride)
        check_positions(lm, int(C) + S + P, f"context_tokens={C} + stride={S}")
        plan = plan_contexts(al, "strided", C, S, 0, "causal")
    scored: list[list[int]] = [[] for _ in range(plan.n_sequences)]
    for w, s in enumerate(plan.word_seq):
        start = int(plan.seq_start[s])
        scored[s].extend(t for t in range(int(al.word_start[w]), int(al.word_stop[w])) if P + t - start >= 1)
    return [(int(plan.seq_start[s]), int(plan.seq_stop[s]), scored[s]) for s in range(plan.n_sequences)]


def _per_token_passes(al: Any, C: Any, P: int) -> list[tuple[int, int, list[int]]]:
    """One pass per token: the tokens before it (from ``C`` before its word's first token)."""
    passes = []
    for w in range(len(al.word_start)):
        first, stop = int(al.word_start[w]), int(al.word_stop[w])
        start = 0 if C == FULL else max(0, first - int(C))
        for t in range(first, stop):
            passes.append((start, t, [t] if P + t - start >= 1 else []))
    return passes


__all__ = ["LMQuality", "PairedDifference", "compare_quality", "lm_quality"]
