"""The SQL of the PostgreSQL write path, built from the SQLAlchemy tables.

Each statement applies a whole batch: the rows travel as one array per column and
``unnest`` turns them back into rows, so a group commit of N checkpoints costs a few
round trips, not N. asyncpg prepares each statement once per connection (its statement
cache), so a batch only binds.
"""

from __future__ import annotations

import functools

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from engine.saga.storage.rows import EVENT_COLUMNS, LOG_COLUMNS, SAGA_COLUMNS
from engine.saga.storage.sqlalchemy.schema import saga_events, saga_executions, saga_logs

CHANNEL = "saga_changes"
"""The LISTEN/NOTIFY channel every committed batch of this engine notifies."""

NOTIFY_AND_COMMIT = f"NOTIFY {CHANNEL}; COMMIT"
"""Sent as one message: the hint costs no round trip of its own."""

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _array_type(column: sa.Column[object]) -> str:
    # Strings travel as text[]: a cast to varchar(n) would silently cut a long value,
    # where the column's own assignment cast refuses it as the Core path does.
    if isinstance(column.type, sa.String) and not isinstance(column.type, sa.JSON):
        return "text[]"
    return f"{column.type.compile(dialect=_DIALECT)}[]"


def _unnest(table: sa.Table, columns: tuple[str, ...], first: int = 1) -> str:
    params = ", ".join(
        f"${n}::{_array_type(table.c[name])}" for n, name in enumerate(columns, start=first)
    )
    return f"unnest({params})"


def _insert_sagas(first: int = 1) -> str:
    return (
        f"INSERT INTO {saga_executions.name} ({', '.join(SAGA_COLUMNS)}) "
        f"SELECT * FROM {_unnest(saga_executions, SAGA_COLUMNS, first)} "
        "ON CONFLICT (id) DO NOTHING RETURNING id"
    )


INSERT_SAGAS = _insert_sagas()
"""Create sagas; an id that exists is skipped (not an error, the transaction goes on)."""

_LOG_INSERT_COLUMNS = ("saga_id", *LOG_COLUMNS)


def _insert_logs(first: int = 1, only_sagas_in: str = "") -> str:
    where = f" WHERE v.saga_id IN (SELECT id FROM {only_sagas_in})" if only_sagas_in else ""
    return (
        f"INSERT INTO {saga_logs.name} ({', '.join(_LOG_INSERT_COLUMNS)}) "
        f"SELECT {', '.join(_LOG_INSERT_COLUMNS)} FROM "
        f"{_unnest(saga_logs, _LOG_INSERT_COLUMNS, first)} WITH ORDINALITY "
        f"AS v({', '.join(_LOG_INSERT_COLUMNS)}, n){where} ORDER BY n"
    )


INSERT_LOGS = _insert_logs()
"""Append log rows; ids are assigned in the order given (checkpoint order)."""

_EVENT_INSERT_COLUMNS = ("saga_id", *EVENT_COLUMNS)


def _insert_events(first: int = 1, only_sagas_in: str = "") -> str:
    where = f" WHERE v.saga_id IN (SELECT id FROM {only_sagas_in})" if only_sagas_in else ""
    return (
        f"INSERT INTO {saga_events.name} ({', '.join(_EVENT_INSERT_COLUMNS)}) "
        f"SELECT {', '.join(_EVENT_INSERT_COLUMNS)} FROM "
        f"{_unnest(saga_events, _EVENT_INSERT_COLUMNS, first)} WITH ORDINALITY "
        f"AS v({', '.join(_EVENT_INSERT_COLUMNS)}, n){where} ORDER BY n"
    )


INSERT_EVENTS = _insert_events()
"""Append outbox rows (a step's events); ids are assigned in the order given."""

LOG_PARAMS = len(_LOG_INSERT_COLUMNS)
EVENT_PARAMS = len(_EVENT_INSERT_COLUMNS)
SAGA_PARAMS = len(SAGA_COLUMNS)

