"""Ridge maths for layer sweeps: nested CV of per-target penalties, on any himalaya backend.

One layer's design ``X`` (n_samples, n_features) and a chunk of targets ``Y``. For every outer
fold, penalties are chosen per target by inner CV on the outer training part only, the model
is refit on the whole outer training part with each target's penalty, and the held-out test
part is predicted and scored. The functions work on any subset of targets and any single layer,
so target chunks and layers can be computed apart (on Dask workers) and merged exactly.

The maths, shared by the kernel and the primal form
---------------------------------------------------
For a split (train ``T``, held-out ``H``) the ridge prediction of ``Y[H]`` from ``Y[T]`` with
penalty ``a`` is ``P @ diag(1 / (lam + a)) @ Q.T @ Y[T]``, where

- kernel form (more features than training samples), ``K = X X^T`` computed once per layer:
  ``K[T, T] = V diag(lam) V^T``, ``P = K[H, T] V``, ``Q = V``;
- primal form, ``G = X^T X`` computed once per layer: ``G - X[R]^T X[R] = V diag(lam) V^T``
  (the Gram of the training rows; ``R`` the rows left out, held-out and gap),
  ``P = X[H] V``, ``Q^T Y[T] = V^T (X^T Y - X[R]^T Y[R])``.

One eigendecomposition per split serves every penalty and every target, and in nested
leave-one-run-out CV one serves two splits (:class:`EigenCache`). The filters
``d_a = 1 / (lam + alpha_a)`` of a penalty grid are nearly linearly dependent, so they are
replaced by a few basis filters when that saves work (:func:`filter_basis`, exact to far below
the rounding of the products). The predictions of all filters are then either
``P @ (g_m * (Q^T Y[T]))`` ("project first") or ``((P * g_m) @ Q^T) @ Y[T]`` ("resolve first",
one stacked matrix reused for every target batch); the cheaper order is chosen from the shapes.
Where the held-out rows outnumber the columns (primal form at many samples), the losses of all
penalties come instead from the QR factors of the held-out projection, ``P = Q R``, without
forming any prediction (:func:`qr_losses`: a product by the triangle ``R`` per penalty instead
of one by ``P``), when the targets are many enough to pay for the factorisation.
Inner-CV scores are himalaya's (``l2_neg_loss`` averaged over inner folds in float64, ties
broken towards larger penalties), so the chosen penalties are those of
``himalaya.kernel_ridge.KernelRidgeCV`` / ``himalaya.ridge.RidgeCV`` given the same folds (to
1e-14 in float64; float32 differs only where two penalties' CV losses tie within rounding).
The refit of each outer fold predicts the test rows with each target's penalty without forming
weights of every penalty (himalaya forms them); primal weights are never formed.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import as_index, current_backend, eigh, qr, take_block, take_rows, to_float64
from .spectra import SpectrumStore
from .stats import REFIT_INDEX_BYTES

logger = logging.getLogger(__name__)

FORMS = ("auto", "kernel", "primal")
#: Bytes one block of predictions (n_alphas, n_heldout, n_targets_batch) may take by default.
DEFAULT_BATCH_BYTES = 512 * 2**20
#: Cap on the memory of one batch of draws of the refit permutation null.
REFIT_BATCH_BYTES = 128 * 2**20
#: Largest ``X^T Y`` (all targets of a primal fit) kept from one outer fold to the next; a
#: larger one is recomputed in every fold.
XTY_KEEP_BYTES = 512 * 2**20
#: :func:`cv_losses` filters the held-out projection by every filter at once, (n_filters,
#: n_heldout, rank), below this size, else one filter at a time.
FILTERED_BYTES = 32 * 2**20
#: The phases of a fit that :func:`record_phases` times (and charges with their FLOPs).
PHASES = ("kernels", "decompositions", "penalty search", "scores", "permutations", "comparisons")
_phases: dict | None = None  # the recording of :func:`record_phases`, None when off


@contextmanager
def record_phases():
    """Time the phases of the fits run inside (and count their FLOPs): a dict phase ->
    ``{"seconds", "flops", "calls"}``, filled as they run (wall-clock; on a GPU backend the
    time is charged where the host waits for the device).

    Off (the default), the solver only tests one module variable per phase.

    Examples
    --------
    >>> from neuroenc.encoding.simulate import simulate_layers
    >>> from neuroenc.encoding import LayerSweep
    >>> layers, Y = simulate_layers(n_samples=120, n_targets=3, random_state=0)
    >>> with record_phases() as phases:
    ...     _ = LayerSweep(n_permutations=0, refit=False).fit(layers, Y)
    >>> sorted(phases)
    ['decompositions', 'kernels', 'penalty search', 'scores']
    """
    global _phases
    previous, _phases = _phases, {}
    try:
        yield _phases
    finally:
        _phases = previous


def _tic(counter: dict | None) -> tuple[float, float] | None:
    """The start of a timed phase (None when phases are not recorded)."""
    if _phases is None:
        return None
    return time.perf_counter(), (counter or {}).get("flops", 0.0)


def _toc(phase: str, start: tuple[float, float] | None, counter: dict | None) -> None:
    """Charge ``phase`` with the time and FLOPs since ``start`` (from :func:`_tic`)."""
    if start is None or _phases is None:
        return
    entry = _phases.setdefault(phase, {"seconds": 0.0, "flops": 0.0, "calls": 0})
    entry["seconds"] += time.perf_counter() - start[0]
    entry["flops"] += (counter or {}).get("flops", 0.0) - start[1]
    entry["calls"] += 1


def choose_form(n_train: int, n_features: int, form: str = "auto") -> str:
    """``"kernel"`` when features outnumber training samples, else ``"primal"`` (or ``form``)."""
    if form != "auto":
        return form
    return "kernel" if n_features > n_train else "primal"


@dataclass
class LayerGram:
    """What is computed once per layer and shared by every split: ``K = X X^T`` or ``G = X^T X``.

    ``store`` and ``key``: a :class:`SpectrumStore` and the design's key in it, where the
    eigendecompositions of its splits are kept for later fits of the same design."""

    form: str
    X: Any
    gram: Any
    store: SpectrumStore | None = None
    key: bytes | None = None

    @classmethod
    def compute(cls, X, form: str) -> "LayerGram":
        """``X`` is a backend array (n_samples, n_features); ``form`` is kernel or primal."""
        gram = X @ X.T if form == "kernel" else X.T @ X
        return cls(form, X, gram)

    def flops(self) -> float:
        n, p = self.X.shape
        return 2.0 * n * n * p if self.form == "kernel" else 2.0 * n * p * p


@dataclass
class Split:
    """The spectral pieces of one (train, held-out) split, shared by all penalties and targets."""

    train: np.ndarray
    test: np.ndarray
    lam: Any  # (r,) eigenvalues, ascending
    P: Any  # (n_test, r)
    V: Any  # (r, r) eigenvectors (kernel: of K[T,T]; primal: of the training Gram)
    form: str
    flops: float = 0.0
    resolve: Any = None  # (n_filters, n_test, n_train): ((P * g_m) @ Q^T), when resolving first
    removed: np.ndarray | None = None  # primal: rows not in train, when subtracting is cheaper
    filters: Any = None  # (n_filters, r): the spectral filters g_m applied (d_a, or a basis of them)
    combine: Any = None  # (n_alphas, n_filters): d_a = sum_m combine[a, m] g_m, or None if g = d
    # the QR factors of the held-out projection, P = Q R, when the losses come from them (qr_losses)
    Q: Any = None  # (n_test, r)
    R: Any = None  # (r, r), upper triangular

    def project(self, B, gram: LayerGram, Y, XtY=None):
        """``Q^T Y[T]`` for a chunk ``Y`` (all samples); primal may use ``XtY = X^T Y``."""
        if self.form == "kernel":
            return self.V.T @ take_rows(B, Y, self.train)
        if self.removed is None:
            return self.V.T @ (take_rows(B, gram.X, self.train).T @ take_rows(B, Y, self.train))
        Xr = take_rows(B, gram.X, self.removed)
        return self.V.T @ (XtY - Xr.T @ take_rows(B, Y, self.removed))

    def project_flops(self, gram: LayerGram, t: int) -> float:
        r = self.lam.shape[0]
        if self.form == "kernel":
            return 2.0 * r * self.train.size * t
        rows = self.train.size if self.removed is None else self.removed.size
        return 2.0 * rows * r * t + 2.0 * r * r * t


class EigenCache:
    """Eigendecompositions shared by splits with the same training set.

    In nested leave-one-run-out CV, the inner split "train on all runs but o and j" of outer
    fold o has the same training set as the inner split of outer fold j that holds out o:
    one eigendecomposition serves both. Entries are dropped as soon as their last user has
    taken them, so at most the pending ones are held.
    """

    def __init__(self, trains) -> None:
        from collections import Counter

        self.left = Counter(np.asarray(t).tobytes() for t in trains)
        self.store: dict[bytes, tuple] = {}

    def take(self, train: np.ndarray):
        key = np.asarray(train).tobytes()
        entry = self.store.get(key)
        self.left[key] -= 1
        if self.left[key] <= 0:
            self.store.pop(key, None)
        return entry

    def has(self, train: np.ndarray) -> bool:
        """Whether the eigendecomposition of ``train`` is held."""
        return np.asarray(train).tobytes() in self.store

    def offer(self, train: np.ndarray, entry: tuple) -> None:
        key = np.asarray(train).tobytes()
        if self.left.get(key, 0) > 0:
            self.store[key] = entry


def _train_spectrum(B, gram: LayerGram, train: np.ndarray):
    """``(lam, V, removed, flops)`` of the training Gram of ``train``."""
    if gram.form == "kernel":
        lam, V = eigh(B, take_block(B, gram.gram, train, train))
        return lam, V, None, 9.0 * train.size**3
    # the training Gram: subtract the rows left out (held-out and gap) when they are fewer
    n = gram.X.shape[0]
    removed = np.setdiff1d(np.arange(n), train)
    if removed.size < train.size:
        Xr = take_rows(B, gram.X, removed)
        Gtr = gram.gram - Xr.T @ Xr
    else:
        Xt = take_rows(B, gram.X, train)
        Gtr, removed = Xt.T @ Xt, None
    lam, V = eigh(B, Gtr)
    r = Gtr.shape[0]
    rows = train.size if removed is None else removed.size
    return lam, V, removed, 2.0 * rows * r * r + 9.0 * r**3


def decompose(B, gram: LayerGram, train: np.ndarray, test: np.ndarray, cache: EigenCache | None = None) -> Split:
    """Eigendecompose the training Gram of a split (or reuse it) and project the held-out rows."""
    train, test = np.asarray(train), np.asarray(test)
    entry = cache.take(train) if cache is not None else None
    flops = 0.0
    if entry is None:  # not shared within this fit: kept from an earlier fit of the design, or computed
        entry = gram.store.get(gram.key, train.tobytes()) if gram.store is not None else None
        if entry is None:
            entry = _train_spectrum(B, gram, train)
            flops += entry[3]
            if gram.store is not None:
                gram.store.put(gram.key, train.tobytes(), entry)
        if cache is not None:
            cache.offer(train, entry)
    lam, V, removed, _ = entry
    r = lam.shape[0]
    P = _kept(gram, b"P", train, test)
    if P is None:  # the held-out rows' projection: kept with the spectrum, as it depends on the design only
        if gram.form == "kernel":
            P = take_block(B, gram.gram, test, train) @ V
        else:
            P = take_rows(B, gram.X, test) @ V
        flops += 2.0 * test.size * r * r
        _keep(gram, b"P", train, test, P)
    return Split(train, test, lam, P, V, gram.form, flops, removed=removed)


def _part(kind: bytes, *rows: np.ndarray) -> bytes:
    """The store's part name of a split's piece ``kind``: its row sets' sizes and bytes."""
    rows = tuple(np.asarray(r) for r in rows)
    head = kind + b"|" + "|".join(f"{r.dtype.str}{r.size}" for r in rows).encode() + b"|"
    return head + b"".join(r.tobytes() for r in rows)


