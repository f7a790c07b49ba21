"""The package logger (one ``neuroenc`` logger with a NullHandler, as mne and nilearn do)."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

logger = logging.getLogger("neuroenc")
logger.addHandler(logging.NullHandler())

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def _to_level(verbose: bool | str | int | None) -> int:
    if verbose is None or verbose is False:
        return logging.WARNING
    if verbose is True:
        return logging.INFO
    if isinstance(verbose, str):
        key = verbose.lower()
        if key not in _LEVELS:
            allowed = ", ".join(repr(k) for k in _LEVELS)
            raise ValueError(
                f"Invalid value for 'verbose'. Allowed values are {allowed}, True, False, "
                f"None or an int, but got {verbose!r} instead."
            )
        return _LEVELS[key]
    return int(verbose)


def set_log_level(verbose: bool | str | int | None = "info", add_handler: bool = True) -> None:
    """Set the level of the ``neuroenc`` logger.

    Parameters
    ----------
    verbose : bool | str | int | None
        ``True`` or ``"info"`` for progress messages, ``False``/``None``/``"warning"`` for
        warnings only, ``"debug"`` for everything, or a :mod:`logging` level.
    add_handler : bool
        Attach a stream handler (to stderr) if the logger has none yet, so that messages show
        up in scripts and the CLI.
    """
    logger.setLevel(_to_level(verbose))
    if add_handler and not any(
        isinstance(h, logging.StreamHandler) and not isinstance(h, logging.NullHandler)
        for h in logger.handlers
    ):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s [%(name)s] %(message)s"))
        logger.addHandler(handler)


@contextlib.contextmanager
def use_log_level(verbose: bool | str | int | None) -> Iterator[None]:
    """Temporarily set the level of the ``neuroenc`` logger (a context manager)."""
    old = logger.level
    logger.setLevel(_to_level(verbose))
    try:
        yield
    finally:
        logger.setLevel(old)
