"""Joint banded ridge of a layer band and a baseline band, from the layer's own spectrum.

The joint model of a layer ``X`` and a baseline ``N`` (k columns) with one penalty per band,
``alpha_L`` on the layer and ``alpha_B`` on the baseline, predicts the held-out rows ``H`` of a
split from its training rows ``T`` as kernel ridge with the kernel ``K_L + w K_B`` and penalty
``alpha = alpha_L``, ``w = alpha_L / alpha_B`` (``K_L = X X^T``, ``K_B = N N^T``)::

    pred = (K_L[H,T] + w N_H N_T^T) (A + w N_T N_T^T)^{-1} y_T,   A = K_L[T,T] + alpha I.

The baseline is low-rank (k columns), so Woodbury's identity solves it from the layer's
eigendecomposition of the split (already computed for the layer's own fit), with ``U = N_T``,
``S = U^T A^{-1} U`` and ``g = U^T A^{-1} y_T`` (k x k and k x t)::

    pred = L_y + (N_H - L_U) (I / w + S)^{-1} g

where ``L_y = K_L[H,T] A^{-1} y_T`` is the layer's own ridge prediction at ``alpha`` and
``L_U`` the same map applied to the baseline's columns. In the kernel form
(``K_L[T,T] = V diag(lam) V^T``, ``P = K_L[H,T] V``, ``D = 1 / (lam + alpha)``):
``L_y = P D V^T y_T``, ``S = Zu^T D Zu``, ``g = Zu^T D V^T y_T`` with ``Zu = V^T N_T``. In the
primal form (``X_T^T X_T = V diag(lam) V^T``, ``P = X_H V``) ``A^{-1} = (I - X_T V D V^T
X_T^T) / alpha``: ``S = (N_T^T N_T - Zu^T D Zu) / alpha``, ``g = (N_T^T y_T - Zu^T D Zy) /
alpha`` with ``Zu = V^T X_T^T N_T`` and ``Zy = V^T X_T^T y_T``. Every pair ``(alpha, w)`` then
costs a k x k solve and an (n_held, k) x (k, t) product beyond the layer's own fit; nothing is
refitted.

The candidates, per target, searched by the layer's inner CV (the same inner splits):
``alpha_layer`` in the layer's penalty grid and ``alpha_baseline = ratio * alpha_b``, with
``alpha_b`` the penalty the baseline alone chose in the same outer fold (by the same inner CV)
and ``ratio`` in a small grid (default 1: the baseline band as the baseline model has it), plus
the layer band switched off (``alpha_layer = inf``: the baseline model itself, the limit of the
joint model). The best joint candidate is kept only where it beats the baseline alone by more
than the standard error of the gain across the inner folds (:func:`select_pairs`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Default grid of the baseline band's penalty in the joint models, as multiples of the penalty
#: the baseline alone chose in the same outer fold (by the same inner CV).
DEFAULT_RATIOS = (1.0,)


@dataclass
class JointBand:
    """The baseline band of the joint models.

    ``N`` on the backend (working dtype) and ``N64`` in float64; ``ratios``: the baseline band's
    penalties, as multiples of ``base_alpha`` (n_folds, n_targets), the penalty the baseline
    alone chose in each outer fold.
    """

    N: Any
    N64: np.ndarray
    ratios: np.ndarray
    base_alpha: np.ndarray


@dataclass
class JointSplit:
    """The pieces of one split for the joint models (numpy float64)."""

    form: str
    train: np.ndarray
    test: np.ndarray
    lam: np.ndarray
    P: np.ndarray  # (n_held, r)
    V: np.ndarray  # (r, r)
    Zu: np.ndarray  # (r, k)
    NH: np.ndarray  # (n_held, k)
    NtN: np.ndarray  # (k, k)
    blam: np.ndarray | None = None  # (k,) eigenvalues of NtN (the baseline alone)
    bP: np.ndarray | None = None  # (n_held, k): N_H times the eigenvectors of NtN
    bV: np.ndarray | None = None  # (k, k)

    def __post_init__(self) -> None:
        if self.blam is None:  # else given with NH and NtN by baseline_pieces (the same numbers)
            self.blam, self.bP, self.bV = baseline_pieces(self.NH, self.NtN)

    def baseline_predict(self, NtY: np.ndarray, alpha: Any) -> np.ndarray:
        """Held-out predictions of the baseline alone with penalty ``alpha`` (scalar, or one
        per target): ``N_H (N_T^T N_T + alpha I)^{-1} N_T^T y_T``."""
        alpha = np.asarray(alpha, dtype=np.float64)
        D = 1.0 / (self.blam[:, None] + (alpha[None, :] if alpha.ndim else alpha))
        return self.bP @ (D * (self.bV.T @ NtY))


def to_np(B, a) -> np.ndarray:
    return np.asarray(B.to_numpy(a), dtype=np.float64)


def baseline_pieces(NH: np.ndarray, NtN: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(blam, bP, bV)`` of :class:`JointSplit`: the baseline's own spectrum on a split."""
    lam, V = np.linalg.eigh(NtN)
    return np.clip(lam, 0, None), NH @ V, V


