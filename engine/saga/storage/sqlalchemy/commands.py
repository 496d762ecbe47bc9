"""Write operations in SQLAlchemy Core, as plain functions of a sync Connection.

They run in the SQLite writer thread, or through ``AsyncConnection.run_sync`` on other
dialects; each is called inside a transaction its caller opened.
"""

from __future__ import annotations

import datetime
import typing
import uuid

import sqlalchemy as sa

from engine.saga.errors import LeaseLostError, SagaNotFoundError, SagaStorageError
from engine.saga.storage.enums import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    RequestedAction,
    SagaStatus,
    SagaStepStatus,
)
from engine.saga.storage.models import (
    Checkpoint,
    CheckpointResult,
    OperatorAction,
    SagaLogEntry,
    SagaState,
)
from engine.saga.storage.sqlalchemy import db_values
from engine.saga.storage.sqlalchemy.schema import saga_audit, saga_executions, saga_logs

T = saga_executions
L = saga_logs


def create_row(checkpoint: Checkpoint, now: datetime.datetime) -> dict[str, typing.Any]:
    """Column values of the saga a creating checkpoint inserts (memory.py's order)."""
    create = checkpoint.create
    assert create is not None
    status = checkpoint.status or SagaStatus.PENDING
    error = checkpoint.error
    holds = checkpoint.owner is not None and not checkpoint.release_lease
    return {
        "id": checkpoint.saga_id,
        "name": create.name,
        "status": status.name,
        "context": create.context,
        "version": 1,
        "created_at": now,
        "updated_at": now,
        "recovery_attempts": 1 if checkpoint.bump_recovery_attempts else 0,
        "lease_owner": checkpoint.owner if holds else None,
        "lease_expires": checkpoint.lease_expires if holds else None,
        "requested_action": None,
        "step_count": create.step_count,
        "steps_done": checkpoint.steps_done or 0,
        "current_step": checkpoint.current_step or None,
        "error_type": error.type if error else None,
        "error_message": error.message if error else None,
        "error_traceback": error.traceback if error else None,
        "finished_at": now if status in TERMINAL_STATUSES else None,
    }


INCREMENT = object()
"""Marker in update_changes: add one to the column."""


def update_changes(checkpoint: Checkpoint, now: datetime.datetime) -> dict[str, typing.Any]:
    """Column changes of a checkpoint on an existing saga (memory.py's semantics)."""
    cp = checkpoint
    out: dict[str, typing.Any] = {}
    if cp.status is not None:
        out["status"] = cp.status.name
        out["finished_at"] = now if cp.status in TERMINAL_STATUSES else None
    if cp.context is not None:
        out["context"] = cp.context
        out["version"] = INCREMENT
    if cp.current_step is not None:
        out["current_step"] = cp.current_step or None  # "" clears it
    if cp.steps_done is not None:
        out["steps_done"] = cp.steps_done
    if cp.error is not None:
        out["error_type"] = cp.error.type
        out["error_message"] = cp.error.message
        out["error_traceback"] = cp.error.traceback
    elif cp.clear_error:
        out["error_type"] = out["error_message"] = out["error_traceback"] = None
    if cp.release_lease:
        out["lease_owner"] = out["lease_expires"] = None
    elif cp.lease_expires is not None:
        out["lease_expires"] = cp.lease_expires
    if cp.bump_recovery_attempts:
        out["recovery_attempts"] = INCREMENT
    if cp.clear_requested_action:
        out["requested_action"] = None
    out["updated_at"] = now
    return out


def log_rows(checkpoint: Checkpoint, now: datetime.datetime) -> list[dict[str, typing.Any]]:
    """The saga_logs rows of a checkpoint."""
    rows = []
    for write in checkpoint.logs:
        error = write.error
        rows.append(
            {
                "saga_id": checkpoint.saga_id,
                "step_name": write.step_name,
                "action": write.action,
                "status": write.status.name,
                "details": write.details,
                "created_at": now,
                "error_type": error.type if error else None,
                "error_message": error.message if error else None,
                "error_traceback": error.traceback if error else None,
                "attempt": write.attempt,
                "duration_ms": write.duration_ms,
            },
        )
    return rows


def lease_error(saga_id: uuid.UUID, row: typing.Any) -> SagaStorageError:
    """NotFound when the saga is missing, otherwise LeaseLost naming the holder."""
    if row is None:
        return SagaNotFoundError(f"Saga {saga_id} not found")
    return LeaseLostError(f"Saga {saga_id} is now held by {row[0]}")


def apply_checkpoint(
    conn: sa.Connection,
    checkpoint: Checkpoint,
    now: datetime.datetime,
    *,
    defer_logs: list[dict[str, typing.Any]] | None = None,
) -> CheckpointResult:
    """Apply one checkpoint with Core statements (the path for non-SQLite dialects).

    With ``defer_logs`` the log rows are appended there for one INSERT per batch.
    """
    saga_id = checkpoint.saga_id
    requested: str | None = None
    if checkpoint.create is not None:
        try:
            conn.execute(sa.insert(T).values(**create_row(checkpoint, now)))
        except sa.exc.IntegrityError as exc:
            raise ValueError(f"Saga {saga_id} already exists") from exc
    else:
        where = T.c.id == saga_id
        if checkpoint.owner is not None:
            where = sa.and_(where, T.c.lease_owner == checkpoint.owner)
        if checkpoint.clear_requested_action:
            # RETURNING shows the new row; the request must be read before it is cleared.
            prior = conn.execute(sa.select(T.c.requested_action).where(where)).first()
            requested = prior[0] if prior else None
        values = {
            k: (T.c[k] + 1 if v is INCREMENT else v)
            for k, v in update_changes(checkpoint, now).items()
        }
        row = conn.execute(
            sa.update(T).where(where).values(**values).returning(T.c.requested_action),
        ).first()
        if row is None:
            holder = conn.execute(sa.select(T.c.lease_owner).where(T.c.id == saga_id)).first()
            raise lease_error(saga_id, holder)
        if not checkpoint.clear_requested_action:
            requested = row[0]
    rows = log_rows(checkpoint, now)
    if defer_logs is not None:
        defer_logs.extend(rows)
    elif rows:
        conn.execute(sa.insert(L), rows)
    return CheckpointResult(requested_action=db_values.action_from_db(requested))