def _kept(gram: LayerGram, kind: bytes, *rows: np.ndarray) -> Any:
    """A piece of a split kept in the design's store (:class:`SpectrumStore`), or None.

    Everything kept depends on the design (and the split's rows, the penalty grid, the
    baseline) only, never on the responses: later fits of the design (other subjects of the
    story) reuse it, the same numbers."""
    if gram.store is None:
        return None
    return gram.store.get(gram.key, _part(kind, *rows))


def _keep(gram: LayerGram, kind: bytes, *rows_and_value: Any) -> None:
    """Keep a piece (the last argument) of a split in the design's store (see :func:`_kept`)."""
    if gram.store is not None:
        *rows, value = rows_and_value
        gram.store.put(gram.key, _part(kind, *rows), value)


def _weights(B, lam, alphas):
    """``1 / (lam + alpha)`` for each alpha: (n_alphas, r)."""
    return 1.0 / (lam[None, :] + alphas[:, None])


def _invalid_alphas(B, lam, alphas) -> np.ndarray:
    """Penalties too small to compensate negative eigenvalues (float round-off), as himalaya."""
    lam0 = float(B.to_numpy(lam[:1])[0])
    if lam0 >= 0:
        return np.zeros(alphas.shape[0], dtype=bool)
    return B.to_numpy(alphas) < -2.0 * lam0


def _resolve_first(split: Split, n_filters: int, t_total: int) -> bool:
    """Whether ``((P g_m) Q^T) Y`` is cheaper than ``P (g_m Q^T Y)`` (kernel form only)."""
    if split.form != "kernel":
        return False
    return n_filters * split.test.size < t_total


#: Relative tolerance of the low-rank basis of the spectral filters, per working precision:
#: far below the rounding of the matrix products that use it.
FILTER_TOL = {"float32": 1e-9, "float64": 1e-15}
#: A QR factorisation's operations count this many times a matrix product's when choosing
#: whether it saves work (:func:`prepare_filters`): LAPACK's ``geqrf`` + ``orgqr`` ran at a
#: third of the float32 matrix product's rate (29 vs 104 GFLOP/s on one core, 5,545 x 2,304).
QR_WEIGHT = 3.0
#: Levels of halving in :func:`_upper_product` (backends without a triangular matrix product):
#: its cost is ``(1 + 2^-depth)`` r^2 per column, against 2 r^2 for a full product.
TRIANGLE_DEPTH = 3


def filter_basis(lam: np.ndarray, alphas: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray] | None:
    """A low-rank basis of the ridge filters ``d_a = 1 / (lam + alpha_a)``, if it saves work.

    The filters of a grid of penalties are far from independent (a Cauchy-like matrix): every
    penalty much larger than the largest eigenvalue gives nearly ``1 / alpha``, every one much
    smaller than the smallest gives nearly ``1 / lam``. The SVD of the (n_alphas, r) filter
    matrix, rows scaled to a maximum of 1, truncated at ``tol`` of its largest singular value,
    gives ``d_a = sum_m C[a, m] G[m]`` with ``m`` basis filters; the predictions of all
    penalties then cost ``m`` matrix products instead of ``n_alphas``, plus a small
    (n_alphas, m) combination. Returns ``(C, G)``, or None when ``m`` would not be smaller than
    ``n_alphas - 1`` (or a filter is not finite).

    Examples
    --------
    >>> lam = np.logspace(0, 4, 300)
    >>> C, G = filter_basis(lam, np.logspace(1, 20, 20), 1e-12)
    >>> G.shape[0] < 20, np.allclose(C @ G, 1 / (lam + np.logspace(1, 20, 20)[:, None]), rtol=1e-9)
    (True, True)
    """
    lam = np.asarray(lam, dtype=np.float64)
    alphas = np.asarray(alphas, dtype=np.float64)
    denom = lam[None, :] + alphas[:, None]
    if np.any(denom <= 0):
        return None
    F = 1.0 / denom
    scale = F.max(1)
    U, S, Wt = np.linalg.svd(F / scale[:, None], full_matrices=False)
    m = int(np.sum(S > tol * S[0]))
    if m >= alphas.size - 1:
        return None
    return scale[:, None] * U[:, :m] * S[:m], Wt[:m]


def validation_flops(n_val: int, rank: int, n_alphas: int, n_filters: int, basis: bool, triangular: bool
                     ) -> tuple[float, float, float]:
    """Per target, the floating-point operations of one split's validation losses of every
    penalty from the predictions (:func:`cv_losses`) and from the QR factors of the held-out
    projection (:func:`qr_losses`; ``triangular``: the product by ``R`` as BLAS's triangular
    one, else by halving, :func:`_upper_product`), and the factorisation's own (once per
    split): ``(predictions, qr, factorisation)``. The projection of the training responses
    (:meth:`Split.project`), which both need, is not counted."""
    v, r, a, m = float(n_val), float(rank), float(n_alphas), float(n_filters)
    predictions = 2.0 * m * v * r + (2.0 * a * m * v if basis else 0.0) + 3.0 * a * v
    qr = 2.0 * v * r + 2.0 * v + 2.0 * r + a * ((1.0 if triangular else 1.0 + 0.5**TRIANGLE_DEPTH) * r * r + 4.0 * r)
    return predictions, qr, max(4.0 * v * r * r - 4.0 / 3.0 * r**3, 0.0)


def prepare_filters(B, split: Split, alphas, t_total: int, dtype: str, gram: LayerGram | None = None,
                    qr_targets: int | None = None) -> None:
    """Choose the filters of a split (all penalties, or a low-rank basis), the product order and
    how the validation losses are computed.

    With the layer's ``gram``, the filters are kept in its design's store (they depend on the
    training rows' spectrum and the penalties only) and reused by later fits of the design.
    ``qr_targets``: the targets whose losses this split will give (default ``t_total``; 0 when
    the held-out residuals themselves are needed); the losses come from the QR factors of the
    held-out projection (:func:`qr_losses`) when that saves work for them."""
    qr_targets = t_total if qr_targets is None else qr_targets
    kept = None
    if gram is not None:
        grid = np.asarray(B.to_numpy(alphas), dtype=np.float64)
        tag = b"filters|" + dtype.encode()
        kept = _kept(gram, tag, split.train, grid)
    if kept is None:
        basis = filter_basis(B.to_numpy(split.lam), B.to_numpy(alphas), FILTER_TOL.get(dtype, 1e-15))
        if basis is None:
            kept = (_weights(B, split.lam, alphas), None)
        else:
            C, G = basis
            kept = (B.asarray_like(G, split.P), B.asarray_like(C, split.P))
        if gram is not None:
            _keep(gram, tag, split.train, grid, kept)
    split.filters, split.combine = kept
    m = split.filters.shape[0]
    if qr_targets and split.P.shape[0] > split.P.shape[1]:
        a = int(alphas.shape[0])
        held = _kept(gram, b"qr", split.train, split.test) if gram is not None else None
        pred, qr_cost, factor = validation_flops(split.test.size, split.lam.shape[0], a, m,
                                                 split.combine is not None, B.name == "numpy")
        if qr_targets * (pred - qr_cost) > (0.0 if held is not None else QR_WEIGHT * factor):
            if held is None:
                held = qr(B, split.P)
                split.flops += factor
                if gram is not None:
                    _keep(gram, b"qr", split.train, split.test, held)
            split.Q, split.R = held
            if split.combine is not None:  # every penalty's own filter: a product by R each
                split.filters, split.combine = _weights(B, split.lam, alphas), None
            return
    if _resolve_first(split, m, t_total):
        # one stacked matrix for all filters: (m, n_test, n_train), reused by every target batch
        split.resolve = (split.P[None, :, :] * split.filters[:, None, :]) @ split.V.T
        split.flops += 2.0 * m * split.test.size * split.lam.shape[0] ** 2


def _sqsum(B, E):
    """Column sums of squares of a 2-D or stacked 3-D array (over the sample axis)."""
    if B.name == "numpy":
        return np.einsum("...ij,...ij->...j", E, E)
    return (E * E).sum(-2)


def cv_losses(B, split: Split, gram: LayerGram, Y, alphas, XtY=None, counter=None, return_residuals=False,
              Z=None):
    """himalaya's ``l2_neg_loss`` of every penalty on the held-out rows: (n_alphas, n_targets).

    ``Y`` is the chunk of targets for all samples (backend array); ``counter`` (a dict) gets
    the floating-point operations done added to its ``"flops"`` key. The split's filters must
    have been chosen (:func:`prepare_filters`). With ``return_residuals``, also the held-out
    residuals (prediction minus response) of every penalty, (n_alphas, n_heldout, n_targets),
    for the joint models of :mod:`neuroenc.encoding._joint`. ``Z``: the split's projection of
    ``Y`` (:meth:`Split.project`), when the caller has it.
    """
    if split.R is not None and not return_residuals:
        return qr_losses(B, split, gram, Y, alphas, XtY, counter, Z)
    Yh = take_rows(B, Y, split.test)
    n_te, t = Yh.shape
    a = alphas.shape[0]
    G = split.filters
    m = G.shape[0]
    flops = 0.0
    if split.resolve is not None:
        # one matrix product for all filters: (m * n_te, n_train) @ (n_train, t)
        H = split.resolve.reshape(m * n_te, -1) @ take_rows(B, Y, split.train)
        flops += 2.0 * m * n_te * split.train.size * t
    else:
        if Z is None:
            Z = split.project(B, gram, Y, XtY)
            flops += split.project_flops(gram, t)
        if m * split.P.shape[0] * split.P.shape[1] * (4 if "32" in str(split.P.dtype) else 8) <= FILTERED_BYTES:
            H = (split.P[None, :, :] * G[:, None, :]) @ Z  # one batched product: the same GEMMs, fewer calls
        else:
            H = B.stack([(split.P * G[i][None, :]) @ Z for i in range(m)])
        flops += 2.0 * m * n_te * split.lam.shape[0] * t
    if split.combine is not None:
        # the predictions of every penalty from those of the basis filters
        pred = (split.combine @ H.reshape(m, n_te * t)).reshape(a, n_te, t)
        flops += 2.0 * a * m * n_te * t
    else:
        pred = H.reshape(a, n_te, t)
    del H
    pred -= Yh[None]
    loss = -_sqsum(B, pred) / n_te
    flops += 3.0 * a * n_te * t
    invalid = _invalid_alphas(B, split.lam, alphas)
    if invalid.any():
        loss[as_index(B, np.flatnonzero(invalid))] = -1e5
    if counter is not None:
        counter["flops"] = counter.get("flops", 0.0) + flops
    if return_residuals:
        return loss, pred
    return loss


