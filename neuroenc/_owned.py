"""neuroenc replaces only files that it wrote (issue 18 item 3).

Before a writer replaces an existing file (a report, a results or features HDF5 file, a summary
table), it calls :func:`check_replace`, which recognises neuroenc's own outputs:

- HTML reports by their ``<meta name="generator" content="neuroenc ...">`` tag;
- HDF5 files by their ``format`` attribute (``neuroenc-features/1``, ``neuroenc-results/1``,
  ``neuroenc-metrics/1``, ``neuroenc-predictions/1``); an HDF5 file that no reader can open (truncated, damaged: a cache
  entry or results file to recompute) holds nothing readable and is replaced, with a warning;
- any other file (CSV tables) by the manifest that neuroenc keeps beside what it writes
  (``.neuroenc-files.json``: each file's name and sha256, :func:`record_written`).

Anything else (a ``.bashrc``, a table of the user's own) is never replaced: the writer raises
:class:`ForeignFileError`, naming the file and the fix.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path

from ._validation import NeuroencError

logger = logging.getLogger(__name__)

#: The manifest of the files neuroenc wrote in a folder (beside them).
MANIFEST = ".neuroenc-files.json"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HDF5_FORMAT = re.compile(rb"neuroenc-(features|results|metrics|predictions)/\d+")
_HTML_GENERATOR = re.compile(rb"<meta\s+name=\"generator\"\s+content=\"neuroenc[\s\"]", re.IGNORECASE)


class ForeignFileError(NeuroencError, FileExistsError):
    """An output would replace a file that neuroenc did not write."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fid:
        for block in iter(lambda: fid.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _manifest(folder: Path) -> dict[str, str] | None:
    """The manifest's files (name -> sha256); ``{}`` without a manifest; None when the file
    there is not a manifest neuroenc wrote."""
    path = folder / MANIFEST
    if not path.exists() and not path.is_symlink():
        return {}
    try:
        values = json.loads(path.read_text(encoding="utf-8")) if not path.is_symlink() else None
    except (OSError, ValueError):
        return None
    if not isinstance(values, dict) or values.get("written_by") != "neuroenc":
        return None
    files = values.get("files")
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else None


def _hdf5_is_own(path: Path, head: bytes) -> bool:
    """An HDF5 file is neuroenc's when its ``format`` attribute says so. One that no HDF5 reader
    can open (truncated, damaged) holds nothing anyone can read: it is neuroenc's when its first
    bytes still name a neuroenc format, and replaced with a warning otherwise (a cache entry or
    results file to recompute). One that is locked or unreadable to this user is not."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
    except PermissionError:
        return False
    except Exception as err:
        if "unable to lock" in str(err).lower():  # another process has it open
            return False
        if not _HDF5_FORMAT.search(head):
            logger.warning("%s is an HDF5 file that cannot be read (%s); replacing it", path, err)
        return True
    if isinstance(fmt, bytes):
        fmt = fmt.decode("utf-8", "replace")
    return isinstance(fmt, str) and bool(_HDF5_FORMAT.fullmatch(fmt.encode()))


def is_own_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file that neuroenc wrote (see the module docstring); True when
    there is no file at ``path``. A link or a folder is never neuroenc's."""
    path = Path(path)
    if path.is_symlink():
        return False
    if not path.exists():
        return True
    if not path.is_file():
        return False
    if path.name == MANIFEST:
        return _manifest(path.parent) is not None
    with open(path, "rb") as fid:
        head = fid.read(1 << 20)
    if head.startswith(_HDF5_SIGNATURE):
        return _hdf5_is_own(path, head)
    if _HTML_GENERATOR.search(head[:8192]):
        return True
    recorded = (_manifest(path.parent) or {}).get(path.name)
    return recorded is not None and recorded == _sha256(path)


def check_replace(path: str | os.PathLike, what: str = "output") -> None:
    """Raise :class:`ForeignFileError` if writing ``path`` would replace a file that neuroenc
    did not write (nothing happens when there is no file, or it is neuroenc's own).

    Parameters
    ----------
    path : path-like
        The file about to be written.
    what : str
        What the file is, for the message (``"report"``, ``"results file"``).
    """
    path = Path(path)
    if is_own_file(path):
        return
    kind = "a link" if path.is_symlink() else "a folder" if path.is_dir() else "a file"
    raise ForeignFileError(
        f"the {what} {str(path)!r} would replace {kind} that neuroenc did not write (or that was "
        "changed since); neuroenc never replaces other files. Choose another name or output "
        f"folder, or remove {str(path)!r} if it is not needed."
    )


def record_written(path: str | os.PathLike) -> None:
    """Add ``path`` (just written) to the manifest of its folder, so that a later run knows it
    for neuroenc's own and may replace it (files without a marker of their own: CSV tables)."""
    from ._io import atomic_path

    path = Path(path)
    files = _manifest(path.parent)
    if files is None:
        check_replace(path.parent / MANIFEST, "manifest of neuroenc's files")
        files = {}
    files[path.name] = _sha256(path)
    with atomic_path(path.parent / MANIFEST) as tmp:
        Path(tmp).write_text(json.dumps({"written_by": "neuroenc", "files": files}, indent=1, sort_keys=True),
                             encoding="utf-8")


__all__ = ["ForeignFileError", "MANIFEST", "check_replace", "is_own_file", "record_written"]
