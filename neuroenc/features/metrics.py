"""Representation metrics of one layer's states: entropy, curvature, intrinsic dimension, rank.

Plain functions on arrays, after Skean et al. (2025), "Layer by Layer: Uncovering Hidden
Representations in Language Models" (ICML 2025, arXiv:2502.02013), who relate these metrics
to how useful each layer is downstream. :func:`neuroenc.features.metrics_layers.layer_metrics`
computes them for every layer of a feature set.

Two kinds of input:

- a *sequence* of states (a prompt, a context window: rows in temporal order), for prompt
  entropy and curvature: a 2-D array ``(n_tokens, dim)``, or a batch of equal-length
  sequences ``(n_sequences, n_tokens, dim)``;
- a *set* of items (one row per word or per prompt), for dataset entropy, intrinsic dimension
  and effective rank: a 2-D array ``(n_items, dim)``.

Everything is computed in float64.

Our default and the authors' code
---------------------------------
The functions follow the paper's definitions on the states as given. The authors' code
(github.com/OFSkean/information_flow) differs in three ways, each available here:

- it *normalises* every prompt first: subtracts the prompt's mean token and scales every row
  to unit L2 norm (:func:`normalize_prompts`; their ``normalize``, from
  github.com/waltonfuture/Matrix-Entropy);
- it clamps negative entries of the Gram matrix to 0 before its eigenvalues (``clamp=True``);
- its curvature measured, in an earlier version, the angle between successive (normalised)
  *states*, and later the angle between successive steps folded by ``abs()`` of the cosine
  (``curvature(..., method="angles" | "abs-angles")``; the paper's definition is
  ``"paper"``).

:func:`neuroenc.features.layer_metrics` with ``preset="skean2025"`` applies all three.

References
----------
Skean, Arefin, Zhao, Patel, Naghiyev, LeCun & Shwartz-Ziv (2025). Layer by Layer: Uncovering
Hidden Representations in Language Models. ICML 2025. arXiv:2502.02013.
Giraldo, Rao & Principe (2014). Measures of entropy from data using infinitely divisible
kernels. IEEE Trans. Inf. Theory 61(1). (Matrix-based Rényi entropy.)
Hosseini & Fedorenko (2023). Large language models implicitly learn to straighten neural
sentence trajectories to construct a predictive representation of natural language. NeurIPS.
(Curvature.)
Facco, d'Errico, Rodriguez & Laio (2017). Estimating the intrinsic dimension of datasets by a
minimal neighborhood information. Scientific Reports 7, 12140. (TwoNN.)
Roy & Vetterli (2007). The effective rank: a measure of effective dimensionality. EUSIPCO.
"""
from __future__ import annotations

import logging
import numbers

import numpy as np

from .._validation import _check_finite, _check_option

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------- checks
def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not np.isfinite(alpha) or alpha <= 0:
        raise ValueError(
            f"'alpha' (the order of the Rényi entropy) must be a finite number > 0 (1 gives the "
            f"Shannon/von Neumann entropy), got {alpha!r}."
        )
    return float(alpha)


def _as_items(name: str, X: np.ndarray, min_rows: int = 1) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"{name!r} must be a 2-D array (n_items, dim), got shape {X.shape}.")
    if X.shape[0] < min_rows:
        raise ValueError(f"{name!r} needs at least {min_rows} rows, got {X.shape[0]}.")
    if X.shape[1] < 1:
        raise ValueError(f"{name!r} has no columns (shape {X.shape}).")
    _check_finite(name, X, fix="Drop or impute the non-finite rows first.")
    return X


def _as_sequences(name: str, states: np.ndarray, min_tokens: int = 1) -> tuple[np.ndarray, bool]:
    """A (n_sequences, n_tokens, dim) float64 array, and whether the input was one sequence."""
    states = np.asarray(states, dtype=np.float64)
    single = states.ndim == 2
    if single:
        states = states[None]
    if states.ndim != 3:
        raise ValueError(
            f"{name!r} must be one sequence (n_tokens, dim) or a batch (n_sequences, n_tokens, dim), "
            f"got shape {states.shape}."
        )
    if states.shape[1] < min_tokens:
        raise ValueError(
            f"{name!r} needs sequences of at least {min_tokens} tokens, got {states.shape[1]}."
        )
    _check_finite(name, states.reshape(-1, states.shape[-1]), fix="Drop or impute them first.")
    return states, single


