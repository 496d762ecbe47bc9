"""The one description of a checkpoint's row changes, and of a log row read back.

``checkpoint_rows`` turns a :class:`Checkpoint` into plain data: the saga row to insert
(or the columns to change on the existing one, and how) and the log rows to append.
The memory store, the SQLAlchemy Core path and the raw SQLite writer apply it
mechanically, so the write rules live here once. ``log_entry`` is the other direction:
one stored log row as a :class:`SagaLogEntry`, for every backend.

Values are in their stored form (statuses as upper-case names), except the time: every
``now`` in the description is the value the backend passed in (a float, a datetime or
SQLite's text), and the context, which stays a dict for the backend to encode.
"""

from __future__ import annotations

import datetime
import typing
import uuid

from engine.saga.errors import LeaseLostError, SagaExistsError, SagaNotFoundError
from engine.saga.storage.enums import (
    TERMINAL_STATUSES,
    SagaStatus,
    SagaStepStatus,
    parse_status,
)
from engine.saga.storage.models import Checkpoint, FailureMark, SagaLogEntry

SAGA_COLUMNS = (
    "id",
    "name",
    "status",
    "context",
    "version",
    "created_at",
    "updated_at",
    "recovery_attempts",
    "lease_owner",
    "lease_expires",
    "requested_action",
    "step_count",
    "steps_done",
    "current_step",
    "error_type",
    "error_message",
    "error_traceback",
    "finished_at",
    "fence",
    "search_key",
    "failure_key",
    "failure_step",
    "failure_type",
    "failure_message",
    "failed_at",
)
"""The saga_executions columns, in table order."""

LOG_COLUMNS = (
    "step_name",
    "action",
    "status",
    "details",
    "created_at",
    "error_type",
    "error_message",
    "error_traceback",
    "attempt",
    "duration_ms",
)
"""The saga_logs columns a log row carries, in this order (its id and saga_id aside)."""

EVENT_COLUMNS = (
    "event_id",
    "step_name",
    "kind",
    "event_type",
    "event_name",
    "payload",
    "state",
    "attempts",
    "last_error",
    "created_at",
    "updated_at",
    "delivered_at",
    "claim_owner",
    "claim_expires",
)
"""The saga_events columns an event row carries, in this order (its id and saga_id aside)."""

EventRow = tuple[typing.Any, ...]

LogRow = tuple[
    str, str, str, str | None, typing.Any, str | None, str | None, str | None, int, float | None
]


# Looked up by name: Enum.__hash__ is Python code, a set of members would call it.
_TERMINAL_NAMES = frozenset(status.name for status in TERMINAL_STATUSES)


Guard = tuple[tuple[str, typing.Any], ...]

CheckpointRows = tuple[
    dict[str, typing.Any] | None,
    dict[str, typing.Any] | None,
    tuple[str, ...],
    Guard,
    list[LogRow],
    typing.Sequence[EventRow],
]
"""(insert, update, increment, guard, logs, events); a plain tuple, built on the hot path.

* ``insert``: every column of the saga row a creating checkpoint inserts, or None;
* ``update``: column -> new value for the existing saga row (None when inserting);
* ``increment``: columns of the existing row to add one to;
* ``guard``: (column, value) pairs the existing row must hold for the update to apply:
  the lease owner and the fence its claim got. The backend puts them in the UPDATE's
  WHERE (no extra round trip) and refuses with :func:`lease_lost` when nothing matched;
* ``logs``: rows to append to the log, values in LOG_COLUMNS order;
* ``events``: rows to append to the outbox, values in EVENT_COLUMNS order (mostly none).
"""

_NO_INCREMENT: tuple[str, ...] = ()
_NO_GUARD: Guard = ()
_NO_EVENTS: tuple[EventRow, ...] = ()
_VERSION = ("version",)

FIRST_FENCE = 1
"""The fence of a saga's creating run; each claim after it adds one."""


