"""Failures as stored: an exception turned into its type, message and traceback.

Capturing a failure never fails: the text of any exception is taken safely (a ``__str__``
that raises or returns something else than a str), made storable by every backend (a NUL
or a lone surrogate becomes a visible escape) and capped, so one huge message cannot
fill the database, the screen or the log. A password in a database URL is masked.
"""

from __future__ import annotations

import re
import traceback as tb
import typing

from engine.saga.secrets import mask_secrets
from engine.saga.storage.models import ErrorInfo

MESSAGE_LIMIT = 8 * 1024
"""Characters of an error message that are stored (and logged); the rest is counted."""

TRACEBACK_LIMIT = 64 * 1024
"""Characters of a formatted traceback that are stored."""

NAME_LIMIT = 255
"""Characters of an error type name (the column is 255 characters wide)."""

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return "\\x00" if code == 0 else f"\\u{code:04x}"


def storable(text: str) -> str:
    """``text`` as every backend stores it: NUL and lone surrogates as visible escapes."""
    return _UNSTORABLE.sub(_escape, text)


def capped(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... {len(text) - limit} more characters"


def safe_text(value: object, limit: int = MESSAGE_LIMIT) -> str:
    """``str(value)`` that never raises, storable, secrets masked, capped to ``limit``."""
    try:
        text = str(value)
    except BaseException as exc:  # a broken __str__ must not fail the capture
        text = f"<{type(value).__name__}.__str__ failed: {type(exc).__name__}>"
    return mask_secrets(storable(capped(text, limit)))


def exception_text(exc: BaseException, limit: int = MESSAGE_LIMIT) -> str:
    """The message of ``exc`` as stored: taken safely, storable, capped."""
    return safe_text(exc, limit)


def describe(exc: BaseException, limit: int = MESSAGE_LIMIT) -> str:
    """``Type: message`` of ``exc`` (just the type when the message is empty), for logs."""
    message = exception_text(exc, limit)
    name = type_name(exc)
    return f"{name}: {message}" if message else name


def type_name(exc: BaseException) -> str:
    """The exception's class name as stored."""
    return storable(str(type(exc).__name__))[:NAME_LIMIT]


def _traceback(exc: BaseException, limit: int) -> str:
    try:
        chunks: typing.Iterable[str] = tb.TracebackException(
            type(exc), exc, exc.__traceback__, capture_locals=False
        ).format()
    except BaseException as failure:
        return f"(the traceback could not be formatted: {type(failure).__name__})"
    kept: list[str] = []
    size = 0
    more = 0
    try:
        for chunk in chunks:
            if size >= limit:
                more += len(chunk)
                continue
            room = limit - size
            if len(chunk) > room:
                more += len(chunk) - room
                chunk = chunk[:room]
            kept.append(chunk)
            size += len(chunk)
    except BaseException as failure:
        kept.append(f"(the rest of the traceback could not be formatted: {type(failure).__name__})")
    text = "".join(kept)
    if more:
        text += f"... {more} more characters"
    return mask_secrets(storable(text))


def error_info(exc: BaseException) -> ErrorInfo:
    """Type, message and formatted traceback of an exception, as stored; never raises."""
    return ErrorInfo(
        type=type_name(exc),
        message=exception_text(exc),
        traceback=_traceback(exc, TRACEBACK_LIMIT),
    )


def without_traceback(error: ErrorInfo | None) -> ErrorInfo | None:
    """The saga row's copy of a step's error: the traceback stays with its log entry only."""
    if error is None or error.traceback is None:
        return error
    return ErrorInfo(error.type, error.message, None)
