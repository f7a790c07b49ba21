"""Work shared between the fits of one design: :class:`SpectrumStore`.

The ridge maths of :mod:`neuroenc.encoding._ridge` decompose each layer's Gram matrix on every
training split. Subjects who heard the same story have the same design, so a store kept by the
serial runner or by each Dask worker lets every subject after the first reuse them.
"""
from __future__ import annotations

from typing import Any

import numpy as np


class SpectrumStore:
    """Layer Grams and training-set eigendecompositions kept across fits of the same design.

    Subjects who heard the same story share its design: the same features, delays and rows.
    Their fits differ only in the responses, so every layer's Gram and every split's
    eigendecomposition can be computed once and reused, exactly (the same numbers, not an
    approximation). Entries are keyed by the design's content (a hash of its bytes, its shape,
    dtype and form) and the split's training rows, and the least recently used are dropped
    beyond ``max_bytes``. One store serves the fits of one process: the serial runner's, or one
    Dask worker's (:class:`~neuroenc.pipeline.dask_worker.WorkerCache`); it travels empty.

    Parameters
    ----------
    max_bytes : int
        Memory the kept arrays may take (default 1 GiB).

    Examples
    --------
    >>> store = SpectrumStore(max_bytes=2**20)
    >>> X = np.arange(12.0).reshape(4, 3)
    >>> key = store.key(X, "kernel")
    >>> store.get(key, b"gram") is None
    True
    """

    def __init__(self, max_bytes: int = 2**30) -> None:
        from collections import OrderedDict

        self.max_bytes = int(max_bytes)
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock: Any = None
        self._keys: dict[int, tuple[Any, dict[str, bytes]]] = {}  # id -> (weakref, form -> key): key_of

    def __reduce__(self):  # a store travels empty (to a Dask worker, in a pickled task)
        return (SpectrumStore, (self.max_bytes,))

    @property
    def lock(self) -> Any:
        if self._lock is None:
            import threading

            self._lock = threading.Lock()
        return self._lock

    @staticmethod
    def key(X: Any, form: str) -> bytes:
        """The content key of a design (NumPy array): its bytes, shape, dtype and form (sha256,
        which CPUs with SHA extensions compute about three times as fast as blake2b: the key of
        every layer is computed again for every subject)."""
        import hashlib

        A = np.ascontiguousarray(X)
        h = hashlib.sha256()
        h.update(f"{form}|{A.shape}|{A.dtype.str}|".encode())
        h.update(A.view(np.uint8).reshape(-1))
        return h.digest()

    def key_of(self, X: Any, form: str) -> bytes:
        """:meth:`key`, computed once for an array that this store keeps read-only (a layer's
        design kept for the next subject, :meth:`~neuroenc.align.Design.share_layers`): such an
        array cannot change, so its key is remembered with it (hashing a layer's design again
        for every subject costs more than the rest of its lookups)."""
        entry = self._keys.get(id(X))
        if entry is not None and entry[0]() is X:
            key = entry[1].get(form)
            if key is None:
                key = entry[1][form] = self.key(X, form)
            return key
        return self.key(X, form)

    def _remember(self, value: Any) -> None:
        """Remember the arrays of a kept value that cannot change (read-only, owning their data)."""
        import weakref

        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, np.ndarray) and not v.flags.writeable and v.flags.owndata:
                self._keys[id(v)] = (weakref.ref(v), {})

    def get(self, key: bytes, part: bytes) -> Any:
        with self.lock:
            entry = self._entries.get((key, part))
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end((key, part))
            self.hits += 1
            return entry[0]

    def has(self, key: bytes, part: bytes) -> bool:
        """Whether an entry is kept (counts neither a hit nor a miss)."""
        with self.lock:
            return (key, part) in self._entries

    def put(self, key: bytes, part: bytes, value: Any, nbytes: int | None = None) -> None:
        """Keep ``value`` (an array or a tuple of them; ``nbytes``: its size, for other objects)."""
        size = sum(int(getattr(v, "nbytes", 0)) for v in (value if isinstance(value, tuple) else (value,)))
        size = size if nbytes is None else int(nbytes)
        if size > self.max_bytes:
            return
        with self.lock:
            old = self._entries.pop((key, part), None)
            self._bytes -= old[1] if old is not None else 0
            self._entries[(key, part)] = (value, size)
            self._bytes += size
            self._remember(value)
            while self._bytes > self.max_bytes:
                _, (gone, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped
                for v in gone if isinstance(gone, tuple) else (gone,):
                    self._keys.pop(id(v), None)

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays kept."""
        return self._bytes