def load_history(conn: sa.Connection, saga_id: uuid.UUID) -> list[SagaLogEntry]:
    """The saga's log ordered by id."""
    result = conn.execute(sa.select(L).where(L.c.saga_id == saga_id).order_by(L.c.id))
    return [log_entry(r) for r in result]


def log_entry(r: typing.Any) -> SagaLogEntry:
    """A saga_logs row as a SagaLogEntry."""
    return SagaLogEntry(
        r.saga_id,
        r.step_name,
        r.action,
        db_values.status_from_db(r.status, SagaStepStatus),
        db_values.time_from_db(r.created_at),
        r.details,
        id=r.id,
        error_type=r.error_type,
        error_message=r.error_message,
        error_traceback=r.error_traceback,
        attempt=r.attempt if r.attempt is not None else 1,
        duration_ms=r.duration_ms,
    )


def load_state(conn: sa.Connection, saga_id: uuid.UUID) -> SagaState:
    """What a runner needs to resume the saga; SagaNotFoundError if missing."""
    row = conn.execute(
        sa.select(
            T.c.name,
            T.c.status,
            sa.type_coerce(T.c.context, sa.Text).label("context"),
            T.c.version,
            T.c.requested_action,
            T.c.recovery_attempts,
        ).where(T.c.id == saga_id),
    ).first()
    if row is None:
        raise SagaNotFoundError(f"Saga {saga_id} not found")
    context, _raw, problem = db_values.context_from_db(row.context)
    if context is None:
        raise SagaStorageError(f"Saga {saga_id}: {problem}")
    return SagaState(
        saga_id=saga_id,
        name=row.name,
        status=db_values.status_from_db(row.status, SagaStatus),
        context=context,
        version=row.version,
        history=load_history(conn, saga_id),
        requested_action=db_values.action_from_db(row.requested_action),
        recovery_attempts=row.recovery_attempts,
    )


def claim(
    conn: sa.Connection,
    saga_id: uuid.UUID,
    owner: str,
    lease_expires: float,
    now: float,
    steal_from: str | None,
) -> SagaState | None:
    """Take the lease with one conditional UPDATE, then load the saga."""
    free = sa.or_(
        T.c.lease_owner.is_(None),
        T.c.lease_owner == owner,
        T.c.lease_expires < now,
        *([T.c.lease_owner == steal_from] if steal_from is not None else []),
    )
    taken = conn.execute(
        sa.update(T)
        .where(T.c.id == saga_id, free)
        .values(lease_owner=owner, lease_expires=lease_expires)
        .returning(T.c.id),
    ).first()
    if taken is None:
        exists = conn.execute(sa.select(T.c.id).where(T.c.id == saga_id)).first()
        if exists is None:
            raise SagaNotFoundError(f"Saga {saga_id} not found")
        return None
    return load_state(conn, saga_id)


def renew_leases(conn: sa.Connection, owner: str, lease_expires: float) -> int:
    """Extend every lease ``owner`` holds."""
    result = conn.execute(
        sa.update(T).where(T.c.lease_owner == owner).values(lease_expires=lease_expires)
    )
    return int(result.rowcount)


def _update_one(conn: sa.Connection, saga_id: uuid.UUID, **values: typing.Any) -> None:
    result = conn.execute(sa.update(T).where(T.c.id == saga_id).values(**values))
    if result.rowcount == 0:
        raise SagaNotFoundError(f"Saga {saga_id} not found")


def request_action(conn: sa.Connection, saga_id: uuid.UUID, action: RequestedAction) -> None:
    """Store a request for the owner."""
    _update_one(conn, saga_id, requested_action=action.value)


def record_operator_action(conn: sa.Connection, action: OperatorAction) -> None:
    """Append to the audit table."""
    conn.execute(
        sa.insert(saga_audit).values(
            saga_id=action.saga_id,
            action=action.action,
            reason=action.reason,
            os_user=action.os_user,
            host=action.host,
            outcome=action.outcome,
            created_at=db_values.utcnow(),
        ),
    )


def increment_recovery_attempts(
    conn: sa.Connection,
    saga_id: uuid.UUID,
    new_status: SagaStatus | None,
) -> None:
    """Count a failed recovery, optionally setting a status."""
    values: dict[str, typing.Any] = {
        "recovery_attempts": T.c.recovery_attempts + 1,
        "updated_at": db_values.utcnow(),
    }
    if new_status is not None:
        values["status"] = new_status.name
    _update_one(conn, saga_id, **values)


def set_recovery_attempts(conn: sa.Connection, saga_id: uuid.UUID, attempts: int) -> None:
    """Set the recovery counter."""
    _update_one(conn, saga_id, recovery_attempts=attempts)


ACTIVE_NAMES = tuple(s.name for s in ACTIVE_STATUSES)
