"""Small input checkers, in mne's style.

Every public function validates its inputs here, once, at the boundary, with messages that
name the thing, the value and the fix. Never ``assert`` on user input.
"""
from __future__ import annotations

import hashlib
import numbers
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


class NeuroencError(Exception):
    """Base of errors that report a problem with the user's data, files or run (not a bug):
    the command line prints their message without a traceback."""


class InvalidParameterError(ValueError, TypeError):
    """A parameter's value is not one its declaration allows (:mod:`neuroenc._settings`): a
    ValueError and a TypeError, as scikit-learn's ``InvalidParameterError``, whichever the
    value's fault (its type or its range)."""


class ConfigError(ValueError):
    """A run configuration is invalid (:mod:`neuroenc.pipeline.config`)."""


class StimulusError(ValueError):
    """A stimulus set or its file is malformed (empty text, duplicate ids, missing column...), or
    stimulus-level responses do not match the stimuli by id."""


class DatasetError(ValueError):
    """A data set's files are missing or wrong and cannot be fetched.

    A :class:`ValueError`, like every other bad-input error of neuroenc (the command line
    reports them without a traceback).
    """


def _fmt_allowed(allowed: Iterable[Any]) -> str:
    allowed = list(allowed)
    return ", ".join(repr(a) for a in allowed)


def _check_option(name: str, value: Any, allowed: Iterable[Any], extra: str = "") -> Any:
    """Raise a ValueError unless ``value`` is one of ``allowed``.

    Examples
    --------
    >>> _check_option("pooling", "max", ("last", "mean", "first"))
    Traceback (most recent call last):
    ...
    ValueError: Invalid value for 'pooling'. Allowed values are 'last', 'mean', 'first', but got 'max' instead.
    """
    allowed = list(allowed)
    if value not in allowed:
        msg = (
            f"Invalid value for {name!r}{(' ' + extra) if extra else ''}. Allowed values are "
            f"{_fmt_allowed(allowed)}, but got {value!r} instead."
        )
        raise ValueError(msg)
    return value


def _check_type(name: str, value: Any, types: type | tuple[type, ...], type_name: str | None = None):
    """Raise a TypeError unless ``value`` is an instance of ``types``."""
    if not isinstance(value, types):
        if type_name is None:
            if isinstance(types, tuple):
                type_name = " or ".join(t.__name__ for t in types)
            else:
                type_name = types.__name__
        raise TypeError(f"{name!r} must be an instance of {type_name}, got {type(value).__name__} instead.")
    return value


def _check_positive(name: str, value: Any, *, strict: bool = True, integer: bool = False) -> Any:
    """Check that ``value`` is a (strictly) positive number (optionally an integer)."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "an integer" if integer else "a number"
        raise TypeError(f"{name!r} must be {what}, got {value!r} ({type(value).__name__}).")
    if not np.isfinite(value) or (value <= 0 if strict else value < 0):
        bound = "> 0" if strict else ">= 0"
        raise ValueError(f"{name!r} must be {bound}, got {value!r}.")
    return value


def _check_path_exists(path: str | os.PathLike, what: str = "file", fix: str = "") -> Path:
    """Return ``path`` as a Path, raising FileNotFoundError with a helpful message if absent."""
    path = Path(path).expanduser()
    if not path.exists():
        msg = f"{what} not found: {str(path)!r}."
        if fix:
            msg += f" {fix}"
        raise FileNotFoundError(msg)
    return path


def check_content(path: str | os.PathLike, what: str = "data file", fix: str = "") -> Path:
    """``path`` as a Path; a clear error if it is missing, a dangling annex link or empty.

    Parameters
    ----------
    path : path-like
        The file.
    what : str
        What the file is, for messages (``"TextGrid"``, ``"BOLD file"``...).
    fix : str
        How to get the file, appended to the message when it is missing.

    Raises
    ------
    FileNotFoundError
        If the file is missing, or is a git-annex link whose content was not fetched.
    DatasetError
        If the file is empty (a placeholder, or an unfinished download).
    """
    path = Path(path).expanduser()
    if path.is_symlink() and not path.exists():
        raise FileNotFoundError(
            f"{what} {str(path)!r} is a git-annex link whose content is not here; fetch it with "
            f"'datalad get {path.name}' (or openneuro-py) first."
        )
    path = _check_path_exists(path, what, fix)
    if path.stat().st_size == 0:
        raise DatasetError(
            f"{what} {str(path)!r} is empty (0 bytes): a placeholder, or a download that did "
            "not finish. Fetch it again."
        )
    return path


def _check_2d(name: str, array: Any, *, dtype: Any = None, allow_1d: bool = True) -> np.ndarray:
    """Return ``array`` as a 2-D ndarray (a 1-D array becomes one column)."""
    arr = np.asarray(array, dtype=dtype)
    if arr.ndim == 1 and allow_1d:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name!r} must be a 2-D array (n_samples, n_features), got shape {arr.shape}.")
    return arr


def _check_finite(name: str, array: np.ndarray, *, where: str = "", fix: str = "") -> np.ndarray:
    """Raise a ValueError naming the first offending rows/columns if ``array`` has NaN or inf."""
    arr = np.asarray(array)
    if not np.issubdtype(arr.dtype, np.number):
        return arr
    bad = ~np.isfinite(arr)
    if bad.any():
        if arr.ndim == 2:
            cols = np.flatnonzero(bad.any(axis=0))
            rows = np.flatnonzero(bad.any(axis=1))
            detail = (
                f"{int(bad.sum())} non-finite values (NaN or inf) in {cols.size} column(s) "
                f"{_preview(cols)} and {rows.size} row(s) {_preview(rows)}"
            )
        else:
            idx = np.flatnonzero(bad.ravel())
            detail = f"{idx.size} non-finite values (NaN or inf) at index {_preview(idx)}"
        msg = f"{name}{(' ' + where) if where else ''} has {detail}."
        if fix:
            msg += f" {fix}"
        raise ValueError(msg)
    return arr


def _check_finite_number(name: str, value: Any, fix: str = "") -> float:
    """A finite real number, else a ValueError naming ``name=`` and the value (``start=nan``).

    Examples
    --------
    >>> _check_finite_number("start", float("nan"), "the stimulus time of row 0, e.g. start=20.0")
    Traceback (most recent call last):
    ...
    ValueError: start=nan is not a finite number: give the stimulus time of row 0, e.g. start=20.0.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number) or isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is not a finite number" + (f": give {fix}." if fix else "."))
    return number