# ---------------------------------------------------------------------- entropy
def _entropy_of_spectrum(eigenvalues: np.ndarray, alpha: float) -> np.ndarray:
    """Rényi entropy of the distributions in the last axis of ``eigenvalues`` (>= 0, any sum)."""
    lam = np.clip(eigenvalues, 0.0, None)
    total = lam.sum(axis=-1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("the Gram matrix is zero (all states are zero vectors); its entropy is undefined.")
    p = lam / total
    if alpha == 1.0:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, p * np.log(p), 0.0)
        return -terms.sum(axis=-1)
    return np.log(np.sum(p**alpha, axis=-1)) / (1.0 - alpha)


def _gram_spectrum(states: np.ndarray, clamp: bool = False) -> np.ndarray:
    """Eigenvalues of the Gram matrices ``Z Z^T`` of a batch (n, t, d), via the smaller side.

    ``clamp`` sets negative entries of the matrix to 0 first, as the authors' code does (on the
    same side: ``t x t`` when ``t <= d``, else ``d x d``).
    """
    t, d = states.shape[-2:]
    if t <= d:
        gram = states @ np.swapaxes(states, -1, -2)
    else:
        gram = np.swapaxes(states, -1, -2) @ states
    if clamp:
        gram = np.clip(gram, 0.0, None)
    return np.linalg.eigvalsh(gram)


def normalize_prompts(states: np.ndarray) -> np.ndarray:
    """Centre each prompt's token rows and scale every row to unit L2 norm (Skean et al.'s code).

    The ``normalize`` that the authors' code applies to every prompt's hidden states before
    every metric (github.com/OFSkean/information_flow, ``normalize`` in
    ``experiments/utils/metrics/metric_functions.py``): ``R - R.mean(0)``, then each row over
    its norm. A row equal to the prompt's mean (a zero row after centring) stays zero here
    (their code divides by zero).

    Parameters
    ----------
    states : array-like, shape (n_tokens, dim) or (n_sequences, n_tokens, dim)

    Returns
    -------
    normalized : ndarray, same shape, float64
    """
    states, single = _as_sequences("states", states)
    centred = states - states.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=-1, keepdims=True)
    out = np.divide(centred, norms, out=np.zeros_like(centred), where=norms > 0)
    return out[0] if single else out


def matrix_entropy(X: np.ndarray, alpha: float = 1.0, *, center: bool = False, clamp: bool = False) -> float:
    """Matrix-based Rényi entropy of the normalised Gram matrix of the rows of ``X``.

    With ``K = X X^T`` and ``λ_i`` the eigenvalues of ``K / tr(K)``,
    ``S_α = log(Σ λ_i^α) / (1 - α)`` and, for ``α = 1``, ``S_1 = -Σ λ_i log λ_i``
    (Giraldo et al. 2014; Skean et al. 2025, eq. 1). It ranges from 0 (all rows collinear)
    to ``log(min(n, dim))`` (rows orthogonal with equal norms): ``n`` orthonormal vectors give
    ``log n``.

    Parameters
    ----------
    X : array-like, shape (n, dim)
        The states, one per row.
    alpha : float
        Order of the entropy (> 0); 1 is the Shannon (von Neumann) limit.
    center : bool
        Subtract the mean row first. (The paper defines the entropy on the states as given;
        the authors' code centres *and* L2-normalises each prompt's rows first:
        :func:`normalize_prompts`.)
    clamp : bool
        Set negative Gram entries to 0 before the eigenvalues, as the authors' code does.

    Returns
    -------
    entropy : float
        In nats.
    """
    alpha = _check_alpha(alpha)
    X = _as_items("X", X)
    if center:
        X = X - X.mean(axis=0)
    return float(_entropy_of_spectrum(_gram_spectrum(X[None], clamp)[0], alpha))


def prompt_entropy(states: np.ndarray, alpha: float = 1.0, *, center: bool = False,
                   clamp: bool = False) -> np.ndarray | float:
    """Prompt entropy: the matrix entropy of each sequence's token states (Skean et al. 2025).

    Parameters
    ----------
    states : array-like, shape (n_tokens, dim) or (n_sequences, n_tokens, dim)
        One sequence or a batch of equal-length sequences.
    alpha : float
        Order of the Rényi entropy (> 0).
    center : bool
        Subtract each sequence's mean token first.
    clamp : bool
        Set negative Gram entries to 0 first (the authors' code; with
        :func:`normalize_prompts` states it reproduces their prompt entropy).

    Returns
    -------
    entropy : float | ndarray, shape (n_sequences,)
        One value per sequence (a float for a single sequence). Average them for a layer.
    """
    alpha = _check_alpha(alpha)
    states, single = _as_sequences("states", states)
    if center:
        states = states - states.mean(axis=1, keepdims=True)
    out = _entropy_of_spectrum(_gram_spectrum(states, clamp), alpha)
    return float(out[0]) if single else out


