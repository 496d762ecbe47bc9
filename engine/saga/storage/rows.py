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
from engine.saga.storage.models import Checkpoint, SagaLogEntry

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

LogRow = tuple[
    str, str, str, str | None, typing.Any, str | None, str | None, str | None, int, float | None
]


# Looked up by name: Enum.__hash__ is Python code, a set of members would call it.
_TERMINAL_NAMES = frozenset(status.name for status in TERMINAL_STATUSES)


CheckpointRows = tuple[
    dict[str, typing.Any] | None,
    dict[str, typing.Any] | None,
    tuple[str, ...],
    list[LogRow],
]
"""(insert, update, increment, logs); a plain tuple, since it is built on the hot path.

* ``insert``: every column of the saga row a creating checkpoint inserts, or None;
* ``update``: column -> new value for the existing saga row (None when inserting);
* ``increment``: columns of the existing row to add one to;
* ``logs``: rows to append to the log, values in LOG_COLUMNS order.
"""

_NO_INCREMENT: tuple[str, ...] = ()
_VERSION = ("version",)


def checkpoint_rows(cp: Checkpoint, now: typing.Any) -> CheckpointRows:
    """The row changes of checkpoint ``cp``, stamped with the backend's ``now``.

    The write applies only while ``cp.owner`` (when set) holds the lease; the backend
    checks that and refuses with :func:`lease_lost` before writing anything.
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
    if cp.create is not None:
        return _insert(cp, now), None, _NO_INCREMENT, logs
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
    return None, update, increment, logs


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
    }


def log_entry(
    log_id: int,
    saga_id: uuid.UUID,
    saga_name: str,
    values: typing.Sequence[typing.Any],
    to_time: typing.Callable[[typing.Any], datetime.datetime],
) -> SagaLogEntry:
    """A stored log row (``values`` in LOG_COLUMNS order) as a SagaLogEntry.

    ``to_time`` reads the backend's stored time; a missing attempt (a python-cqrs row)
    counts as the first.
    """
    step, action, status, details, created, etype, emessage, etraceback, attempt, took = values
    return SagaLogEntry(
        saga_id,
        step,
        action,
        parse_status(status, SagaStepStatus),
        to_time(created),
        details,
        id=log_id,
        saga_name=saga_name,
        error_type=etype,
        error_message=emessage,
        error_traceback=etraceback,
        attempt=attempt if attempt is not None else 1,
        duration_ms=took,
    )


def already_exists(saga_id: uuid.UUID) -> SagaExistsError:
    """The refusal of a creating checkpoint whose saga exists (it wrote nothing)."""
    return SagaExistsError(f"Saga {saga_id} already exists")


def not_found(saga_id: uuid.UUID) -> SagaNotFoundError:
    """The refusal of a checkpoint (or request) for a saga that does not exist."""
    return SagaNotFoundError(f"Saga {saga_id} not found")


def lease_lost(saga_id: uuid.UUID, holder: str | None) -> LeaseLostError:
    """The refusal of a checkpoint whose owner no longer holds the lease."""
    return LeaseLostError(f"Saga {saga_id} is now held by {holder}")
