"""Engine errors that carry a one-line reason for operators."""

from __future__ import annotations

import traceback as tb
import uuid

from engine.saga.storage.models import ErrorInfo


class SagaError(Exception):
    """Base class of engine errors."""


class SagaNotRegisteredError(SagaError, LookupError):
    """No saga class is registered for a context type or a stored saga name."""


class SagaBusyError(SagaError):
    """Another live process holds the saga's lease."""

    def __init__(self, saga_id: uuid.UUID, owner: str | None) -> None:
        super().__init__(f"Saga {saga_id} is being run by {owner or 'another runner'}")
        self.saga_id = saga_id
        self.owner = owner


class ContextLoadError(SagaError):
    """A stored context no longer parses into its context class."""


class CompensationRequestedError(SagaError):
    """An operator asked for this saga to be compensated while it ran; it was."""


def error_info(exc: BaseException) -> ErrorInfo:
    """Type, message and formatted traceback of an exception, as stored."""
    return ErrorInfo(
        type=type(exc).__name__,
        message=str(exc),
        traceback="".join(tb.format_exception(type(exc), exc, exc.__traceback__)),
    )
