"""Failures as stored: an exception turned into its type, message and traceback."""

from __future__ import annotations

import traceback as tb

from engine.saga.storage.models import ErrorInfo


def error_info(exc: BaseException) -> ErrorInfo:
    """Type, message and formatted traceback of an exception, as stored."""
    return ErrorInfo(
        type=type(exc).__name__,
        message=str(exc),
        traceback="".join(tb.format_exception(type(exc), exc, exc.__traceback__)),
    )
