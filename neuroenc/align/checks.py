"""Alignment checks: runs paired by name, grids that cover their words, finite and non-constant
data. Each message names the run, the numbers, and the option that fixes it."""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._validation import _check_option
from ..responses import Response

logger = logging.getLogger(__name__)

#: What to do with words that fall outside the response grid.
ON_UNCOVERED = ("raise", "warn", "ignore")


def as_run_dict(items: Any, what: str, cls: type | tuple[type, ...], name_attr: str = "run") -> dict:
    """``{run: item}`` from a dict, a list/tuple or a single item, checking the names agree.

    A list is keyed by each item's own run name (never by position); a dict's keys must equal
    the items' run names.
    """
    if isinstance(items, cls):
        items = [items]
    if isinstance(items, Mapping):
        out = {}
        for key, item in items.items():
            if not isinstance(item, cls):
                raise TypeError(
                    f"{what}[{key!r}] must be a {_cls_name(cls)}, got {type(item).__name__}."
                )
            own = getattr(item, name_attr)
            if str(key) != own:
                raise ValueError(
                    f"{what}[{key!r}] holds data for run {own!r}; runs are matched by name, so "
                    f"the key and the run must agree (rename one of them)."
                )
            out[str(key)] = item
        return out
    if isinstance(items, (list, tuple)):
        out = {}
        for i, item in enumerate(items):
            if not isinstance(item, cls):
                raise TypeError(f"{what}[{i}] must be a {_cls_name(cls)}, got {type(item).__name__}.")
            name = getattr(item, name_attr)
            if name in out:
                raise ValueError(
                    f"{what} has two items for run {name!r}; run names must be unique (they pair "
                    "features with responses)."
                )
            out[name] = item
        return out
    raise TypeError(
        f"{what} must be a {_cls_name(cls)}, a list of them or a dict {{run: item}}, got "
        f"{type(items).__name__}."
    )


def _cls_name(cls: type | tuple[type, ...]) -> str:
    if isinstance(cls, tuple):
        return " or ".join(c.__name__ for c in cls)
    return cls.__name__


def match_runs(
    features: Mapping[str, Any],
    responses: Mapping[str, Any],
    runs: Sequence[str] | None = None,
    what: tuple[str, str] = ("features", "responses"),
) -> list[str]:
    """The run names shared by two ``{run: item}`` dicts, in the order of the first (or ``runs``).

    Raises a ValueError naming the runs missing on either side: runs are paired by name, never
    by position, and none is dropped silently.
    """
    a, b = what
    if runs is not None:
        runs = [str(r) for r in ([runs] if isinstance(runs, str) else runs)]
        if len(set(runs)) != len(runs):
            raise ValueError(f"'runs' has duplicates: {runs}.")
        missing_a = [r for r in runs if r not in features]
        missing_b = [r for r in runs if r not in responses]
        if missing_a or missing_b:
            raise ValueError(
                f"runs {missing_a + [r for r in missing_b if r not in missing_a]} were requested "
                f"but {a} have runs {list(features)} and {b} have runs {list(responses)}."
            )
        return runs
    only_a = [r for r in features if r not in responses]
    only_b = [r for r in responses if r not in features]
    if only_a or only_b:
        raise ValueError(
            f"runs are matched by name and these do not pair up: {a} only: {only_a}; {b} only: "
            f"{only_b}. Rename them to agree, or pass runs=[...] to use a subset."
        )
    if not features:
        raise ValueError(f"no runs: {a} and {b} are empty.")
    return list(features)


def check_coverage(
    times: np.ndarray,
    response: Response,
    *,
    reach_before: float = 0.0,
    reach_after: float = 0.0,
    on_uncovered: str = "raise",
    what: str = "words",
) -> np.ndarray:
    """Check that a response grid covers every word; say by how much and how to fix it if not.

    A word at time ``t`` can influence a row of the response when
    ``start − reach_before ≤ t < end + reach_after`` (``end = start + n_samples · period``);
    the reaches are the longest delay/lag/HRF in seconds. Words outside that interval influence
    no row: a story longer than its scan, or a wrong ``start``.

    Parameters
    ----------
    times : array-like, shape (n_words,)
        Word times (onsets or midpoints), seconds.
    response : Response
    reach_before, reach_after : float
        Seconds before ``start`` / after ``end`` that still influence the rows (the largest
        positive delay, the largest look-ahead).
    on_uncovered : {"raise", "warn", "ignore"}
        ``"raise"`` (default) a ValueError; ``"warn"`` log a warning; ``"ignore"`` say nothing.
    what : str
        What the times are, for the message.

    Returns
    -------
    covered : ndarray of bool, shape (n_words,)
        Which words influence at least one row.
    """
    _check_option("on_uncovered", on_uncovered, ON_UNCOVERED)
    covered, msg = word_coverage(times, response, reach_before, reach_after, what)
    report_uncovered(msg, on_uncovered)
    return covered