def _upper_product(B, R, W, depth: int):
    """``R @ W`` for an upper-triangular ``R`` (r, r) and a stack ``W`` (..., r, k), skipping the
    zero lower triangle by halving ``depth`` times (torch has no triangular matrix product)."""
    r = R.shape[0]
    if depth <= 0 or r < 64:
        return R @ W
    h = r // 2
    top = _upper_product(B, R[:h, :h], W[..., :h, :], depth - 1) + R[:h, h:] @ W[..., h:, :]
    return B.concatenate([top, _upper_product(B, R[h:, h:], W[..., h:, :], depth - 1)], W.ndim - 2)


def qr_losses(B, split: Split, gram: LayerGram, Y, alphas, XtY=None, counter=None, Z=None):
    """The losses of :func:`cv_losses` without forming any validation prediction.

    With the held-out projection factorised, ``P = Q R`` (:func:`prepare_filters`), and
    ``c = Q^T y_H``, the validation residual of penalty ``a`` splits into the part inside the
    span of ``Q`` and the part orthogonal to it, which no penalty changes:
    ``||y_H - P w_a||^2 = ||c - R w_a||^2 + (||y_H||^2 - ||c||^2)``, with ``w_a = d_a * z`` and
    ``z`` the split's projection of the training responses (:meth:`Split.project`).
    Per target and penalty this costs a product by the (r, r) triangle ``R`` instead of the
    (n_validation, r) ``P``: less work when the validation rows outnumber the columns (primal
    form at many samples, e.g. 5,545 validation rows × 2,304 columns in LeBel et al. 2023).
    The same losses to rounding; the orthogonal part is summed in float64. Returns float64.
    """
    Yh = take_rows(B, Y, split.test)
    n_te, t = Yh.shape
    a, r = alphas.shape[0], split.lam.shape[0]
    flops = 0.0
    if Z is None:
        Z = split.project(B, gram, Y, XtY)
        flops += split.project_flops(gram, t)
    c = split.Q.T @ Yh  # (r, t)
    rest = to_float64(B, _sqsum(B, Yh)) - to_float64(B, _sqsum(B, c))  # ||y_H||^2 - ||c||^2
    if B.name == "numpy":
        from scipy.linalg import get_blas_funcs

        # (a, t, r) rows w_a^T, whose (a t, r) matrix is the Fortran-ordered (r, a t) of columns w_a
        W = np.empty((a, t, r), dtype=Z.dtype)
        np.multiply(Z.T[None, :, :], split.filters[:, None, :], out=W)
        trmm = get_blas_funcs("trmm", (split.R, W))
        RW = trmm(1.0, split.R, W.reshape(a * t, r).T, overwrite_b=1).T.reshape(a, t, r)  # (R w_a)^T
        del W
        RW -= c.T[None]
        inside = np.einsum("atr,atr->at", RW, RW)
        flops += a * t * r * r
    else:
        RW = _upper_product(B, split.R, split.filters[:, :, None] * Z[None], TRIANGLE_DEPTH)  # (a, r, t)
        RW -= c[None]
        inside = _sqsum(B, RW)
        flops += (1.0 + 0.5**TRIANGLE_DEPTH) * a * t * r * r
    del RW
    loss = -(to_float64(B, inside) + rest[None, :]) / n_te
    flops += 2.0 * n_te * r * t + 2.0 * (n_te + r) * t + a * t * 4.0 * r
    invalid = _invalid_alphas(B, split.lam, alphas)
    if invalid.any():
        loss[as_index(B, np.flatnonzero(invalid))] = -1e5
    if counter is not None:
        counter["flops"] = counter.get("flops", 0.0) + flops
    return loss


#: How the inner-CV losses are computed: ``"direct"`` (one eigendecomposition per inner split,
#: the reference), ``"deletion"`` (from the outer split's, :func:`deletion_split`) or ``"auto"``
#: (the one with fewer floating-point operations, :func:`plan_inner`).
INNER_PATHS = ("auto", "direct", "deletion")
#: Largest condition number, per working precision, of the outer spectrum's ``(lam_max + a) /
#: (lam_min + a)`` and of a penalty's deletion system for the deletion path to be used for that
#: penalty: beyond it the penalty's losses are computed by the direct path.
DELETION_COND = {"float32": 1e3, "float64": 1e7}


@dataclass
class Deletion:
    """An inner split whose validation residuals come from its outer split's spectrum.

    For ridge without intercept and a penalty ``a``, the fit that leaves out rows ``D`` of the
    outer training set ``T`` (here the inner split's validation and gap rows) has residuals
    ``e_D = (I - H_DD)^{-1} (y_D - yhat_D)`` on them, with ``H`` the hat matrix of the fit on
    all of ``T`` (the exact group-deletion identity). With the outer spectrum
    (``lam``, ``V``; :func:`decompose`) and ``d = 1 / (lam + a)``:

    - kernel form, ``I - H = V diag(a d) V^T``, so, with ``F = V[D]`` and no cancellation,
      ``e_D = S^{-1} F diag(d) Z`` where ``S = F diag(d) F^T`` and ``Z = V^T y_T``;
    - primal form, ``F = X[D] V``: ``e_D = S^{-1} (y_D - F diag(d) Z)`` where
      ``S = I - F diag(d) F^T`` and ``Z = V^T X[T]^T y_T``.

    Each penalty's ``S`` (|D| x |D|) is formed (on NumPy as ``(F d^.5)(F d^.5)^T`` by ``syrk``;
    or combined from a few basis filters' when fewer, :func:`filter_basis`) and factorised once
    for all targets. For many targets, one map per penalty (``maps``: ``A F diag(d)`` with ``A``
    the validation rows of ``S^{-1}``; ``[A, -A F diag(d)]`` in the primal form) gives every
    target's residuals from ``Z`` (and ``y_D``) in one product; for few, the factorisations are
    kept (``factors``) and applied to ``F diag(d) Z``. The split needs no eigendecomposition of
    its own. A penalty whose system is ill-conditioned (condition number or the outer spectrum's
    ``(lam_max + a) / (lam_min + a)`` above :data:`DELETION_COND`, or a round-off negative
    eigenvalue it does not dominate) takes its losses from ``fallback``, the direct
    :class:`Split` of the inner split (its numbers exactly: the direct path is the reference
    there; it is the less accurate of the two, see ``tests/test_inner_deletion.py``).
    """

    val: np.ndarray  # validation rows (absolute)
    removed: np.ndarray  # the rows D left out (absolute): validation and gap
    ok: np.ndarray  # (n_alphas,) bool: penalties computed from the outer spectrum
    form: str
    F: Any = None  # (|D|, r)
    maps: Any = None  # (n_ok, n_val, r) kernel, (n_ok, n_val, |D| + r) primal; or
    factors: Any = None  # per good penalty, the factorisation of S (:func:`_spd_factor`)
    at: Any = None  # positions of the validation rows in D
    fallback: Split | None = None
    flops: float = 0.0


def _spd_factor(B, S, cond_max: float, lower_only: bool = False):
    """A factorisation of a symmetric positive definite matrix for :func:`_spd_solve`, or None if
    its condition number exceeds ``cond_max`` (or it is not positive definite). On the NumPy
    backend, the lower Cholesky factor (only the lower triangle of ``S`` is read; the condition
    number is LAPACK's ``pocon`` estimate; ``lower_only``: the upper triangle of ``S`` holds
    zeros); elsewhere the inverse, from an eigendecomposition."""
    if B.name == "numpy":
        from scipy.linalg import get_lapack_funcs

        potrf, pocon = get_lapack_funcs(("potrf", "pocon"), (S,))
        c, info = potrf(S, lower=1, clean=1)
        if info != 0:
            return None
        low = np.abs(S if lower_only else np.tril(S))
        anorm = float((low.sum(0) + low.sum(1) - np.diagonal(low)).max())  # 1-norm of the symmetric S
        rcond, info = pocon(c, anorm, uplo="L")
        return c if info == 0 and rcond * cond_max >= 1.0 else None
    mu, U = eigh(B, S)
    mu_np = B.to_numpy(mu)
    if not float(mu_np[0]) * cond_max >= float(mu_np[-1]) > 0:
        return None
    return (U / mu[None, :]) @ U.T


def _spd_solve(B, factor, rhs):
    """``S^{-1} rhs`` from :func:`_spd_factor`."""
    if B.name == "numpy":
        from scipy.linalg import get_lapack_funcs

        sol, info = get_lapack_funcs("potrs", (factor,))(factor, rhs, lower=1)
        return sol
    return factor @ rhs


def _deletion_maps_first(n_removed: int, n_val: int, rank: int, form: str, n_targets: int) -> bool:
    """Whether forming the per-penalty maps (``A F diag(d)``) costs less than applying ``A`` to
    ``F diag(d) Z`` for every target."""
    d, v, r = float(n_removed), float(n_val), float(rank)
    width = r + (d if form == "primal" else 0.0)
    return 2.0 * d * d * v + 2.0 * v * d * r + n_targets * 2.0 * v * width < n_targets * (2.0 * d * r + 2.0 * d * d)


def deletion_flops(form: str, n_removed: int, n_val: int, rank: int, n_features: int,
                   n_alphas: int, n_filters: int, n_targets: int) -> float:
    """Floating-point operations of :func:`deletion_split` and its :func:`deletion_losses`."""
    d, v, r = float(n_removed), float(n_val), float(rank)
    setup = (2.0 * d * n_features * r if form == "primal" else 0.0) \
        + min(n_filters * (d * r + 2.0 * d * d * r), n_alphas * (2.0 * d * r + d * d * r)) \
        + n_alphas * (n_filters * d * d + d**3 / 3.0)
    if _deletion_maps_first(n_removed, n_val, rank, form, n_targets):
        width = r + (d if form == "primal" else 0.0)
        per_target = n_alphas * (2.0 * v * width + 3.0 * v)
        setup += n_alphas * (2.0 * d * d * v + 2.0 * v * d * r)
    else:
        per_target = n_alphas * (2.0 * d * r + 2.0 * d * d + 3.0 * v)
    return setup + n_targets * per_target