def split_pieces(B, split, gram, band: JointBand, XtN=None, clip: bool = False,
                 shared: dict | None = None) -> JointSplit:
    """The joint pieces of a decomposed split (:func:`~neuroenc.encoding._ridge.decompose`);
    ``XtN = X^T N`` (primal form); ``clip``: negative eigenvalues (round-off) as zeros, as the
    refit of an outer fold does. ``shared``: a dict that the layers of one fit share (the same
    baseline and rows): the baseline's own pieces of the split (its rows of ``N``, ``N_T^T N_T``
    and their spectrum, which no layer changes) are made by the first layer only."""
    lam = to_np(B, split.lam)
    if clip:
        lam = np.clip(lam, 0, None)
    Zu = to_np(B, split.project(B, gram, band.N, XtN))
    train, test = np.asarray(split.train), np.asarray(split.test)
    key = (b"joint-baseline", train.tobytes(), test.tobytes())
    base = shared.get(key) if shared is not None else None
    if base is None:
        NT = band.N64[train]
        NH, NtN = band.N64[test], NT.T @ NT
        base = (NH, NtN) + baseline_pieces(NH, NtN)
        if shared is not None:
            shared[key] = base
    NH, NtN, blam, bP, bV = base
    return JointSplit(split.form, train, test, lam, to_np(B, split.P), to_np(B, split.V), Zu, NH, NtN,
                      blam, bP, bV)


def _terms(js: JointSplit, alpha: float):
    """``D``, ``S`` (k, k), ``R = N_H - L_U`` (n_held, k) and ``Zu^T D`` (k, r) at ``alpha``."""
    D = 1.0 / (js.lam + alpha)
    ZuD = js.Zu.T * D[None, :]
    S = ZuD @ js.Zu
    if js.form == "primal":
        S = (js.NtN - S) / alpha
    R = js.NH - js.P @ ZuD.T
    return D, S, R, ZuD


def _g(js: JointSplit, ZuD: np.ndarray, Zy: np.ndarray, NtY: np.ndarray | None, alpha: float) -> np.ndarray:
    """``g = U^T A^{-1} y_T`` (k, t)."""
    g = ZuD @ Zy
    if js.form == "primal":
        g = (NtY - g) / alpha
    return g


