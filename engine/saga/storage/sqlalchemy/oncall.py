"""The on-call queries in SQLAlchemy Core: counts of a filter, stranded sagas, failure
groups, the pulse of the last minutes and per-step timings.

Each reads a few index ranges (the failure groups: the trigger-kept counts table, then a
seek per group in the failure index), so they stay in milliseconds on a million sagas.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import time
import typing
import weakref

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.saga.lease import owner_is_dead, this_host
from engine.saga.storage.enums import SagaStatus, SagaStepStatus, parse_status
from engine.saga.storage.models import SagaFilter
from engine.saga.storage.oncall import (
    HOUR_BUCKET_SECONDS,
    HOUR_BUCKETS,
    PULSE_BUCKET_SECONDS,
    PULSE_BUCKETS,
    PULSE_STATUSES,
    FailureGroup,
    FinishedRow,
    Pulse,
    StepStats,
    bucket_start,
    step_stats,
)
from engine.saga.storage.sqlalchemy import db_values
from engine.saga.storage.sqlalchemy.filtering import (
    ACTIVE_NAMES,
    GROUP_NAMES,
    filter_clauses,
    group_where,
    lapsed_where,
    matching_names,
)
from engine.saga.storage.sqlalchemy.schema import (
    saga_executions,
    saga_failure_counts,
    saga_logs,
)

_S = saga_executions.c


def _when(epoch: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC)


def _bucket(
    conn: AsyncConnection, column: sa.ColumnElement[typing.Any], start: float, size: int
) -> sa.ColumnElement[int]:
    """Which bucket of ``size`` seconds from epoch second ``start`` a time falls in."""
    if conn.dialect.name == "sqlite":
        seconds = sa.cast(sa.func.strftime("%s", column), sa.Integer)
        return (seconds - int(start)) // size
    epoch = sa.extract("epoch", column)
    return sa.cast(sa.func.floor((epoch - start) / size), sa.Integer)


async def count_sagas(conn: AsyncConnection, f: SagaFilter) -> int:
    """How many sagas match ``f`` (already resolved by the storage)."""
    bare = dataclasses.replace(f, stranded=False, failure_key=None, now=None, dead_owners=())
    if bare.is_empty and not (f.stranded and f.failure_key):
        # Only stranded, or only one group: counted inside its index, no table row read.
        if f.stranded:
            where = lapsed_where(f, saga_executions)
        else:
            where = group_where(f.failure_key or "", saga_executions)
        q = sa.select(sa.func.count()).select_from(saga_executions).where(where)
        return int((await conn.execute(q)).scalar() or 0)
    names = await matching_names(conn, f.name) if f.name else None
    if names == []:
        return 0
    q = sa.select(sa.func.count()).select_from(saga_executions)
    clauses = filter_clauses(conn, f, names)
    if clauses:
        q = q.where(*clauses)
    return int((await conn.execute(q)).scalar() or 0)


async def stranded_count(conn: AsyncConnection, now: float | None = None) -> int:
    """Unfinished sagas nobody runs: lease free or expired, or held by a dead owner here.

    Counted inside the lease index (status, expiry, owner): the free and expired leases
    are two ranges per status; of the live leases only this host's owners' are grouped
    (only they can be found dead), and each such owner is checked once.
    """
    now = time.time() if now is None else now
    active = _S.status.in_(ACTIVE_NAMES)
    free = sa.select(sa.func.count()).where(active, _S.lease_expires.is_(None))
    lapsed = sa.select(sa.func.count()).where(active, _S.lease_expires < now)
    gone = int(
        (await conn.execute(sa.select(free.scalar_subquery() + lapsed.scalar_subquery()))).scalar()
        or 0
    )
    # Owner ids are host:pid:start; the owner is read from the index, no row is visited.
    here = _S.lease_owner.startswith(f"{this_host()}:", autoescape=True)
    # Grouped by an expression: a bare owner tempts SQLite into walking the owner index
    # (for its order) and reading every unfinished saga's row.
    owner = sa.func.coalesce(_S.lease_owner, "").label("owner")
    rows = await conn.execute(
        sa.select(owner, sa.func.count())
        .where(active, _S.lease_expires >= now, here)
        .group_by(owner),
    )
    return gone + sum(int(n) for held, n in rows if owner_is_dead(held))


async def failure_groups(
    conn: AsyncConnection, now: float | None = None, limit: int = 500
) -> list[FailureGroup]:
    """Failed, rolled-back and retrying sagas grouped by cause, the biggest group first.

    One statement: the counts per (key, status) are read from the trigger-kept counts
    table (a row per group, however many sagas failed); first and last seen and the
    newest example are one seek each per (key, status) in the failure index (key, status,
    failed_at). The last hour's buckets are read for the groups shown, each an index range.
    """
    now = time.time() if now is None else now
    counted = await _has_counts(conn)
    rows = await conn.execute(_groups_statement(conn.dialect.name, counted))
    acc: dict[str, dict[str, typing.Any]] = {}
    for r in rows:
        first_t, last_t = db_values.time_from_db(r.first), db_values.time_from_db(r.last)
        group = acc.setdefault(
            r.k, {"count": 0, "first": first_t, "last": last_t, "by": {}, "head": None}
        )
        if group["head"] is None or last_t >= group["last"]:
            group["head"] = (r.name, r.failure_step, r.failure_type, r.failure_message)
        group["count"] += int(r.n)
        group["first"] = min(group["first"], first_t)
        group["last"] = max(group["last"], last_t)
        group["by"][parse_status(r.st, SagaStatus)] = int(r.n)
    keys = sorted(acc, key=lambda k: (-acc[k]["count"], -acc[k]["last"].timestamp(), k))
    keys = keys[:limit]
    hours = await _hour_buckets(conn, keys, now)
    out = []
    for key in keys:
        group = acc[key]
        name, step, etype, message = group["head"]
        out.append(
            FailureGroup(
                key,
                name or "",
                step or "",
                etype or "",
                example=message or "",
                count=group["count"],
                first_seen=group["first"],
                last_seen=group["last"],
                by_status=group["by"],
                hour=hours.get(key, (0,) * HOUR_BUCKETS),
            )
        )
    return out


_COUNTED: weakref.WeakSet[sa.Engine] = weakref.WeakSet()
"""Engines whose database has the failure counts table (once made, it stays)."""


async def _has_counts(conn: AsyncConnection) -> bool:
    """Whether the database has the failure counts table (asked until it has)."""
    engine = conn.sync_engine
    if engine not in _COUNTED:
        if not await conn.run_sync(lambda c: sa.inspect(c).has_table(saga_failure_counts.name)):
            return False
        _COUNTED.add(engine)
    return True


def _counted(table: bool) -> sa.Select[typing.Any]:
    """Sagas per (failure key, status) of the groups' statuses, as columns k, st and n.

    From the counts ``table``; a database opened read-only that predates it (or
    python-cqrs's tables, read through views) is counted in one grouped pass over the
    failure index.
    """
    if table:
        t = saga_failure_counts.c
        return sa.select(t.failure_key.label("k"), t.status.label("st"), t.n.label("n")).where(
            t.status.in_(GROUP_NAMES), t.n > 0
        )
    return (
        sa.select(_S.failure_key.label("k"), _S.status.label("st"), sa.func.count().label("n"))
        .where(_S.failure_key.is_not(None))
        .group_by(_S.failure_key, _S.status)
        .having(_S.status.in_(GROUP_NAMES))
    )


@functools.cache
def _groups_statement(dialect: str, table: bool) -> sa.Select[typing.Any]:
    """The groups with first and last seen and the newest example (built once per kind)."""
    grouped = _counted(table).subquery("g")
    inner = saga_executions.alias("inner")
    same = sa.and_(inner.c.failure_key == grouped.c.k, inner.c.status == grouped.c.st)
    first = sa.select(sa.func.min(inner.c.failed_at)).where(same).scalar_subquery()
    last = sa.select(sa.func.max(inner.c.failed_at)).where(same).scalar_subquery()
    ex = saga_executions.alias("ex")
    # On SQLite the newest example is found by rowid: inside the failure index (which
    # holds it), then one row read, instead of a row read for its id and a lookup by id.
    # (Not through python-cqrs's tables, read as views, which have no counts table.)
    if dialect == "sqlite" and table:
        pick: typing.Any = sa.literal_column('"inner".rowid')
        by: typing.Any = sa.literal_column("ex.rowid")
    else:
        pick, by = inner.c.id, ex.c.id
    newest = (
        sa.select(pick).where(same).order_by(inner.c.failed_at.desc()).limit(1)
    ).scalar_subquery()
    return (
        sa.select(
            grouped.c.k,
            grouped.c.st,
            grouped.c.n,
            first.label("first"),
            last.label("last"),
            ex.c.name,
            ex.c.failure_step,
            ex.c.failure_type,
            ex.c.failure_message,
        )
        .select_from(grouped)
        .join(ex, by == newest)
    )


async def _hour_buckets(
    conn: AsyncConnection, keys: list[str], now: float
) -> dict[str, tuple[int, ...]]:
    """Occurrences per five minutes over the last hour of each group in ``keys``.

    One range of the failed-at index (the last hour's failures, of every cause), so the
    cost follows the failures of the hour, not the number of groups.
    """
    if not keys:
        return {}
    wanted = set(keys)
    start = bucket_start(now, HOUR_BUCKET_SECONDS, HOUR_BUCKETS)
    bucket = _bucket(conn, _S.failed_at, start, HOUR_BUCKET_SECONDS).label("b")
    # Only the time in the WHERE (the key and status are sorted out here): a condition on
    # the key would let SQLite skip-scan the failure index cause after cause instead.
    rows = await conn.execute(
        sa.select(_S.failure_key, _S.status, bucket, sa.func.count())
        .where(_S.failed_at >= _when(start))
        .group_by(_S.failure_key, _S.status, bucket)
    )
    out: dict[str, list[int]] = {}
    statuses = set(GROUP_NAMES)
    for key, status, b, n in rows:
        if key in wanted and status in statuses and b is not None and 0 <= int(b) < HOUR_BUCKETS:
            out.setdefault(key, [0] * HOUR_BUCKETS)[int(b)] += int(n)
    return {key: tuple(values) for key, values in out.items()}


async def pulse(conn: AsyncConnection, now: float | None = None) -> Pulse:
    """Sagas that ended per ten seconds over the last ten minutes, by how they ended."""
    now = time.time() if now is None else now
    start = bucket_start(now, PULSE_BUCKET_SECONDS, PULSE_BUCKETS)
    bucket = _bucket(conn, _S.finished_at, start, PULSE_BUCKET_SECONDS).label("b")
    # Only the time range in the WHERE, and the status grouped as an expression: the
    # planner then reads the finished index's last minutes (a bare status tempts it into
    # walking the status index through every COMPLETED saga, for its order).
    status = sa.func.coalesce(_S.status, "").label("st")
    rows = await conn.execute(
        sa.select(status, bucket, sa.func.count())
        .where(_S.finished_at >= _when(start))
        .group_by(status, bucket),
    )
    series = {status: [0] * PULSE_BUCKETS for status in PULSE_STATUSES}
    wanted = {s.name for s in PULSE_STATUSES}
    for status, b, n in rows:
        if status in wanted and b is not None and 0 <= int(b) < PULSE_BUCKETS:
            series[parse_status(status, SagaStatus)][int(b)] += int(n)
    return Pulse(_when(start), PULSE_BUCKET_SECONDS, {k: tuple(v) for k, v in series.items()})


_FINISHED = (SagaStepStatus.COMPLETED.name, SagaStepStatus.FAILED.name)


async def recent_step_stats(
    conn: AsyncConnection, recent: int, saga_name: str | None = None
) -> StepStats:
    """p50/p95 and failure rate per step from the newest ``recent`` log rows (an id range)."""
    top = int((await conn.execute(sa.select(sa.func.max(saga_logs.c.id)))).scalar() or 0)
    floor = max(0, top - recent)
    q = (
        sa.select(
            saga_executions.c.name,
            saga_logs.c.step_name,
            saga_logs.c.action,
            saga_logs.c.status,
            saga_logs.c.error_type,
            saga_logs.c.duration_ms,
            saga_logs.c.created_at,
        )
        .join(saga_executions, saga_executions.c.id == saga_logs.c.saga_id)
        .where(saga_logs.c.id > floor, saga_logs.c.status.in_(_FINISHED))
    )
    if saga_name is not None:
        q = q.where(saga_executions.c.name == saga_name)
    rows: list[FinishedRow] = []
    since: datetime.datetime | None = None
    for name, step, action, status, etype, took, created in await conn.execute(q):
        failed = status == SagaStepStatus.FAILED.name
        if failed and etype is None:
            continue  # closed as never started: nothing ran
        rows.append((name, step, action, failed, took))
        moment = db_values.time_from_db(created)
        since = moment if since is None or moment < since else since
    return step_stats(rows, top - floor, since)
