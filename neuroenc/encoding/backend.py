"""Array backends: himalaya's ``numpy`` / ``torch`` / ``torch_cuda``, switched temporarily.

All the ridge maths of :mod:`neuroenc.encoding` is written against the himalaya backend API
(``backend.eigh``, ``backend.asarray``...), so the same code runs on NumPy, on torch (CPU) and
on a CUDA GPU. :func:`use_backend` switches himalaya's global backend for the duration of a
``with`` block and always restores the previous one, so nothing leaks into the caller's session.

The few operations himalaya's API does not cover (integer indexing of backend arrays, a float64
cast, a faster NumPy eigensolver) are here too (:func:`as_index`, :func:`take_rows`,
:func:`take_block`, :func:`to_float64`, :func:`eigh`), so that this is the only module of the
solvers that touches torch.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from .._validation import _check_option

logger = logging.getLogger(__name__)

#: Backend names accepted by :func:`use_backend` (``"auto"`` picks one).
BACKENDS = ("auto", "numpy", "torch", "torch_cuda")
#: dtypes accepted by the estimators (``"auto"``: float32 on a GPU, the input's float type on CPU).
DTYPES = ("auto", "float32", "float64")


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def resolve_backend(backend: str = "auto") -> str:
    """The himalaya backend name that ``backend`` stands for.

    Parameters
    ----------
    backend : {"auto", "numpy", "torch", "torch_cuda"}
        ``"auto"`` is ``"torch_cuda"`` when PyTorch sees a CUDA device, else ``"numpy"`` (on
        CPU, NumPy's BLAS is at least as fast as torch's for these solves).

    Returns
    -------
    name : str
        A himalaya backend name.
    """
    _check_option("backend", backend, BACKENDS)
    if backend == "auto":
        return "torch_cuda" if _cuda_available() else "numpy"
    if backend == "torch_cuda" and not _cuda_available():
        raise ValueError(
            "backend='torch_cuda' was requested but PyTorch sees no CUDA device; use "
            "backend='auto' (falls back to 'numpy') or 'numpy'/'torch'."
        )
    return backend


def resolve_compute_dtype(dtype: str, backend_name: str, like: Any = None) -> str:
    """The float dtype to compute in: ``"float32"`` or ``"float64"``.

    ``"auto"`` gives float32 on a GPU backend (as himalaya recommends) and, on CPU, the dtype of
    ``like`` when it is float32, else float64.
    """
    _check_option("dtype", dtype, DTYPES)
    if dtype != "auto":
        return dtype
    if backend_name == "torch_cuda":
        return "float32"
    if like is not None and getattr(like, "dtype", None) is not None and str(like.dtype).endswith("float32"):
        return "float32"
    return "float64"


@contextlib.contextmanager
def use_backend(backend: str = "auto") -> Iterator[Any]:
    """Use a himalaya backend inside a ``with`` block; restore the previous one afterwards.

    Parameters
    ----------
    backend : {"auto", "numpy", "torch", "torch_cuda"}
        See :func:`resolve_backend`.

    Yields
    ------
    module : module
        The himalaya backend module (``.asarray``, ``.eigh``, ``.to_numpy``...).

    Examples
    --------
    >>> from himalaya.backend import get_backend
    >>> with use_backend("numpy") as backend:
    ...     backend.name
    'numpy'
    """
    from himalaya.backend import get_backend, set_backend

    name = resolve_backend(backend)
    previous = get_backend().name
    module = set_backend(name)
    if name != previous:
        logger.debug("himalaya backend %s -> %s", previous, name)
    try:
        yield module
    finally:
        set_backend(previous)


def to_numpy(array: Any) -> np.ndarray:
    """Any backend array (NumPy, torch CPU/CUDA) as a NumPy array on the CPU."""
    if isinstance(array, np.ndarray):
        return array
    if hasattr(array, "detach"):
        return array.detach().cpu().numpy()
    return np.asarray(array)


# ---------------------------------------------------------------------- backend-array shims
def current_backend() -> Any:
    """The himalaya backend module in use (``.name``, ``.asarray``, ``.eigh``...)."""
    from himalaya.backend import get_backend

    return get_backend()


def as_index(B: Any, idx: np.ndarray) -> Any:
    """Integer indices usable on backend ``B``'s arrays (a long tensor on torch backends)."""
    if B.name == "numpy":
        return idx
    import torch

    return torch.as_tensor(idx, dtype=torch.long, device="cuda" if B.name == "torch_cuda" else "cpu")


def eigh(B: Any, A: Any) -> tuple[Any, Any]:
    """Eigenvalues (ascending) and eigenvectors of a symmetric matrix.

    On the NumPy backend LAPACK's divide-and-conquer driver (``syevd``) is used: about twice
    as fast as SciPy's default (``syevr``, which himalaya's NumPy backend calls) for the
    full spectra needed here, at the same accuracy.
    """
    if B.name == "numpy":
        import scipy.linalg

        return scipy.linalg.eigh(A, driver="evd", check_finite=False)
    return B.eigh(A)


def qr(B: Any, A: Any) -> tuple[Any, Any]:
    """The reduced QR factorisation ``A = Q R`` of a tall matrix (``Q`` with orthonormal columns,
    ``R`` upper triangular), in ``A``'s dtype; on NumPy ``R`` is Fortran-ordered, as BLAS's
    triangular products take it."""
    if B.name == "numpy":
        Q, R = np.linalg.qr(A, mode="reduced")
        return Q, np.asfortranarray(R)
    import torch

    return torch.linalg.qr(A, mode="reduced")


def take_rows(B: Any, A: Any, idx: np.ndarray) -> Any:
    """``A[idx]`` for a backend array (any shape of ``idx``: the result has ``idx.shape +
    A.shape[1:]``). On NumPy, ``np.take``: the same values as fancy indexing, several times
    faster for the narrow arrays of many rows that the permutation draws gather."""
    if B.name == "numpy":
        return np.take(A, idx, axis=0)
    return A[as_index(B, idx)]


def take_block(B: Any, A: Any, rows: np.ndarray, cols: np.ndarray) -> Any:
    """``A[rows][:, cols]`` for a backend array."""
    if B.name == "numpy":
        return np.take(np.take(A, rows, axis=0), cols, axis=1)
    return A[as_index(B, rows)][:, as_index(B, cols)]


def to_float64(B: Any, A: Any) -> Any:
    """A backend array cast to float64 (on its device)."""
    if B.name == "numpy":
        return A.astype(np.float64)
    import torch

    return A.to(torch.float64)
