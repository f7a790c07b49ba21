"""Simulated layer features and responses for the encoding tests (built in code, seeded)."""
from __future__ import annotations

import numpy as np
import pytest


def layer_walk(rng: np.random.Generator, n_samples: int = 300, n_features: int = 24, n_layers: int = 6,
               step: float = 0.6, smooth: int = 3) -> list[np.ndarray]:
    """Layers as a random walk (adjacent layers correlate ~0.8), autocorrelated over samples."""
    def noise():
        x = rng.standard_normal((n_samples + smooth, n_features))
        return np.stack([x[i:i + smooth].mean(0) for i in range(n_samples)]) * np.sqrt(smooth)

    layers = [noise()]
    for _ in range(1, n_layers):
        layers.append(np.sqrt(1 - step**2) * layers[-1] + step * noise())
    return [(x - x.mean(0)) / x.std(0) for x in layers]


def responses_from(rng: np.random.Generator, X: np.ndarray, n_targets: int = 20, snr: float = 1.0) -> np.ndarray:
    """Targets = X @ W + noise, with signal-to-noise variance ratio ``snr``; z-scored."""
    W = rng.standard_normal((X.shape[1], n_targets))
    S = X @ W
    S /= S.std(0)
    Y = np.sqrt(snr) * S + rng.standard_normal(S.shape)
    return (Y - Y.mean(0)) / Y.std(0)


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """One BLAS thread: the tests' matrices are small, and on a shared, busy machine OpenBLAS
    threads spin-waiting on each other make a 128 x 128 eigendecomposition 100 x slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
