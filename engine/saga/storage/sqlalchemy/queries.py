"""The read API in SQLAlchemy Core: pages, counts, one saga, the live log.

Every query is shaped to walk an index of ``schema`` in its order and stop after a page.
"""

from __future__ import annotations

import datetime
import re
import typing
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.saga.storage.enums import (
    ACTIVE_STATUSES,
    SagaStatus,
    SagaStepStatus,
    parse_status,
)
from engine.saga.storage.lanes import build_step_views, most_tries
from engine.saga.storage.models import (
    NEWEST_FIRST,
    LeaseInfo,
    OperatorAction,
    PageCursor,
    SagaDetail,
    SagaFilter,
    SagaLogEntry,
    SagaOrder,
    SagaPage,
    SagaSummary,
    StatusCounts,
)
from engine.saga.storage.rows import LOG_COLUMNS, log_entry
from engine.saga.storage.sqlalchemy import db_values
from engine.saga.storage.sqlalchemy.outbox import holds_events
from engine.saga.storage.sqlalchemy.schema import (
    saga_audit,
    saga_executions,
    saga_logs,
    saga_status_counts,
)

_SUMMARY_COLUMNS = (
    saga_executions.c.id,
    saga_executions.c.name,
    saga_executions.c.status,
    saga_executions.c.created_at,
    saga_executions.c.updated_at,
    saga_executions.c.step_count,
    saga_executions.c.steps_done,
    saga_executions.c.current_step,
    saga_executions.c.recovery_attempts,
    saga_executions.c.error_type,
    saga_executions.c.error_message,
    saga_executions.c.lease_owner,
    saga_executions.c.lease_expires,
    saga_executions.c.requested_action,
    saga_executions.c.finished_at,
    saga_executions.c.version,
)

_UUID_PREFIX = re.compile(r"[0-9a-f]{0,8}(-[0-9a-f]{0,4}){0,3}(-[0-9a-f]{0,12})?")


_STARTED = (SagaStepStatus.STARTED.name, SagaStepStatus.STARTED.value)
# A saga's TRIES: the most starts of one step action, read with its row through the log
# index (a correlated subquery costs a few index seeks per row of the page).
_LANES = (
    sa.select(sa.func.count().label("n"))
    .where(saga_logs.c.saga_id == saga_executions.c.id, saga_logs.c.status.in_(_STARTED))
    .group_by(saga_logs.c.step_name, saga_logs.c.action)
    .correlate(saga_executions)
    .subquery()
)
_TRIES = sa.select(sa.func.max(_LANES.c.n)).scalar_subquery().label("tries")


def summary(r: typing.Any, tries: int = 0) -> SagaSummary:
    """A saga_executions row as a SagaSummary."""
    return SagaSummary(
        id=r.id,
        name=r.name,
        status=parse_status(r.status, SagaStatus),
        created_at=db_values.time_from_db(r.created_at),
        updated_at=db_values.time_from_db(r.updated_at),
        step_count=r.step_count or 0,
        steps_done=r.steps_done or 0,
        current_step=r.current_step,
        recovery_attempts=r.recovery_attempts or 0,
        error_type=r.error_type,
        error_message=r.error_message,
        lease_owner=r.lease_owner,
        lease_expires=r.lease_expires,
        requested_action=db_values.action_from_db(r.requested_action),
        finished_at=db_values.maybe_time(r.finished_at),
        version=r.version,
        tries=tries,
    )


LOG_SELECT = (saga_logs.c.id, saga_logs.c.saga_id, *(saga_logs.c[c] for c in LOG_COLUMNS))
"""A log row's columns in the order ``read_log_row`` reads them."""
_LOG_END = len(LOG_SELECT)


def read_log_row(row: typing.Sequence[typing.Any], saga_name: str) -> SagaLogEntry:
    """A row selected with LOG_SELECT (possibly followed by more columns) as a SagaLogEntry."""
    return log_entry(row[0], row[1], saga_name, row[2:_LOG_END], db_values.time_from_db)


def _native_uuid(conn: AsyncConnection) -> bool:
    return bool(conn.dialect.supports_native_uuid)


def _id_text(conn: AsyncConnection) -> sa.ColumnElement[str]:
    """The id as stored text: 32 hex digits without native UUID, else its dashed form."""
    if _native_uuid(conn):
        return sa.cast(saga_executions.c.id, sa.String)
    return sa.type_coerce(saga_executions.c.id, sa.String)