def checkpoint_guard(cp: Checkpoint) -> Guard:
    """What the saga row must hold for ``cp`` to apply: its owner and that owner's fence."""
    owner = cp.owner
    if owner is None:
        return _NO_GUARD
    if cp.fence is None:
        return (("lease_owner", owner),)
    return (("lease_owner", owner), ("fence", cp.fence))


def checkpoint_rows(cp: Checkpoint, now: typing.Any) -> CheckpointRows:
    """The row changes of checkpoint ``cp``, stamped with the backend's ``now``.

    The write applies only while ``cp.owner`` (when set) holds the lease with ``cp.fence``
    (when set); the backend checks the guard and refuses with :func:`lease_lost` before
    writing anything.
    """
    logs: list[LogRow] = []
    for write in cp.logs:
        error = write.error
        if error is None:
            logs.append(
                (
                    write.step_name,
                    write.action,
                    write.status._name_,
                    write.details,
                    now,
                    None,
                    None,
                    None,
                    write.attempt,
                    write.duration_ms,
                ),
            )
        else:
            logs.append(
                (
                    write.step_name,
                    write.action,
                    write.status._name_,
                    write.details,
                    now,
                    error.type,
                    error.message,
                    error.traceback,
                    write.attempt,
                    write.duration_ms,
                ),
            )
    events = event_rows(cp, now) if cp.events else _NO_EVENTS
    if cp.create is not None:
        return _insert(cp, now), None, _NO_INCREMENT, _NO_GUARD, logs, events
    # The common checkpoints (a step's progress) are decided in a few field tests.
    update: dict[str, typing.Any] = {"updated_at": now}
    increment = _NO_INCREMENT
    status = cp.status
    if status is not None:
        update["status"] = status._name_
        update["finished_at"] = now if status._name_ in _TERMINAL_NAMES else None
    if cp.context is not None:
        update["context"] = cp.context
        increment = _VERSION
    if cp.current_step is not None:
        update["current_step"] = cp.current_step or None  # "" clears it
    if cp.steps_done is not None:
        update["steps_done"] = cp.steps_done
    error = cp.error
    if error is not None:
        update["error_type"] = error.type
        update["error_message"] = error.message
        update["error_traceback"] = error.traceback
    elif cp.clear_error:
        update["error_type"] = update["error_message"] = update["error_traceback"] = None
    if cp.release_lease:
        update["lease_owner"] = update["lease_expires"] = None
    elif cp.lease_expires is not None:
        update["lease_expires"] = cp.lease_expires
    if cp.bump_recovery_attempts:
        increment = (*increment, "recovery_attempts")
    if cp.clear_requested_action:
        update["requested_action"] = None
    if cp.failure is not None:
        update.update(_failure_columns(cp.failure, now))
    return None, update, increment, checkpoint_guard(cp), logs, events


def _failure_columns(mark: FailureMark | None, now: typing.Any) -> dict[str, typing.Any]:
    """The failure columns for ``mark`` (all None for none, or for NO_FAILURE)."""
    if mark is None or not mark.key:
        return dict.fromkeys(_FAILURE_COLUMNS)
    return {
        "failure_key": mark.key,
        "failure_step": mark.step,
        "failure_type": mark.type,
        "failure_message": mark.message,
        "failed_at": now,
    }


_FAILURE_COLUMNS = ("failure_key", "failure_step", "failure_type", "failure_message", "failed_at")


def event_rows(cp: Checkpoint, now: typing.Any) -> list[EventRow]:
    """The outbox rows of the checkpoint's events: PENDING, claimed by its owner if asked."""
    return [
        (
            event.event_id,
            event.step_name,
            event.kind,
            event.event_type,
            event.event_name,
            event.payload,
            "PENDING",
            0,
            None,
            now,
            now,
            None,
            cp.owner if event.claim_expires is not None else None,
            event.claim_expires,
        )
        for event in cp.events
    ]


