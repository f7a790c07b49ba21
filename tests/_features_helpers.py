"""Reference computations for the feature tests: one direct forward pass per word."""
from __future__ import annotations

import numpy as np
import pytest
import torch


def direct_features(lm, alignment, starts, stops, pooling="last", words=None, prefix=None):
    """Per-word features from a direct forward over tokens ``[starts[w], stops[w])``.

    Contexts of equal length are stacked into one batch without padding or attention mask:
    the rows of such a batch are independent forward passes, each over exactly its tokens,
    after ``prefix`` (default: the tokenizer's own prefix special tokens).
    Returns an array (n_layers, n_selected_words, hidden).
    """
    words = np.arange(alignment.n_words) if words is None else np.asarray(words)
    prefix = list(lm.prefix_ids) if prefix is None else list(prefix)
    P = len(prefix)
    starts, stops = np.asarray(starts)[words], np.asarray(stops)[words]
    out = np.zeros((lm.n_layers, words.size, lm.hidden_size), dtype=np.float64)
    lengths = stops - starts
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        seqs = [prefix + alignment.input_ids[starts[k]:stops[k]].tolist()
                + list(lm.suffix_ids) for k in rows]
        with torch.inference_mode():
            states = lm.hidden_states(torch.tensor(seqs, device=lm.device))
        states = np.stack([h.float().cpu().numpy() for h in states])  # (layers, batch, tokens, dim)
        for j, k in enumerate(rows):
            w = words[k]
            a = P + int(alignment.word_start[w]) - int(starts[k])
            b = P + int(alignment.word_stop[w]) - int(starts[k])
            if pooling == "last":
                out[:, k] = states[:, j, b - 1]
            elif pooling == "first":
                out[:, k] = states[:, j, a]
            else:
                out[:, k] = states[:, j, a:b].mean(axis=1)
    return out


def max_rel_err(got, ref):
    """The largest per-row relative error ``||got - ref|| / ||ref||``."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    num = np.linalg.norm(got - ref, axis=-1)
    den = np.maximum(np.linalg.norm(ref, axis=-1), 1e-12)
    return float((num / den).max())


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread, above all on a machine shared by many jobs."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
