"""Decoding transcript files: UTF-8 (with or without a BOM), UTF-16/32 by their BOM, or an
explicit ``encoding``; anything else is an error that names the file, the byte and the fix.

No reader guesses a legacy encoding: a cp1252 ``don’t`` read as latin-1 becomes ``don\\x92t``,
and one stray byte in a UTF-8 file turns ``café`` into ``cafÃ©``, silently. The encoding of
such a file must be given (``encoding=`` of every reader, ``--encoding`` on the command line,
``dataset.transcript_encoding`` in a run config).
"""
from __future__ import annotations

import codecs
import contextlib
import contextvars
import os
from collections.abc import Iterator

from .transcript import TranscriptError

#: The encoding used when a reader's ``encoding`` is None (set by :func:`default_encoding`).
_DEFAULT: contextvars.ContextVar[str | None] = contextvars.ContextVar("neuroenc_transcript_encoding",
                                                                     default=None)

#: How to name the option in messages: the API argument, then the CLI and config spellings.
ENCODING_HINT = ("encoding= (--encoding on the command line, dataset.transcript_encoding in a "
                 "run config)")

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: its BOM starts with UTF-16 LE's
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@contextlib.contextmanager
def default_encoding(encoding: str | None) -> Iterator[None]:
    """Read transcripts with ``encoding`` inside a ``with`` block, wherever a reader is called
    without one (e.g. inside a data-set loader); ``None`` changes nothing.

    Examples
    --------
    >>> from neuroenc.stimuli import default_encoding
    >>> with default_encoding("cp1252"):  # doctest: +SKIP
    ...     dataset = load_alice()
    """
    if encoding is not None:
        check_encoding(encoding)
    token = _DEFAULT.set(encoding) if encoding is not None else None
    try:
        yield
    finally:
        if token is not None:
            _DEFAULT.reset(token)


def check_encoding(encoding: str) -> str:
    """``encoding`` if Python knows it, else a TranscriptError listing common ones."""
    if not isinstance(encoding, str):
        raise TranscriptError(f"encoding must be a codec name such as 'cp1252', got {encoding!r}.")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise TranscriptError(
            f"Unknown encoding {encoding!r}; use a Python codec name such as 'utf-8', 'utf-16', "
            "'cp1252' (Windows Western), 'latin-1' or 'mac-roman'."
        ) from None
    return encoding


def _where(raw: bytes, start: int) -> str:
    line = raw.count(b"\n", 0, start) + 1
    snippet = raw[max(0, start - 12):start + 12]
    return f"byte {start} (0x{raw[start]:02x}, line {line}, in {snippet!r})"


def decode_bytes(raw: bytes, path: str | os.PathLike, what: str = "transcript",
                 encoding: str | None = None) -> str:
    """The text of a transcript file's bytes.

    Parameters
    ----------
    raw : bytes
        The file's content.
    path : path-like
        The file, for messages.
    what : str
        What the file is, for messages (``"TextGrid"``, ``"events file"``...).
    encoding : str | None
        The file's encoding. ``None`` (default): the one set by :func:`default_encoding`, else
        UTF-8 (a UTF-8 BOM is dropped), or UTF-16/UTF-32 when the file starts with their BOM.

    Raises
    ------
    TranscriptError
        When the bytes are not valid in that encoding: the message names the file, the byte
        offset (and line) of the first bad byte, and the ``encoding=`` option.
    """
    encoding = encoding if encoding is not None else _DEFAULT.get()
    if encoding is not None:
        check_encoding(encoding)
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as err:
            raise TranscriptError(
                f"{what} {str(path)!r} is not valid {encoding} text: {_where(raw, err.start)} cannot be "
                f"decoded ({err.reason}). Pass its real encoding with {ENCODING_HINT}."
            ) from None
        return text.removeprefix("\ufeff")
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            try:
                return raw.decode(codec).removeprefix("\ufeff")
            except UnicodeDecodeError as err:
                raise TranscriptError(
                    f"{what} {str(path)!r} starts with a {codec.replace('-sig', '').upper()} byte-order "
                    f"mark but {_where(raw, err.start)} cannot be decoded ({err.reason}): the file is "
                    f"damaged or mislabelled. Pass its real encoding with {ENCODING_HINT}."
                ) from None
    head = raw[:4096]
    if head.count(b"\x00") > len(head) // 4:
        raise TranscriptError(
            f"{what} {str(path)!r} looks like UTF-16 without a byte-order mark (it is full of zero "
            f"bytes). Pass encoding='utf-16-le' (or 'utf-16-be') with {ENCODING_HINT}."
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TranscriptError(
            f"{what} {str(path)!r}: it is not UTF-8 text ({_where(raw, err.start)} cannot be "
            f"decoded: {err.reason}). Save it as UTF-8, or give its encoding with {ENCODING_HINT}, "
            "e.g. encoding='cp1252' (Windows) or 'latin-1'."
        ) from None


def read_text_file(path: str | os.PathLike, what: str = "transcript", encoding: str | None = None) -> str:
    """The decoded text of a file (see :func:`decode_bytes`)."""
    with open(path, "rb") as fid:
        raw = fid.read()
    return decode_bytes(raw, path, what, encoding)


__all__ = ["check_encoding", "decode_bytes", "default_encoding", "read_text_file"]
