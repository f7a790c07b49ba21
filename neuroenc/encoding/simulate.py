"""Simulated layer designs and responses with a known answer, for tests and benchmarks.

:func:`simulate_layers` makes layers that carry a shared latent signal with more or less noise,
and responses driven by that signal, all autocorrelated over time as fMRI is; which layers
predict the responses best, and by how much, is known by construction.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import _check_random_state


def smooth_noise(rng: np.random.Generator, n: int, t: int, width: int) -> np.ndarray:
    """White noise averaged over ``width`` samples (unit variance, autocorrelated over ``width``).

    Examples
    --------
    >>> smooth_noise(np.random.default_rng(0), 500, 3, 6).shape
    (500, 3)
    """
    x = rng.standard_normal((n + width, t))
    c = np.cumsum(x, 0)
    return (c[width:] - c[:-width])[:n] / np.sqrt(width)


def simulate_layers(n_samples: int = 360, n_features: int = 40, n_targets: int = 100,
                    noise: Sequence[float] = (1.0, 1.0, 3.0), signal: float = 0.6, n_latent: int = 8,
                    width: int = 6, random_state: Any = None) -> tuple[list[np.ndarray], np.ndarray]:
    """Layers that carry a latent signal with more or less noise, and responses driven by it.

    Layer ``l`` is ``Z M_l + noise[l] E_l`` with ``Z`` a latent signal (``n_latent`` columns),
    ``M_l`` a random mixing and ``E_l`` independent noise; each target is ``signal * Z w_t + e_t``
    with ``w_t`` of unit norm, so every target has the same signal-to-noise ratio. Layers with
    equal ``noise`` predict the targets equally well (in expectation), a noisier layer worse,
    and a layer with ``noise=inf`` (pure noise, no signal) not at all. ``signal=0`` gives null
    data. Every series is autocorrelated over ``width`` samples.

    Parameters
    ----------
    n_samples, n_features, n_targets : int
        Samples (one run), columns per layer, targets.
    noise : sequence of float
        Noise of each layer relative to its signal (``inf``: no signal).
    signal : float
        Signal amplitude in the responses (their noise has unit variance).
    n_latent, width : int
        Latent dimensions; autocorrelation width in samples.
    random_state : None | int | Generator

    Returns
    -------
    layers : list of ndarray, shape (n_samples, n_features)
    Y : ndarray, shape (n_samples, n_targets)
    """
    rng = _check_random_state(random_state)
    Z = smooth_noise(rng, n_samples, n_latent, width)
    layers = []
    for level in noise:
        E = smooth_noise(rng, n_samples, n_features, width)
        if np.isinf(level):
            layers.append(E)
            continue
        M = rng.standard_normal((n_latent, n_features)) / np.sqrt(n_latent)
        layers.append(Z @ M + level * E)
    W = rng.standard_normal((n_latent, n_targets))
    W /= np.linalg.norm(W, axis=0, keepdims=True)
    Y = signal * Z @ W + smooth_noise(rng, n_samples, n_targets, width)
    return layers, Y