def _icontains(
    conn: AsyncConnection,
    column: sa.ColumnElement[typing.Any],
    text: str,
) -> sa.ColumnElement[bool]:
    """Case-insensitive substring match.

    SQLite's LIKE already ignores ASCII case; wrapping both sides in lower(), as
    ``ilike`` does, makes a scan three times slower there.
    """
    if conn.dialect.name == "sqlite":
        return column.contains(text, autoescape=True)
    return column.icontains(text, autoescape=True)


def _filter_clauses(
    conn: AsyncConnection,
    f: SagaFilter,
    names: list[str] | None = None,
) -> list[sa.ColumnElement[bool]]:
    clauses: list[sa.ColumnElement[bool]] = []
    if f.statuses:
        clauses.append(saga_executions.c.status.in_([s.name for s in f.statuses]))
    if names is not None:
        clauses.append(saga_executions.c.name.in_(names))
    elif f.name:
        clauses.append(_icontains(conn, saga_executions.c.name, f.name))
    if f.text:
        prefix = f.id_prefix
        if prefix is not None:
            clauses.append(_id_prefix_clause(conn, prefix))
        else:
            # error_type IS NOT NULL lets the planner walk the partial covering index.
            clauses.append(saga_executions.c.error_type.is_not(None))
            clauses.append(
                sa.or_(
                    _icontains(conn, saga_executions.c.error_message, f.text),
                    _icontains(conn, saga_executions.c.error_type, f.text),
                ),
            )
    if f.events:
        clauses.append(holds_events(f.events))
    if f.since:
        clauses.append(saga_executions.c.created_at >= db_values.as_utc(f.since))
    if f.until:
        clauses.append(saga_executions.c.created_at <= db_values.as_utc(f.until))
    return clauses


def _id_prefix_clause(conn: AsyncConnection, prefix: str) -> sa.ColumnElement[bool]:
    """Ids whose text form starts with ``prefix``, as a range on the primary key."""
    if _native_uuid(conn):
        return _id_text(conn).startswith(prefix, autoescape=True)
    stored = prefix.replace("-", "")
    # 'g' sorts after every hex digit, so the range is exactly the prefix.
    return sa.and_(_id_text(conn) >= stored, _id_text(conn) < stored + "g")


MAX_NAMES = 5000
"""Above this many saga names the name filter falls back to a LIKE scan."""


async def _matching_names(conn: AsyncConnection, needle: str) -> list[str] | None:
    """Saga names containing ``needle`` (case-insensitive), None when there are too many.

    Names are few, so they are listed by hopping the name index one distinct value at a
    time (a recursive CTE, one seek per name); the page then asks for ``name IN (...)``
    and a name that matches nothing returns at once instead of scanning every saga.
    """
    first = sa.select(sa.func.min(saga_executions.c.name).label("name")).cte(
        "names", recursive=True
    )
    following = sa.select(
        sa.select(sa.func.min(saga_executions.c.name))
        .where(saga_executions.c.name > first.c.name)
        .scalar_subquery(),
    ).where(first.c.name.is_not(None))
    walk = first.union_all(following)
    rows = await conn.execute(
        sa.select(walk.c.name).where(walk.c.name.is_not(None)).limit(MAX_NAMES + 1),
    )
    names = [r[0] for r in rows]
    if len(names) > MAX_NAMES:
        return None
    lowered = needle.lower()
    return [n for n in names if lowered in n.lower()]


def _keyset(order: SagaOrder) -> list[sa.ColumnElement[typing.Any]]:
    """The columns of ``order``'s keyset, each walked by one index in one direction."""
    first = {"status": [saga_executions.c.status], "name": [saga_executions.c.name]}.get(
        order.key, []
    )
    return [*first, saga_executions.c.created_at, saga_executions.c.id]


def _key(order: SagaOrder, cursor: PageCursor) -> typing.Any:
    column = _keyset(order)[0]
    value = [sa.literal(cursor.value, column.type)] if order.key != "created" else []
    created = sa.literal(db_values.as_utc(cursor.created_at), saga_executions.c.created_at.type)
    return sa.tuple_(*value, created, sa.literal(cursor.saga_id, saga_executions.c.id.type))


