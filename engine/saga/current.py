"""Which saga the running step belongs to, for step code that needs its id."""

from __future__ import annotations

import contextvars
import uuid

_CURRENT: contextvars.ContextVar[uuid.UUID | None] = contextvars.ContextVar(
    "engine_current_saga_id", default=None
)


def current_saga_id() -> uuid.UUID | None:
    """The id of the saga whose ``act`` or ``compensate`` is running in this task."""
    return _CURRENT.get()
