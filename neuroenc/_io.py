"""Small I/O helpers shared by every file neuroenc writes: atomic writes and JSON provenance."""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: A temporary file not modified for this long (seconds) is stale even when its writer cannot
#: be checked (another host, or a file of an older neuroenc): writers fill their temporary file
#: from memory in seconds to minutes, so an hour without a write means the writer is gone.
STALE_AFTER = 3600.0


def _host() -> str:
    """This host's name, with every character but letters, digits and ``-`` replaced."""
    return re.sub(r"[^A-Za-z0-9-]", "_", socket.gethostname()) or "host"


def _tmp_name(name: str) -> str:
    """``.<name>.<host>.<pid>.<random>.tmp``: the writer's host and process are in the name, so
    a later run can tell a live writer's file from one left by a killed process."""
    return f".{name}.{_host()}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:  # pragma: no cover - e.g. no such call on this platform
        return True
    return True


def _is_stale(tmp: Path, name: str, now: float) -> bool:
    """Whether ``tmp`` (a temporary file of target ``name``) was left by a writer that is gone."""
    middle = tmp.name[len(name) + 2:-len(".tmp")]
    parts = middle.split(".")
    if len(parts) == 3 and parts[0] == _host() and parts[1].isdigit():
        pid = int(parts[1])
        if pid != os.getpid() and not _pid_alive(pid):
            return True
    try:
        return now - tmp.stat().st_mtime > STALE_AFTER
    except FileNotFoundError:  # its writer finished meanwhile
        return False


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of ``path`` left by writers that were killed.

    A temporary file of ``path`` (``.<name>.<host>.<pid>.<random>.tmp`` beside it) is stale
    when its process, on this host, is gone, or when it has not been modified for
    :data:`STALE_AFTER` seconds (a writer on another host, or a file of an older neuroenc).
    A live writer's file is left alone.

    Returns
    -------
    removed : list of Path
        The files removed (each one logged).
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    removed = []
    now = time.time()
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        if _is_stale(tmp, path.name, now):
            try:
                size = tmp.stat().st_size
                tmp.unlink()
            except FileNotFoundError:
                continue
            logger.info("removed a stale temporary file of %s left by an interrupted run: %s (%.1f MB)",
                        path.name, tmp, size / 1e6)
            removed.append(tmp)
    return removed


def glob_escape(name: str) -> str:
    """``name`` with the glob characters ``*?[`` escaped."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _fsync_path(path: str | os.PathLike, directory: bool = False) -> None:
    """Flush a file's (or a folder's) data and metadata to disk."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:  # a folder cannot be opened on Windows: nothing to flush there
            return
        raise
    try:
        os.fsync(fd)
    except OSError as err:
        # some file systems cannot fsync a folder; the file itself was flushed
        if not (directory and err.errno in (errno.EINVAL, errno.EBADF, errno.ENOTSUP)):
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Write to a temporary file beside ``path``; move it into place only on success.

    An interrupted or failed write never leaves a file at ``path`` (the temporary file is
    removed), so a file that exists is a complete one. The folder is created. Temporary files
    of ``path`` left by a killed writer are removed first (:func:`remove_stale_temporaries`).

    The temporary file is created with mode ``0o666`` filtered by the process umask (the
    permissions of any new file; no moment with a world-writable file), flushed to disk
    (``fsync``) before ``os.replace`` moves it into place, and the folder is flushed after,
    so that after a crash ``path`` holds either the old or the new complete file.

    Examples
    --------
    >>> import h5py
    >>> with atomic_path("out.h5") as tmp:  # doctest: +SKIP
    ...     with h5py.File(tmp, "w") as f:
    ...         f["x"] = [1, 2, 3]
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    while True:
        tmp = str(path.parent / _tmp_name(path.name))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue
        os.close(fd)
        break
    try:
        yield tmp
        _fsync_path(tmp)
        os.replace(tmp, path)
        _fsync_path(path.parent, directory=True)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
