"""Write operations in SQLAlchemy Core, as plain functions of a sync Connection.

They run in the SQLite writer thread, or through ``AsyncConnection.run_sync`` on other
dialects; each is called inside a transaction its caller opened.
"""

from __future__ import annotations

import datetime
import typing
import uuid

import sqlalchemy as sa

from engine.saga.errors import SagaStorageError
from engine.saga.storage.enums import RequestedAction, SagaStatus, parse_status
from engine.saga.storage.models import (
    Checkpoint,
    CheckpointResult,
    OperatorAction,
    SagaLogEntry,
    SagaState,
)
from engine.saga.storage.rows import (
    EVENT_COLUMNS,
    LOG_COLUMNS,
    already_exists,
    checkpoint_rows,
    lease_lost,
    not_found,
)
from engine.saga.storage.sqlalchemy import db_values
from engine.saga.storage.sqlalchemy.reading import LOG_SELECT, read_log_row
from engine.saga.storage.sqlalchemy.schema import (
    saga_audit,
    saga_events,
    saga_executions,
    saga_logs,
)


def log_values(saga_id: uuid.UUID, rows: list[typing.Any]) -> list[dict[str, typing.Any]]:
    """Log rows of one saga as INSERT parameters."""
    return [{"saga_id": saga_id, **dict(zip(LOG_COLUMNS, row, strict=True))} for row in rows]


def apply_checkpoint(
    conn: sa.Connection,
    checkpoint: Checkpoint,
    now: datetime.datetime,
    *,
    defer_logs: list[dict[str, typing.Any]] | None = None,
) -> CheckpointResult:
    """Apply one checkpoint's row changes with Core statements (non-SQLite dialects).

    With ``defer_logs`` the log rows are appended there for one INSERT per batch.
    """
    saga_id = checkpoint.saga_id
    insert, update, increment, guard, logs, events = checkpoint_rows(checkpoint, now)
    requested: str | None = None
    if insert is not None:
        try:
            conn.execute(sa.insert(saga_executions).values(**insert))
        except sa.exc.IntegrityError as exc:
            raise already_exists(saga_id) from exc
    else:
        assert update is not None
        where = sa.and_(
            saga_executions.c.id == saga_id, *(saga_executions.c[c] == v for c, v in guard)
        )
        if checkpoint.clear_requested_action:
            # RETURNING shows the new row; the request must be read before it is cleared.
            prior = conn.execute(sa.select(saga_executions.c.requested_action).where(where))
            first = prior.first()
            requested = first[0] if first else None
        values = dict(update)
        for column in increment:
            values[column] = saga_executions.c[column] + 1
        row = conn.execute(
            sa.update(saga_executions)
            .where(where)
            .values(**values)
            .returning(saga_executions.c.requested_action),
        ).first()
        if row is None:
            holder = conn.execute(
                sa.select(saga_executions.c.lease_owner, saga_executions.c.fence).where(
                    saga_executions.c.id == saga_id
                )
            ).first()
            if holder is None:
                raise not_found(saga_id)
            raise lease_lost(saga_id, holder[0], holder[1], checkpoint.owner)
        if not checkpoint.clear_requested_action:
            requested = row[0]
    rows = log_values(saga_id, logs)
    if defer_logs is not None:
        defer_logs.extend(rows)
    elif rows:
        conn.execute(sa.insert(saga_logs), rows)
    if events:
        conn.execute(
            sa.insert(saga_events),
            [{"saga_id": saga_id, **dict(zip(EVENT_COLUMNS, row, strict=True))} for row in events],
        )
    return CheckpointResult(requested_action=db_values.action_from_db(requested))


def load_history(
    conn: sa.Connection, saga_id: uuid.UUID, saga_name: str = ""
) -> list[SagaLogEntry]:
    """The saga's log ordered by id."""
    result = conn.execute(
        sa.select(*LOG_SELECT).where(saga_logs.c.saga_id == saga_id).order_by(saga_logs.c.id)
    )
    return [read_log_row(r, saga_name) for r in result]


def load_state(conn: sa.Connection, saga_id: uuid.UUID) -> SagaState:
    """What a runner needs to resume the saga; SagaNotFoundError if missing."""
    row = conn.execute(
        sa.select(
            saga_executions.c.name,
            saga_executions.c.status,
            sa.type_coerce(saga_executions.c.context, sa.Text).label("context"),
            saga_executions.c.version,
            saga_executions.c.requested_action,
            saga_executions.c.recovery_attempts,
            saga_executions.c.fence,
        ).where(saga_executions.c.id == saga_id),
    ).first()
    if row is None:
        raise not_found(saga_id)
    context, _raw, problem = db_values.context_from_db(row.context)
    if context is None:
        raise SagaStorageError(f"Saga {saga_id}: {problem}")
    return SagaState(
        saga_id=saga_id,
        name=row.name,
        status=parse_status(row.status, SagaStatus),
        context=context,
        version=row.version,
        history=load_history(conn, saga_id, row.name),
        requested_action=db_values.action_from_db(row.requested_action),
        recovery_attempts=row.recovery_attempts,
        fence=row.fence,
    )