async def list_sagas(
    conn: AsyncConnection,
    f: SagaFilter,
    limit: int,
    after: PageCursor | None,
    before: PageCursor | None,
    order: SagaOrder = NEWEST_FIRST,
    at: PageCursor | None = None,
) -> SagaPage:
    """A keyset page in ``order``, as memory.py pages it; ``at`` starts at the cursor's row."""
    names = await _matching_names(conn, f.name) if f.name else None
    if names == []:
        return SagaPage([], None, None)
    clauses = _filter_clauses(conn, f, names)
    columns = _keyset(order)
    key = sa.tuple_(*columns)

    def beyond(cursor: PageCursor, *, onward: bool = True, inclusive: bool = False) -> typing.Any:
        # Rows after the cursor in this order (onward), or before it.
        value = _key(order, cursor)
        if order.descending == onward:
            return key <= value if inclusive else key < value
        return key >= value if inclusive else key > value

    forwards = [c.desc() if order.descending else c.asc() for c in columns]
    backwards = [c.asc() if order.descending else c.desc() for c in columns]

    async def fetch(where: list[typing.Any], ordering: list[typing.Any]) -> list[typing.Any]:
        q = sa.select(*_SUMMARY_COLUMNS, _TRIES).where(*clauses, *where).order_by(*ordering)
        return list(await conn.execute(q.limit(limit + 1)))

    async def exists(where: typing.Any, ordering: list[typing.Any]) -> bool:
        # Ordered like a page, so the planner walks the order's index from the cursor
        # and stops at the first row (not a filter's index through every match).
        q = (
            sa.select(sa.literal(1))
            .select_from(saga_executions)
            .where(*clauses, where)
            .order_by(*ordering)
        )
        return (await conn.execute(q.limit(1))).first() is not None

    if before is not None:
        newer = await fetch([beyond(before, onward=False)], backwards)
        if len(newer) > limit:
            rows = newer[:limit][::-1]
            has_next = await exists(beyond(before, inclusive=True), forwards)
            return await _page(conn, order, rows, has_prev=True, has_next=has_next)
        after = None  # fewer than a page above the cursor: memory.py shows the first page
    start = at or after
    has_prev = False
    if start is not None:
        rows = await fetch([beyond(start, inclusive=at is not None)], forwards)
        back = beyond(start, onward=False, inclusive=at is None)
        has_prev = bool(rows) and await exists(back, backwards)
    else:
        rows = await fetch([], forwards)
    return await _page(conn, order, rows[:limit], has_prev=has_prev, has_next=len(rows) > limit)


async def _page(
    conn: AsyncConnection,
    order: SagaOrder,
    rows: list[typing.Any],
    *,
    has_prev: bool,
    has_next: bool,
) -> SagaPage:
    if not rows:
        return SagaPage([], None, None)
    items = [summary(r, r.tries or 0) for r in rows]
    return SagaPage(
        items,
        order.cursor(items[-1]) if has_next else None,
        order.cursor(items[0]) if has_prev else None,
    )


async def count_by_status(conn: AsyncConnection) -> StatusCounts:
    """Counts from the trigger-maintained table: a handful of rows, whatever the size."""
    counts = dict.fromkeys(SagaStatus, 0)
    rows = await conn.execute(sa.select(saga_status_counts.c.status, saga_status_counts.c.n))
    for status, n in rows:
        try:
            counts[parse_status(status, SagaStatus)] += int(n)
        except ValueError:
            continue  # a status this code does not know is not shown
    return StatusCounts(counts)


async def get_saga(conn: AsyncConnection, saga_id: uuid.UUID) -> SagaDetail | None:
    """One saga with context, steps, log and audit; a broken context is reported, not raised."""
    row = (
        await conn.execute(
            sa.select(
                *_SUMMARY_COLUMNS,
                sa.type_coerce(saga_executions.c.context, sa.Text).label("context"),
                saga_executions.c.error_traceback,
            ).where(saga_executions.c.id == saga_id),
        )
    ).first()
    if row is None:
        return None
    name = row.name
    logs = [
        read_log_row(r, name)
        for r in await conn.execute(
            sa.select(*LOG_SELECT).where(saga_logs.c.saga_id == saga_id).order_by(saga_logs.c.id)
        )
    ]
    head = summary(row, most_tries(logs))
    context, raw, problem = db_values.context_from_db(row.context)
    audit = [
        OperatorAction(
            saga_id=r.saga_id,
            action=r.action,
            reason=r.reason,
            os_user=r.os_user,
            host=r.host,
            outcome=r.outcome,
            id=r.id,
            created_at=db_values.time_from_db(r.created_at),
        )
        for r in await conn.execute(
            sa.select(saga_audit).where(saga_audit.c.saga_id == saga_id).order_by(saga_audit.c.id)
        )
    ]
    return SagaDetail(
        summary=head,
        context=context,
        context_raw=raw,
        context_error=problem,
        steps=build_step_views(logs),
        logs=logs,
        audit=audit,
        error_traceback=row.error_traceback,
    )