def word_coverage(times: np.ndarray, response: Response, reach_before: float, reach_after: float,
              what: str) -> tuple[np.ndarray, str | None]:
    """Which words a grid covers, and the message describing those it does not (or None)."""
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    lo = response.start - reach_before
    hi = response.end + reach_after
    tol = 1e-9 * max(1.0, abs(hi))
    before = times < lo - tol
    after = times >= hi - tol
    covered = ~(before | after)
    if covered.all():
        return covered, None
    return covered, coverage_message(times, response, before, after, lo, hi, response.period, what)


def report_uncovered(msg: str | None, on_uncovered: str, sink: list[str] | None = None) -> None:
    """Raise, log or ignore a coverage problem; warnings are also appended to ``sink``."""
    if msg is None or on_uncovered == "ignore":
        return
    if on_uncovered == "raise":
        raise ValueError(msg + " Or pass on_uncovered='warn' to go on without them (e.g. when "
                         "the data provider trimmed the responses).")
    msg = msg + " These words influence no row."
    logger.warning(msg)
    if sink is not None:
        sink.append(msg)


def coverage_message(times, response, before, after, lo, hi, period, what) -> str:
    """The message of :func:`check_coverage` (also used for warnings)."""
    unit = "TRs" if response.kind == "fmri" else "samples"
    grid = (f"{response.start:g}–{response.end:g} s: {response.n_samples} {unit} of "
            f"{period:g} s from start={response.start:g}")
    parts = []
    suggestion = None
    if after.any():
        t_last = float(times[after].max())
        short = t_last - hi
        parts.append(
            f"{int(after.sum())} of {times.size} {what} ({float(times[after].min()):.3f}–"
            f"{t_last:.3f} s) fall after the end of the response grid ({grid}); the grid ends "
            f"{short:.3f} s too early"
        )
        n_shift = int(np.floor(short / period + 1e-9)) + 1
        new_start = response.start + n_shift * period
        if times.min() >= new_start - (response.start - lo) - 1e-9:
            suggestion = new_start
    if before.any():
        t_first = float(times[before].min())
        late = lo - t_first
        parts.append(
            f"{int(before.sum())} of {times.size} {what} ({t_first:.3f}–"
            f"{float(times[before].max()):.3f} s) fall before the response grid can see them "
            f"({grid}; rows reach back to {lo:g} s); the grid starts {late:.3f} s too late"
        )
        n_shift = int(np.ceil(late / period - 1e-9))
        new_start = response.start - n_shift * period
        if times.max() < new_start + (hi - response.start) - 1e-9 and not after.any():
            suggestion = new_start
    msg = f"run {response.run!r}: " + "; and ".join(parts) + "."
    span = float(times.max() - times.min())
    if span > hi - lo:
        msg += (f" The {what} span {span:.3f} s but the grid only {hi - lo:.3f} s: check the TR/sfreq "
                f"({period:g} s per row) and the number of rows.")
    elif suggestion is not None:
        msg += (f" If row 0 of the response is not stimulus time {response.start:g} s, pass "
                f"Response(..., start={suggestion:g}) (that start covers every word).")
    return msg


def check_response(response: Response, rows: slice | None = None) -> None:
    """Raise if a response has NaN/inf or constant columns (over ``rows``), naming them
    (:meth:`~neuroenc.responses.Response.check`)."""
    response.check(rows)


#: How far (relative) the given TR may exceed the TR that the rows imply (the story's length
#: divided by the number of kept rows) before a warning (:func:`check_grid_extent`).
TR_ESTIMATE_WARN = 0.1