def claim(
    conn: sa.Connection,
    saga_id: uuid.UUID,
    owner: str,
    lease_expires: float,
    now: float,
    steal_from: str | None,
) -> SagaState | None:
    """Take the lease and bump the fence with one conditional UPDATE, then load the saga."""
    free = sa.or_(
        saga_executions.c.lease_owner.is_(None),
        saga_executions.c.lease_owner == owner,
        saga_executions.c.lease_expires < now,
        *([saga_executions.c.lease_owner == steal_from] if steal_from is not None else []),
    )
    taken = conn.execute(
        sa.update(saga_executions)
        .where(saga_executions.c.id == saga_id, free)
        .values(
            lease_owner=owner,
            lease_expires=lease_expires,
            fence=saga_executions.c.fence + 1,
        )
        .returning(saga_executions.c.id),
    ).first()
    if taken is None:
        exists = conn.execute(
            sa.select(saga_executions.c.id).where(saga_executions.c.id == saga_id)
        ).first()
        if exists is None:
            raise not_found(saga_id)
        return None
    return load_state(conn, saga_id)


def renew_leases(conn: sa.Connection, owner: str, lease_expires: float) -> int:
    """Extend every lease ``owner`` holds."""
    result = conn.execute(
        sa.update(saga_executions)
        .where(saga_executions.c.lease_owner == owner)
        .values(lease_expires=lease_expires)
    )
    return int(result.rowcount)


HEARTBEAT_CHUNK = 500
"""Sagas renewed per UPDATE (an IN list of ids stays well under every bind limit)."""


def heartbeat(
    conn: sa.Connection,
    owner: str,
    held: typing.Mapping[uuid.UUID, int],
    lease_expires: float,
    now: float,
) -> set[uuid.UUID]:
    """Extend the unexpired leases of ``held`` still ``owner``'s at that fence."""
    renewed: set[uuid.UUID] = set()
    ids = list(held)
    for start in range(0, len(ids), HEARTBEAT_CHUNK):
        chunk = ids[start : start + HEARTBEAT_CHUNK]
        rows = conn.execute(
            sa.update(saga_executions)
            .where(
                saga_executions.c.id.in_(chunk),
                saga_executions.c.lease_owner == owner,
                saga_executions.c.lease_expires >= now,
            )
            .values(lease_expires=lease_expires)
            .returning(saga_executions.c.id, saga_executions.c.fence),
        )
        for saga_id, fence in rows:
            if held.get(saga_id) == fence:
                renewed.add(saga_id)
    return renewed


def _update_one(conn: sa.Connection, saga_id: uuid.UUID, **values: typing.Any) -> None:
    result = conn.execute(
        sa.update(saga_executions).where(saga_executions.c.id == saga_id).values(**values)
    )
    if result.rowcount == 0:
        raise not_found(saga_id)


def request_action(conn: sa.Connection, saga_id: uuid.UUID, action: RequestedAction) -> None:
    """Store a request for the owner."""
    _update_one(conn, saga_id, requested_action=action.value)


def audit_row(action: OperatorAction) -> dict[str, typing.Any]:
    """The audit table's values for one operator action, stamped now."""
    return {
        "saga_id": action.saga_id,
        "action": action.action,
        "reason": action.reason,
        "os_user": action.os_user,
        "host": action.host,
        "outcome": action.outcome,
        "created_at": db_values.utcnow(),
    }


INSERT_AUDIT = sa.insert(saga_audit)
"""Built once; executed with ``audit_row`` values (a list of them: one executemany)."""


def record_operator_action(conn: sa.Connection, action: OperatorAction) -> None:
    """Append to the audit table."""
    conn.execute(INSERT_AUDIT, audit_row(action))


def increment_recovery_attempts(
    conn: sa.Connection,
    saga_id: uuid.UUID,
    new_status: SagaStatus | None,
) -> None:
    """Count a failed recovery, optionally setting a status."""
    values: dict[str, typing.Any] = {
        "recovery_attempts": saga_executions.c.recovery_attempts + 1,
        "updated_at": db_values.utcnow(),
    }
    if new_status is not None:
        values["status"] = new_status.name
    _update_one(conn, saga_id, **values)


def set_recovery_attempts(conn: sa.Connection, saga_id: uuid.UUID, attempts: int) -> None:
    """Set the recovery counter."""
    _update_one(conn, saga_id, recovery_attempts=attempts)
