"""One checkpoint as hand-written SQL on a plain sqlite3 connection: the SQLite hot path.

DESIGN.md section 4: on SQLite each driver call is what costs, so the group-commit
writer binds ``rows.checkpoint_rows`` itself instead of going through SQLAlchemy; the
values are the ones SQLAlchemy would bind (``db_values``), so both paths write the
same rows.
"""

from __future__ import annotations

import sqlite3
import typing
import uuid

from engine.saga.storage.models import Checkpoint, CheckpointResult
from engine.saga.storage.rows import (
    EVENT_COLUMNS,
    LOG_COLUMNS,
    SAGA_COLUMNS,
    already_exists,
    checkpoint_rows,
    lease_lost,
    not_found,
)
from engine.saga.storage.sqlalchemy import db_values


def _insert_sql(table: str, columns: typing.Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


_INSERT_SAGA = _insert_sql("saga_executions", SAGA_COLUMNS)
INSERT_LOG = _insert_sql("saga_logs", ("saga_id", *LOG_COLUMNS))
_INSERT_EVENT = _insert_sql("saga_events", ("saga_id", *EVENT_COLUMNS))


def _bind(value: typing.Any) -> typing.Any:
    """A column value as SQLAlchemy binds it on SQLite (times arrive as text already)."""
    if isinstance(value, dict):
        return db_values.context_to_db(value)
    if isinstance(value, uuid.UUID):
        return db_values.uuid_to_db(value)
    return value


def apply_raw(
    conn: sqlite3.Connection,
    cp: Checkpoint,
    now_text: str,
    defer_logs: list[tuple[typing.Any, ...]] | None = None,
) -> CheckpointResult:
    """One checkpoint inside the caller's transaction; ``now_text`` is db_values.time_to_db.

    Every refusal (duplicate, missing saga, lost lease) is raised before this
    checkpoint wrote anything, so a batch needs no SAVEPOINT for them. With
    ``defer_logs`` the log rows are appended there, for one INSERT per batch (in
    checkpoint order) instead of one per checkpoint.
    """
    hex_id = db_values.uuid_to_db(cp.saga_id)
    insert, update, increment, guard, logs, events = checkpoint_rows(cp, now_text)
    requested: str | None = None
    if insert is not None:
        try:
            conn.execute(_INSERT_SAGA, [_bind(insert[c]) for c in SAGA_COLUMNS])
        except sqlite3.IntegrityError as exc:
            raise already_exists(cp.saga_id) from exc
    else:
        assert update is not None
        sets = [f"{column} = ?" for column in update]
        sets.extend(f"{column} = {column} + 1" for column in increment)
        params = [_bind(value) for value in update.values()]
        where = "id = ?"
        keys: list[typing.Any] = [hex_id]
        for column, value in guard:
            where += f" AND {column} = ?"
            keys.append(value)
        if cp.clear_requested_action:
            # RETURNING shows the new row; the request must be read before it is cleared.
            prior = conn.execute(
                "SELECT requested_action FROM saga_executions WHERE " + where,
                keys,
            ).fetchone()
            requested = prior[0] if prior else None
        returned = conn.execute(
            f"UPDATE saga_executions SET {', '.join(sets)} WHERE {where}"
            " RETURNING requested_action",
            params + keys,
        ).fetchall()
        if not returned:
            holder = conn.execute(
                "SELECT lease_owner, fence FROM saga_executions WHERE id = ?",
                (hex_id,),
            ).fetchone()
            if holder is None:
                raise not_found(cp.saga_id)
            raise lease_lost(cp.saga_id, holder[0], holder[1], cp.owner)
        if not cp.clear_requested_action:
            requested = returned[0][0]
    if logs:
        if defer_logs is not None:
            defer_logs.extend((hex_id, *row) for row in logs)
        else:
            conn.executemany(INSERT_LOG, [(hex_id, *row) for row in logs])
    if events:
        conn.executemany(_INSERT_EVENT, [(hex_id, *map(_bind, row)) for row in events])
    return CheckpointResult(requested_action=db_values.action_from_db(requested))