HOLDERS = f"SELECT id, lease_owner, fence FROM {saga_executions.name} WHERE id = ANY($1::uuid[])"
"""Who holds the sagas whose UPDATE matched nothing (missing saga or lost lease)."""

PRIOR_REQUEST = (
    f"SELECT requested_action FROM {saga_executions.name} "
    "WHERE id = $1 AND ($2::text IS NULL OR lease_owner = $2) FOR UPDATE"
)
"""The pending request a checkpoint clears, read (and locked) before it is cleared."""

Shape = tuple[tuple[str, ...], tuple[str, ...]]
"""(columns set, columns incremented) of the checkpoints one UPDATE applies."""


def _update_sagas(columns: tuple[str, ...], increment: tuple[str, ...], first: int = 1) -> str:
    sets = [f"{c} = v.{c}" for c in columns]
    sets += [f"{c} = s.{c} + 1" for c in increment]
    owner = saga_executions.c.lease_owner
    source = (
        f"unnest(${first}::uuid[], ${first + 1}::{_array_type(owner)}, ${first + 2}::integer[]"
        + "".join(
            f", ${n}::{_array_type(saga_executions.c[c])}"
            for n, c in enumerate(columns, start=first + 3)
        )
    )
    return (
        f"UPDATE {saga_executions.name} AS s SET {', '.join(sets)} "
        f"FROM {source}) AS v(id, owner_, fence_, {', '.join(columns)}) "
        "WHERE s.id = v.id AND (v.owner_ IS NULL OR s.lease_owner = v.owner_) "
        "AND (v.fence_ IS NULL OR s.fence = v.fence_) "
        "RETURNING s.id, s.requested_action"
    )


@functools.cache
def update_sagas(columns: tuple[str, ...], increment: tuple[str, ...]) -> str:
    """One UPDATE for every checkpoint of a batch that sets ``columns`` and bumps ``increment``.

    Parameters: ids, owners (NULL: no lease check), fences (NULL: no fence check), then
    one array per column. A row whose owner no longer holds the lease, or holds it under
    a later fence, is not matched, so it is not in RETURNING.
    """
    return _update_sagas(columns, increment)


@functools.cache
def whole_batch(creates: bool, shapes: tuple[Shape, ...], logs: bool, events: bool) -> str:
    """A batch as ONE statement (its own transaction): inserts, updates, logs and NOTIFY.

    Parameters in order: the INSERT's columns (when ``creates``), each shape's UPDATE
    parameters, the log columns (when ``logs``), the event columns (when ``events``). Log
    and event rows are written only for sagas an INSERT or UPDATE matched. Rows out:
    ('i', id, NULL) per created saga, ('u', id, requested_action) per updated one.
    """
    parts: list[str] = []
    matched: list[str] = []
    out: list[str] = []
    n = 1
    if creates:
        parts.append(f"ins AS ({_insert_sagas(n)})")
        matched.append("SELECT id FROM ins")
        out.append("SELECT 'i', id, NULL::text FROM ins")
        n += SAGA_PARAMS
    for k, (columns, increment) in enumerate(shapes):
        parts.append(f"u{k} AS ({_update_sagas(columns, increment, n)})")
        matched.append(f"SELECT id FROM u{k}")
        out.append(f"SELECT 'u', id, requested_action FROM u{k}")
        n += 3 + len(columns)
    parts.append(f"ok AS ({' UNION ALL '.join(matched)})")
    if logs:
        parts.append(f"lg AS ({_insert_logs(n, 'ok')})")
        n += LOG_PARAMS
    if events:
        parts.append(f"ev AS ({_insert_events(n, 'ok')})")
    # A SELECT in WITH runs only when referenced: the notification is in the output.
    parts.append(f"nt AS (SELECT pg_notify('{CHANNEL}', ''))")
    out.append("SELECT 'n', NULL::uuid, NULL::text FROM nt")
    return f"WITH {', '.join(parts)} {' UNION ALL '.join(out)}"
