"""Which saga the running step belongs to, and its fence, for step code that needs them."""

from __future__ import annotations

import contextvars
import typing
import uuid


class RunningStep(typing.Protocol):
    """What step code can learn about the run calling it (``SagaRun`` provides it)."""

    saga_id: uuid.UUID
    fence: int


# The run itself is set (no tuple per step): the hot path allocates nothing here.
_CURRENT: contextvars.ContextVar[RunningStep | None] = contextvars.ContextVar(
    "engine_current_run", default=None
)


def current_saga_id() -> uuid.UUID | None:
    """The id of the saga whose ``act`` or ``compensate`` is running in this task."""
    run = _CURRENT.get()
    return run.saga_id if run is not None else None


def current_fence() -> int | None:
    """The fence of the run whose ``act`` or ``compensate`` is running in this task.

    Every claim of a saga (its creation, a recovery, a compensation) gets a higher fence
    than the one before. A service that remembers the highest fence it has seen for a
    saga and refuses an effect carrying a lower one makes its effect exactly-once, even
    when a runner that lost its lease (paused, blocked) wakes up inside a step.
    """
    run = _CURRENT.get()
    return run.fence if run is not None else None
