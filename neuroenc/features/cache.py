"""The feature cache: one HDF5 file per (model, transcript, settings), content-hashed.

Layout::

    /words           (n_words,) utf-8
    /onsets          (n_words,) float64, seconds
    /offsets         (n_words,) float64, seconds
    /context_start   (n_words,) int64   first story token of the context each feature saw
    /context_len     (n_words,) int64   number of story tokens of that context
    /surprisal       (n_words,) float64 with ``surprisal=True``: bits, summed over the word's tokens
    /layers/<i>      (n_words, hidden) float32, one dataset per layer i (0 = embeddings)
    attrs:  format = "neuroenc-features/1", provenance (JSON: every setting below), and
            each provenance entry on its own for h5dump readers: model, model_source,
            gguf_file, revision, model_sha256, tokenizer, model_kind, n_model_layers,
            hidden_size, dtype, policy, context_tokens, stride, right_context, pooling,
            layers, intervention, run, reference, transcript_sha256, neuroenc_version,
            n_token_forwards, cache_key, prepend_bos, prefix_ids, last_layer, warnings...;
            checksums = "fletcher32"; complete = True (written last).

Stimulus-level files (``attrs["kind"] = "stimuli"``, written by
:func:`neuroenc.features.stimuli.save_stimulus_features`) hold, instead of words and times,
``/stimulus_ids``, ``/texts``, ``/groups`` (optional) and ``/context_text`` (the exact text
each stimulus was read after), with the same ``/layers``, provenance and checksums.

Files are written to a temporary file in the same folder and moved into place with
:func:`os.replace`, so a reader never sees a half-written file under the final name; a file
that is truncated, lacks ``complete`` or a layer is reported incomplete by
:func:`is_complete` and recomputed by the extractor.

Every numeric dataset (the layers, times and contexts) carries an HDF5 Fletcher-32 checksum
per chunk, verified by HDF5 whenever it is read; every string dataset (``/words``,
``/stimulus_ids``, ``/texts``, ``/groups``, ``/context_text``) carries the sha256 of its strings
in its ``sha256`` attribute (:func:`write_strings`), verified by :func:`read_strings`.
:func:`load_features` refuses a file whose data no longer match (:class:`FeatureFileError`,
naming the file and the dataset), and the extractor's cache treats such a file as missing and
recomputes it. Files written before checksums existed are still read, unverified, by
:func:`load_features`; the cache recomputes them.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_path, json_default_strict
from .._validation import NeuroencError, _check_path_exists
from .layers import resolve_stored_layers

logger = logging.getLogger(__name__)

FEATURES_FORMAT = "neuroenc-features/1"
#: ``attrs["kind"]`` of a stimulus-level feature file (word-level files have none, or "words").
STIMULI_KIND = "stimuli"
#: Per-row int64 arrays of the provenance, stored as datasets (the exact context of each row).
CONTEXT_ARRAYS = ("context_start", "context_len")
#: The checksum every numeric dataset carries (an HDF5 filter, verified on each read).
CHECKSUM = "fletcher32"
#: The attribute of a string dataset that holds the sha256 of its strings (:func:`strings_sha256`).
STRINGS_CHECKSUM = "sha256"


class FeatureFileError(NeuroencError, ValueError):
    """A feature file is incomplete, corrupt or fails its checksums."""


def cache_key(settings: Mapping[str, Any]) -> str:
    """The sha256 of a settings dict (canonical JSON, sorted keys)."""
    text = json.dumps(dict(settings), sort_keys=True, default=json_default_strict, ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _slug(text: str, n: int = 40) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-.")
    return (slug or "x")[-n:]


def cache_file_name(model_name: str, run: str, key: str) -> str:
    """``<model>_<run>_<key[:20]>.h5``, readable and content-addressed."""
    return f"{_slug(Path(str(model_name)).name or model_name)}_{_slug(run)}_{key[:20]}.h5"


@contextlib.contextmanager
def open_feature_file(path: str | os.PathLike, nbytes: int = 0) -> Iterator[Any]:
    """An HDF5 file open for writing at a temporary path, moved to ``path`` when the block ends
    (:func:`~neuroenc._io.atomic_path`); on any error the file is closed and the temporary removed.

    HDF5 cannot close a file after a write failed while it flushed its caches (a full disk): its
    ids are left half-closed and the interpreter crashes at exit. So a failed write must never
    reach HDF5: the disk space the file needs (``nbytes``, plus a margin for HDF5's own
    metadata) is reserved in the temporary file first (:func:`os.posix_fallocate`; the unused
    rest is cut off once HDF5 has closed the file), and a full disk is an :class:`OSError`
    (``errno.ENOSPC``) naming the file and the fix, before any data are written. Chunks are
    written through (no chunk cache), so a write that fails anyway raises where it happens.

    Parameters
    ----------
    path : path-like
        The file to write.
    nbytes : int
        The bytes of data the file will hold (arrays and strings).

    Yields
    ------
    f : h5py.File
    """
    import h5py

    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            f = h5py.File(tmp, "w", rdcc_nbytes=0)
            try:
                _reserve(tmp, int(nbytes * 1.05) + 2**16)
                yield f
                f.flush()
                size = f.id.get_filesize()  # HDF5's end of file: the rest is the unused reserve
            except BaseException:
                _close_quietly(f, tmp)
                raise
            f.close()
            _trim(tmp, size)
    except OSError as err:
        if not _no_space(err):
            raise
        raise OSError(errno.ENOSPC,
                      f"No space left on device to write feature file {str(path)!r} (about "
                      f"{nbytes / 1e6:.1f} MB; the partial file was removed). Free disk space there, or write "
                      "the features to another folder (--out, or the cache folder: --cache-dir / "
                      "output.cache_dir).") from None


def data_nbytes(features: Any, arrays: Iterable[Any] = (), strings: Iterable[Iterable[str]] = ()) -> int:
    """The bytes of data a feature file of ``features`` holds: its layers (float32), ``arrays``
    and the ``strings`` datasets (UTF-8, with HDF5's per-string overhead): what
    :func:`open_feature_file` reserves."""
    n_rows = len(features.texts) if hasattr(features, "texts") else features.n_words
    total = 0
    for idx in features.layer_indices:  # shapes only: lazy layers are not read
        size = n_rows * features.n_features(idx)
        total += 4 * size + 4 * (1 + size // 1024)  # + chunk checksums
    total += sum(int(np.asarray(a).nbytes) for a in arrays)
    total += sum(len(str(v).encode("utf-8")) + 48 for values in strings for v in values)
    return total


def _reserve(name: str, nbytes: int) -> None:
    """Allocate ``nbytes`` of disk for the file ``name`` (where the file system can)."""
    fd = os.open(name, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, nbytes)
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    except AttributeError:  # pragma: no cover - no posix_fallocate on this platform
        pass
    finally:
        os.close(fd)


def _trim(name: str, size: int) -> None:
    """Cut the file ``name`` to HDF5's end of file ``size`` (the unused part of the disk space
    reserved for it) and check that HDF5 still reads it."""
    import h5py

    if os.path.getsize(name) <= size:
        return
    os.truncate(name, size)
    try:
        with h5py.File(name, "r"):
            pass
    except OSError as err:  # pragma: no cover - HDF5 wrote past the end it reported
        raise FeatureFileError(f"the feature file written at {name!r} is unreadable once cut to its end of "
                               f"file ({size} bytes): {str(err).splitlines()[0]}") from None


def _no_space(err: BaseException) -> bool:
    """Whether ``err`` (or an error it was raised from) says the disk is full."""
    while err is not None:
        if isinstance(err, OSError) and (err.errno in (errno.ENOSPC, errno.EDQUOT)
                                         or "No space left on device" in str(err)):
            return True
        err = err.__cause__ or err.__context__
    return False


def _close_quietly(f: Any, name: str) -> None:
    """Close the HDF5 file ``f`` (at ``name``) after an error; a second error while closing is
    logged, not raised (the first one is what the user needs). ``f`` is not touched after a
    failed close: HDF5 may have left its ids half-closed."""
    try:
        f.close()
    except Exception as err:  # noqa: BLE001 - the error being handled matters more
        logger.debug("closing %s after an error failed too: %s", name, str(err).splitlines()[0] if str(err) else err)


def strings_sha256(values: Iterable[str]) -> str:
    """The sha256 of a sequence of strings: each one's UTF-8 bytes after their length (8 bytes,
    little-endian), so that ``["ab", "c"]`` and ``["a", "bc"]`` differ."""
    digest = hashlib.sha256()
    for value in values:
        data = str(value).encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def write_strings(f: Any, name: str, values: Iterable[str]) -> None:
    """Write the UTF-8 string dataset ``name`` into the open file ``f``, with the sha256 of its
    strings in its :data:`STRINGS_CHECKSUM` attribute (verified by :func:`read_strings`)."""
    import h5py

    values = [str(v) for v in values]
    data = np.empty(len(values), dtype=object)
    data[:] = values
    dataset = f.create_dataset(name, data=data, dtype=h5py.string_dtype("utf-8"))
    dataset.attrs[STRINGS_CHECKSUM] = strings_sha256(values)


def write_layer(group: Any, idx: int, data: np.ndarray) -> None:
    """Write one layer's features into the ``/layers`` group of an open file (float32, with a
    Fletcher-32 checksum)."""
    group.create_dataset(str(int(idx)), data=np.asarray(data, dtype=np.float32), fletcher32=True)


def write_layers(f: Any, features: Any, provenance: Mapping[str, Any]) -> None:
    """Write the layers, the provenance and the closing attributes of a feature file.

    The common part of :func:`~neuroenc.features.featureset.save_features` and
    :func:`~neuroenc.features.stimulus_features.save_stimulus_features`: ``/layers/<i>`` for every layer of
    ``features`` (:func:`write_layer`), ``attrs["provenance"]`` (JSON) and each provenance entry
    on its own, ``layer_indices``, ``checksums`` and, last, ``complete = True``.

    Parameters
    ----------
    f : h5py.File
        Open for writing, with the rows' datasets already written.
    features : FeatureSet | StimulusFeatures
        Anything with ``layer_indices`` and ``features[i]``.
    provenance : mapping
        JSON-able settings (see the module docstring).
    """
    group = f.create_group("layers")
    for idx in features.layer_indices:
        write_layer(group, idx, features[idx])
    f.attrs["provenance"] = json.dumps(provenance, default=json_default_strict, sort_keys=True)
    for key, value in provenance.items():
        if isinstance(value, (str, int, float, bool, np.integer, np.floating)):
            f.attrs[key] = value
        elif value is None:
            f.attrs[key] = "none"
        else:
            f.attrs[key] = json.dumps(value, default=json_default_strict, sort_keys=True)
    f.attrs["layer_indices"] = np.asarray(features.layer_indices, dtype=np.int64)
    f.attrs["checksums"] = CHECKSUM
    f.attrs["complete"] = True


def is_complete(path: str | os.PathLike, layers: Iterable[int] | None = None,
                checksums: bool = False) -> bool:
    """Whether ``path`` is a complete, readable feature file (holding ``layers``, if given).

    A missing, truncated or unreadable file, one without the ``complete`` flag, with a layer
    missing or of the wrong number of rows, is not complete. Only attributes and shapes are
    read: the data's checksums are verified when the data are read (:func:`load_features`).

    Parameters
    ----------
    path : path-like
    layers : iterable of int | None
        Layers that must be present (default: the layers the file lists).
    checksums : bool
        Also require that these layers carry checksums (files written before checksums
        existed do not; the extractor's cache recomputes them).
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FEATURES_FORMAT or not bool(f.attrs.get("complete", False)):
                return False
            n = _n_rows(f)
            if f.attrs.get("kind") == STIMULI_KIND:
                if f["texts"].shape != (n,):
                    return False
            elif f["onsets"].shape != (n,) or f["offsets"].shape != (n,):
                return False
            stored = [int(i) for i in f.attrs["layer_indices"]]
            wanted = stored if layers is None else [int(i) for i in layers]
            group = f["layers"]
            for idx in wanted:
                if str(idx) not in group or group[str(idx)].shape[0] != n:
                    return False
                if checksums and not group[str(idx)].fletcher32:
                    return False
            return True
    except (OSError, KeyError, ValueError) as err:
        logger.warning("Feature file %s is unreadable (%s); it will be recomputed.", path, err)
        return False


def _n_rows(f: Any) -> int:
    """Rows of a feature file: stimuli (``/stimulus_ids``) or words (``/words``)."""
    if f.attrs.get("kind") == STIMULI_KIND:
        return int(f["stimulus_ids"].shape[0])
    return int(f["words"].shape[0])


def check_feature_file(path: str | os.PathLike) -> Path:
    """The path of an existing, complete feature file, or an error that says what to do.

    Raises
    ------
    FileNotFoundError
        When there is no such file.
    FeatureFileError
        When it is incomplete or corrupt (:func:`is_complete`).
    """
    path = _check_path_exists(path, "feature file", "Extract features first (neuroenc extract).")
    if not is_complete(path):
        raise FeatureFileError(
            f"Feature file {str(path)!r} is incomplete or corrupt (an interrupted write?); delete it "
            "and extract the features again."
        )
    return path


def read_dataset(f: Any, name: str, path: Path) -> np.ndarray:
    """Read the dataset ``name`` of the open feature file ``f`` (at ``path``) whole; HDF5 verifies
    its checksums, and a mismatch is a :class:`FeatureFileError` naming the file and dataset."""
    try:
        return f[name][()]
    except OSError as err:
        raise FeatureFileError(
            f"Feature file {str(path)!r} is corrupt: dataset {name!r} cannot be read or fails its "
            f"checksum ({str(err).splitlines()[0]}). Delete the file and extract the features again "
            "(a feature-cache entry is recomputed by the next extraction)."
        ) from None


def read_feature_info(path: str | os.PathLike) -> dict[str, Any]:
    """The provenance, layers and size of a feature file, without reading its features.

    Parameters
    ----------
    path : path-like
        A feature file written by :func:`save_features`.

    Returns
    -------
    info : dict
        The provenance (``model``, ``run``, ``n_model_layers``, ``reference``, the settings...)
        plus ``layer_indices`` (the stored layers), ``n_words`` and ``path``.

    Raises
    ------
    ValueError
        If the file is incomplete or corrupt (see :func:`is_complete`).
    """
    import h5py

    path = check_feature_file(path)
    with h5py.File(path, "r") as f:
        info = json.loads(f.attrs["provenance"])
        info["layer_indices"] = [int(i) for i in f.attrs["layer_indices"]]
        info["n_words"] = _n_rows(f)
        info["kind"] = str(f.attrs.get("kind", "words"))
    info["path"] = str(path)
    return info


def read_strings(f: Any, name: str, path: Path) -> list[str]:
    """A dataset of UTF-8 strings (words, stimulus ids, texts) as a list of str, checked against
    the sha256 its :data:`STRINGS_CHECKSUM` attribute holds.

    A dataset written before strings carried a checksum is read unverified (a debug message
    says so); one whose strings no longer match their checksum (edited in place) is a
    :class:`FeatureFileError` naming the file, the dataset and the fix.
    """
    values = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in read_dataset(f, name, path)]
    stored = f[name].attrs.get(STRINGS_CHECKSUM)
    if stored is None:
        logger.debug("Feature file %s: dataset %r has no checksum (written before strings carried one); "
                     "read unverified.", path, name)
        return values
    stored = stored.decode("ascii") if isinstance(stored, bytes) else str(stored)
    if stored != strings_sha256(values):
        raise FeatureFileError(
            f"Feature file {str(path)!r} is corrupt: dataset {name!r} does not match its checksum (the "
            f"sha256 of its {len(values)} strings differs from the one written with them: edited or damaged "
            "after it was written). Delete the file and extract the features again (a feature-cache entry "
            "is recomputed by the next extraction)."
        )
    return values