def check_csv_records(text: str, path: str | os.PathLike, what: str, delimiter: str = ",") -> None:
    """Raise if a quoted field of a CSV/TSV text runs over several lines.

    A quote ``"`` opened and never closed (``s03,"The cat sat.``) swallows the lines after it
    into one field, silently merging rows; such a field is refused, naming the file, the line
    where the quote opens and the line where its field ends. Only texts holding a ``"`` are
    parsed (no quote, no multi-line field).
    """
    import csv
    import io

    if '"' not in text:
        return
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=delimiter == " ")
    end = 0
    try:
        for _ in reader:
            start, end = end + 1, reader.line_num
            if end > start:
                break
        else:
            return
    except csv.Error as err:
        raise ValueError(f"{what} {str(path)!r}, line {reader.line_num}: {err}; fix the quotes (\") of "
                         "that line.") from None
    raise ValueError(
        f"{what} {str(path)!r}, line {start}: a quote (\") opened on this line runs to line {end}, merging "
        f"lines {start}-{end} into one row (an unclosed quote, or a line break inside quotes). Close the "
        "quote, or delete it (a quote is only needed around a field that holds the separator)."
    )


def _check_response_data(data: np.ndarray, names: Sequence[str], where: str, first_row: int = 0) -> None:
    """Raise if response data have NaN/inf or constant columns, or fewer than 2 rows.

    ``where`` says whose data they are (``"(run 'alice', subject 's18')"``); constant columns
    are named with ``names`` (one per column).
    """
    bad = ~np.isfinite(np.asarray(data, dtype=np.float64))
    if bad.any():
        i, j = (int(x) for x in np.argwhere(bad)[0])
        targets = [names[k] if k < len(names) else str(k) for k in np.flatnonzero(bad.any(0))]
        name = names[j] if j < len(names) else str(j)
        raise ValueError(
            f"response data {where} has {int(bad.sum())} non-finite values (NaN or inf) in "
            f"{len(targets)} target(s) {_preview(targets)} "
            f"and {int(bad.any(1).sum())} row(s) {_preview(np.flatnonzero(bad.any(1)) + first_row)}, the first at "
            f"row {i + first_row} (0-based), target {name!r} (column {j}): {data[i, j]}. Drop those targets "
            "(response.select(...)) "
            "or interpolate the bad rows."
        )
    if data.shape[0] < 2:
        raise ValueError(f"response {where} has {data.shape[0]} row(s) left; it needs at least 2.")
    const = np.flatnonzero(np.ptp(data, axis=0) == 0)
    if const.size:
        which = [names[i] for i in const]
        raise ValueError(
            f"response {where} has {const.size} constant column(s) {_preview(which)} (indices "
            f"{_preview(const)}) over its {data.shape[0]} kept rows; a constant target cannot be "
            "z-scored or predicted. Drop them with response.select(...)."
        )


def _preview(values: Sequence[Any] | np.ndarray, n: int = 5) -> str:
    """A short list for error messages: ``[1, 2, 3, ...] (10 in all)``."""
    values = list(np.asarray(values).tolist())
    head = ", ".join(repr(v) for v in values[:n])
    if len(values) > n:
        return f"[{head}, ...] ({len(values)} in all)"
    return f"[{head}]"


def _check_random_state(random_state: Any) -> np.random.Generator:
    """A numpy Generator from ``None``, an int, a Generator or a RandomState."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    if random_state is None or isinstance(random_state, (numbers.Integral, np.integer)):
        return np.random.default_rng(random_state)
    raise TypeError(
        f"'random_state' must be None, an int or a numpy Generator, got {type(random_state).__name__}."
    )


def _sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fid:
        for chunk in iter(lambda: fid.read(chunk_size), b""):
            h.update(chunk)
    return h.hexdigest()
