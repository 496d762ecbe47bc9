"""Every error the engine and its storage raise, under one base: SagaError.

This module imports nothing from the engine, so any module may import it.
"""

from __future__ import annotations

import typing
import uuid


class SagaError(Exception):
    """Base class of every engine and storage error; the message is one line for users."""


# ---- running sagas ---------------------------------------------------------------------


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


class ContextSerializationError(SagaError, TypeError):
    """A saga context cannot be stored; the message names the field."""


class CompensationRequestedError(SagaError):
    """An operator asked for this saga to be compensated while it ran; it was."""


class RecoveryGaveUpError(SagaError):
    """A saga recovered ``max_recovery_attempts`` times without an end was set FAILED."""


class ForwardNotAllowedError(SagaError, RuntimeError):
    """A saga resumed after it began compensating: compensation finished, no forward run."""


# ---- storage ---------------------------------------------------------------------------


class SagaStorageError(SagaError):
    """Base class of storage errors that carry a one-line reason for the user."""


class SagaNotFoundError(SagaStorageError, ValueError):
    """No saga with that id."""


class InvalidSagaIdError(SagaError, ValueError):
    """A saga id that is not a UUID (refused before any query)."""


def saga_uuid(value: object) -> typing.Any:
    """``value`` as a ``uuid.UUID`` saga id; InvalidSagaIdError saying why otherwise."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise InvalidSagaIdError(f"not a saga id: {shown} (a UUID is expected)")


class SagaExistsError(SagaStorageError, ValueError):
    """A checkpoint would create a saga whose id is already stored."""


class LeaseLostError(SagaStorageError):
    """The writer no longer holds the saga's lease: another runner took it over.

    A run that gets it stops at once: no further writes, no compensation (the runner
    that holds the lease now decides).
    """


class SagaDataError(SagaStorageError):
    """The database refused this saga's data (a value, a size, a constraint); it is up."""


class StorageUnavailableError(SagaStorageError):
    """The database cannot take writes now (full, locked past the timeout, gone).

    A run that gets it stops and leaves the saga for recovery: nothing is compensated
    while nothing can be recorded.
    """


class SagaConcurrencyError(SagaStorageError):
    """Optimistic locking failed: the stored version moved on."""


class ReadOnlyStorageError(SagaStorageError):
    """A write was attempted on storage opened read-only."""


class SchemaError(SagaStorageError):
    """The database cannot be used by this code; the message is one line for the user."""
