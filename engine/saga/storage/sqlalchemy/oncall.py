"""The on-call queries in SQLAlchemy Core: counts of a filter, stranded sagas, failure
groups, the pulse of the last minutes and per-step timings.

Each is one statement over one index (the failure groups: one grouped pass over the
failure index, then the newest example of each group by one seek), so they stay in
milliseconds on a million sagas.
"""

from __future__ import annotations

import datetime
import time
import typing

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.saga.lease import owner_is_dead
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
    matching_names,
)
from engine.saga.storage.sqlalchemy.schema import saga_executions, saga_logs

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

    One pass over the lease index: unexpired leases are grouped by owner so each owner
    on this host is checked once.
    """
    now = time.time() if now is None else now
    live = sa.case((_S.lease_expires >= now, _S.lease_owner), else_=None).label("live")
    rows = await conn.execute(
        sa.select(live, sa.func.count()).where(_S.status.in_(ACTIVE_NAMES)).group_by(live),
    )
    return sum(int(n) for owner, n in rows if owner is None or owner_is_dead(owner))


async def failure_groups(
    conn: AsyncConnection, now: float | None = None, limit: int = 500
) -> list[FailureGroup]:
    """Failed, rolled-back and retrying sagas grouped by cause, the biggest group first."""
    now = time.time() if now is None else now
    start = bucket_start(now, HOUR_BUCKET_SECONDS, HOUR_BUCKETS)
    recent = _S.failed_at >= _when(start)
    bucket = sa.case(
        (recent, _bucket(conn, _S.failed_at, start, HOUR_BUCKET_SECONDS)), else_=-1
    ).label("b")
    grouped = (
        sa.select(
            _S.failure_key.label("k"),
            _S.status.label("st"),
            bucket,
            sa.func.count().label("n"),
            sa.func.min(_S.failed_at).label("first"),
            sa.func.max(_S.failed_at).label("last"),
        )
        .where(_S.failure_key.is_not(None), _S.status.in_(GROUP_NAMES))
        .group_by(_S.failure_key, _S.status, bucket)
        .subquery("g")
    )
    newer = saga_executions.alias("newest")
    newest = (
        sa.select(newer.c.id)
        .where(newer.c.failure_key == grouped.c.k, newer.c.status.in_(GROUP_NAMES))
        .order_by(newer.c.failed_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    ex = saga_executions.alias("ex")
    rows = await conn.execute(
        sa.select(
            grouped,
            ex.c.name,
            ex.c.failure_step,
            ex.c.failure_type,
            ex.c.failure_message,
        )
        .select_from(grouped)
        .join(ex, ex.c.id == newest)
    )
    return fold_groups(
        ((r.k, r.st, r.b, r.n, r.first, r.last, *r[-4:]) for r in rows),
        limit,
    )


GroupRow = tuple[str, str, int, int, typing.Any, typing.Any, str, str, str, str]
"""(key, status, hour bucket or -1, count, first, last, name, step, type, example message)."""


def fold_groups(rows: typing.Iterable[GroupRow], limit: int) -> list[FailureGroup]:
    """Rows of the grouped query (one per key, status and bucket) as FailureGroups."""
    acc: dict[str, dict[str, typing.Any]] = {}
    for key, status, bucket, n, first, last, name, step, etype, message in rows:
        group = acc.get(key)
        first_t, last_t = db_values.time_from_db(first), db_values.time_from_db(last)
        if group is None:
            group = acc[key] = {
                "head": (name or "", step or "", etype or "", message or ""),
                "count": 0,
                "first": first_t,
                "last": last_t,
                "by_status": {},
                "hour": [0] * HOUR_BUCKETS,
            }
        group["count"] += int(n)
        group["first"] = min(group["first"], first_t)
        group["last"] = max(group["last"], last_t)
        parsed = parse_status(status, SagaStatus)
        group["by_status"][parsed] = group["by_status"].get(parsed, 0) + int(n)
        if bucket is not None and 0 <= int(bucket) < HOUR_BUCKETS:
            group["hour"][int(bucket)] += int(n)
    groups = [
        FailureGroup(
            key,
            g["head"][0],
            g["head"][1],
            g["head"][2],
            example=g["head"][3],
            count=g["count"],
            first_seen=g["first"],
            last_seen=g["last"],
            by_status=g["by_status"],
            hour=tuple(g["hour"]),
        )
        for key, g in acc.items()
    ]
    groups.sort(key=lambda g: (-g.count, -g.last_seen.timestamp(), g.key))
    return groups[:limit]


async def pulse(conn: AsyncConnection, now: float | None = None) -> Pulse:
    """Sagas that ended per ten seconds over the last ten minutes, by how they ended."""
    now = time.time() if now is None else now
    start = bucket_start(now, PULSE_BUCKET_SECONDS, PULSE_BUCKETS)
    bucket = _bucket(conn, _S.finished_at, start, PULSE_BUCKET_SECONDS).label("b")
    rows = await conn.execute(
        sa.select(_S.status, bucket, sa.func.count())
        .where(
            _S.finished_at >= _when(start),
            _S.status.in_([s.name for s in PULSE_STATUSES]),
        )
        .group_by(_S.status, bucket),
    )
    series = {status: [0] * PULSE_BUCKETS for status in PULSE_STATUSES}
    for status, b, n in rows:
        if b is not None and 0 <= int(b) < PULSE_BUCKETS:
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
