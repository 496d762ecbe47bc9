"""Stored rows as read models; a malformed row is reported as unreadable, never raised.

SQLite stores any value in any column, and a row may be written by another program:
an unknown status, a time that does not parse or a number that is text must not blank
a page, a count or ``list``. Such a row keeps what could be read and says why the rest
could not (``unreadable``); readers show it as unreadable with that reason.
"""

from __future__ import annotations

import datetime
import typing

import sqlalchemy as sa

from engine.saga.storage.enums import RequestedAction, SagaStatus, parse_status
from engine.saga.storage.models import SagaLogEntry, SagaSummary
from engine.saga.storage.rows import LOG_COLUMNS, log_entry
from engine.saga.storage.sqlalchemy import db_values
from engine.saga.storage.sqlalchemy.schema import saga_executions, saga_logs

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
"""Stands in for a time that does not parse (the row says so in ``unreadable``)."""


def as_text(column: sa.Column[typing.Any]) -> sa.ColumnElement[typing.Any]:
    """``column`` fetched as stored (text on SQLite), labelled with its name."""
    # Times are parsed here, not by SQLAlchemy while fetching: one bad row would fail
    # the whole page there. (PostgreSQL still hands datetimes over, which parse too.)
    return sa.type_coerce(column, sa.String).label(column.name)


SUMMARY_COLUMNS = (
    saga_executions.c.id,
    saga_executions.c.name,
    saga_executions.c.status,
    as_text(saga_executions.c.created_at),
    as_text(saga_executions.c.updated_at),
    saga_executions.c.step_count,
    saga_executions.c.steps_done,
    saga_executions.c.current_step,
    saga_executions.c.recovery_attempts,
    saga_executions.c.error_type,
    saga_executions.c.error_message,
    saga_executions.c.lease_owner,
    saga_executions.c.lease_expires,
    saga_executions.c.requested_action,
    as_text(saga_executions.c.finished_at),
    saga_executions.c.version,
    saga_executions.c.search_key,
    saga_executions.c.failure_key,
)
"""The columns a SagaSummary is read from (``summary`` reads them by name)."""


def shown(value: object) -> str:
    """A stored value as quoted in a reason (cut short; displays sanitize it)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Reader:
    """Reads one row's fields, collecting a reason for each one that does not parse."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def status(self, value: typing.Any) -> SagaStatus:
        try:
            return parse_status(value, SagaStatus)
        except (ValueError, AttributeError, TypeError):
            self.problems.append(f"status {shown(value)} is not a saga status")
            return SagaStatus.PENDING

    def time(self, value: typing.Any, name: str) -> datetime.datetime:
        try:
            return db_values.time_from_db(value)
        except (ValueError, TypeError, AttributeError, OverflowError):
            self.problems.append(f"{name} {shown(value)} is not a time")
            return EPOCH

    def maybe_time(self, value: typing.Any, name: str) -> datetime.datetime | None:
        return None if value is None else self.time(value, name)

    def number(self, value: typing.Any, name: str, kind: type = int) -> typing.Any:
        if value is None:
            return kind(0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problems.append(f"{name} {shown(value)} is not a number")
            return kind(0)
        return kind(value)

    def maybe_float(self, value: typing.Any, name: str) -> float | None:
        return None if value is None else self.number(value, name, float)

    def text(self, value: typing.Any, name: str) -> str | None:
        if value is None or isinstance(value, str):
            return value
        self.problems.append(f"{name} {shown(value)} is not text")
        return str(value)

    def action(self, value: typing.Any) -> RequestedAction | None:
        try:
            return db_values.action_from_db(value)
        except (ValueError, TypeError):
            self.problems.append(f"requested_action {shown(value)} is not an action")
            return None

    @property
    def reason(self) -> str | None:
        return "; ".join(self.problems) or None


def summary(r: typing.Any, tries: int = 0) -> SagaSummary:
    """A saga_executions row (SUMMARY_COLUMNS) as a SagaSummary; never raises."""
    read = _Reader()
    return SagaSummary(
        id=r.id,
        name=read.text(r.name, "name") or "",
        status=read.status(r.status),
        created_at=read.time(r.created_at, "created_at"),
        updated_at=read.time(r.updated_at, "updated_at"),
        step_count=read.number(r.step_count, "step_count"),
        steps_done=read.number(r.steps_done, "steps_done"),
        current_step=read.text(r.current_step, "current_step"),
        recovery_attempts=read.number(r.recovery_attempts, "recovery_attempts"),
        error_type=read.text(r.error_type, "error_type"),
        error_message=read.text(r.error_message, "error_message"),
        lease_owner=read.text(r.lease_owner, "lease_owner"),
        lease_expires=read.maybe_float(r.lease_expires, "lease_expires"),
        requested_action=read.action(r.requested_action),
        finished_at=read.maybe_time(r.finished_at, "finished_at"),
        version=read.number(r.version, "version"),
        tries=tries if isinstance(tries, int) else 0,
        unreadable=read.reason,
        search_key=read.text(r.search_key, "search_key"),
        failure_key=read.text(r.failure_key, "failure_key"),
    )


LOG_SELECT = (
    saga_logs.c.id,
    saga_logs.c.saga_id,
    *(as_text(saga_logs.c[c]) if c == "created_at" else saga_logs.c[c] for c in LOG_COLUMNS),
)
"""A log row's columns in the order ``read_log_row`` reads them."""
_LOG_END = len(LOG_SELECT)


def read_log_row(row: typing.Sequence[typing.Any], saga_name: str) -> SagaLogEntry:
    """A row selected with LOG_SELECT (possibly followed by more columns) as a SagaLogEntry."""
    return log_entry(row[0], row[1], saga_name, row[2:_LOG_END], db_values.time_from_db)