def dataset_entropy(X: np.ndarray, alpha: float = 1.0, *, center: bool = False, clamp: bool = False) -> float:
    """Dataset entropy: the matrix entropy across items (Skean et al. 2025).

    Skean et al. mean-pool each prompt's tokens and take the entropy of the Gram matrix of the
    pooled prompts; for word-level features each row is a word. High values mean the items
    spread over many directions, low values that they collapse onto few.

    Parameters
    ----------
    X : array-like, shape (n_items, dim)
    alpha : float
    center : bool
    clamp : bool
        As :func:`matrix_entropy`.

    Returns
    -------
    entropy : float
    """
    return matrix_entropy(X, alpha, center=center, clamp=clamp)


# ---------------------------------------------------------------------- curvature
#: The curvature variants: the paper's, and the two of the authors' code.
CURVATURE_METHODS = ("paper", "angles", "abs-angles")


def _unit_angles(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The angle between unit vectors as 2 atan2(|u - v|, |u + v|) (Kahan): accurate near 0 and
    pi, where arccos of the dot product loses half the digits."""
    return 2.0 * np.arctan2(np.linalg.norm(u - v, axis=-1), np.linalg.norm(u + v, axis=-1))


def curvature(states: np.ndarray, method: str = "paper") -> np.ndarray | float:
    """Mean angle between successive difference vectors of a trajectory (radians).

    With ``v_k = z_{k+1} - z_k``, the curvature of a sequence is the mean over ``k`` of
    ``arccos(v_{k+1} · v_k / (|v_{k+1}| |v_k|))`` (Hosseini & Fedorenko 2023; Skean et al.
    2025). Points on a straight line give 0; the vertices of a regular polygon give its
    exterior angle ``2π / n_sides``. Pairs with a zero-length step (a repeated state) are
    left out of the mean.

    Parameters
    ----------
    states : array-like, shape (n_tokens, dim) or (n_sequences, n_tokens, dim)
        One trajectory (>= 3 points; >= 2 for ``"angles"``) or a batch of equal-length
        trajectories.
    method : {"paper", "angles", "abs-angles"}
        ``"paper"`` (default): the definition above, angles in [0, π]. ``"abs-angles"``: the
        authors' later code (``compute_curvature`` in
        ``experiments/utils/metrics/metric_functions.py`` of OFSkean/information_flow), which
        takes ``arccos(|cos|)``, folding every angle into [0, π/2]. ``"angles"``: their earlier
        code (``compute_curvature`` in ``experiments/utils/misc/metric_utils.py``), the mean
        angle between successive *states* ``z_k`` and ``z_{k+1}`` (not steps). The authors
        apply them to :func:`normalize_prompts` states. (Their later code also counts a pair
        with a zero step as angle 0; here it is left out.)

    Returns
    -------
    curvature : float | ndarray, shape (n_sequences,)
        NaN for a sequence without two successive non-zero steps.
    """
    _check_option("method", method, CURVATURE_METHODS)
    states, single = _as_sequences("states", states, min_tokens=2 if method == "angles" else 3)
    vectors = states if method == "angles" else np.diff(states, axis=1)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    valid = (norms[:, 1:, 0] > 0) & (norms[:, :-1, 0] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = np.where(norms > 0, vectors / norms, 0.0)
    u, v = unit[:, 1:], unit[:, :-1]
    angles = _unit_angles(u, v)
    if method == "abs-angles":
        angles = np.minimum(angles, np.pi - angles)  # arccos(|cos x|)
    count = valid.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(count > 0, (angles * valid).sum(axis=1) / np.maximum(count, 1), np.nan)
    n_bad = int((count == 0).sum())
    if n_bad:
        logger.warning("curvature: %d sequence(s) without two successive non-zero steps give NaN.", n_bad)
    return float(out[0]) if single else out


# ---------------------------------------------------------------------- intrinsic dimension
def _two_nearest(X: np.ndarray, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Distances of each row to its first and second nearest other rows (exact, float64)."""
    n = X.shape[0]
    sq = np.einsum("ij,ij->i", X, X)
    k = min(4, n - 1)
    r = np.empty((n, 2))
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        d2 = sq[lo:hi, None] + sq[None, :] - 2.0 * (X[lo:hi] @ X.T)
        d2[np.arange(hi - lo), np.arange(lo, hi)] = np.inf
        cand = np.argpartition(d2, k - 1, axis=1)[:, :k]
        # Recompute the candidates' distances exactly (the expansion above loses precision).
        exact = np.linalg.norm(X[lo:hi, None, :] - X[cand], axis=-1)
        exact.sort(axis=1)
        r[lo:hi] = exact[:, :2]
    return r[:, 0], r[:, 1]


