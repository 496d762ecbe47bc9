"""A SagaFilter as SQL: the WHERE clauses of a page, a count, or a filter's ids.

Every clause is shaped for an index of ``schema``: statuses and names by their indexes,
ids and business keys as ranges, errors through the partial covering index, stranded
sagas through the lease index, a failure group through the failure index.
"""

from __future__ import annotations

import dataclasses
import re
import time
import typing

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.saga.lease import owner_is_dead, this_host
from engine.saga.storage.enums import ACTIVE_STATUSES, SagaStatus
from engine.saga.storage.models import SagaFilter
from engine.saga.storage.sqlalchemy import db_values
from engine.saga.storage.sqlalchemy.outbox import holds_events
from engine.saga.storage.sqlalchemy.schema import (
    saga_executions,
    saga_request_items,
    saga_workers,
)

UUID_PREFIX = re.compile(r"[0-9a-f]{0,8}(-[0-9a-f]{0,4}){0,3}(-[0-9a-f]{0,12})?")
ACTIVE_NAMES = sorted(s.name for s in ACTIVE_STATUSES)
GROUP_NAMES = sorted(
    s.name
    for s in (
        SagaStatus.FAILED,
        SagaStatus.COMPENSATED,
        SagaStatus.RUNNING,
        SagaStatus.COMPENSATING,
    )
)
"""The statuses a failure group counts: ended with a failure, or still retrying one."""
_TOP = "\U0010ffff"  # sorts after every character: ``x <= v < x + _TOP`` is a prefix range


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


def key_prefix_clause(conn: AsyncConnection, prefix: str) -> sa.ColumnElement[bool]:
    """Business keys starting with ``prefix`` (as stored), as a range on their index."""
    column = saga_executions.c.search_key
    if conn.dialect.name == "sqlite":
        return sa.and_(column >= prefix, column < prefix + _TOP)
    return column.startswith(prefix, autoescape=True)


def narrowed(
    conn: AsyncConnection,
    where: typing.Callable[[typing.Any], sa.ColumnElement[bool]],
) -> sa.ColumnElement[bool]:
    """``where`` as ``key IN (the rows matching where)``: the planner reads the few rows
    through their own index, then sorts them, instead of walking a page's time index
    through a million rows looking for them. On SQLite by rowid, so the inner read
    stays inside the index (every index holds the rowid)."""
    inner = saga_executions.alias("narrow")
    if conn.dialect.name == "sqlite":
        rows: sa.Select[typing.Any] = (
            sa.select(sa.literal_column("narrow.rowid")).select_from(inner).where(where(inner))
        )
        return sa.literal_column("saga_executions.rowid").in_(rows)
    return saga_executions.c.id.in_(sa.select(inner.c.id).where(where(inner)))


def lapsed_where(f: SagaFilter, t: typing.Any) -> sa.ColumnElement[bool]:
    """Unfinished sagas of table ``t`` nobody runs: no lease, an expired one, a dead owner's."""
    now = f.now if f.now is not None else time.time()
    lease = t.c.lease_expires
    gone = [lease.is_(None), lease < now]
    if f.dead_owners:
        gone.append(t.c.lease_owner.in_(f.dead_owners))
    return sa.and_(t.c.status.in_(ACTIVE_NAMES), sa.or_(*gone))


def group_where(key: str, t: typing.Any) -> sa.ColumnElement[bool]:
    """The sagas of table ``t`` in one failure group."""
    return sa.and_(t.c.failure_key == key, t.c.status.in_(GROUP_NAMES))


def stranded_clause(conn: AsyncConnection, f: SagaFilter) -> sa.ColumnElement[bool]:
    """Unfinished sagas nobody runs (through the lease index: status, expiry, owner)."""
    return narrowed(conn, lambda t: lapsed_where(f, t))


def group_clause(conn: AsyncConnection, key: str) -> sa.ColumnElement[bool]:
    """The sagas of one failure group (through the failure index)."""
    return narrowed(conn, lambda t: group_where(key, t))