def direct_flops(form: str, n_train: int, n_val: int, rank: int, n_features: int, n_alphas: int,
                 n_filters: int, n_targets: int, decomposed: bool) -> float:
    """Floating-point operations of :func:`decompose` and :func:`cv_losses` for one inner split
    (the eigendecomposition only when not ``decomposed`` already, e.g. kept in a store)."""
    r, n_tr, v = float(rank), float(n_train), float(n_val)
    setup = 0.0 if decomposed else 9.0 * r**3 + (2.0 * min(n_train, n_features) * r * r if form == "primal" else 0.0)
    setup += 2.0 * v * r * r
    losses, qr_cost, factor = validation_flops(n_val, rank, n_alphas, n_filters, True, True)
    if v > r:  # the losses from the held-out projection's QR factors, when cheaper (prepare_filters)
        if n_targets * (losses - qr_cost) > QR_WEIGHT * factor:
            losses, setup = qr_cost, setup + QR_WEIGHT * factor
    return setup + n_targets * (2.0 * r * n_tr + losses)


def deletion_split(B, gram: LayerGram, outer: Split, train: np.ndarray, val: np.ndarray, alphas,
                   dtype: str, n_targets: int = 1) -> Deletion:
    """The inner split (``train``, ``val``) of ``outer`` from the outer spectrum (:class:`Deletion`),
    prepared for ``n_targets`` targets (which order of the products)."""
    train, val = np.asarray(train), np.asarray(val)
    n = gram.X.shape[0]
    pos = np.full(n, -1)
    pos[outer.train] = np.arange(outer.train.size)
    inside = np.zeros(n, dtype=bool)
    inside[outer.train] = True
    inside[train] = False
    removed = np.flatnonzero(inside)  # validation and gap rows, sorted
    at = np.minimum(np.searchsorted(removed, val), max(removed.size - 1, 0))
    if np.any(pos[train] < 0) or removed.size == 0 or not np.array_equal(removed[at], val):
        raise ValueError("an inner split's rows must lie in its outer training set, its validation rows outside its "
                         "training rows; build the inner splits with neuroenc.encoding.cv.inner_splits.")
    alphas_np = np.asarray(B.to_numpy(alphas), dtype=np.float64)
    lam_np = np.asarray(B.to_numpy(outer.lam), dtype=np.float64)
    cond_max = DELETION_COND.get(dtype, DELETION_COND["float32"])
    kappa = (lam_np[-1] + alphas_np) / (max(lam_np[0], 0.0) + alphas_np)
    ok = kappa <= cond_max
    if lam_np[0] < 0:  # round-off negative eigenvalues: the direct path decides what is valid
        ok &= alphas_np > -4.0 * lam_np[0]
    d_rows, r, v = removed.size, lam_np.size, val.size
    flops = 0.0
    if outer.form == "kernel":
        F = take_rows(B, outer.V, pos[removed])
    else:
        F = take_rows(B, gram.X, removed) @ outer.V
        flops += 2.0 * d_rows * gram.X.shape[1] * r
    good = np.flatnonzero(ok)
    # the (|D|, |D|) matrices of the good penalties, from those of a few basis filters when fewer
    basis = filter_basis(lam_np, alphas_np[good], FILTER_TOL.get(dtype, 1e-15)) if good.size else None
    syrk = None
    if B.name == "numpy" and (basis is None or 2 * basis[1].shape[0] >= good.size):
        from scipy.linalg import get_blas_funcs

        syrk, basis = get_blas_funcs("syrk", (F,)), None  # F diag(d) F^T as (F d^.5)(F d^.5)^T: half the work
    if basis is not None:
        C, G = basis
        G = B.asarray_like(G, F)
        Sm = B.stack([(F * G[m][None, :]) @ F.T for m in range(G.shape[0])])
        S_all = (B.asarray_like(C, F) @ Sm.reshape(G.shape[0], -1)).reshape(good.size, d_rows, d_rows)
        flops += G.shape[0] * (d_rows * r + 2.0 * d_rows * d_rows * r) + 2.0 * good.size * G.shape[0] * d_rows**2
        del Sm
    else:
        S_all = None
    maps_first = _deletion_maps_first(d_rows, v, r, outer.form, n_targets)
    eye = B.asarray_like(np.eye(d_rows), F) if outer.form == "primal" else None
    A_list, maps = [], []
    for j, i in enumerate(good):
        filt = 1.0 / (outer.lam + alphas[int(i)])
        Fd = F * filt[None, :]
        if syrk is not None:  # the lower triangle only, which is all _spd_factor reads
            Fs = F * np.sqrt(filt)[None, :]
            S = syrk(1.0, Fs, lower=1) if outer.form == "kernel" else syrk(-1.0, Fs, beta=1.0, c=eye, lower=1)
            flops += 2.0 * d_rows * r + d_rows * d_rows * r
        elif S_all is None:
            S = Fd @ F.T
            flops += d_rows * r + 2.0 * d_rows * d_rows * r
        else:
            S = S_all[j]
        if outer.form == "primal" and syrk is None:
            S = eye - S
        factor = _spd_factor(B, S, cond_max, lower_only=syrk is not None)
        flops += d_rows**3 / 3.0
        if factor is None:
            ok[i] = False
            continue
        if not maps_first:
            A_list.append(factor)
            continue
        E = B.zeros_like(F, shape=(d_rows, v))
        E[as_index(B, at), as_index(B, np.arange(v))] = 1.0
        A = _spd_solve(B, factor, E).T  # the validation rows of S^{-1}
        flops += 2.0 * d_rows * d_rows * v
        if maps_first:
            M = A @ Fd
            flops += d_rows * r + 2.0 * v * d_rows * r
            maps.append(M if outer.form == "kernel" else B.concatenate([A, -M], 1))
    del S_all
    fallback = None
    if not ok.all():
        fallback = decompose(B, gram, train, val)
        prepare_filters(B, fallback, alphas, n_targets, dtype)  # all penalties: the direct path's numbers
        flops += fallback.flops
    split = Deletion(val, removed, ok, outer.form, F, flops=flops, fallback=fallback)
    if maps_first and maps:
        split.maps = B.stack(maps)
    elif A_list:
        split.factors = A_list
        split.at = at
    return split


def deletion_losses(B, split: Deletion, outer: Split, gram: LayerGram, Y, Z, alphas, XtY=None, counter=None):
    """himalaya's ``l2_neg_loss`` of every penalty on the validation rows of a :class:`Deletion`
    split: (n_alphas, n_targets), as :func:`cv_losses`. ``Z`` is the outer projection of ``Y``
    (``outer.project``)."""
    t = Y.shape[1]
    a = alphas.shape[0]
    v, d_rows, r = split.val.size, split.removed.size, outer.lam.shape[0]
    flops = 0.0
    loss = None
    if split.maps is not None or split.factors is not None:
        k = int(split.ok.sum())
        if split.maps is not None:
            rhs = Z if split.form == "kernel" else B.concatenate([take_rows(B, Y, split.removed), Z], 0)
            E = (split.maps.reshape(k * v, -1) @ rhs).reshape(k, v, t)
            flops += 2.0 * k * v * rhs.shape[0] * t
        else:
            good = np.flatnonzero(split.ok)
            yd = take_rows(B, Y, split.removed) if split.form == "primal" else None
            E = []
            for j, i in enumerate(good):
                u = split.F @ (Z / (outer.lam + alphas[int(i)])[:, None])
                E.append(take_rows(B, _spd_solve(B, split.factors[j], u if yd is None else yd - u), split.at))
            E = B.stack(E)
            flops += k * (2.0 * d_rows * r + 2.0 * d_rows * d_rows) * t
        part = -_sqsum(B, E) / v
        flops += 3.0 * k * v * t
        del E
        if split.fallback is None:
            loss = part
        else:
            loss = B.zeros_like(part, shape=(a, t))
            loss[as_index(B, np.flatnonzero(split.ok))] = part
    if split.fallback is not None:
        bad = as_index(B, np.flatnonzero(~split.ok))
        part = cv_losses(B, split.fallback, gram, Y, alphas, XtY, counter)
        if loss is None:
            loss = part
        else:
            loss[bad] = part[bad]
    if counter is not None:
        counter["flops"] = counter.get("flops", 0.0) + flops
    return loss


def _check_inner_path(inner_path: str) -> None:
    if inner_path not in INNER_PATHS:
        raise ValueError(f"Invalid value for 'inner_path'. Allowed values are {', '.join(map(repr, INNER_PATHS))}, "
                         f"but got {inner_path!r} instead.")


def plan_inner(B, gram: LayerGram, outer: Split, inner_k, alphas, t: int, path: str,
               cache: EigenCache | None = None, dtype: str = "float64") -> str:
    """``"direct"`` or ``"deletion"`` for the inner splits of one outer fold: ``path`` unless
    ``"auto"``, then the one with fewer floating-point operations for ``t`` targets (an inner
    eigendecomposition already held, in ``cache`` or the design's store, costs nothing); direct
    when a penalty would fall back for the outer spectrum's conditioning (:data:`DELETION_COND`)."""
    if path != "auto":
        return path
    a = int(alphas.shape[0])
    lam_np = np.asarray(B.to_numpy(outer.lam), dtype=np.float64)
    alphas_np = np.asarray(B.to_numpy(alphas), dtype=np.float64)
    kappa = (lam_np[-1] + alphas_np) / (max(lam_np[0], 0.0) + alphas_np)
    if np.any(kappa > DELETION_COND.get(dtype, DELETION_COND["float32"])) or \
            (lam_np[0] < 0 and np.any(alphas_np <= -4.0 * lam_np[0])):
        return "direct"
    inside = np.zeros(gram.X.shape[0], dtype=bool)
    inside[outer.train] = True
    for tr, va in inner_k:  # splits given by hand that are not deletions from the outer training set
        tr, va = np.asarray(tr), np.asarray(va)
        if not (inside[tr].all() and inside[va].all()) or np.isin(va, tr).any() or va.size == 0:
            return "direct"
    basis = filter_basis(lam_np, alphas_np, 1e-15)
    m = a if basis is None else basis[1].shape[0]
    p = gram.X.shape[1]
    n_outer = outer.train.size
    new = outer.project_flops(gram, t)  # the outer projection the deletion path needs
    old = 0.0
    for tr, va in inner_k:
        tr = np.asarray(tr)
        held = (cache is not None and cache.has(tr)) or \
            (gram.store is not None and gram.store.has(gram.key, tr.tobytes()))
        r_in = tr.size if gram.form == "kernel" else p
        old += direct_flops(gram.form, tr.size, len(va), r_in, p, a, m, t, held)
        new += deletion_flops(gram.form, n_outer - tr.size, len(va), lam_np.size, p, a, m, t)
    return "deletion" if new < old else "direct"


def select_alphas(B, losses_sum, n_splits: int, alphas):
    """Index of the best penalty per target, as himalaya's ``_select_best_alphas`` (local alpha).

    ``losses_sum``: (n_alphas, n_targets) float64 sum over inner folds of ``l2_neg_loss``.
    """
    mean = losses_sum / n_splits
    mean = mean + (B.log(to_float64(B, alphas)) * 1e-10)[:, None]
    return B.argmax(mean, 0)