def intrinsic_dimension(X: np.ndarray, *, method: str = "fit", discard_fraction: float = 0.1) -> float:
    """TwoNN intrinsic dimension of a point cloud (Facco et al. 2017).

    For each point, ``μ = r_2 / r_1`` is the ratio of the distances to its second and first
    nearest neighbours; for locally uniform data of dimension ``d``, ``μ`` follows a Pareto
    law ``F(μ) = 1 - μ^{-d}``.

    Parameters
    ----------
    X : array-like, shape (n_items, dim)
        At least 3 points.
    method : {"fit", "mle"}
        ``"fit"`` (Facco et al.): least-squares slope, through the origin, of
        ``-log(1 - F_emp(μ))`` against ``log μ`` after discarding the ``discard_fraction``
        largest ``μ``. ``"mle"``: the maximum-likelihood estimate ``(n - 1) / Σ log μ``.
    discard_fraction : float
        Fraction of the largest ratios left out of the fit, in [0, 1) (Facco et al.: 0.1).

    Returns
    -------
    dimension : float

    Notes
    -----
    Points with a duplicate (``r_1 = 0``) have no ratio and are left out, with a warning.
    A 3-D linear subspace embedded in 50-D gives about 3.
    """
    _check_option("method", method, ("fit", "mle"))
    if isinstance(discard_fraction, bool) or not isinstance(discard_fraction, numbers.Real) or not (
        0 <= discard_fraction < 1
    ):
        raise ValueError(f"'discard_fraction' must be a number in [0, 1), got {discard_fraction!r}.")
    X = _as_items("X", X, min_rows=3)
    r1, r2 = _two_nearest(X)
    ok = r1 > 0
    if not ok.all():
        logger.warning("intrinsic_dimension: %d point(s) with a duplicate are left out.", int((~ok).sum()))
    mu = r2[ok] / r1[ok]
    if mu.size < 3:
        raise ValueError(
            f"intrinsic_dimension needs at least 3 distinct points, got {mu.size} (the rest are duplicates)."
        )
    log_mu = np.log(mu)
    if method == "mle":
        total = log_mu.sum()
        return float((mu.size - 1) / total) if total > 0 else float("inf")
    log_mu.sort()
    n = log_mu.size
    keep = min(int(np.floor(n * (1.0 - discard_fraction))), n - 1)
    keep = max(keep, 2)
    x = log_mu[:keep]
    y = -np.log(1.0 - np.arange(1, keep + 1) / n)
    denom = float(np.dot(x, x))
    if denom == 0:
        return float("inf")
    return float(np.dot(x, y) / denom)


# ---------------------------------------------------------------------- effective rank
def effective_rank(X: np.ndarray, *, center: bool = False) -> float:
    """Effective rank (Roy & Vetterli 2007): ``exp`` of the entropy of the normalised singular values.

    With ``p_i = σ_i / Σ σ_j``, ``erank = exp(-Σ p_i log p_i)``; it lies in ``[1, rank(X)]``
    and equals ``k`` for a rank-``k`` matrix with equal singular values.

    Parameters
    ----------
    X : array-like, shape (n_items, dim)
    center : bool
        Subtract the mean row first (a large shared offset otherwise counts as one direction).

    Returns
    -------
    rank : float
    """
    X = _as_items("X", X)
    if center:
        X = X - X.mean(axis=0)
    s = np.linalg.svd(X, compute_uv=False)
    if s.sum() <= 0:
        raise ValueError("effective_rank of a zero matrix is undefined.")
    return float(np.exp(_entropy_of_spectrum(s, 1.0)))


def sliding_windows(X: np.ndarray, window: int, step: int | None = None) -> np.ndarray:
    """Consecutive windows of rows, shape (n_windows, window, dim) (a view, no copy).

    Parameters
    ----------
    X : array-like, shape (n_rows, dim)
        Rows in temporal order (words of a story).
    window : int
        Rows per window (>= 1).
    step : int | None
        Rows between window starts (default: ``window``, non-overlapping). A tail shorter
        than ``window`` is left out.
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"sliding_windows needs a 2-D array (n_rows, dim), got shape {X.shape}.")
    for name, value in (("window", window), ("step", window if step is None else step)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name!r} must be an integer >= 1, got {value!r}.")
    step = window if step is None else int(step)
    if X.shape[0] < window:
        raise ValueError(
            f"there are {X.shape[0]} rows, fewer than window={window}; pass a smaller window."
        )
    view = np.lib.stride_tricks.sliding_window_view(X, window, axis=0)  # (n - w + 1, dim, w)
    return np.swapaxes(view[::step], 1, 2)