def _insert(cp: Checkpoint, now: typing.Any) -> dict[str, typing.Any]:
    create = cp.create
    assert create is not None
    status = cp.status or SagaStatus.PENDING
    error = cp.error
    holds = cp.owner is not None and not cp.release_lease
    return {
        "id": cp.saga_id,
        "name": create.name,
        "status": status._name_,
        "context": create.context,
        "version": 1,
        "created_at": now,
        "updated_at": now,
        "recovery_attempts": 1 if cp.bump_recovery_attempts else 0,
        "lease_owner": cp.owner if holds else None,
        "lease_expires": cp.lease_expires if holds else None,
        "requested_action": None,
        "step_count": create.step_count,
        "steps_done": cp.steps_done or 0,
        "current_step": cp.current_step or None,
        "error_type": error.type if error else None,
        "error_message": error.message if error else None,
        "error_traceback": error.traceback if error else None,
        "finished_at": now if status._name_ in _TERMINAL_NAMES else None,
        "fence": FIRST_FENCE,
        "search_key": create.search_key,
        **_failure_columns(cp.failure, now),
    }


def log_entry(
    log_id: int,
    saga_id: uuid.UUID,
    saga_name: str,
    values: typing.Sequence[typing.Any],
    to_time: typing.Callable[[typing.Any], datetime.datetime],
) -> SagaLogEntry:
    """A stored log row (``values`` in LOG_COLUMNS order) as a SagaLogEntry; never raises.

    ``to_time`` reads the backend's stored time; a missing attempt (a python-cqrs row)
    counts as the first. A field that does not parse (written by another program) makes
    the entry ``unreadable`` with the reason, and readers leave it out of the lanes.
    """
    step, action, status, details, created, etype, emessage, etraceback, attempt, took = values
    problems: list[str] = []
    try:
        step_status = parse_status(status, SagaStepStatus)
    except (ValueError, AttributeError, TypeError):
        problems.append(f"status {status!r:.60} is not a step status")
        step_status = SagaStepStatus.FAILED
    try:
        moment = to_time(created)
    except (ValueError, TypeError, AttributeError, OverflowError):
        problems.append(f"created_at {created!r:.60} is not a time")
        moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    if action not in ("act", "compensate"):
        problems.append(f"action {action!r:.60} is neither act nor compensate")
    if attempt is None:
        attempt = 1
    elif isinstance(attempt, bool) or not isinstance(attempt, int):
        problems.append(f"attempt {attempt!r:.60} is not a number")
        attempt = 1
    if took is not None and (isinstance(took, bool) or not isinstance(took, int | float)):
        problems.append(f"duration_ms {took!r:.60} is not a number")
        took = None
    return SagaLogEntry(
        saga_id,
        step if isinstance(step, str) else str(step),
        action,
        step_status,
        moment,
        details,
        id=log_id,
        saga_name=saga_name,
        error_type=etype,
        error_message=emessage,
        error_traceback=etraceback,
        attempt=attempt,
        duration_ms=took,
        unreadable="; ".join(problems) or None,
    )


def already_exists(saga_id: uuid.UUID) -> SagaExistsError:
    """The refusal of a creating checkpoint whose saga exists (it wrote nothing)."""
    return SagaExistsError(f"Saga {saga_id} already exists")


def not_found(saga_id: uuid.UUID) -> SagaNotFoundError:
    """The refusal of a checkpoint (or request) for a saga that does not exist."""
    return SagaNotFoundError(f"Saga {saga_id} not found")


def lease_lost(
    saga_id: uuid.UUID,
    holder: str | None,
    fence: typing.Any = None,
    owner: str | None = None,
) -> LeaseLostError:
    """The refusal of a checkpoint whose owner no longer holds the lease (or its fence).

    Names the holder and its fence, or says that the lease was released.
    """
    head = f"Saga {saga_id}: lease lost"
    if holder is None:
        return LeaseLostError(
            f"{head}: the lease was released (another runner took the saga over or ended it)"
        )
    at = f" (fence {fence})" if fence is not None else ""
    if owner is not None and holder == owner:
        return LeaseLostError(f"{head}: a later claim by this process holds it now{at}")
    return LeaseLostError(f"{head}: now held by {holder}{at}")