def refit_predict(B, split: Split, gram: LayerGram, Y, alphas, best, XtY=None, counter=None):
    """Predict the held-out rows with each target's penalty ``alphas[best[t]]``: (n_test, t).

    The refit treats negative eigenvalues (round-off) as zeros, as himalaya's refit does.
    """
    lam = B.clip(split.lam, 0, None)
    best_np = B.to_numpy(best)
    t = best_np.shape[0]
    n_te, r = split.test.size, lam.shape[0]
    used = np.unique(best_np)
    flops = 0.0
    if split.form == "kernel" and used.size * n_te < t:
        pred = B.zeros_like(split.P, shape=(n_te, t))
        Ytr = take_rows(B, Y, split.train)
        for k in used:
            cols = np.flatnonzero(best_np == k)
            M = (split.P * (1.0 / (lam + alphas[int(k)]))[None, :]) @ split.V.T
            pred[:, as_index(B, cols)] = M @ Ytr[:, as_index(B, cols)]
            flops += 2.0 * n_te * r * r + 2.0 * n_te * r * cols.size
    else:
        Z = split.project(B, gram, Y, XtY)
        flops += split.project_flops(gram, t)
        D = 1.0 / (lam[:, None] + alphas[best][None, :])
        pred = split.P @ (D * Z)
        flops += 2.0 * n_te * r * t
    if counter is not None:
        counter["flops"] = counter.get("flops", 0.0) + flops
    return pred


def dual_or_primal_coef(B, gram: LayerGram, Y, alphas, best, train=None, spectrum=None):
    """Refit on ``train`` (default all samples) with per-target penalties.

    Returns ``("dual", coef (n_train, t))`` in the kernel form (features outnumber samples;
    primal weights are never formed) and ``("primal", coef (n_features, t))`` otherwise.
    ``spectrum``: ``(lam, V)`` of the training Gram, when already computed.
    """
    n = gram.X.shape[0]
    train = np.arange(n) if train is None else np.asarray(train)
    lam_alpha = alphas[best][None, :]
    if gram.form == "kernel":
        lam, V = spectrum if spectrum is not None else eigh(B, take_block(B, gram.gram, train, train))
        lam = B.clip(lam, 0, None)
        Z = V.T @ take_rows(B, Y, train)
        return "dual", V @ (Z / (lam[:, None] + lam_alpha))
    Xtr = take_rows(B, gram.X, train)
    lam, V = spectrum if spectrum is not None else eigh(B, Xtr.T @ Xtr)
    lam = B.clip(lam, 0, None)
    Z = V.T @ (Xtr.T @ take_rows(B, Y, train))
    return "primal", V @ (Z / (lam[:, None] + lam_alpha))


def fold_scores(B, Yt, pred, r2: bool = True):
    """Pearson r and R² per target of held-out predictions: two (n_targets,) float64 arrays.

    A target constant in the held-out part gets r = NaN and R² = NaN; a constant prediction
    (e.g. every penalty maximal) gets r = 0. ``r2=False``: R² is not computed (None), as the
    refit null needs only r (the same r).
    """
    Yt = to_float64(B, Yt)
    pred = to_float64(B, pred)
    yc = Yt - Yt.mean(0)
    pc = pred - pred.mean(0)
    if B.name == "numpy":  # the sums of products without their temporaries (the refit null's many draws)
        syy, spp, spy = (np.einsum("i...,i...->...", u, v) for u, v in ((yc, yc), (pc, pc), (pc, yc)))
        if r2:
            Yt = Yt - pred
            ss_res = np.einsum("i...,i...->...", Yt, Yt)
    else:
        syy = (yc * yc).sum(0)
        spp = (pc * pc).sum(0)
        spy = (pc * yc).sum(0)
        if r2:
            ss_res = ((Yt - pred) ** 2).sum(0)
    syy_np, spp_np, spy_np = (B.to_numpy(v) for v in (syy, spp, spy))
    syy_np, spp_np = np.asarray(syy_np, float), np.asarray(spp_np, float)
    if not r2:
        return _pearson(spy_np, syy_np, spp_np), None
    with np.errstate(invalid="ignore", divide="ignore"):
        r2_np = 1.0 - B.to_numpy(ss_res) / syy_np
    return _pearson(spy_np, syy_np, spp_np), np.where(syy_np <= np.finfo(np.float64).tiny, np.nan, r2_np)


def _pearson(spy, syy, spp) -> np.ndarray:
    """Pearson r from the sums of products of centred predictions and responses: NaN for a
    constant response, 0 for a constant prediction, clipped to [-1, 1]."""
    tiny = np.finfo(np.float64).tiny
    with np.errstate(invalid="ignore", divide="ignore"):
        r = spy / np.sqrt(syy * spp)
    r = np.where(spp <= tiny, 0.0, r)
    r = np.where(syy <= tiny, np.nan, r)
    return np.clip(r, -1.0, 1.0)


def pooled_sums(B, Yt, pred) -> np.ndarray:
    """Sums of one fold's held-out responses and predictions, to pool folds: (6, n_targets).

    Rows: ``n``, ``sum y``, ``sum p``, ``sum y^2``, ``sum p^2``, ``sum y p`` (float64).
    """
    Yt = to_float64(B, Yt)
    pred = to_float64(B, pred)
    sums = [Yt.sum(0), pred.sum(0), (Yt * Yt).sum(0), (pred * pred).sum(0), (Yt * pred).sum(0)]
    out = np.stack([np.asarray(B.to_numpy(v), dtype=np.float64) for v in sums])
    return np.vstack([np.full((1, out.shape[1]), float(Yt.shape[0])), out])


def pooled_r(sums: np.ndarray) -> np.ndarray:
    """Pearson r of the pooled held-out predictions of all folds from :func:`pooled_sums`
    added over folds; NaN for a target constant over the pooled samples, 0 for a constant
    prediction (as :func:`fold_scores`)."""
    n, sy, sp, syy, spp, syp = sums
    with np.errstate(invalid="ignore", divide="ignore"):
        vy = syy - sy * sy / n
        vp = spp - sp * sp / n
        cov = syp - sy * sp / n
        r = cov / np.sqrt(vy * vp)
    tiny = np.finfo(np.float64).tiny
    r = np.where(vp <= 1e-12 * spp + tiny, 0.0, r)  # a constant prediction
    r = np.where(vy <= 1e-12 * syy + tiny, np.nan, r)  # a constant response
    return np.clip(r, -1.0, 1.0)


@dataclass
class SolveSplit:
    """A split whose refits need only the map from training responses to held-out predictions
    of a few penalties (the ``"hat"`` order of :func:`refit_null`), each from a Cholesky solve of
    the training Gram plus the penalty (``n^3 / 3`` operations) instead of an eigendecomposition
    (about ``9 n^3``): the same map to rounding. NumPy backend only; see :func:`refit_split`."""

    train: np.ndarray
    test: np.ndarray
    form: str
    flops: float = 0.0

    def hat_map(self, B, gram: LayerGram, alpha: float):
        """``(M, flops)``: ``M`` (n_test, n_train) maps ``Y[train]`` to the held-out predictions."""
        from scipy.linalg import cho_factor, cho_solve

        if self.form == "kernel":
            A = take_block(B, gram.gram, self.train, self.train)
            A[np.diag_indices_from(A)] += alpha
            rhs = take_block(B, gram.gram, self.train, self.test)
            n = self.train.size
            M = cho_solve(cho_factor(A, lower=True, check_finite=False), rhs, check_finite=False).T
            return M, n**3 / 3.0 + 2.0 * n * n * self.test.size
        Xt = take_rows(B, gram.X, self.train)
        A = Xt.T @ Xt
        A[np.diag_indices_from(A)] += alpha
        p = A.shape[0]
        W = cho_solve(cho_factor(A, lower=True, check_finite=False), take_rows(B, gram.X, self.test).T,
                      check_finite=False)
        return W.T @ Xt.T, 2.0 * self.train.size * p * p + p**3 / 3.0 + 2.0 * p * p * self.test.size \
            + 2.0 * self.test.size * p * self.train.size


def refit_split(B, gram: LayerGram, train: np.ndarray, test: np.ndarray, used: np.ndarray, alphas,
                n_targets: int, n_draws: int):
    """The cheaper of :func:`decompose` and a :class:`SolveSplit` for refitting ``n_targets``
    targets on ``n_draws`` draws with the penalties ``alphas[used]`` (flop counts; the
    eigendecomposition costs nothing when the design's store holds it)."""
    train, test = np.asarray(train), np.asarray(test)
    if B.name != "numpy" or (gram.store is not None and gram.store.has(gram.key, train.tobytes())):
        return decompose(B, gram, train, test)
    alphas_np = np.asarray(B.to_numpy(alphas), dtype=np.float64)
    if used.size == 0 or alphas_np[used].min() <= 0:
        return decompose(B, gram, train, test)
    n_tr, n_te, p = train.size, test.size, gram.X.shape[1]
    r = n_tr if gram.form == "kernel" else p
    if gram.form == "kernel":
        solve = used.size * (n_tr**3 / 3.0 + 2.0 * n_tr * n_tr * n_te)
        eig = 9.0 * r**3 + 2.0 * n_te * r * r + used.size * 2.0 * n_te * r * r
    else:
        solve = used.size * (2.0 * n_tr * p * p + p**3 / 3.0 + 2.0 * p * p * n_te + 2.0 * n_te * p * n_tr)
        eig = 2.0 * n_tr * p * p + 9.0 * p**3 + 2.0 * n_te * p * p + used.size * 2.0 * n_te * r * (r + n_tr)
    per_draw = 2.0 * n_te * n_tr * n_draws * n_targets
    project = (2.0 * n_tr * r + 2.0 * n_te * r) * n_draws * n_targets
    if solve + per_draw < eig + min(per_draw, project):
        return SolveSplit(train, test, gram.form)
    return decompose(B, gram, train, test)


#: Bytes the held-out responses of every draw of one outer fold may take (float64) for
#: :func:`refit_null` to keep them for the next layers (:func:`held_out_r`).
HELD_BYTES = 64 * 2**20


def held_out_r(pred, yc, syy) -> np.ndarray:
    """Pearson r of held-out predictions, as :func:`fold_scores` (the same numbers, on NumPy), from
    the centred held-out responses ``yc`` (float64) and their sums of squares ``syy``, which the
    draws of a refit null share across layers: only the predictions' terms are computed."""
    pred = np.asarray(pred, dtype=np.float64)
    pc = pred - pred.mean(0)
    spp, spy = (np.einsum("i...,i...->...", u, v) for u, v in ((pc, pc), (pc, yc)))
    return _pearson(spy, syy, spp)