async def find_ids(conn: AsyncConnection, prefix: str, limit: int) -> list[uuid.UUID]:
    """Ids whose text form starts with ``prefix``, through the primary key's order."""
    prefix = prefix.lower()
    if not _UUID_PREFIX.fullmatch(prefix):
        return []
    where = _id_prefix_clause(conn, prefix)
    rows = await conn.execute(
        sa.select(saga_executions.c.id).where(where).order_by(saga_executions.c.id).limit(limit)
    )
    return [r[0] for r in rows]


async def logs_after(conn: AsyncConnection, after_id: int, limit: int) -> list[SagaLogEntry]:
    """Log entries above the watermark with their saga names, oldest first."""
    rows = await conn.execute(
        sa.select(*LOG_SELECT, saga_executions.c.name)
        .join(saga_executions, saga_executions.c.id == saga_logs.c.saga_id)
        .where(saga_logs.c.id > after_id)
        .order_by(saga_logs.c.id)
        .limit(limit),
    )
    return [read_log_row(r, r[-1]) for r in rows]


async def last_log_id(conn: AsyncConnection) -> int:
    """The highest log id, 0 when empty."""
    return int((await conn.execute(sa.select(sa.func.max(saga_logs.c.id)))).scalar() or 0)


async def get_lease(conn: AsyncConnection, saga_id: uuid.UUID) -> LeaseInfo | None:
    """Who holds one saga."""
    r = (
        await conn.execute(
            sa.select(
                saga_executions.c.id,
                saga_executions.c.status,
                saga_executions.c.lease_owner,
                saga_executions.c.lease_expires,
            ).where(saga_executions.c.id == saga_id),
        )
    ).first()
    if r is None:
        return None
    return LeaseInfo(r.id, parse_status(r.status, SagaStatus), r.lease_owner, r.lease_expires)


async def lease_candidates(
    conn: AsyncConnection, now: float, host: str, limit: int
) -> list[LeaseInfo]:
    """Unfinished sagas whose lease is free, expired, or held on ``host``; oldest update first."""
    mine = host + ":"
    rows = await conn.execute(
        sa.select(
            saga_executions.c.id,
            saga_executions.c.status,
            saga_executions.c.lease_owner,
            saga_executions.c.lease_expires,
        )
        .where(
            saga_executions.c.status.in_([s.name for s in ACTIVE_STATUSES]),
            sa.or_(
                saga_executions.c.lease_owner.is_(None),
                saga_executions.c.lease_expires < now,
                sa.func.substr(saga_executions.c.lease_owner, 1, len(mine)) == mine,
            ),
        )
        .order_by(saga_executions.c.updated_at)
        .limit(limit),
    )
    return [
        LeaseInfo(r.id, parse_status(r.status, SagaStatus), r.lease_owner, r.lease_expires)
        for r in rows
    ]


async def sagas_for_recovery(
    conn: AsyncConnection,
    limit: int,
    max_recovery_attempts: int,
    stale_after_seconds: int | None,
    saga_name: str | None,
) -> list[uuid.UUID]:
    """python-cqrs's recovery query: RUNNING/COMPENSATING, oldest update first."""
    q = sa.select(saga_executions.c.id).where(
        saga_executions.c.status.in_([SagaStatus.RUNNING.name, SagaStatus.COMPENSATING.name]),
        saga_executions.c.recovery_attempts < max_recovery_attempts,
    )
    if stale_after_seconds is not None:
        cutoff = db_values.utcnow() - datetime.timedelta(seconds=stale_after_seconds)
        q = q.where(saga_executions.c.updated_at < cutoff)
    if saga_name is not None:
        q = q.where(saga_executions.c.name == saga_name)
    rows = await conn.execute(q.order_by(saga_executions.c.updated_at).limit(limit))
    return [r[0] for r in rows]
