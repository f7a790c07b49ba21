"""The :class:`BandedLayerModel`: banded ridge with one band per layer (or group) + nuisance bands.

Each band (a layer's design, a group of layers concatenated, or nuisance regressors such as word
rate, sound power, motion) gets its own penalty, chosen per target by himalaya's random search
over the simplex (``MultipleKernelRidgeCV`` with precomputed linear kernels when features
outnumber samples, ``BandedRidgeCV`` otherwise) inside each outer training part. The held-out
prediction is split into the bands' contributions, and himalaya's ``r2_score_split`` and
``correlation_score_split`` say how much each band explains.

Scores. The joint held-out r and R² (``r_``, ``r2_``) are those of
:class:`~neuroenc.encoding.LayerSweep`: per test fold, Pearson r, and ``R² = 1 - sum((y -
ŷ)²) / sum((y - mean(y))²)`` with the prediction as it is (no intercept is fitted, so a
prediction that misses the test fold's mean is penalised), so the two compare directly. The
split R² (a product measure) needs a zero-mean response, so it is computed on the fold-centred
response and band predictions: per fold the split R² sum to the joint R² of the *centred*
prediction, which exceeds ``fold_r2_`` by ``fold_offset_r2_ = n (mean(y) - mean(ŷ))² / sum((y -
mean(y))²)`` (the part of the error that is a constant offset over the fold; 0 when every test
fold is a whole run z-scored on its own). The split r sum to the joint r exactly.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.sparse import issparse
from sklearn.base import BaseEstimator, MultiOutputMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data
from tqdm.auto import tqdm

from .._logging import show_progress
from .._validation import _check_finite, _check_option, _preview
from . import _ridge
from .backend import as_index, resolve_backend, resolve_compute_dtype, to_numpy, use_backend
from .cv import DEFAULT_GAP, check_groups, inner_splits, make_cv
from .designs import as_layer_designs, gap_for
from .sweep import DEFAULT_ALPHAS, check_responses, constant_targets


class Bands(dict):
    """Band name -> design (n_samples, n_features), with the designs' ``info`` (delays, HRF,
    resampling settings), from which :class:`BandedLayerModel` derives its CV gap."""

    def __init__(self, *args: Any, info: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.info = dict(info or {})


def make_bands(designs: Any, layers: Sequence[int | Sequence[int]],
               nuisance: Mapping[str, Any] | None = None) -> Bands:
    """Bands for :class:`BandedLayerModel` from layer designs and nuisance regressors.

    Parameters
    ----------
    designs : LayerDesigns | neuroenc.align.Design | list/dict of arrays
        Per-layer designs (see :func:`~neuroenc.encoding.designs.as_layer_designs`).
    layers : sequence of int or of sequences of int
        One band per entry: a layer (band ``"layer_12"``) or a group of layers concatenated
        (band ``"layers_18-20"``).
    nuisance : mapping of str -> array (n_samples, k) | None
        Extra bands, e.g. ``{"word_rate+sound_power": ...}``.

    Returns
    -------
    bands : Bands
        A dict of str -> ndarray that also carries the designs' ``info`` (for the gap).
    """
    designs = as_layer_designs(designs)
    bands = Bands(info=designs.info)
    for entry in layers:
        if np.ndim(entry) == 0:
            bands[f"layer_{int(entry)}"] = designs[int(entry)]
        else:
            group = [int(x) for x in entry]
            name = f"layers_{group[0]}-{group[-1]}" if group == list(range(group[0], group[-1] + 1)) \
                else "layers_" + "+".join(map(str, group))
            bands[name] = np.hstack([designs[x] for x in group])
    for name, value in (nuisance or {}).items():
        if name in bands:
            raise ValueError(f"Nuisance band {name!r} has the name of a layer band; rename it.")
        value = np.asarray(value, dtype=np.float64)
        bands[str(name)] = value[:, None] if value.ndim == 1 else value
    return bands


class BandedLayerModel(MultiOutputMixin, RegressorMixin, BaseEstimator):
    """Banded ridge over layer bands (+ nuisance bands), with held-out split scores per band.

    Parameters
    ----------
    alphas : sequence of float | None
        Global penalties searched with each band weighting (default 10^-1 ... 10^7).
    n_iter : int
        Band weightings tried by himalaya's random search (the first is uniform).
    concentration : float | sequence of float
        Dirichlet concentrations of the random search.
    cv, n_blocks, inner_cv : see :class:`~neuroenc.encoding.LayerSweep`
        Outer and inner cross-validation.
    gap : int | None
        Samples dropped on each side of a test block; default as in
        :class:`~neuroenc.encoding.LayerSweep`: from the designs' delays, HRF and resampling
        window when the bands come from :func:`make_bands` on an alignment design, else 5.
    form : {"auto", "kernel", "primal"}
        ``"kernel"``: ``MultipleKernelRidgeCV`` on precomputed linear kernels; ``"primal"``:
        ``BandedRidgeCV``; ``"auto"``: kernel when the bands' features outnumber samples.
    backend, dtype, n_targets_batch : see :class:`~neuroenc.encoding.LayerSweep`
    refit : bool
        Refit on all samples (band weights by CV over the outer splits) so that
        :meth:`predict` works.
    random_state : None | int
        Seed of the random search.
    verbose : bool | str | int | None
        Progress bar over the outer folds (shown at ``INFO`` and below). mne's convention
        (:func:`neuroenc._logging.verbose_level`): None follows the ``neuroenc`` logger's level,
        True is ``INFO``, False ``WARNING``, or a level name or int.

    Attributes
    ----------
    band_names_ : list of str
    r_, r2_ : ndarray, shape (n_targets,)
        Held-out r and R² of the joint model (mean over folds), defined as in
        :class:`~neuroenc.encoding.LayerSweep` (see the module docstring).
    split_r2_, split_r_ : ndarray, shape (n_bands, n_targets)
        Held-out split scores per band (mean over folds). Per fold, the split r sum to the joint
        r; the split R² sum to the joint R² of the fold-centred prediction,
        ``fold_r2_ + fold_offset_r2_``.
    fold_r_, fold_r2_ : ndarray, shape (n_folds, n_targets)
    fold_offset_r2_ : ndarray, shape (n_folds, n_targets)
        ``n (mean(y) - mean(ŷ))² / sum((y - mean(y))²)`` of each test fold: what centring the
        prediction would add to its R².
    fold_split_r2_, fold_split_r_ : ndarray, shape (n_folds, n_bands, n_targets)
    deltas_ : ndarray, shape (n_folds, n_bands, n_targets)
        Log band weights chosen in each outer fold.
    cv_splits_ : list of (ndarray, ndarray)
    gap_ : int
        The gap used.
    """

    def __init__(self, alphas=None, n_iter=20, concentration=(0.1, 1.0), cv="auto", n_blocks=5,
                 gap=None, inner_cv=5, form="auto", backend="auto", dtype="auto",
                 n_targets_batch=None, refit=True, random_state=None, verbose=None):
        self.alphas = alphas
        self.n_iter = n_iter
        self.concentration = concentration
        self.cv = cv
        self.n_blocks = n_blocks
        self.gap = gap
        self.inner_cv = inner_cv
        self.form = form
        self.backend = backend
        self.dtype = dtype
        self.n_targets_batch = n_targets_batch
        self.refit = refit
        self.random_state = random_state
        self.verbose = verbose

    def _bands(self, X: Any, reset: bool) -> tuple[list[str], list[np.ndarray]]:
        if issparse(X) or hasattr(X, "__array__") and not isinstance(X, (Mapping, list, tuple)):
            X = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])
            names, arrays = ["0"], [X]
        elif isinstance(X, Mapping):
            names = [str(k) for k in X]
            arrays = [np.asarray(v) for v in X.values()]
        elif isinstance(X, (list, tuple)) and X and all(np.ndim(x) == 2 for x in X):
            names = [str(i) for i in range(len(X))]
            arrays = [np.asarray(x) for x in X]
        elif isinstance(X, (list, tuple)):
            X = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])
            names, arrays = ["0"], [X]
        else:
            raise TypeError(f"BandedLayerModel takes a dict or list of band designs or one 2-D array, "
                            f"got {type(X).__name__}.")
        if not arrays:
            raise ValueError("BandedLayerModel needs at least one band.")
        n = arrays[0].shape[0]
        out = []
        for name, arr in zip(names, arrays):
            arr = arr[:, None] if arr.ndim == 1 else arr
            if arr.ndim != 2 or arr.shape[0] != n:
                raise ValueError(f"Band {name!r} has shape {arr.shape}; every band needs {n} rows.")
            if not np.issubdtype(arr.dtype, np.floating):
                arr = arr.astype(np.float64)
            _check_finite(f"Band {name!r}", arr)
            out.append(arr)
        if not reset and names != self.band_names_:
            raise ValueError(f"Bands {names} differ from the fitted bands {self.band_names_}.")
        return names, out

    def _alphas(self) -> np.ndarray:
        alphas = np.asarray(DEFAULT_ALPHAS if self.alphas is None else self.alphas, dtype=np.float64).reshape(-1)
        if alphas.size == 0 or np.any(~np.isfinite(alphas)) or np.any(alphas <= 0):
            raise ValueError(f"alphas must be positive finite numbers, got {_preview(alphas)}.")
        return np.sort(alphas)

    def _model(self, form: str, cv: list, alphas_b, n_bands: int):
        solver_params = dict(n_iter=int(self.n_iter), alphas=alphas_b, concentration=self.concentration,
                             progress_bar=False, n_targets_batch=self.n_targets_batch,
                             n_targets_batch_refit=self.n_targets_batch)
        if form == "kernel":
            from himalaya.kernel_ridge import MultipleKernelRidgeCV

            return MultipleKernelRidgeCV(kernels="precomputed", solver="random_search",
                                         solver_params=solver_params, cv=cv, random_state=self.random_state)
        from himalaya.ridge import BandedRidgeCV

        solver_params["warn"] = False
        return BandedRidgeCV(groups="input", solver="random_search", solver_params=solver_params, cv=cv,
                             random_state=self.random_state)

    def fit(self, X, y=None, groups=None):
        """Fit on the bands with nested CV and compute held-out split scores.

        Parameters
        ----------
        X : dict of str -> array (n_samples, n_features_b) | list of arrays | 2-D array
            The bands (see :func:`make_bands`); a single 2-D array is one band.
        y : array-like, shape (n_samples,) or (n_samples, n_targets)
            Responses (z-scored per run; no intercept is fitted).
        groups : array-like | None
            Run label of each sample.
        """
        from himalaya.scoring import correlation_score_split, r2_score_split

        _check_option("form", self.form, _ridge.FORMS)
        if y is None:
            raise ValueError("BandedLayerModel requires y to be passed, but the target y is None.")
        names, bands = self._bands(X, reset=True)
        self.band_names_ = names
        y_arr = np.asarray(y)
        self._ravel = y_arr.ndim == 1
        Y = check_responses(y_arr, n_samples=bands[0].shape[0])
        n, t = Y.shape
        if n < 2:
            raise ValueError(f"BandedLayerModel needs several samples, got n_samples={n}.")
        groups = check_groups(groups, n)
        self.constant_targets_ = constant_targets(Y)
        gap = self.gap if self.gap is not None else (
            gap_for(X, DEFAULT_GAP) if hasattr(X, "info") else DEFAULT_GAP)
        outer = make_cv(self.cv, groups, n, self.n_blocks, gap)
        self.cv_splits_, self.gap_ = outer, gap
        n_feat = sum(b.shape[1] for b in bands)
        form = _ridge.choose_form(max(tr.size for tr, _ in outer), n_feat, self.form)
        backend_name = resolve_backend(self.backend)
        dtype = resolve_compute_dtype(self.dtype, backend_name, Y)
        alphas = self._alphas()
        n_f, n_b = len(outer), len(bands)
        fold_r, fold_r2 = np.full((n_f, t), np.nan), np.full((n_f, t), np.nan)
        offset = np.full((n_f, t), np.nan)
        split_r, split_r2 = np.full((n_f, n_b, t), np.nan), np.full((n_f, n_b, t), np.nan)
        deltas = np.full((n_f, n_b, t), np.nan)
        with use_backend(backend_name) as B, warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.filterwarnings("ignore", message=".*zero-mean.*")
            ab = B.asarray(alphas, dtype=dtype)
            Xs = [B.asarray(b, dtype=dtype) for b in bands]
            Yb = B.asarray(Y, dtype=dtype)
            Ks = B.stack([x @ x.T for x in Xs]) if form == "kernel" else None
            for k, (train, test) in enumerate(tqdm(outer, desc="folds", disable=not show_progress(self.verbose))):
                inner = inner_splits(train, groups, self.inner_cv, gap)
                pos = np.full(n, -1)
                pos[train] = np.arange(train.size)
                cv = [(pos[a], pos[b]) for a, b in inner]
                model = self._model(form, cv, ab, n_b)
                tr, te = as_index(B, train), as_index(B, test)
                if form == "kernel":
                    model.fit(Ks[:, tr][:, :, tr], Yb[tr])
                    pred = model.predict(Ks[:, te][:, :, tr], split=True)
                else:
                    model.fit([x[tr] for x in Xs], Yb[tr])
                    pred = model.predict([x[te] for x in Xs], split=True)
                # the joint scores as LayerSweep's: the prediction as it is, against the response
                r, r2 = _ridge.fold_scores(B, Yb[te], pred.sum(0))
                fold_r[k], fold_r2[k] = r, r2
                # split scores need a zero-mean held-out response: centre it and the predictions
                Yt = Yb[te] - Yb[te].mean(0)
                pred = pred - pred.mean(1)[:, None, :]
                split_r2[k] = to_numpy(r2_score_split(Yt, pred))
                split_r[k] = to_numpy(correlation_score_split(Yt, pred))
                _, r2_centred = _ridge.fold_scores(B, Yt, pred.sum(0))
                offset[k] = r2_centred - r2
                deltas[k] = to_numpy(model.deltas_)
            if self.refit:
                pos_cv = outer
                model = self._model(form, pos_cv, ab, n_b)
                if form == "kernel":
                    model.fit(Ks, Yb)
                else:
                    model.fit(Xs, Yb)
                self.model_ = model
                self.X_fit_ = [np.asarray(b, dtype=dtype) for b in bands] if form == "kernel" else None
        self.form_, self.backend_, self.dtype_ = form, backend_name, dtype
        const = self.constant_targets_
        for arr in (fold_r, fold_r2, offset):
            arr[:, const] = np.nan
        for arr in (split_r, split_r2):
            arr[:, :, const] = np.nan
        self.fold_r_, self.fold_r2_, self.fold_offset_r2_ = fold_r, fold_r2, offset
        self.fold_split_r_, self.fold_split_r2_ = split_r, split_r2
        self.deltas_ = deltas
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            self.r_, self.r2_ = np.nanmean(fold_r, 0), np.nanmean(fold_r2, 0)
            self.split_r_, self.split_r2_ = np.nanmean(split_r, 0), np.nanmean(split_r2, 0)
        return self

    def predict(self, X, split: bool = False):
        """Predict with the model refit on all samples; ``split=True`` gives one prediction per band."""
        check_is_fitted(self, "r_")
        if not self.refit:
            raise ValueError("This BandedLayerModel was fitted with refit=False; set refit=True to predict.")
        _, bands = self._bands(X, reset=False)
        with use_backend(self.backend_) as B:
            Xs = [B.asarray(b, dtype=self.dtype_) for b in bands]
            if self.form_ == "kernel":
                Ks = B.stack([x @ B.asarray(f, dtype=self.dtype_).T for x, f in zip(Xs, self.X_fit_)])
                pred = to_numpy(self.model_.predict(Ks, split=split))
            else:
                pred = to_numpy(self.model_.predict(Xs, split=split))
        pred = np.asarray(pred, dtype=np.float64)
        if self._ravel:
            pred = pred[..., 0]
        return pred

    def score(self, X, y, sample_weight=None):
        """Mean R² over targets of the joint prediction (scikit-learn's convention)."""
        return RegressorMixin.score(self, X, y, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    def split_scores(self) -> dict[str, np.ndarray]:
        """The held-out split scores, (n_bands, n_targets) each: ``r2``, ``r``."""
        check_is_fitted(self, "r_")
        return {"r2": self.split_r2_, "r": self.split_r_}

    def add_to(self, results):
        """Store the split scores in an :class:`EncodingResults` of the same targets.

        ``results.split_scores`` gets ``"r2"`` and ``"r"`` (n_bands, n_targets), and
        ``results.settings["bands"]`` the band names (in the order of the rows), with the
        banded model's parameters and joint scores under ``settings["banded"]``.
        """
        check_is_fitted(self, "r_")
        if results.n_targets != self.r_.shape[0]:
            raise ValueError(f"The results have {results.n_targets} targets but the banded model "
                             f"{self.r_.shape[0]}; fit both on the same responses.")
        results.split_scores.update(self.split_scores())
        params = {k: v for k, v in self.get_params().items() if k != "verbose"}
        params["alphas"] = self._alphas().tolist()
        results.settings["bands"] = list(self.band_names_)
        results.settings["banded"] = {"params": params, "form": self.form_, "joint_r": self.r_.tolist(),
                                      "joint_r2": self.r2_.tolist()}
        return results