def refit_null(B, split, gram: LayerGram, Y, alphas, best, draws, *,
               batch_bytes: int = REFIT_BATCH_BYTES, counter=None, order: str = "auto",
               base=None, held: dict | None = None) -> np.ndarray:
    """Held-out r of the refitted model for each draw of the responses: (n_draws, t).

    For each draw, every run's response is shifted circularly (``draws``: a
    :class:`~neuroenc.encoding.stats.ShiftedDraws`), or the stimuli are permuted (within
    groups; a :class:`~neuroenc.encoding.stats.PermutedDraws`), the model is refitted on the split's
    training rows with each target's penalty ``alphas[best]`` (the one chosen on the real
    responses) and scored on its held-out rows. Unlike a shift of the held-out response against
    fixed predictions, the draws keep the dependence between the folds' scores that their shared
    training data create, so the fold-mean null is calibrated.

    Two orders of the same products, the cheaper chosen (``order="auto"``): ``"project"``
    projects every draw's training responses on the split's spectrum (as
    :func:`refit_predict`), ``"hat"`` forms the (n_test, n_train) map from training responses
    to held-out predictions once per penalty used, then applies it to every draw (cheaper when
    the held-out rows are few and the targets share few penalties, as for ROIs).

    With ``base`` (a backend array shaped like ``Y``), each draw's response is ``base + Y[idx]``
    instead of ``Y[idx]``: a fixed signal plus shifted residuals (the draws of the layer
    comparisons, :func:`comparison_draws`).

    ``held``: a dict that the calls of every layer for the same split, responses ``Y`` and
    draws share (:func:`fit_layer_cv` keeps one per outer fold and target batch): the draws'
    sample orders (``"hat"``) or responses (``"project"``) and, on NumPy, their centred held-out
    responses are made by the first layer and reused by the others (:func:`held_out_r`; the
    same numbers).
    """
    distinct, inverse = draws.distinct() if hasattr(draws, "distinct") else (draws, None)
    if inverse is not None:  # repeated draws (few shifts of a short run): each computed once
        return refit_null(B, split, gram, Y, alphas, best, distinct, batch_bytes=batch_bytes,
                          counter=counter, order=order, base=base, held=held)[inverse]
    solved = isinstance(split, SolveSplit)
    lam = None if solved else B.clip(split.lam, 0, None)
    n, t = Y.shape
    if held is not None:  # kept for these draws and responses only
        kept_y = held.get("Y")
        if held.get("draws") is not draws or kept_y is None or kept_y.shape != tuple(Y.shape) or \
                not np.array_equal(kept_y, np.asarray(B.to_numpy(Y))):
            held.clear()
            held["draws"], held["Y"] = draws, np.array(B.to_numpy(Y))
    r = split.train.size if solved else lam.shape[0]
    n_draws = draws.n_draws
    n_te, n_tr = split.test.size, split.train.size
    itemsize = 4 if "32" in str(Y.dtype) else 8
    p_xty = gram.X.shape[1] if not solved and split.removed is not None else 0
    best_np = np.asarray(B.to_numpy(best))
    used = np.unique(best_np)
    if solved:
        order = "hat"
    elif order == "auto":
        per_col = split.project_flops(gram, 1) + 2.0 * n * p_xty + 2.0 * n_te * r
        hat_map = 2.0 * n_te * r * r + (2.0 * n_te * r * n_tr if split.form == "primal" else 0.0)
        order = "hat" if used.size * hat_map + 2.0 * n_te * n_tr * n_draws * t < per_col * n_draws * t \
            else "project"
    out = np.empty((n_draws, t))
    flops = 0.0
    if order == "hat":
        alphas_np = np.asarray(B.to_numpy(alphas), dtype=np.float64)
        # batches of draws sized for the largest group of targets sharing a penalty
        c_max = int(max(np.sum(best_np == a) for a in used))
        step = int(max(1, min(n_draws, batch_bytes // refit_null_draw_bytes(n_tr, 0, 0, n_te, c_max, itemsize))))
        starts = list(range(0, n_draws, step))
        # the sample orders of the split's rows, draw-minor: kept for every penalty when small
        keep = n_draws * n * 4 <= REFIT_INDEX_BYTES

        def rows_of(start):
            idx = draws.indices(start, start + step)
            return idx.shape[0], idx[:, split.train].T.reshape(-1), idx[:, split.test].T.reshape(-1)

        hh = held.setdefault(("hat", step), {}) if held is not None else None  # per size of the batches
        kept = None
        if keep:
            kept = hh.get("rows") if hh is not None else None
            if kept is None:
                kept = [rows_of(start) for start in starts]
                if hh is not None:
                    hh["rows"] = kept
        # the centred held-out responses of every draw and target, shared by every layer (NumPy;
        # not for one column, whose sums NumPy orders otherwise)
        share = held is not None and keep and base is None and B.name == "numpy" and \
            n_draws * t * (8 * 2 * n_te + itemsize * n_tr) <= HELD_BYTES

        def held_of(b):
            # per batch of draws: the centred held-out responses (all targets, and each target's
            # alone, contiguous), their sums of squares, and each target's training draws
            entry = hh.get(("held", b))
            if entry is None:
                k, tr_rows, te_rows = kept[b]
                yte = np.asarray(B.to_numpy(take_rows(B, Y, te_rows)), dtype=np.float64).reshape(n_te, k * t)
                yc = yte - yte.mean(0)
                yc3 = yc.reshape(n_te, k, t)
                ytr3 = take_rows(B, Y, tr_rows).reshape(n_tr, k, t)
                entry = hh[("held", b)] = (yc3, np.einsum("i...,i...->...", yc, yc).reshape(k, t),
                                             [np.ascontiguousarray(yc3[:, :, j]) for j in range(t)],
                                             [np.ascontiguousarray(ytr3[:, :, j]) for j in range(t)])
            return entry

        for a in used:
            cols = np.flatnonzero(best_np == a)
            c = cols.size
            # the map depends on the design, the split and the penalty only: kept for later fits of the design
            tag = b"hat-map|" + (b"solve|" if solved else b"spectral|") + str(Y.dtype).encode()
            penalty = alphas_np[int(a):int(a) + 1]
            M = _kept(gram, tag, split.train, split.test, penalty)
            if M is None:
                if solved:
                    M, f = split.hat_map(B, gram, float(penalty[0]))
                    flops += f
                else:
                    M = (split.P * (1.0 / (lam + alphas[int(a)]))[None, :]) @ split.V.T  # (n_te, r)
                    if split.form == "primal":
                        M = M @ take_rows(B, gram.X, split.train).T  # (n_te, n_tr)
                    flops += 2.0 * n_te * r * r + (2.0 * n_te * r * n_tr if split.form == "primal" else 0.0)
                _keep(gram, tag, split.train, split.test, penalty, M)
            Yc = Y[:, as_index(B, cols)]
            bc = base[:, as_index(B, cols)] if base is not None else None
            for b, start in enumerate(starts):
                k, tr_rows, te_rows = kept[b] if keep else rows_of(start)
                if share and k * c >= 2:
                    yc_all, syy_all, yc_one, ytr_one = held_of(b)
                    if c == 1:  # a target alone: its draws as kept (the same array the gather gives)
                        ytr, yc = ytr_one[cols[0]], yc_one[cols[0]]
                    else:
                        ytr = take_rows(B, Yc, tr_rows).reshape(n_tr, k * c)
                        yc = yc_all[:, :, cols].reshape(n_te, k * c)
                    rk = held_out_r(M @ ytr, yc, syy_all[:, cols].reshape(k * c))
                    out[start:start + k, cols] = rk.reshape(k, c)
                    flops += 2.0 * n_te * n_tr * k * c
                    continue
                # each target's draws gathered once, with its penalty's group (take_rows)
                ytr = take_rows(B, Yc, tr_rows).reshape(n_tr, k * c)
                yte = take_rows(B, Yc, te_rows).reshape(n_te, k * c)
                if bc is not None:
                    ytr = (ytr.reshape(n_tr, k, c) + take_rows(B, bc, split.train)[:, None, :]).reshape(n_tr, k * c)
                    yte = (yte.reshape(n_te, k, c) + take_rows(B, bc, split.test)[:, None, :]).reshape(n_te, k * c)
                rk, _ = fold_scores(B, yte, M @ ytr, r2=False)
                out[start:start + k, cols] = rk.reshape(k, c)
                flops += 2.0 * n_te * n_tr * k * c
        if counter is not None:
            counter["flops"] = counter.get("flops", 0.0) + flops
        return out
    D = 1.0 / (lam[:, None] + alphas[best][None, :])  # (r, t)
    per_draw = refit_null_draw_bytes(n, p_xty, r, split.test.size, t, itemsize)
    step = int(max(1, min(n_draws, batch_bytes // per_draw)))
    # the draws' responses and centred held-out responses, kept for the next calls (NumPy, small)
    kept_p = None
    if held is not None and base is None and B.name == "numpy" and \
            n_draws * t * (itemsize * n + 8 * 2 * n_te) <= HELD_BYTES:
        kept_p = held.setdefault(("project", step), {})
    for start in range(0, n_draws, step):
        entry = kept_p.get(start) if kept_p is not None else None
        if entry is None:
            idx = draws.indices(start, start + step)  # (k, n)
            k = idx.shape[0]
            # sample-major: row i, column d * t + c is draw d's response of target c at sample i
            Yp = take_rows(B, Y, idx.T.reshape(-1)).reshape(n, k * t)
            if base is not None:
                Yp = (Yp.reshape(n, k, t) + base[:, None, :]).reshape(n, k * t)
            yc = syy = None
            if kept_p is not None:
                yte = np.asarray(B.to_numpy(take_rows(B, Yp, split.test)), dtype=np.float64)
                yc = yte - yte.mean(0)
                syy = np.einsum("i...,i...->...", yc, yc)
                kept_p[start] = (k, Yp, yc, syy)
        else:
            k, Yp, yc, syy = entry
        XtY = gram.X.T @ Yp if split.removed is not None else None
        Z = split.project(B, gram, Yp, XtY)
        pred = split.P @ (Z.reshape(r, k, t) * D[:, None, :]).reshape(r, k * t)
        if yc is not None:
            rk = held_out_r(pred, yc, syy)
        else:
            rk, _ = fold_scores(B, take_rows(B, Yp, split.test), pred, r2=False)
        out[start:start + k] = rk.reshape(k, t)
        flops += split.project_flops(gram, k * t) + 2.0 * split.test.size * r * k * t
        if XtY is not None:
            flops += 2.0 * n * gram.X.shape[1] * k * t
    if counter is not None:
        counter["flops"] = counter.get("flops", 0.0) + flops
    return out


def refit_null_draw_bytes(n_samples: int, n_xty: int, rank: int, n_test: int, n_targets: int,
                          itemsize: int) -> int:
    """Bytes one draw of :func:`refit_null` holds at once: the shifted responses, ``X^T Y``
    (``n_xty`` rows, primal form only), the projections and their filtered copy, the held-out
    predictions and responses, the float64 temporaries of the scores, and the draw's indices."""
    work = n_samples + n_xty + 2 * rank + 2 * n_test
    return int(max(1, n_targets * (itemsize * work + 8 * 6 * n_test) + 16 * n_samples))


def refit_null_flops(n_samples: int, n_features: int, n_targets: int, n_draws: int, n_folds: int,
                     n_layers: int = 1, n_alphas: int | None = None) -> float:
    """About the floating-point operations of :func:`refit_null` for ``n_layers`` layers.

    Per outer fold, the cheaper of its two orders: ``"project"`` (per draw and target, the
    projection of the shifted training responses on the spectrum, ``2 n_train r`` with
    r = min(n_train, p), the ``X^T Y`` product of the primal form, ``2 n p``, and the held-out
    predictions, ``2 n_test r``) and ``"hat"`` (one (n_test, n_train) map per penalty used, at
    most ``min(n_targets, n_alphas)`` of them, then ``2 n_test n_train`` per draw and target).
    """
    n, p, t = int(n_samples), int(n_features), int(n_targets)
    n_te = n / max(n_folds, 1)
    n_tr = max(n - n_te, 1.0)
    r = min(n_tr, p)
    primal = p < n_tr
    project = n_draws * t * (2.0 * n_tr * r + (2.0 * n * p if primal else 0.0) + 2.0 * n_te * r)
    used = min(t, n_alphas) if n_alphas else t
    hat = used * (2.0 * n_te * r * r + (2.0 * n_te * r * n_tr if primal else 0.0)) \
        + 2.0 * n_te * n_tr * n_draws * t
    return min(project, hat) * n_folds * n_layers


def auto_batch(n_alphas: int, n_heldout: int, itemsize: int, n_targets: int,
               batch_bytes: int = DEFAULT_BATCH_BYTES) -> int:
    """Targets per batch so that a block of predictions fits in ``batch_bytes``."""
    per_target = max(n_alphas * n_heldout * itemsize * 2, 1)
    return int(max(1, min(n_targets, batch_bytes // per_target)))


def _layer_gram(X, outer, form: str, counter: dict | None,
                store: SpectrumStore | None = None) -> tuple[str, LayerGram, dict]:
    """The form for the largest outer training set, the layer's Gram matrix, and the flop counter
    (created when None) charged with it: what every per-layer CV pass starts from. With a
    ``store`` (NumPy backend only), a Gram computed before for the same design is reused and the
    splits' eigendecompositions are kept there."""
    form = choose_form(max(tr.size for tr, _ in outer), X.shape[1], form)
    counter = {} if counter is None else counter
    tic = _tic(counter)
    if store is not None and current_backend().name == "numpy":
        key = store.key_of(X, form)
        kept = store.get(key, b"gram")
        if kept is None:
            kept = LayerGram.compute(X, form).gram
            counter["flops"] = counter.get("flops", 0.0) + LayerGram(form, X, kept).flops()
            store.put(key, b"gram", kept)
        _toc("kernels", tic, counter)
        return form, LayerGram(form, X, kept, store, key), counter
    gram = LayerGram.compute(X, form)
    counter["flops"] = counter.get("flops", 0.0) + gram.flops()
    _toc("kernels", tic, counter)
    return form, gram, counter


def fit_layer_cv(X, Y, outer, inner, alphas, *, form: str = "auto", n_targets_batch: int | None = None,
                 return_predictions: bool = True, counter: dict | None = None,
                 progress: Any = None, null_shifts: Any = None, joint: Any = None,
                 store: SpectrumStore | None = None, inner_path: str = "auto",
                 refit_batch_bytes: int = REFIT_BATCH_BYTES, resolve: bool = True,
                 joint_inner: bool = False, shared: dict | None = None) -> dict[str, np.ndarray]:
    """Nested-CV ridge of one layer on a chunk of targets.

    Parameters
    ----------
    X : backend array, shape (n_samples, n_features)
        The layer's design (already on the backend and in the working dtype).
    Y : backend array, shape (n_samples, n_targets)
        Responses (a chunk of targets is fine).
    outer : list of (train, test)
        Outer splits (absolute indices).
    inner : list of list of (train, val)
        For each outer split, its inner splits (absolute indices, inside the outer train).
    alphas : backend array, shape (n_alphas,)
        Ridge penalties.
    form : {"auto", "kernel", "primal"}
        Kernel (``X X^T``) or primal (``X^T X``) form; auto picks kernel when features outnumber
        the samples.
    n_targets_batch : int | None
        Targets per batch (memory); default from :func:`auto_batch`.
    return_predictions : bool
        Also return the held-out predictions (for permutation tests).
    counter : dict | None
        Receives ``"flops"``: floating-point operations of decompositions, projections,
        predictions and scores.
    progress : callable | None
        Called with no argument after each outer fold.
    null_shifts : ShiftedDraws | PermutedDraws | None
        For a refit permutation null (:func:`refit_null`): the sample order of each draw, from
        circular shifts of each run (:class:`~neuroenc.encoding.stats.ShiftedDraws`) or
        permutations of the stimuli within groups
        (:class:`~neuroenc.encoding.stats.PermutedDraws`).
    joint : JointBand | None
        A baseline band (:class:`~neuroenc.encoding._joint.JointBand`): also fit the joint
        banded ridge of [baseline + layer] with a penalty per band, the pair chosen per target
        by the same inner CV, from the same eigendecompositions (:mod:`~neuroenc.encoding._joint`).
    joint_inner : bool
        With ``joint``, also return the joint pieces of every inner split (for the draws of the
        unique-contribution tests, which apply the inner CV's rule again on each draw).
    store : SpectrumStore | None
        Where the layer's Gram and its splits' eigendecompositions are looked up and kept, for
        later fits of the same design (other subjects of the same story).
    inner_path : {"auto", "direct", "deletion"}
        How each outer fold's inner-CV losses are computed: one eigendecomposition per inner
        split (``"direct"``), or from the outer split's through the group-deletion identity
        (``"deletion"``, :class:`Deletion`; the same losses to rounding); ``"auto"`` picks the
        one with fewer floating-point operations per outer fold (:func:`plan_inner`): deletion
        when the targets are few (stimulus sets, ROIs), direct for many (voxels).
    refit_batch_bytes : int
        Cap on one batch of draws of the refit null (:func:`refit_null`'s ``batch_bytes``).
    resolve : bool
        Allow the "resolve first" order (:func:`prepare_filters`), whose stacked matrices
        (n_filters, n_validation, n_train) per inner split can take gigabytes; False keeps the
        "project first" order whatever the number of targets (the same results).
    shared : dict | None
        What the layers of one sweep share (the same ``Y``, splits, penalties and draws): one
        dict that every layer's call gets, filled by the first (the refit null's draws and
        held-out responses, :func:`refit_null`'s ``held``, checked against the draws and ``Y``;
        the pieces of ``joint``'s baseline band, kept per band). The results are the same without.

    Returns
    -------
    out : dict
        ``fold_r``, ``fold_r2``, ``fold_alpha`` (n_folds, n_targets) float64; ``predictions``
        (n_samples, n_targets) held-out predictions (NaN for samples in no test set) when asked;
        ``form`` the form used; ``pooled_r`` (n_targets,): the Pearson r of the held-out
        predictions of all folds pooled (:func:`pooled_r`); with ``null_shifts``, ``null`` (n_draws, n_targets): the
        fold-mean r of each draw, over the folds where the observed r is defined (NaN for a
        target with none). With ``joint``: ``joint_fold_r``, ``joint_fold_r2``,
        ``joint_fold_alpha`` (the layer band's penalty; inf where the inner CV switched the layer
        off) and ``joint_fold_alpha_base`` (the baseline band's), (n_folds, n_targets), of the
        joint models; ``joint_fold_alpha_kept`` and ``joint_fold_alpha_base_kept``: the
        penalties of the best joint candidate by the inner CV, also where the layer was switched
        off; ``joint_splits``, the joint pieces of each outer fold, and with ``joint_inner``
        ``joint_inner_splits``, those of its inner splits
        (:class:`~neuroenc.encoding._joint.JointSplit`, for the draws of the tests).
    """
    B = current_backend()
    n, p = X.shape
    t = Y.shape[1]
    a = alphas.shape[0]
    form, gram, counter = _layer_gram(X, outer, form, counter, store)
    if joint is not None:
        from . import _joint

        # what the layers share of this baseline band (its pieces of each split, its inner losses),
        # apart from other bands' (the band is kept with them: its id names no other while they live)
        band_shared = None if shared is None else shared.setdefault((b"joint", id(joint)), {"band": joint})

        XtN = gram.X.T @ joint.N if form == "primal" else None
        ratios = np.asarray(joint.ratios, dtype=np.float64)
        jfold = {key: np.full((len(outer), t), np.nan) for key in ("r", "r2", "alpha", "alpha_base", "alpha_kept",
                                                                    "alpha_base_kept")}
        joint_splits, inner_pieces = [], []
    itemsize = 4 if "32" in str(X.dtype) else 8
    dtype_name = "float32" if itemsize == 4 else "float64"
    max_held = max(max(va.size for _, va in inn) for inn in inner)
    batch = n_targets_batch or auto_batch(a, max_held, itemsize, t)
    n_folds = len(outer)
    fold_r = np.full((n_folds, t), np.nan)
    fold_r2 = np.full((n_folds, t), np.nan)
    fold_alpha = np.full((n_folds, t), np.nan)
    predictions = np.full((n, t), np.nan) if return_predictions else None
    alphas_np = np.asarray(B.to_numpy(alphas), dtype=np.float64)
    cache = EigenCache([tr for inn in inner for tr, _ in inn] + [tr for tr, _ in outer])
    sums = np.zeros((6, t))
    keep_null = False
    if null_shifts is not None:
        null_sum = np.zeros((null_shifts.n_draws, t))
        null_count = np.zeros(t)
        # the refit null's draws kept for the next layers (refit_null's held), every fold's within the
        # null's batch budget
        n_te_max = max(te.size for _, te in outer)
        keep_null = n_folds * null_shifts.n_draws * min(batch, t) * (16 * n_te_max + itemsize * n) \
            <= refit_batch_bytes
    _check_inner_path(inner_path)
    xty: dict[int, Any] = {}  # primal: X^T Y of each batch of targets, the same in every fold
    keep_xty = form == "primal" and p * t * itemsize <= XTY_KEEP_BYTES
    for k, ((train, test), inner_k) in enumerate(zip(outer, inner)):
        tic = _tic(counter)
        outer_split = decompose(B, gram, train, test, cache)
        # the joint models need each inner split's own spectrum (_joint.split_pieces): the direct path
        path = "direct" if joint is not None else plan_inner(B, gram, outer_split, inner_k, alphas, t,
                                                              inner_path, cache, dtype_name)
        if path == "deletion":
            for tr, _ in inner_k:  # their eigendecompositions are not needed: release the cache's
                cache.take(np.asarray(tr))
            splits = [deletion_split(B, gram, outer_split, tr, va, alphas, dtype_name, t)
                      for tr, va in inner_k]
        else:
            splits = [decompose(B, gram, tr, va, cache) for tr, va in inner_k]
            for s in splits:
                # the joint models need the held-out residuals themselves: no QR losses there
                prepare_filters(B, s, alphas, t if resolve else 0, dtype_name, gram,
                                qr_targets=0 if joint is not None else t)
        counter["flops"] += sum(s.flops for s in splits) + outer_split.flops
        if joint is not None:
            jsplits = [_joint.split_pieces(B, s, gram, joint, XtN, shared=band_shared) for s in splits]
            jouter = _joint.split_pieces(B, outer_split, gram, joint, XtN, clip=True, shared=band_shared)
            joint_splits.append(jouter)
            if joint_inner:
                inner_pieces.append(jsplits)
        _toc("decompositions", tic, counter)
        for start in range(0, t, batch):
            cols = slice(start, min(start + batch, t))
            Yc = Y[:, cols]
            tic = _tic(counter)
            # shared by all splits, and kept for the next folds when small enough (XTY_KEEP_BYTES)
            XtY = xty.get(start) if form == "primal" else None
            if form == "primal" and XtY is None:
                XtY = gram.X.T @ Yc
                counter["flops"] += 2.0 * n * p * Yc.shape[1]
                if keep_xty:
                    xty[start] = XtY
            _toc("kernels", tic, counter)
            tic = _tic(counter)
            Z = None
            if path == "deletion" and any(s.ok.any() for s in splits):
                Z = outer_split.project(B, gram, Yc, XtY)  # shared by all inner splits
                counter["flops"] += outer_split.project_flops(gram, Yc.shape[1])
            total = None
            jlosses = []
            if joint is not None:
                Ynp = np.asarray(B.to_numpy(Yc), dtype=np.float64)
                b_alpha = np.nan_to_num(joint.base_alpha[k, cols], nan=1.0)
                # what no layer changes (the baseline's projections and losses on each inner split),
                # kept for the next layers of the fit
                jshared = {} if band_shared is None else band_shared.setdefault(
                    (k, train.tobytes(), test.tobytes(), cols.start, cols.stop), {})
            for s_i, s in enumerate(splits):
                if joint is not None:
                    Zs = s.project(B, gram, Yc, XtY)  # the layer's and the joint models' (once)
                    counter["flops"] += s.project_flops(gram, Yc.shape[1])
                    loss, E = cv_losses(B, s, gram, Yc, alphas, XtY, counter, return_residuals=True, Z=Zs)
                    loss = to_float64(B, loss)
                    js = jsplits[s_i]
                    Zy = _joint.to_np(B, Zs)
                    if s_i not in jshared:
                        NtY = joint.N64[s.train].T @ Ynp[s.train]
                        jshared[s_i] = (NtY, _joint.baseline_loss(js, NtY, Ynp[s.test], b_alpha))
                    NtY, base_loss = jshared[s_i]
                    jl = _joint.inner_losses(js, _joint.to_np(B, E), Zy, NtY, Ynp[s.test], alphas_np, ratios,
                                             b_alpha, _invalid_alphas(B, s.lam, alphas), base_loss=base_loss)
                    del E
                    jlosses.append(jl)
                elif path == "deletion":
                    loss = to_float64(B, deletion_losses(B, s, outer_split, gram, Yc, Z, alphas, XtY, counter))
                else:
                    loss = to_float64(B, cv_losses(B, s, gram, Yc, alphas, XtY, counter))
                total = loss if total is None else total + loss
            best = select_alphas(B, total, len(splits), alphas)
            _toc("penalty search", tic, counter)
            tic = _tic(counter)
            pred = refit_predict(B, outer_split, gram, Yc, alphas, best, XtY, counter)
            if joint is not None:
                jlosses = np.stack(jlosses)
                kept = _joint.best_pairs(jlosses, alphas_np, ratios)
                pairs = _joint.select_pairs(jlosses, alphas_np, ratios, kept)
                Zy = _joint.to_np(B, outer_split.project(B, gram, Yc, XtY))
                if "outer" not in jshared:
                    jshared["outer"] = joint.N64[train].T @ Ynp[train]
                NtY = jshared["outer"]
                a_layer, a_base = _joint.pair_penalties(pairs, alphas_np, ratios, b_alpha)
                jpred = _joint.outer_predict(jouter, Zy, NtY, a_layer, a_base)
                jr, jr2 = _joint.scores(Ynp[test], jpred)
                jfold["r"][k, cols], jfold["r2"][k, cols] = jr, jr2
                jfold["alpha"][k, cols], jfold["alpha_base"][k, cols] = a_layer, a_base
                # the best joint candidate, kept also where the rule switched the layer off (the draws
                # of the tests apply the rule to it again)
                k_layer, k_base = _joint.pair_penalties(kept, alphas_np, ratios, b_alpha)
                jfold["alpha_kept"][k, cols], jfold["alpha_base_kept"][k, cols] = k_layer, k_base
            Yt = take_rows(B, Yc, test)
            r, r2 = fold_scores(B, Yt, pred)
            sums[:, cols] += pooled_sums(B, Yt, pred)
            fold_r[k, cols] = r
            fold_r2[k, cols] = r2
            fold_alpha[k, cols] = alphas_np[B.to_numpy(best)]
            if predictions is not None:
                predictions[test, cols] = np.asarray(B.to_numpy(pred), dtype=np.float64)
            _toc("scores", tic, counter)
            if null_shifts is not None:
                tic = _tic(counter)
                held = None
                if shared is not None and keep_null:
                    held = shared.setdefault((b"null", train.tobytes(), test.tobytes(), cols.start, cols.stop), {})
                nr = refit_null(B, outer_split, gram, Yc, alphas, best, null_shifts, counter=counter,
                                batch_bytes=refit_batch_bytes, held=held)
                _toc("permutations", tic, counter)
                defined = np.isfinite(r)  # the folds the observed fold-mean uses
                null_sum[:, cols] += np.where(defined[None, :], np.nan_to_num(nr), 0.0)
                null_count[cols] += defined
        del splits, outer_split
        if progress is not None:
            progress()
    out = {"fold_r": fold_r, "fold_r2": fold_r2, "fold_alpha": fold_alpha, "form": form,
           "pooled_r": pooled_r(sums)}
    if predictions is not None:
        out["predictions"] = predictions
    if joint is not None:
        out.update({f"joint_fold_{key}": value for key, value in jfold.items()})
        out["joint_splits"] = joint_splits
        if joint_inner:
            out["joint_inner_splits"] = inner_pieces
    if null_shifts is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            out["null"] = np.where(null_count > 0, null_sum / np.maximum(null_count, 1), np.nan)
    return out


def comparison_draws(X, signal, residuals, outer, alphas, fold_best, draws, *, form: str = "auto",
                     n_targets_batch: int | None = None, counter: dict | None = None,
                     store: SpectrumStore | None = None,
                     refit_batch_bytes: int = REFIT_BATCH_BYTES) -> np.ndarray:
    """Held-out r of one layer's model refitted on each draw of ``signal + shifted residuals``.

    The draws of the layer comparisons (:mod:`neuroenc.encoding.compare`) for one response:
    each draw's response is a fixed signal (e.g. the best layer's held-out prediction) plus the
    residuals with every run shifted circularly (``draws``, as for the refit null); every outer
    fold is refitted with the penalty chosen there on the real responses (``fold_best``) and
    scored on its held-out rows, and the fold-mean r is returned. Unlike a null draw, each draw
    keeps the signal, so the spread of the layers' r across draws is the spread of their
    differences under the alternative, with the folds' shared training data and the
    autocorrelation kept.

    Parameters
    ----------
    X : backend array, shape (n_samples, n_features)
        The layer's design.
    signal, residuals : backend arrays, shape (n_samples, n_targets)
    outer : list of (train, test)
    alphas : backend array, shape (n_alphas,)
    fold_best : ndarray of int, shape (n_folds, n_targets)
        Index in ``alphas`` of the penalty chosen in each outer fold.
    draws : ShiftedDraws
    form, n_targets_batch, counter, store, refit_batch_bytes
        As in :func:`fit_layer_cv`.

    Returns
    -------
    r : ndarray, shape (n_draws, n_targets)
        Fold-mean r per draw, over the folds where the real r was defined (``fold_best >= 0``).
    """
    B = current_backend()
    n, p = X.shape
    t = signal.shape[1]
    form, gram, counter = _layer_gram(X, outer, form, counter, store)
    batch = n_targets_batch or t
    total = np.zeros((draws.n_draws, t))
    count = np.zeros(t)
    for k, (train, test) in enumerate(outer):
        defined = fold_best[k] >= 0
        tic = _tic(counter)
        split = refit_split(B, gram, train, test, np.unique(fold_best[k][defined]), alphas, t, draws.n_draws)
        counter["flops"] += split.flops
        _toc("decompositions", tic, counter)
        for start in range(0, t, batch):
            cols = np.arange(start, min(start + batch, t))
            cols = cols[defined[cols]]
            if cols.size == 0:
                continue
            ci = as_index(B, cols)
            best = as_index(B, fold_best[k, cols])
            tic = _tic(counter)
            nr = refit_null(B, split, gram, residuals[:, ci], alphas, best, draws, counter=counter,
                            base=signal[:, ci], batch_bytes=refit_batch_bytes)
            _toc("comparisons", tic, counter)
            total[:, cols] += np.nan_to_num(nr)
            count[cols] += 1
        del split
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def refit_layer(X, Y, splits, alphas, *, form: str = "auto", n_targets_batch: int | None = None):
    """Choose per-target penalties by CV over ``splits`` on all samples, then refit on all samples.

    This is what ``himalaya.ridge.RidgeCV(alphas, cv=splits).fit(X, Y)`` does, returning
    ``(kind, coef, best_alpha)``: ``kind`` is ``"dual"`` (kernel form, coef of shape
    (n_samples, n_targets)) or ``"primal"`` (coef (n_features, n_targets)); ``best_alpha`` is a
    (n_targets,) float64 array.
    """
    B = current_backend()
    n, p = X.shape
    t = Y.shape[1]
    a = alphas.shape[0]
    form = choose_form(n, p, form)
    gram = LayerGram.compute(X, form)
    itemsize = 4 if "32" in str(X.dtype) else 8
    dtype_name = "float32" if itemsize == 4 else "float64"
    batch = n_targets_batch or auto_batch(a, max(va.size for _, va in splits), itemsize, t)
    # the spectrum of all samples, which the refit needs, also gives the CV losses when cheaper
    full = decompose(B, gram, np.arange(n), np.arange(0))
    path = plan_inner(B, gram, full, splits, alphas, t, "auto", None, dtype_name)
    if path == "deletion":
        decs = [deletion_split(B, gram, full, tr, va, alphas, dtype_name, t) for tr, va in splits]
    else:
        decs = [decompose(B, gram, tr, va) for tr, va in splits]
        for s in decs:
            prepare_filters(B, s, alphas, t, dtype_name)
    best_all = []
    for start in range(0, t, batch):
        Yc = Y[:, start:start + batch]
        XtY = gram.X.T @ Yc if form == "primal" else None
        Z = full.project(B, gram, Yc, XtY) if path == "deletion" else None
        total = None
        for s in decs:
            if path == "deletion":
                loss = deletion_losses(B, s, full, gram, Yc, Z, alphas, XtY)
            else:
                loss = cv_losses(B, s, gram, Yc, alphas, XtY)
            loss = to_float64(B, loss)
            total = loss if total is None else total + loss
        best_all.append(np.asarray(B.to_numpy(select_alphas(B, total, len(decs), alphas))))
    del decs
    best = np.concatenate(best_all)
    kind, coef = dual_or_primal_coef(B, gram, Y, alphas, as_index(B, best), spectrum=(full.lam, full.V))
    alphas_np = np.asarray(B.to_numpy(alphas), dtype=np.float64)
    return kind, coef, alphas_np[best]
