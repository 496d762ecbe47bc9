"""The read API in SQLAlchemy Core: pages, counts, one saga, the live log.

Every query is shaped to walk an index of ``schema`` in its order and stop after a page.
"""

from __future__ import annotations

import datetime
import typing
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.saga.errors import SagaStorageError
from engine.saga.storage.enums import (
    ACTIVE_STATUSES,
    SagaStatus,
    SagaStepStatus,
    parse_status,
)
from engine.saga.storage.lanes import build_step_views, error_traceback, most_tries
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
    StatusCounts,
)
from engine.saga.storage.sqlalchemy import db_values
from engine.saga.storage.sqlalchemy.filtering import (
    UUID_PREFIX,
    filter_clauses,
    id_prefix_clause,
    matching_names,
)
from engine.saga.storage.sqlalchemy.reading import (
    LOG_SELECT,
    SUMMARY_COLUMNS,
    read_log_row,
    shown,
    summary,
)
from engine.saga.storage.sqlalchemy.reading import (
    as_text as _as_text,
)
from engine.saga.storage.sqlalchemy.schema import (
    saga_audit,
    saga_executions,
    saga_logs,
    saga_status_counts,
)

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
    names = await matching_names(conn, f.name) if f.name else None
    if names == []:
        return SagaPage([], None, None)
    clauses = filter_clauses(conn, f, names)
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
        if f.stranded or f.failure_key:
            # Narrowed filters sort their rows first: TRIES is then read for the page only.
            page = (
                sa.select(saga_executions.c.id)
                .where(*clauses, *where)
                .order_by(*ordering)
                .limit(limit + 1)
                .subquery("page")
            )
            chosen = saga_executions.c.id.in_(sa.select(page.c.id))
            q = sa.select(*SUMMARY_COLUMNS, _TRIES).where(chosen).order_by(*ordering)
            return list(await conn.execute(q))
        q = sa.select(*SUMMARY_COLUMNS, _TRIES).where(*clauses, *where).order_by(*ordering)
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
    unreadable = 0
    rows = await conn.execute(sa.select(saga_status_counts.c.status, saga_status_counts.c.n))
    for status, n in rows:
        if isinstance(n, bool) or not isinstance(n, int):
            continue  # not a count: nothing to add
        try:
            counts[parse_status(status, SagaStatus)] += n
        except (ValueError, AttributeError, TypeError):
            unreadable += n  # a status this code does not know: counted as unreadable
    return StatusCounts(counts, unreadable)


async def get_saga(conn: AsyncConnection, saga_id: uuid.UUID) -> SagaDetail | None:
    """One saga with context, steps, log and audit; a broken context is reported, not raised."""
    row = (
        await conn.execute(
            sa.select(
                *SUMMARY_COLUMNS,
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
    traceback = row.error_traceback or error_traceback(logs, head.error_type, head.error_message)
    audit = [
        OperatorAction(
            saga_id=r.saga_id,
            action=r.action,
            reason=r.reason,
            os_user=r.os_user,
            host=r.host,
            outcome=r.outcome,
            id=r.id,
            created_at=_audit_time(r.created_at),
        )
        for r in await conn.execute(
            sa.select(*(_as_text(c) if c.name == "created_at" else c for c in saga_audit.c))
            .where(saga_audit.c.saga_id == saga_id)
            .order_by(saga_audit.c.id)
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
        error_traceback=traceback,
    )


def _audit_time(value: typing.Any) -> datetime.datetime | None:
    try:
        return db_values.time_from_db(value)
    except (ValueError, TypeError, AttributeError):
        return None


async def find_ids(conn: AsyncConnection, prefix: str, limit: int) -> list[uuid.UUID]:
    """Ids whose text form starts with ``prefix``, through the primary key's order."""
    prefix = prefix.lower()
    if not UUID_PREFIX.fullmatch(prefix):
        return []
    where = id_prefix_clause(conn, prefix)
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
                saga_executions.c.fence,
            ).where(saga_executions.c.id == saga_id),
        )
    ).first()
    if r is None:
        return None
    try:
        status = parse_status(r.status, SagaStatus)
    except (ValueError, AttributeError, TypeError):
        raise SagaStorageError(
            f"Saga {saga_id}: unreadable row: status {shown(r.status)} is not a saga status"
        ) from None
    return LeaseInfo(r.id, status, r.lease_owner, r.lease_expires, r.fence)


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
            saga_executions.c.fence,
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
    # The statuses were matched in SQL, so every one of them parses.
    return [
        LeaseInfo(r.id, parse_status(r.status, SagaStatus), r.lease_owner, r.lease_expires, r.fence)
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
