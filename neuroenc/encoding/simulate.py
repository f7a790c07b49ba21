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


def simulate_baseline_layers(n_samples: int = 240, n_runs: int = 4, n_features: int = 30, n_layers: int = 4,
                             n_baseline: int = 3, n_targets: int = 20, driven_layer: int | None = None,
                             baseline_signal: float = 0.8, layer_signal: float = 0.6, n_latent: int = 4,
                             width: int = 4, random_state: Any = None
                             ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Layers that all carry a baseline (e.g. word length and frequency), and responses driven by
    the baseline alone or by one layer beyond it: a known answer for unique contributions.

    Every layer is ``N A_l + Z_l M_l + E_l``: the baseline ``N`` (``n_baseline`` columns) mixed
    in, a latent ``Z_l`` of its own and independent noise ``E_l``. Each target is
    ``baseline_signal * N b_t + e_t`` and, with ``driven_layer``, also ``layer_signal * Z_L v_t``:
    the latent that only layer ``L`` carries. Without ``driven_layer`` no layer adds anything
    beyond the baseline, though every layer predicts the targets (through the baseline it
    carries); with it, only layer ``L`` does. Every series is autocorrelated over ``width``
    samples; each series is made of parts z-scored within each run (zero mean in every run).

    Returns
    -------
    layers : list of ndarray, shape (n_samples, n_features)
    N : ndarray, shape (n_samples, n_baseline)
    Y : ndarray, shape (n_samples, n_targets)
    groups : ndarray of int, shape (n_samples,)
        ``n_runs`` runs of equal length.
    """
    rng = _check_random_state(random_state)
    groups = np.repeat(np.arange(n_runs), int(np.ceil(n_samples / n_runs)))[:n_samples]

    def series(t: int) -> np.ndarray:  # smooth, z-scored within each run
        A = smooth_noise(rng, n_samples, t, width)
        for g in np.unique(groups):
            rows = groups == g
            A[rows] = (A[rows] - A[rows].mean(0)) / A[rows].std(0)
        return A

    N = series(n_baseline)
    latents = [series(n_latent) for _ in range(n_layers)]
    layers = []
    for Z in latents:
        A = rng.standard_normal((n_baseline, n_features)) / np.sqrt(n_baseline)
        M = rng.standard_normal((n_latent, n_features)) / np.sqrt(n_latent)
        layers.append(N @ A + Z @ M + series(n_features))
    b = rng.standard_normal((n_baseline, n_targets))
    b /= np.linalg.norm(b, axis=0, keepdims=True)
    Y = baseline_signal * N @ b + series(n_targets)
    if driven_layer is not None:
        v = rng.standard_normal((n_latent, n_targets))
        v /= np.linalg.norm(v, axis=0, keepdims=True)
        Y += layer_signal * latents[driven_layer] @ v
    return layers, N, Y, groups

