"""The package logger (one ``neuroenc`` logger with a NullHandler, as mne and nilearn do), and
the one meaning of ``verbose``.

Every ``verbose`` parameter of neuroenc follows mne's convention (:func:`verbose_level`):
``None`` (the default) follows the ``neuroenc`` logger's level (what :func:`set_log_level` or the
command line's ``-q``/``-v`` chose), ``True`` is ``INFO``, ``False`` is ``WARNING``, a level name
(``"debug"``, ``"info"``, ``"warning"``, ``"error"``, ``"critical"``) or a :mod:`logging` level
(an int) is that level. Progress bars show at ``INFO`` and below (:func:`show_progress`).
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

logger = logging.getLogger("neuroenc")
logger.addHandler(logging.NullHandler())

#: The level names ``verbose`` takes (case-insensitive), and their :mod:`logging` levels.
LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def verbose_level(verbose: bool | str | int | None) -> int:
    """The :mod:`logging` level an mne-style ``verbose`` stands for.

    Parameters
    ----------
    verbose : bool | str | int | None
        ``None``: the ``neuroenc`` logger's effective level; ``True``: ``INFO``; ``False``:
        ``WARNING``; a level name (:data:`LOG_LEVELS`, any case) or a :mod:`logging` level.

    Returns
    -------
    level : int

    Raises
    ------
    ValueError
        For an unknown level name.

    Examples
    --------
    >>> verbose_level(True), verbose_level(False), verbose_level("debug"), verbose_level(40)
    (20, 30, 10, 40)
    """
    if verbose is None:
        return logger.getEffectiveLevel()
    if verbose is True:
        return logging.INFO
    if verbose is False:
        return logging.WARNING
    if isinstance(verbose, str):
        key = verbose.lower()
        if key not in LOG_LEVELS:
            allowed = ", ".join(repr(k) for k in LOG_LEVELS)
            raise ValueError(
                f"Invalid value for 'verbose'. Allowed values are {allowed}, True, False, "
                f"None or an int, but got {verbose!r} instead."
            )
        return LOG_LEVELS[key]
    return int(verbose)


def show_progress(verbose: bool | str | int | None) -> bool:
    """Whether a call with this ``verbose`` shows progress bars (at ``INFO`` and below)."""
    return verbose_level(verbose) <= logging.INFO


class CallLog:
    """One call's log level (mne-style ``verbose``, :func:`verbose_level`), without touching the
    shared logger.

    ``verbose=None`` inherits the logger's effective level (what the CLI's ``-q``/``-v`` or
    :func:`set_log_level` chose). An explicit level applies to this call's own messages and
    progress bar only: the logger's level is never changed, so calls in other threads and the
    caller's settings are unaffected.

    Parameters
    ----------
    verbose : bool | str | int | None
        As :func:`verbose_level`.
    log : logging.Logger | None
        The logger the messages go to (the calling module's, under ``neuroenc``); default the
        ``neuroenc`` logger.
    """

    def __init__(self, verbose: bool | str | int | None, log: logging.Logger | None = None) -> None:
        self.logger = logger if log is None else log
        self.explicit = verbose is not None
        self.level = verbose_level(verbose) if self.explicit else self.logger.getEffectiveLevel()

    @property
    def progress(self) -> bool:
        """Whether to show progress bars (at ``INFO`` or below)."""
        return self.level <= logging.INFO

    def log(self, level: int, msg: str, *args: Any) -> None:
        """Log ``msg % args`` at ``level`` if this call's level lets it through."""
        log = self.logger
        if level < self.level or log.disabled:
            return
        if log.isEnabledFor(level):
            log.log(level, msg, *args, stacklevel=2)
        elif self.explicit:  # asked for by this call, below the logger's own threshold
            log.handle(log.makeRecord(log.name, level, __file__, 0, msg, args, None))


def set_log_level(verbose: bool | str | int | None = "info", add_handler: bool = True) -> None:
    """Set the level of the ``neuroenc`` logger.

    Parameters
    ----------
    verbose : bool | str | int | None
        As every ``verbose`` (:func:`verbose_level`): ``True`` or ``"info"`` for progress
        messages, ``False`` or ``"warning"`` for warnings only, ``"debug"`` for everything, a
        :mod:`logging` level; ``None`` keeps the logger's effective level.
    add_handler : bool
        Attach a stream handler (to stderr) if the logger has none yet, so that messages show
        up in scripts and the CLI.
    """
    logger.setLevel(verbose_level(verbose))
    if add_handler and not any(
        isinstance(h, logging.StreamHandler) and not isinstance(h, logging.NullHandler)
        for h in logger.handlers
    ):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s [%(name)s] %(message)s"))
        logger.addHandler(handler)


@contextlib.contextmanager
def use_log_level(verbose: bool | str | int | None) -> Iterator[None]:
    """Temporarily set the level of the ``neuroenc`` logger (a context manager; ``verbose`` as
    :func:`verbose_level`)."""
    old = logger.level
    logger.setLevel(verbose_level(verbose))
    try:
        yield
    finally:
        logger.setLevel(old)


# ---------------------------------------------------------------------- per-subject context
_CONTEXT: contextvars.ContextVar[tuple[tuple[str, Any], ...]] = contextvars.ContextVar("neuroenc_log_context",
                                                                                     default=())


@contextlib.contextmanager
def log_context(**items: Any) -> Iterator[None]:
    """What the messages logged inside are about (``subject="s18"``), for handlers that group
    them (:class:`RepeatedWarnings`); a context manager, safe across threads and tasks
    (:mod:`contextvars`)."""
    token = _CONTEXT.set(tuple({**dict(_CONTEXT.get()), **items}.items()))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def logs_subject(func: Callable) -> Callable:
    """Decorate a function whose ``subject`` argument its messages are about: they are logged
    in :func:`log_context` ``(subject=...)``."""
    signature = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        subject = signature.bind_partial(*args, **kwargs).arguments.get("subject")
        with log_context(subject=subject):
            return func(*args, **kwargs)

    return wrapper


_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?%?")
_NUMBERS = re.compile(r"#(?:\s*(?:,|-|–|to)\s*#)+")


def _shape(message: str, subject: str) -> str:
    """A message with its subject's name and its numbers taken out: equal shapes are the same
    warning about different subjects."""
    text = message.replace(subject, "{subject}") if subject else message
    return _NUMBERS.sub("#", _NUMBER.sub("#", text))


def _names(subjects: list[str], limit: int = 10) -> str:
    return ", ".join(subjects[:limit]) + (", …" if len(subjects) > limit else "")


class RepeatedWarnings(logging.Filter):
    """A handler's filter that prints a warning repeated across subjects once.

    Warnings logged in a subject's :func:`log_context` are held; :meth:`flush` emits each
    once, with the subjects it was logged for: ``"<message> (27 subjects: s01, s02, …)"``.
    Warnings that differ only in their numbers (a share, a layer list) are one warning: the
    first subject's is shown, and the line says that the numbers differ. Messages outside a
    subject's context, and below ``WARNING``, pass at once.

    Parameters
    ----------
    handler : logging.Handler
        The handler it filters (and emits the held warnings to).
    """

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__()
        self.handler = handler
        self.held: dict[tuple, dict[str, Any]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        subject = dict(_CONTEXT.get()).get("subject")
        if record.levelno < logging.WARNING or subject is None or getattr(record, "_collapsed", False):
            return True
        subject = str(subject)
        message = record.getMessage()
        key = (record.levelno, record.name, _shape(message, subject))
        entry = self.held.setdefault(key, {"record": record, "message": message, "subjects": [], "texts": set()})
        if subject not in entry["subjects"]:
            entry["subjects"].append(subject)
        entry["texts"].add(message.replace(subject, "{subject}"))
        return False

    def flush(self) -> None:
        """Emit the held warnings, each once (in the order first seen)."""
        held, self.held = self.held, {}
        for entry in held.values():
            subjects = entry["subjects"]
            if len(subjects) == 1:
                text = f"{entry['message']} (subject {subjects[0]})"
            elif len(entry["texts"]) == 1:
                text = f"{entry['message']} ({len(subjects)} subjects: {_names(subjects)})"
            else:
                text = (f"{entry['message']} (subject {subjects[0]}; the same warning, with other numbers, "
                        f"for {len(subjects)} subjects: {_names(subjects)}; each subject's results keep its own)")
            record = logging.makeLogRecord({**entry["record"].__dict__, "msg": text, "args": None,
                                            "_collapsed": True})
            self.handler.handle(record)


@contextlib.contextmanager
def collapse_repeated_warnings(log: logging.Logger | None = None) -> Iterator[RepeatedWarnings]:
    """Print each warning repeated across subjects once (:class:`RepeatedWarnings`) on the
    stream handlers of the ``neuroenc`` logger, while inside; the held warnings are printed at
    :func:`flush_repeated_warnings` and on leaving (also on an error)."""
    log = logger if log is None else log
    handlers = [h for h in log.handlers if isinstance(h, logging.StreamHandler)]
    filters = [RepeatedWarnings(h) for h in handlers]
    for h, f in zip(handlers, filters):
        h.addFilter(f)
    _ACTIVE.extend(filters)
    try:
        yield filters[0] if filters else RepeatedWarnings(logging.NullHandler())
    finally:
        for h, f in zip(handlers, filters):
            f.flush()
            h.removeFilter(f)
            _ACTIVE.remove(f)


_ACTIVE: list[RepeatedWarnings] = []


def flush_repeated_warnings() -> None:
    """Print the warnings held so far (:func:`collapse_repeated_warnings`), e.g. before a
    summary."""
    for f in list(_ACTIVE):
        f.flush()
