"""Representation metrics on cases with known answers."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from neuroenc.features.metrics import (
    curvature,
    dataset_entropy,
    effective_rank,
    intrinsic_dimension,
    matrix_entropy,
    prompt_entropy,
    sliding_windows,
)


def _orthonormal_rows(rng, n, dim):
    q, _ = np.linalg.qr(rng.normal(size=(dim, n)))
    return q.T  # (n, dim), orthonormal rows


def _basis(rng, dim, k):
    q, _ = np.linalg.qr(rng.normal(size=(dim, k)))
    return q  # (dim, k) orthonormal columns


# ---------------------------------------------------------------------- entropy
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("n", [2, 7, 16])
def test_entropy_of_orthonormal_vectors_is_log_n(rng, n, alpha):
    X = _orthonormal_rows(rng, n, 40)
    assert matrix_entropy(X, alpha) == pytest.approx(np.log(n), abs=1e-10)
    # Equal norms matter, scale does not.
    assert matrix_entropy(5.0 * X, alpha) == pytest.approx(np.log(n), abs=1e-10)


def test_entropy_of_collinear_vectors_is_zero(rng):
    v = rng.normal(size=30)
    X = np.outer(rng.uniform(0.5, 2, size=9), v)
    assert matrix_entropy(X) == pytest.approx(0.0, abs=1e-10)
    assert matrix_entropy(X, 2.0) == pytest.approx(0.0, abs=1e-10)


def test_entropy_of_two_unequal_directions(rng):
    # Two orthogonal directions with squared norms 3 and 1: eigenvalues 3/4 and 1/4.
    X = np.zeros((2, 5))
    X[0, 0], X[1, 1] = np.sqrt(3.0), 1.0
    p = np.array([0.75, 0.25])
    assert matrix_entropy(X) == pytest.approx(-(p * np.log(p)).sum())
    assert matrix_entropy(X, 2.0) == pytest.approx(-np.log((p**2).sum()))
    # Centring two points leaves one direction.
    assert matrix_entropy(X, center=True) == pytest.approx(0.0, abs=1e-12)


def test_prompt_and_dataset_entropy(rng):
    batch = np.stack([_orthonormal_rows(rng, 6, 20), np.outer(np.ones(6), rng.normal(size=20))])
    out = prompt_entropy(batch)
    assert out.shape == (2,)
    np.testing.assert_allclose(out, [np.log(6), 0.0], atol=1e-10)
    assert prompt_entropy(batch[0], 2.0) == pytest.approx(np.log(6))
    X = _orthonormal_rows(rng, 12, 30)
    assert dataset_entropy(X) == pytest.approx(np.log(12))
    # More items than dimensions: the entropy is bounded by log(dim).
    assert dataset_entropy(rng.normal(size=(500, 8))) <= np.log(8) + 1e-12


# ---------------------------------------------------------------------- curvature
def test_curvature_of_a_straight_line_is_zero(rng):
    direction, origin = rng.normal(size=50), rng.normal(size=50)
    t = np.sort(rng.uniform(0, 10, size=20))  # uneven steps, same direction
    line = origin + t[:, None] * direction
    assert curvature(line) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("n_sides", [3, 4, 5, 8, 12])
def test_curvature_of_a_regular_polygon_is_its_exterior_angle(rng, n_sides):
    t = np.arange(2 * n_sides + 1) * 2 * np.pi / n_sides  # twice around
    plane = _basis(rng, 30, 2)
    points = 3.0 * np.c_[np.cos(t), np.sin(t)] @ plane.T + rng.normal(size=30)
    assert curvature(points) == pytest.approx(2 * np.pi / n_sides, abs=1e-9)


def test_curvature_batch_and_reversal(rng):
    zigzag = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])  # back and forth: pi
    line = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    np.testing.assert_allclose(curvature(np.stack([zigzag, line])), [np.pi, 0.0], atol=1e-12)


def test_curvature_skips_repeated_states(caplog):
    # A repeated point gives a zero step: its pairs are left out.
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [1.0, 2.0]])
    assert curvature(pts) == pytest.approx(0.0, abs=1e-12)  # only the pair (0,1)->(1,2) remains
    stuck = np.zeros((4, 3))
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        assert np.isnan(curvature(stuck))
    assert "without two successive non-zero steps" in caplog.text


# ---------------------------------------------------------------------- intrinsic dimension
@pytest.mark.parametrize("method", ["fit", "mle"])
def test_twonn_on_a_3d_linear_manifold_in_50d(rng, method):
    X = rng.normal(size=(2000, 3)) @ _basis(rng, 50, 3).T + rng.normal(size=50)
    assert intrinsic_dimension(X, method=method) == pytest.approx(3.0, abs=0.3)


def test_twonn_other_dimensions(rng):
    for d in (1, 6):
        X = rng.uniform(size=(2000, d)) @ _basis(rng, 40, d).T
        assert intrinsic_dimension(X) == pytest.approx(d, rel=0.12)


def test_twonn_leaves_out_duplicates(rng, caplog):
    X = rng.normal(size=(1500, 3)) @ _basis(rng, 20, 3).T
    X = np.vstack([X, X[:10]])
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        d = intrinsic_dimension(X)
    assert d == pytest.approx(3.0, abs=0.3)
    assert "20 point(s) with a duplicate are left out" in caplog.text
    with pytest.raises(ValueError, match="at least 3 distinct points, got 0"):
        intrinsic_dimension(np.ones((5, 3)))


# ---------------------------------------------------------------------- effective rank
@pytest.mark.parametrize("k", [1, 3, 10])
def test_effective_rank_of_rank_k_matrix(rng, k):
    U, V = _basis(rng, 80, k), _basis(rng, 60, k)
    assert effective_rank(2.5 * U @ V.T) == pytest.approx(k, rel=1e-9)  # equal singular values
    A = rng.normal(size=(200, k)) @ rng.normal(size=(k, 60))
    assert k - 0.5 * k <= effective_rank(A) <= k + 1e-9
    assert effective_rank(A) == pytest.approx(k, rel=0.25)


def test_effective_rank_centering(rng):
    A = rng.normal(size=(300, 4)) @ _basis(rng, 30, 4).T
    shifted = A + 100.0 * rng.normal(size=30)  # a large shared offset dominates
    assert effective_rank(shifted) < 1.5
    assert effective_rank(shifted, center=True) == pytest.approx(effective_rank(A, center=True))


# ---------------------------------------------------------------------- windows
def test_sliding_windows():
    X = np.arange(20).reshape(10, 2)
    w = sliding_windows(X, 4, 3)
    assert w.shape == (3, 4, 2)
    np.testing.assert_array_equal(w[:, :, 0], [[0, 2, 4, 6], [6, 8, 10, 12], [12, 14, 16, 18]])
    np.testing.assert_array_equal(sliding_windows(X, 5)[:, 0, 0], [0, 10])


# ---------------------------------------------------------------------- bad input
def test_bad_inputs(rng):
    X = rng.normal(size=(10, 4))
    for alpha in (0, -1.0, np.inf, "2", True):
        with pytest.raises(ValueError, match="'alpha' .* must be a finite number > 0"):
            matrix_entropy(X, alpha)
    with pytest.raises(ValueError, match=r"'X' must be a 2-D array \(n_items, dim\), got shape \(10,\)"):
        matrix_entropy(X[:, 0])
    with pytest.raises(ValueError, match="the Gram matrix is zero"):
        matrix_entropy(np.zeros((3, 4)))
    bad = X.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"X has 1 non-finite values .* row\(s\) \[2\]"):
        dataset_entropy(bad)
    with pytest.raises(ValueError, match=r"'states' must be one sequence .* got shape \(2, 3, 4, 5\)"):
        prompt_entropy(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="needs sequences of at least 3 tokens, got 2"):
        curvature(X[:2])
    with pytest.raises(ValueError, match="needs at least 3 rows, got 2"):
        intrinsic_dimension(X[:2])
    with pytest.raises(ValueError, match="Invalid value for 'method'"):
        intrinsic_dimension(X, method="knn")
    with pytest.raises(ValueError, match=r"'discard_fraction' must be a number in \[0, 1\), got 1.0"):
        intrinsic_dimension(X, discard_fraction=1.0)
    with pytest.raises(ValueError, match="effective_rank of a zero matrix"):
        effective_rank(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="there are 10 rows, fewer than window=12; pass a smaller window"):
        sliding_windows(X, 12)
    with pytest.raises(ValueError, match="'step' must be an integer >= 1, got 0"):
        sliding_windows(X, 2, 0)
