"""Small I/O helpers shared by every file neuroenc writes: atomic writes and JSON provenance."""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Write to a temporary file beside ``path``; move it into place only on success.

    An interrupted or failed write never leaves a file at ``path`` (the temporary file is
    removed), so a file that exists is a complete one. The folder is created.

    Examples
    --------
    >>> import h5py
    >>> with atomic_path("out.h5") as tmp:  # doctest: +SKIP
    ...     with h5py.File(tmp, "w") as f:
    ...         f["x"] = [1, 2, 3]
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` for numpy values, paths, sets and tuples; ``repr`` otherwise."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return repr(obj)


def json_default_strict(obj: Any) -> Any:
    """As :func:`json_default`, but unknown types are an error (for cache keys, which must not
    depend on an object's ``repr``)."""
    if isinstance(obj, (np.generic, np.ndarray, Path, set, tuple)):
        return json_default(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