def _solve(S: np.ndarray, ratios: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``(I / w + S)^{-1} g`` for every ratio: (n_w, k, t)."""
    k = S.shape[0]
    M = np.eye(k)[None, :, :] / ratios[:, None, None] + S[None, :, :]
    M = 0.5 * (M + np.swapaxes(M, 1, 2))
    return np.linalg.solve(M, np.broadcast_to(g, (ratios.size,) + g.shape))


def baseline_loss(js: JointSplit, NtY: np.ndarray, Yh: np.ndarray, base_alpha: np.ndarray) -> np.ndarray:
    """The last candidate of :func:`inner_losses`: the baseline alone's ``l2_neg_loss`` (t,)."""
    F = js.baseline_predict(NtY, base_alpha) - Yh
    return -(F * F).sum(0) / Yh.shape[0]


def inner_losses(js: JointSplit, E: np.ndarray, Zy: np.ndarray, NtY: np.ndarray, Yh: np.ndarray,
                 alphas: np.ndarray, ratios: np.ndarray, base_alpha: np.ndarray, invalid: np.ndarray,
                 base_loss: np.ndarray | None = None) -> np.ndarray:
    """himalaya's ``l2_neg_loss`` of every candidate on the held-out rows: (n_alphas * n_r + 1, t).

    Candidate ``i * n_r + m``: the joint model with ``alpha_layer = alphas[i]`` and
    ``alpha_baseline = ratios[m] * base_alpha`` (per target); the last one: the layer band
    switched off (``alpha_layer = inf``), the baseline alone with its own penalty (the limit of
    the joint model, so that it can always do what the baseline does). ``E`` (n_alphas,
    n_held, t): the layer's held-out residuals at each alpha
    (:func:`~neuroenc.encoding._ridge.cv_losses`); ``Zy`` (r, t) and ``NtY = N_T^T y_T`` (k,
    t) projections of the training responses; ``Yh`` (n_held, t) the held-out responses.
    ``invalid`` penalties of the layer get -1e5, as the layer's. ``base_loss``: the last
    candidate's losses when already computed (:func:`baseline_loss`, the same for every layer).
    """
    n_a, n_te, t = E.shape
    n_r = ratios.size
    out = np.full((n_a * n_r + 1, t), -1e5)
    out[-1] = baseline_loss(js, NtY, Yh, base_alpha) if base_loss is None else base_loss
    ok = np.flatnonzero(~np.asarray(invalid, dtype=bool))
    if ok.size == 0:
        return out
    # every valid penalty at once (the terms of _terms and _g, stacked along the penalties)
    a = np.asarray(alphas, dtype=np.float64)[ok]
    D = 1.0 / (js.lam[None, :] + a[:, None])  # (n_ok, r)
    ZuD = np.ascontiguousarray(js.Zu.T)[None, :, :] * D[:, None, :]  # (n_ok, k, r)
    S = ZuD @ js.Zu  # (n_ok, k, k)
    g = ZuD @ Zy  # (n_ok, k, t)
    if js.form == "primal":
        S = (js.NtN[None] - S) / a[:, None, None]
        g = (NtY[None] - g) / a[:, None, None]
    R = js.NH[None] - js.P[None] @ np.swapaxes(ZuD, 1, 2)  # (n_ok, n_held, k)
    # (I / w + S)^{-1} g for every target's w at once, from one eigendecomposition of each S
    lam_s, Q = np.linalg.eigh(0.5 * (S + np.swapaxes(S, 1, 2)))
    h = np.swapaxes(Q, 1, 2) @ g  # (n_ok, k, t)
    E_ok = E if ok.size == n_a else E[ok]
    for m, ratio in enumerate(ratios):
        inv_w = base_alpha[None, :] * ratio / a[:, None]  # 1 / w = alpha_baseline / alpha_layer, per target
        F = E_ok + R @ (Q @ (h / (lam_s[:, :, None] + inv_w[:, None, :])))
        out[ok * n_r + m] = -(F * F).sum(1) / n_te
    return out


def best_pairs(losses: np.ndarray, alphas: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """Index of the best joint candidate (:func:`inner_losses`, the layer band kept in) per
    target, by mean inner loss (ties broken towards stronger penalties, as himalaya's towards
    larger alphas). ``losses`` (n_splits, n_candidates, t)."""
    tie = (np.log(alphas)[:, None] + np.log(ratios)[None, :]).reshape(-1) * 1e-10
    mean = losses[:, :-1].mean(0) + tie[:, None]
    return np.argmax(mean, 0)


def select_pairs(losses: np.ndarray, alphas: np.ndarray, ratios: np.ndarray,
                 best: np.ndarray | None = None) -> np.ndarray:
    """Index of the chosen candidate (:func:`inner_losses`) per target.

    ``losses`` (n_splits, n_candidates, t): the inner folds' losses. The best joint candidate
    (:func:`best_pairs`, or ``best`` when given) is kept only where it beats the baseline alone
    (the last candidate) by more than the standard error of their difference across the inner
    folds (the one-standard-error rule); else the layer is switched off. A layer band that
    helps in some inner folds only, which is what chance correlations in the training runs do,
    then does not enter the held-out joint model; the rule costs little power where the layer
    helps in every fold.
    """
    n_s = losses.shape[0]
    best = best_pairs(losses, alphas, ratios) if best is None else best
    cols = np.arange(losses.shape[2])
    gain = losses[:, best, cols] - losses[:, -1, :]  # (n_splits, t): > 0 where the joint is better
    if n_s >= 2:
        se = gain.std(0, ddof=1) / np.sqrt(n_s)
    else:
        se = np.zeros(gain.shape[1])
    return np.where(gain.mean(0) > se, best, losses.shape[1] - 1)


def pair_penalties(pairs: np.ndarray, alphas: np.ndarray, ratios: np.ndarray,
                   base_alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The penalties ``(alpha_layer, alpha_baseline)`` of the chosen candidates (``inf``: layer off)."""
    n_r = ratios.size
    off = pairs == alphas.size * n_r
    safe = np.minimum(pairs, alphas.size * n_r - 1)
    a_layer = np.where(off, np.inf, alphas[safe // n_r])
    return a_layer, np.where(off, 1.0, ratios[safe % n_r]) * base_alpha


def outer_predict(js: JointSplit, Zy: np.ndarray, NtY: np.ndarray, alpha_layer: np.ndarray,
                  alpha_base: np.ndarray) -> np.ndarray:
    """Held-out predictions of the joint models, each target with its penalties (n_held, t);
    ``alpha_layer`` inf: the baseline alone."""
    off = ~np.isfinite(alpha_layer)
    pred = np.zeros((js.test.size, Zy.shape[1]))
    if off.any():
        pred[:, off] = js.baseline_predict(NtY[:, off], alpha_base[off])
    on = np.flatnonzero(~off)
    if on.size:
        D_t = 1.0 / (js.lam[:, None] + alpha_layer[on][None, :])
        pred[:, on] = js.P @ (D_t * Zy[:, on])
    terms: dict = {}  # per penalty of the layer band, shared by its baseline penalties
    for (alpha, beta), cols in _groups(alpha_layer, alpha_base, on):
        if alpha not in terms:
            terms[alpha] = _terms(js, alpha)
        _, S, R, ZuD = terms[alpha]
        g = _g(js, ZuD, Zy[:, cols], NtY[:, cols], alpha)
        pred[:, cols] += R @ _solve(S, np.array([alpha / beta]), g)[0]
    return pred


def _groups(alpha_layer: np.ndarray, alpha_base: np.ndarray, cols: np.ndarray):
    """``((alpha_layer, alpha_base), cols)`` for each distinct pair among ``cols``."""
    if cols.size == 0:
        return []
    a_cols, b_cols = alpha_layer[cols], alpha_base[cols]
    # the distinct pairs in lexicographic order (as np.unique(axis=0), without its structured sort)
    pairs = sorted(set(zip(a_cols.tolist(), b_cols.tolist())))
    return [((float(a), float(b)), cols[(a_cols == a) & (b_cols == b)]) for a, b in pairs]


def joint_hat(js: JointSplit, alpha: float, w: float, memo: dict | None = None) -> np.ndarray:
    """The joint model's map from training responses to held-out predictions, (n_held,
    n_train), of a split in the kernel form (the primal form predicts through ``X_T^T y``
    instead: :class:`_Predictor`). ``memo``: a dict kept while ``js`` lives, where the terms
    of each penalty ``alpha`` (which every ``w`` shares) are kept."""
    key = (id(js), float(alpha))
    terms = memo.get(key) if memo is not None else None
    if terms is None:
        D, S, R, _ = _terms(js, alpha)
        terms = (S, R, D[:, None] * js.V.T)
        if memo is not None:
            memo[key] = terms
    S, R, DVt = terms
    k = S.shape[0]
    RC = R @ np.linalg.inv(0.5 * (S + S.T) + np.eye(k) / w)  # (n_held, k)
    return (js.P + RC @ js.Zu.T) @ DVt


def ridge_hat(N_T: np.ndarray, N_H: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The map of a ridge of ``N`` alone (penalty ``alpha``) in factors ``(A, B)``: the held-out
    predictions are ``A @ (B @ y_T)``, ``A`` (n_held, k), ``B = N_T^T`` (k, n_train)."""
    k = N_T.shape[1]
    return N_H @ np.linalg.inv(N_T.T @ N_T + alpha * np.eye(k)), N_T.T


def scores(yte: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r and R² over the second-to-last axis (numpy float64), as
    :func:`~neuroenc.encoding._ridge.fold_scores`: a constant response gives NaN, a constant
    prediction r = 0."""
    yc = yte - yte.mean(-2, keepdims=True)
    pc = pred - pred.mean(-2, keepdims=True)
    syy = (yc * yc).sum(-2)
    spp = (pc * pc).sum(-2)
    spy = (pc * yc).sum(-2)
    ss = ((yte - pred) ** 2).sum(-2)
    tiny = np.finfo(np.float64).tiny
    with np.errstate(invalid="ignore", divide="ignore"):
        r = spy / np.sqrt(syy * spp)
        r2 = 1.0 - ss / syy
    r = np.where(spp <= tiny, 0.0, r)
    r = np.where(syy <= tiny, np.nan, r)
    r2 = np.where(syy <= tiny, np.nan, r2)
    return np.clip(r, -1.0, 1.0), r2


#: The scores of the unique contribution (``unique_score``): the signed squared correlation
#: ``r |r|`` (the variance a linear rescaling of the prediction explains, blind to how the
#: held-out predictions are scaled) or the coefficient of determination ``R²``.
UNIQUE_SCORES = ("squared-r", "R2")


def unique_score(r: np.ndarray, r2: np.ndarray, score: str) -> np.ndarray:
    """The unique contribution's score (:data:`UNIQUE_SCORES`) from r and R²."""
    if score == "squared-r":
        return np.asarray(r, dtype=np.float64) * np.abs(r)
    if score == "R2":
        return np.asarray(r2, dtype=np.float64)
    raise ValueError(f"Invalid unique score {score!r}; use one of {UNIQUE_SCORES}.")


#: Bytes one batch of draws of the unique-contribution tests may take (responses of every draw).
DRAW_BATCH_BYTES = 64 * 2**20
#: The draws' responses are made once for all layers when they take at most this many bytes.
KEEP_BYTES = 256 * 2**20


def draw_batches(signal: np.ndarray, residuals: np.ndarray, draws: Any, batch_bytes: int = DRAW_BATCH_BYTES):
    """The responses of the draws, batch by batch: ``(start, Yd)`` with ``Yd`` (n, kd, t)."""
    n, t = signal.shape
    step = int(max(1, min(draws.n_draws, batch_bytes // max(8 * n * t, 1))))
    for start in range(0, draws.n_draws, step):
        idx = draws.indices(start, min(start + step, draws.n_draws))  # (kd, n)
        yield start, signal[:, None, :] + residuals[idx.T]  # sample-major: one GEMM per model


def hat_draws(hats: list, signal: np.ndarray, residuals: np.ndarray, outer: list, draws: Any,
              batch_bytes: int = DRAW_BATCH_BYTES, batches: list | None = None,
              score: str = "R2") -> np.ndarray:
    """Held-out scores (``score``, :data:`UNIQUE_SCORES`) of fixed linear models on each draw
    of ``signal + resampled residuals``.

    ``hats[k]``: for outer fold ``k``, a list of ``(cols, M)``: the targets ``cols`` whose
    model maps training responses to held-out predictions by ``M`` (n_held, n_train), or by
    ``M[0] @ M[1]`` when ``M`` is a pair of low-rank factors.
    ``draws``: :class:`~neuroenc.encoding.stats.ShiftedDraws` (runs shifted circularly) or
    :class:`~neuroenc.encoding.stats.PermutedDraws` (stimuli permuted within groups);
    ``batches``: the draws' responses already made (:func:`draw_batches`). Returns
    (n_draws, n_folds, n_targets), NaN where a fold has no model for a target.
    """
    t = signal.shape[1]
    out = np.full((draws.n_draws, len(outer), t), np.nan)
    for start, Yd in (batches if batches is not None else draw_batches(signal, residuals, draws, batch_bytes)):
        kd = Yd.shape[1]
        for k, (train, test) in enumerate(outer):
            Ytr, Yte = Yd[train], Yd[test]
            for cols, M in hats[k]:
                c = cols.size
                ytr = Ytr[:, :, cols].reshape(train.size, kd * c)
                pred = M[0] @ (M[1] @ ytr) if isinstance(M, tuple) else M @ ytr
                r, r2 = scores(Yte[:, :, cols].reshape(test.size, kd * c), pred)
                out[start:start + kd, k, cols] = unique_score(r, r2, score).reshape(kd, c)
    return out


class UniqueDraws:
    """The residual draws of the unique-contribution tests, shared by every layer.

    Each draw's response is the baseline's in-sample least-squares fit (the projection of the
    response on the baseline's columns) plus the residuals resampled by ``draws`` (runs shifted
    circularly, or stimuli permuted within groups); the baseline (penalties ``base_alpha``,
    (n_folds, t)) is refitted on each fold once here, and each layer's joint models by
    :meth:`layer`, which also applies the inner CV's rule again on each draw (the layer band
    enters a fold's joint model only where it beats the baseline by more than a standard error
    across the inner folds, :func:`select_pairs`): the draws then go through the selection the
    data went through, so a layer switched off on the data (delta exactly 0) is compared with
    draws that are switched off, on and better, or on and worse, and the p-values are
    calibrated (``benchmarks/unique_calibration.py``; with the selection fixed at the data's,
    they were conservative, about 0.02 below 0.05 on null data).
    """

    def __init__(self, Y: np.ndarray, N: np.ndarray, outer: list, base_alpha: np.ndarray,
                 base_r2: np.ndarray, draws: Any, batch_bytes: int = DRAW_BATCH_BYTES,
                 score: str = "squared-r") -> None:
        self.signal = N @ np.linalg.lstsq(N, Y, rcond=None)[0]
        self.residuals = Y - self.signal
        self.N, self.outer, self.draws, self.batch_bytes = N, outer, draws, batch_bytes
        self.base_alpha, self.base_r2, self.score = base_alpha, base_r2, score
        # the draws' responses serve every layer: kept when they fit in KEEP_BYTES
        n, t = Y.shape
        self.batches = None
        if 8 * n * t * draws.n_draws <= KEEP_BYTES:
            self.batches = list(draw_batches(self.signal, self.residuals, draws, KEEP_BYTES))
        hats = [[(cols, ridge_hat(N[tr], N[te], b)) for cols, _, b in pair_groups(base_alpha[k], base_alpha[k])]
                for k, (tr, te) in enumerate(outer)]
        self._ridge_hats: dict = {}  # the baseline's maps on the inner splits, which every layer shares
        self.base = hat_draws(hats, self.signal, self.residuals, outer, draws, batch_bytes, self.batches, score)

    def _ridge_hat(self, js: JointSplit, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """:func:`ridge_hat` of the baseline on the rows of ``js``, made once for every layer."""
        key = (js.train.tobytes(), js.test.tobytes(), float(alpha))
        hat = self._ridge_hats.get(key)
        if hat is None:
            hat = self._ridge_hats[key] = ridge_hat(self.N[js.train], self.N[js.test], alpha)
        return hat

    def _batches(self):
        if self.batches is not None:
            return self.batches
        return draw_batches(self.signal, self.residuals, self.draws, self.batch_bytes)

    def layer(self, splits: list[JointSplit], inner: list[list[JointSplit]], X: np.ndarray | None,
              alpha_layer: np.ndarray, kept_layer: np.ndarray, kept_base: np.ndarray) -> np.ndarray:
        """The fold-mean delta of each draw for one layer: (n_draws, n_targets).

        ``splits`` and ``inner``: the layer's joint pieces of each outer fold and of its inner
        splits (from its fit); ``X``: its design (primal form only); ``alpha_layer`` (n_folds,
        t): the layer band's penalty chosen on the data (inf: switched off; NaN: no model, the
        fold left out as in the observed mean); ``kept_layer``, ``kept_base``: the penalties of
        the best joint candidate by the inner CV on the data. On each draw and fold the joint
        model with those penalties is compared with the baseline alone (penalty ``base_alpha``)
        on the inner splits, by :func:`select_pairs`'s rule; where it does not pass, the draw's
        delta is 0, else its held-out delta. Kernel form: each split's map from training
        responses to held-out predictions (n_held x n_train) is formed once; primal form (many
        samples): the draws' ``X_T^T y`` are the full ``X^T y`` less the rows left out, so no
        (n_held x n_train) map is formed.
        """
        N, n_f, n = self.N, len(self.outer), self.N.shape[0]
        t = alpha_layer.shape[1]
        out = np.full((self.draws.n_draws, n_f, t), np.nan)
        defined = np.isfinite(self.base_r2) & ~np.isnan(alpha_layer)
        plans = []  # per fold: (k, cols, predictors of the outer split and of each inner split, b0)
        memo: dict = {}  # joint_hat's terms per split and penalty, while this layer's splits live
        for k in range(n_f):
            ok = np.flatnonzero(defined[k] & np.isfinite(kept_layer[k]) & np.isfinite(self.base_alpha[k]))
            if ok.size == 0:
                continue
            keys = np.stack([kept_layer[k, ok], kept_base[k, ok], self.base_alpha[k, ok]], 1)
            uniq, inv = np.unique(keys, axis=0, return_inverse=True)
            for g, (a, b, b0) in enumerate(uniq):
                plans.append((k, ok[inv.reshape(-1) == g], _Predictor(splits[k], X, N, a, b, memo),
                              [(_Predictor(sp, X, N, a, b, memo), self._ridge_hat(sp, b0)) for sp in inner[k]]))
        primal = any(pl[2].js.form == "primal" for pl in plans)
        for start, Yd in self._batches():
            kd = Yd.shape[1]
            G = X.T @ Yd.reshape(n, -1) if primal else None  # (p, kd * t): shared by every split
            for k, cols, outer_pred, rule in plans:
                c = cols.size
                Yg = Yd[:, :, cols].reshape(n, kd * c)
                Gg = None if G is None else G.reshape(G.shape[0], kd, t)[:, :, cols].reshape(G.shape[0], kd * c)
                gains = []
                for pred, (A, Bt) in rule:
                    yv = Yg[pred.js.test]
                    ytr = Yg[pred.js.train]  # the training rows, gathered once for both models
                    ej = yv - pred(Yg, Gg, ytr)
                    eb = yv - A @ (Bt @ ytr)
                    gains.append(((eb * eb).sum(0) - (ej * ej).sum(0)) / pred.js.test.size)
                gains = np.asarray(gains)
                se = gains.std(0, ddof=1) / np.sqrt(len(gains)) if len(gains) >= 2 else 0.0
                on = gains.mean(0) > se
                r, r2 = scores(Yg[outer_pred.js.test], outer_pred(Yg, Gg))
                d = unique_score(r, r2, self.score).reshape(kd, c) - self.base[start:start + kd, k][:, cols]
                out[start:start + kd, k, cols] = np.where(on.reshape(kd, c), d, 0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(out, 1)


class _Predictor:
    """Held-out predictions of one split's joint model (penalties ``a`` on the layer band, ``b``
    on the baseline band) from the responses of all rows: ``pred(Y, G)``, ``G = X^T Y`` (primal
    form) or None."""

    def __init__(self, js: JointSplit, X: np.ndarray | None, N: np.ndarray, a: float, b: float,
                 memo: dict | None = None) -> None:
        self.js, self.X, self.N, self.a, self.b = js, X, N, float(a), float(b)
        if js.form == "kernel":
            self.M = joint_hat(js, a, a / b, memo)
        else:
            left = np.ones(N.shape[0], dtype=bool)
            left[js.train] = False
            self.left = np.flatnonzero(left)  # the rows out of the training set (gathered when used)

    def __call__(self, Y: np.ndarray, G: np.ndarray | None, Y_train: np.ndarray | None = None) -> np.ndarray:
        """``Y_train``: ``Y[js.train]``, when the caller has it."""
        js = self.js
        Y_train = Y[js.train] if Y_train is None else Y_train
        if js.form == "kernel":
            return self.M @ Y_train
        XtY = G - np.take(self.X, self.left, axis=0).T @ Y[self.left]
        m = Y.shape[1]
        return outer_predict(js, js.V.T @ XtY, self.N[js.train].T @ Y_train, np.full(m, self.a),
                             np.full(m, self.b))


def pair_groups(alpha_layer: np.ndarray, alpha_base: np.ndarray) -> list[tuple[np.ndarray, float, float]]:
    """The targets sharing each chosen pair of penalties of one fold: ``(cols, alpha_layer,
    alpha_base)``; ``alpha_layer`` inf: the baseline alone; NaN: no model (left out)."""
    ok = np.flatnonzero(~np.isnan(alpha_layer) & np.isfinite(alpha_base))
    return [(cols, a, b) for (a, b), cols in _groups(alpha_layer, alpha_base, ok)]
