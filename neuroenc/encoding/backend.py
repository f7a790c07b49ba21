"""Array backends: himalaya's ``numpy`` / ``torch`` / ``torch_cuda``, switched temporarily.

All the ridge maths of :mod:`neuroenc.encoding` is written against the himalaya backend API
(``backend.eigh``, ``backend.asarray``...), so the same code runs on NumPy, on torch (CPU) and
on a CUDA GPU. :func:`use_backend` switches himalaya's global backend for the duration of a
``with`` block and always restores the previous one, so nothing leaks into the caller's session.
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


def resolve_dtype(dtype: str, backend_name: str, like: Any = None) -> str:
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