def filter_clauses(
    conn: AsyncConnection,
    f: SagaFilter,
    names: list[str] | None = None,
) -> list[sa.ColumnElement[bool]]:
    """The WHERE clauses of ``f`` (``names``: the saga names its ``name`` matched)."""
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
            clauses.append(id_prefix_clause(conn, prefix))
        elif f.text_in_keys:
            clauses.append(key_prefix_clause(conn, f.text.strip()))
        else:
            # error_type IS NOT NULL lets the planner walk the partial covering index.
            clauses.append(saga_executions.c.error_type.is_not(None))
            clauses.append(
                sa.or_(
                    _icontains(conn, saga_executions.c.error_message, f.text),
                    _icontains(conn, saga_executions.c.error_type, f.text),
                ),
            )
    if f.key:
        clauses.append(key_prefix_clause(conn, f.key))
    if f.failure_key:
        clauses.append(group_clause(conn, f.failure_key))
    if f.stranded:
        clauses.append(stranded_clause(conn, f))
    if f.events:
        clauses.append(holds_events(f.events))
    if f.worker:
        clauses.append(worker_clause(f))
    if f.since:
        clauses.append(saga_executions.c.created_at >= db_values.as_utc(f.since))
    if f.until:
        clauses.append(saga_executions.c.created_at <= db_values.as_utc(f.until))
    return clauses


def id_prefix_clause(conn: AsyncConnection, prefix: str) -> sa.ColumnElement[bool]:
    """Ids whose text form starts with ``prefix``, as a range on the primary key."""
    if _native_uuid(conn):
        return _id_text(conn).startswith(prefix, autoescape=True)
    stored = prefix.replace("-", "")
    # 'g' sorts after every hex digit, so the range is exactly the prefix.
    return sa.and_(_id_text(conn) >= stored, _id_text(conn) < stored + "g")


MAX_NAMES = 5000
"""Above this many saga names the name filter falls back to a LIKE scan."""


async def matching_names(conn: AsyncConnection, needle: str) -> list[str] | None:
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


async def live_owners_here(conn: AsyncConnection, now: float) -> dict[str, int]:
    """Owners on this host holding unexpired leases of unfinished sagas, with their counts."""
    mine = this_host() + ":"
    owner = saga_executions.c.lease_owner
    # The host's owners as a range (``host:`` up to ``host;``): a seek, not a scan.
    rows = await conn.execute(
        sa.select(owner, sa.func.count())
        .where(
            owner >= mine,
            owner < mine[:-1] + ";",
            saga_executions.c.status.in_(ACTIVE_NAMES),
            saga_executions.c.lease_expires >= now,
        )
        .group_by(owner),
    )
    return {r[0]: int(r[1]) for r in rows}


async def resolve_stranded(conn: AsyncConnection, f: SagaFilter) -> SagaFilter:
    """``f`` with the time and this host's dead owners fixed, when it asks for stranded sagas."""
    if not f.stranded or f.now is not None:
        return f
    now = time.time()
    dead = tuple(sorted(o for o in await live_owners_here(conn, now) if owner_is_dead(o)))
    return dataclasses.replace(f, now=now, dead_owners=dead)


def owned_by(f: SagaFilter, column: sa.ColumnElement[str | None]) -> sa.ColumnElement[bool]:
    """``column`` (an owner id) names a process of ``f.worker``: a registered worker of
    that name, or the owner ``host:pid[:start]`` itself (a range on the owner index)."""
    owners = list(f.worker_owners or ())
    parts: list[sa.ColumnElement[bool]] = [column.in_(owners)] if owners else []
    name = (f.worker or "").strip()
    if ":" in name:
        # ``host:pid`` as request progress shows it: every start of that pid.
        parts += [column == name, sa.and_(column >= name + ":", column < name + ";")]
    return sa.or_(*parts) if parts else sa.false()


def worker_clause(f: SagaFilter) -> sa.ColumnElement[bool]:
    """Sagas a worker runs now (its lease) or ran for a request (the pair it took)."""
    items = saga_request_items.c
    served = sa.select(items.saga_id).where(owned_by(f, items.taken_by))
    return sa.or_(owned_by(f, saga_executions.c.lease_owner), saga_executions.c.id.in_(served))


async def resolve_worker(conn: AsyncConnection, f: SagaFilter) -> SagaFilter:
    """``f`` with the owner ids of the workers its ``worker`` names (by name or owner id)."""
    if not f.worker or f.worker_owners is not None:
        return f
    name = f.worker.strip()
    w = saga_workers.c
    try:
        rows = await conn.execute(sa.select(w.id).where(sa.or_(w.name == name, w.id == name)))
    except sa.exc.DBAPIError:  # a python-cqrs database opened read-only has no workers table
        return dataclasses.replace(f, worker_owners=())
    return dataclasses.replace(f, worker_owners=tuple(sorted({r[0] for r in rows})))


async def has_key(conn: AsyncConnection, prefix: str) -> bool:
    """Whether any business key starts with ``prefix`` (one index seek)."""
    row = await conn.execute(
        sa.select(sa.literal(1)).where(key_prefix_clause(conn, prefix)).limit(1),
    )
    return row.first() is not None