def read_layers_and_provenance(f: Any, path: Path, layers: Any = None, extra: tuple[str, ...] = ()
                               ) -> tuple[dict[int, np.ndarray], dict[str, Any]]:
    """The requested layers of an open feature file and its provenance, with the per-row
    context arrays (:data:`CONTEXT_ARRAYS`, and ``extra``) that the file holds added to it: what
    the readers of word-level and stimulus-level features share."""
    data = read_layers(f, path, layers)
    provenance = json.loads(f.attrs["provenance"])
    for name in CONTEXT_ARRAYS + tuple(extra):
        if name in f:
            provenance[name] = read_dataset(f, name, path)
    return data, provenance


def read_layers(f: Any, path: Path, layers: Any = None) -> dict[int, np.ndarray]:
    """The requested layers of an open feature file, read whole (checksums verified).

    Parameters
    ----------
    f : h5py.File
    path : Path
        The file, for messages.
    layers : None | "all" | int | float | iterable of int or float
        As :func:`~neuroenc.features.load_features` (default: every stored layer).

    Raises
    ------
    ValueError
        If the file lacks a requested layer.
    """
    stored = [int(i) for i in f.attrs["layer_indices"]]
    if layers is None:
        wanted = stored
    else:
        n_model_layers = f.attrs.get("n_model_layers")
        n_model_layers = int(n_model_layers) if isinstance(n_model_layers, (int, np.integer)) else None
        wanted = resolve_stored_layers(layers, stored, n_model_layers, repr(str(f.attrs.get("model", path))))
    missing = [i for i in wanted if i not in stored]
    if missing:
        raise ValueError(f"Feature file {str(path)!r} has no layer(s) {missing}; it holds layers {stored}.")
    return {i: read_dataset(f, f"layers/{i}", path) for i in wanted}