def _check_tr_estimate(response: Response, n_rows: int, t_first: float, t_last: float,
                       sink: list[str] | None) -> None:
    """Warn when the rows would span the story with a TR more than :data:`TR_ESTIMATE_WARN` shorter
    than the one given (``tr=2.5`` for a scan of TR 2 s leaves about a fifth of the grid past the
    story, under the 20 % of :func:`check_grid_extent`). A longer TR than the rows imply is not
    warned here: its grid misses words, which :func:`check_coverage` reports."""
    span = t_last - t_first
    if n_rows < 2 or span <= 0:
        return
    estimate = span / n_rows
    period = response.period
    if period <= estimate * (1 + TR_ESTIMATE_WARN):
        return
    msg = (
        f"run {response.run!r}: the {n_rows} kept TRs of {period:g} s span {n_rows * period:g} s, but its "
        f"words span {span:.1f} s ({t_first:.1f}-{t_last:.1f} s): the rows would fit the story with a TR "
        f"of about {estimate:.2f} s, and tr={period:g} is {period / estimate - 1:.0%} longer. Check tr={period:g} "
        "(the scan's repetition time); if the responses hold rest before or after the story, drop those "
        "rows with trim=(first, last)."
    )
    logger.warning(msg)
    if sink is not None:
        sink.append(msg)


#: Share of a run's kept rows that may lie outside its transcript before a warning / an error.
GRID_OUTSIDE_WARN = 0.2
GRID_OUTSIDE_ERROR = 0.5


def check_grid_extent(
    times: np.ndarray,
    response: Response,
    *,
    reach_before: float = 0.0,
    reach_after: float = 0.0,
    trim: tuple[int, int] = (0, 0),
    sink: list[str] | None = None,
) -> float:
    """Check that an fMRI response grid is not much longer than its transcript.

    A row at time ``t`` sees the words in ``[t − reach_before, t + reach_after]`` (the delays,
    in seconds); a row that sees none lies outside the transcript. When more than 20 % of the
    kept rows (``trim`` dropped) lie outside, a warning is logged (and appended to ``sink``);
    over 50 %, a ValueError. Such a grid is a wrong ``tr`` (``--tr 20`` on a story of 362 TRs
    of 2 s gives 7,240 s of grid for 723 s of words), a wrong ``start``, or responses much
    longer than the story; fitting it would mostly fit silence. Under 20 %, a warning is still
    logged when the kept rows imply a TR more than 10 % shorter than the response's (the story's
    length over the number of kept rows; ``tr=2.5`` on a scan of TR 2 s leaves only about 19 %
    of the grid outside). MEG/EEG responses are not checked (their recordings often hold long
    pauses around a story).

    Parameters
    ----------
    times : array-like, shape (n_words,)
        Word times, seconds.
    response : Response
    reach_before, reach_after : float
        Seconds before / after a row that still influence it (longest delay, look-ahead).
    trim : (int, int)
        Rows dropped at the start and end of the run.
    sink : list of str | None
        Warnings are appended to it.

    Returns
    -------
    outside : float
        The share of kept rows outside the transcript.

    Raises
    ------
    ValueError
        Over 50 %: the message names ``tr=``, ``start=`` and ``trim=`` (and the TR that would
        fit the story).
    """
    if response.kind != "fmri":
        return 0.0
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    first, last = (int(t) for t in trim)
    rows = response.times[first:response.n_samples - last]
    if times.size == 0 or rows.size == 0:
        return 0.0
    t_first, t_last = float(times.min()), float(times.max())
    tol = 1e-9 * max(1.0, abs(t_last))
    outside = (rows - reach_before > t_last + tol) | (rows + reach_after < t_first - tol)
    share = float(outside.mean())
    period = response.period
    span = t_last - t_first
    if share <= GRID_OUTSIDE_WARN:
        _check_tr_estimate(response, rows.size, t_first, t_last, sink)
        return share
    grid = (f"{rows.size} kept TRs of {period:g} s from {rows[0]:g} s to {rows[-1] + period:g} s "
            f"(start={response.start:g})")
    msg = (
        f"run {response.run!r}: {share:.0%} of the response grid lies outside the transcript: "
        f"{grid}, {rows.size * period:g} s, for words from {t_first:.1f} s to {t_last:.1f} s "
        f"({span:.0f} s); {int(outside.sum())} TRs see no word."
    )
    fits = span / rows.size
    hint = (
        f" Check tr={period:g} (the {response.n_samples} rows would span the story with a TR of "
        f"about {fits:.2g} s) and start={response.start:g} (the stimulus time of row 0); if the "
        "responses are longer than the story, drop the extra rows with trim=(first, last)."
    )
    if share > GRID_OUTSIDE_ERROR:
        raise ValueError(msg + hint + f" Over {GRID_OUTSIDE_ERROR:.0%} is refused: the fit would "
                         "mostly be of rows without words.")
    msg += hint
    logger.warning(msg)
    if sink is not None:
        sink.append(msg)
    return share
