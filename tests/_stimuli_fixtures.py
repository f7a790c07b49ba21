"""Tiny stimulus sets and simulated stimulus-level responses with a known generating layer."""
from __future__ import annotations

import numpy as np

SENTENCES = [
    "The cat sat on the mat.", "It purred in the sun.", "Then it fell asleep.",
    "Rain fell on the roof.", "The gutters overflowed quickly.", "Water ran down the street.",
    "We read books at night.", "The fire kept us warm.", "Stories made the hours pass.",
    "A ship left the harbour.", "Its sails caught the wind.", "The crew sang old songs.",
    "Bread rose in the oven.", "The kitchen smelled sweet.", "Everyone waited for supper.",
    "Snow covered the hills.", "Children built a fort.", "Their hands grew cold.",
]


def write_sentences(path, n_passages: int = 6, per_passage: int = 3) -> list[str]:
    """A CSV with columns id, sentence, passage (ids s01..); returns the ids."""
    rows = ["id,sentence,passage"]
    ids = []
    for p in range(n_passages):
        for k in range(per_passage):
            i = p * per_passage + k
            sid = f"s{i + 1:02d}"
            ids.append(sid)
            rows.append(f'{sid},"{SENTENCES[i % len(SENTENCES)]}",p{p + 1}')
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return ids


def simulate_stimulus_layers(n_groups: int = 20, per_group: int = 6, n_features: int = 12, n_layers: int = 5,
                             generating: int = 3, n_targets: int = 4, signal: float = 1.0,
                             group_effect: float = 0.5, random_state=0):
    """Layers that share a common part, each with its own part; responses from one layer.

    Layer ``l`` is ``B + U_l`` (``B`` shared by all layers, ``U_l`` the layer's own, both with a
    per-group offset), so layers correlate as real ones do; the responses are ``signal *
    (B + U_k) W`` plus unit noise and a per-group offset, so layer ``k`` predicts them best.
    ``signal=0`` gives null data (with group structure in features and responses alike).

    Returns
    -------
    layers : list of ndarray (n_stimuli, n_features)
    Y : ndarray (n_stimuli, n_targets)
    groups : ndarray of str
    """
    rng = np.random.default_rng(random_state)
    n = n_groups * per_group
    groups = np.repeat([f"g{i}" for i in range(n_groups)], per_group)
    g_idx = np.repeat(np.arange(n_groups), per_group)

    def with_groups(k):
        return rng.standard_normal((n, k)) + group_effect * rng.standard_normal((n_groups, k))[g_idx]

    B = with_groups(n_features)
    layers = [B + with_groups(n_features) for _ in range(n_layers)]
    W = rng.standard_normal((n_features, n_targets)) / np.sqrt(2 * n_features)
    Y = signal * layers[generating] @ W + with_groups(n_targets)
    return layers, Y, groups
