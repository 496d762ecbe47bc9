"""SQL for the fleet: operator requests, their (request, saga) pairs, and the workers table.

Write functions take a Core connection inside the storage writer's transaction (one
job, one transaction); read functions take an async connection. Times are epoch seconds.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.saga.errors import SagaNotFoundError
from engine.saga.requests import (
    ClaimedItem,
    NewRequest,
    RequestItemView,
    RequestProgress,
    WorkerInfo,
)
from engine.saga.storage.models import OperatorAction
from engine.saga.storage.sqlalchemy import commands
from engine.saga.storage.sqlalchemy.schema import (
    saga_executions,
    saga_request_items,
    saga_requests,
    saga_workers,
)

_CHUNK = 500
PENDING = "PENDING"
DONE = "DONE"


# ---- requests ------------------------------------------------------------------------


_INSERT_REQUEST = sa.insert(saga_requests)
_INSERT_ITEMS = sa.insert(saga_request_items)


def insert_request(conn: sa.Connection, new: NewRequest) -> None:
    """Write a request and its pairs; names of existing sagas are read here, in one go."""
    names: dict[uuid.UUID, str] = {}
    if new.kind == "start":
        assert new.saga_name is not None
        names = dict.fromkeys(new.saga_ids, new.saga_name)
    else:
        for i in range(0, len(new.saga_ids), _CHUNK):
            chunk = list(new.saga_ids[i : i + _CHUNK])
            rows = conn.execute(
                sa.select(saga_executions.c.id, saga_executions.c.name).where(
                    saga_executions.c.id.in_(chunk)
                )
            )
            names.update({r.id: r.name for r in rows})
        missing = [s for s in new.saga_ids if s not in names]
        if missing:
            raise SagaNotFoundError(f"Saga {missing[0]} not found")
    conn.execute(
        _INSERT_REQUEST,
        {
            "id": new.request_id,
            "kind": new.kind,
            "saga_name": new.saga_name,
            "context": new.context,
            "count": len(new.saga_ids),
            "requester": new.requester,
            "reason": new.reason,
            "created_at": new.created_at,
            "state": PENDING if new.saga_ids else DONE,
            "finished_at": None if new.saga_ids else new.created_at,
        },
    )
    pairs = [
        {"request_id": new.request_id, "saga_id": s, "saga_name": names[s]} for s in new.saga_ids
    ]
    for i in range(0, len(pairs), _CHUNK):
        conn.execute(_INSERT_ITEMS, pairs[i : i + _CHUNK])


def _claimable(now: typing.Any, dead: typing.Any | None) -> sa.ColumnElement[bool]:
    items = saga_request_items.c
    free = sa.or_(items.claim_expires.is_(None), items.claim_expires < now)
    if dead is not None:
        free = sa.or_(free, items.claimed_by.in_(dead))
    return sa.and_(items.outcome.is_(None), free)


@functools.cache
def _claim_statements(
    with_dead: bool, one_request: bool, skip_locked: bool
) -> tuple[sa.Select[typing.Any], sa.Update, sa.Select[typing.Any]]:
    """The three statements of a claim, built once per shape (bound parameters: c_now,
    c_names, c_dead, c_request, c_limit, c_ids, c_owner, c_expires)."""
    items = saga_request_items.c
    open_now = _claimable(
        sa.bindparam("c_now"), sa.bindparam("c_dead", expanding=True) if with_dead else None
    )
    pick = (
        sa.select(items.id, items.taken_by)
        .where(open_now, items.saga_name.in_(sa.bindparam("c_names", expanding=True)))
        .where(items.request_id == sa.bindparam("c_request") if one_request else sa.true())
        .order_by(items.id)
        .limit(sa.bindparam("c_limit", type_=sa.Integer))
    )
    if skip_locked:
        pick = pick.with_for_update(skip_locked=True)
    take = (
        sa.update(saga_request_items)
        .where(items.id.in_(sa.bindparam("c_ids", expanding=True)), open_now)
        .values(
            claimed_by=sa.bindparam("c_owner"),
            claim_expires=sa.bindparam("c_expires"),
            taken_by=sa.bindparam("c_owner"),
        )
        .returning(items.id)
    )
    req = saga_requests.c
    read = (
        sa.select(
            items.id,
            items.request_id,
            items.saga_id,
            items.saga_name,
            req.kind,
            req.context,
            req.reason,
            req.requester,
        )
        .join(saga_requests, req.id == items.request_id)
        .where(items.id.in_(sa.bindparam("c_ids", expanding=True)))
        .order_by(items.id)
    )
    return pick, take, read


def claim_items(
    conn: sa.Connection,
    owner: str,
    names: typing.Sequence[str],
    limit: int,
    now: float,
    expires: float,
    dead: typing.Sequence[str] = (),
    request_id: uuid.UUID | None = None,
) -> list[ClaimedItem]:
    """Take up to ``limit`` open pairs of saga types in ``names``: one conditional UPDATE.

    A pair is open when it has no outcome and no live claim (free, expired, or held by
    a dead owner of this host). PostgreSQL skips rows another claimer has locked.
    """
    if limit <= 0 or not names:
        return []
    pick, take, read = _claim_statements(
        bool(dead), request_id is not None, conn.dialect.name == "postgresql"
    )
    params: dict[str, typing.Any] = {"c_now": now, "c_names": list(names), "c_limit": limit}
    if dead:
        params["c_dead"] = list(dead)
    if request_id is not None:
        params["c_request"] = request_id
    picked = {r.id: r.taken_by for r in conn.execute(pick, params)}
    if not picked:
        return []
    params.update(c_ids=list(picked), c_owner=owner, c_expires=expires)
    got = [r.id for r in conn.execute(take, params)]
    if not got:
        return []
    rows = conn.execute(read, {"c_ids": got})
    return [
        ClaimedItem(
            r.id,
            r.request_id,
            r.kind,
            r.saga_id,
            r.saga_name,
            r.context,
            r.reason,
            r.requester,
            fresh=picked.get(r.id) is None,
        )
        for r in rows
    ]


async def has_open_items(
    conn: AsyncConnection,
    names: typing.Sequence[str],
    now: float,
    dead: typing.Sequence[str],
    request_id: uuid.UUID | None,
) -> bool:
    """Whether a claim would find anything: a read, so idle workers take no write lock."""
    items = saga_request_items.c
    query = (
        sa.select(items.id)
        .where(_claimable(now, list(dead) if dead else None), items.saga_name.in_(list(names)))
        .where(sa.true() if request_id is None else items.request_id == request_id)
        .limit(1)
    )
    return (await conn.execute(query)).first() is not None


@dataclasses.dataclass(frozen=True, slots=True)
class Finish:
    """One pair's outcome to record (``finish_items``)."""

    item_id: int
    owner: str
    outcome: str
    ok: bool
    error: str | None
    audit: OperatorAction | None = None


_items = saga_request_items.c
# Built once: a statement made per call costs more in SQLAlchemy's construction and
# cache-key work than the database spends running it.
_FINISH_SOME = (
    sa.update(saga_request_items)
    .where(
        _items.id.in_(sa.bindparam("f_ids", expanding=True)),
        _items.claimed_by == sa.bindparam("f_owner"),
        _items.outcome.is_(None),
    )
    .values(
        outcome=sa.bindparam("f_outcome"),
        ok=sa.bindparam("f_ok"),
        error=sa.bindparam("f_error"),
        finished_at=sa.bindparam("f_now"),
        claimed_by=None,
    )
    .returning(_items.id, _items.request_id)
)
_SERVED = (
    sa.update(saga_workers)
    .where(saga_workers.c.id == sa.bindparam("w_id"))
    .values(served=saga_workers.c.served + sa.bindparam("w_n", type_=sa.Integer))
)
# A request is closed (DONE) once each of its pairs has an outcome. An outcome is never
# taken back, so a request seen without an open pair stays done. SQLite runs the NOT
# EXISTS as one index probe per request. PostgreSQL plans that anti-join by its
# statistics, and right after a burst of requests (before autovacuum analyzed the
# tables) it joined every pending request to every open pair: 3.6 s for 8,000 pending
# requests. There it is two plain statements, milliseconds whatever the statistics say.
_requests = saga_requests.c
_NO_OPEN_PAIR = ~sa.exists().where(_items.request_id == _requests.id, _items.outcome.is_(None))
_CLOSE = (
    sa.update(saga_requests)
    .where(_requests.id.in_(sa.bindparam("r_ids", expanding=True)), _requests.state == PENDING)
    .values(state=DONE, finished_at=sa.bindparam("r_now"))
)
_CLOSE_IF_DONE = _CLOSE.where(_NO_OPEN_PAIR)
_STILL_OPEN = (
    sa.select(_items.request_id)
    .where(_items.request_id.in_(sa.bindparam("r_ids", expanding=True)), _items.outcome.is_(None))
    .distinct()
)
_ANY_OPEN = sa.select(_items.request_id).where(_items.outcome.is_(None)).distinct()


def _close(conn: sa.Connection, done: typing.Sequence[uuid.UUID], now: float) -> int:
    """Mark DONE those of ``done`` still pending (each has no open pair left)."""
    return sum(
        conn.execute(_CLOSE, {"r_ids": list(done[i : i + _CHUNK]), "r_now": now}).rowcount
        for i in range(0, len(done), _CHUNK)
    )


def _close_done(conn: sa.Connection, request_ids: typing.Sequence[uuid.UUID], now: float) -> int:
    """Mark DONE those of ``request_ids`` (pending ones) that have no open pair left."""
    chunks = [list(request_ids[i : i + _CHUNK]) for i in range(0, len(request_ids), _CHUNK)]
    if conn.dialect.name != "postgresql":
        return sum(
            conn.execute(_CLOSE_IF_DONE, {"r_ids": chunk, "r_now": now}).rowcount
            for chunk in chunks
        )
    still_open = {r[0] for chunk in chunks for r in conn.execute(_STILL_OPEN, {"r_ids": chunk})}
    return _close(conn, [r for r in request_ids if r not in still_open], now)


def finish_items(conn: sa.Connection, done: typing.Sequence[Finish], now: float) -> list[bool]:
    """Record pairs' outcomes in one transaction; per pair, False when its owner no
    longer holds it (nothing written for that pair). Served counts, finished requests
    and the audit rows of the recorded pairs are written once for the lot."""
    # Pairs with the same outcome (most of them: COMPLETED, no error) share a statement.
    alike: dict[tuple[str, str, bool, str | None], list[int]] = {}
    for f in done:
        alike.setdefault((f.owner, f.outcome, f.ok, f.error), []).append(f.item_id)
    landed: dict[int, uuid.UUID] = {}
    for (owner, outcome, ok, error), ids in alike.items():
        rows = conn.execute(
            _FINISH_SOME,
            {
                "f_ids": ids,
                "f_owner": owner,
                "f_outcome": outcome,
                "f_ok": ok,
                "f_error": error,
                "f_now": now,
            },
        )
        landed.update((r.id, r.request_id) for r in rows)
    served: dict[str, int] = {}
    requests: dict[uuid.UUID, None] = {}
    audits: list[dict[str, typing.Any]] = []
    recorded: list[bool] = []
    for f in done:
        request_id = landed.get(f.item_id)
        recorded.append(request_id is not None)
        if request_id is None:
            continue
        served[f.owner] = served.get(f.owner, 0) + 1
        requests[request_id] = None
        if f.audit is not None:
            audits.append(commands.audit_row(f.audit))
    for owner, n in served.items():
        conn.execute(_SERVED, {"w_id": owner, "w_n": n})
    if requests:
        _close_done(conn, list(requests), now)
    if audits:
        conn.execute(commands.INSERT_AUDIT, audits)
    return recorded


def close_finished(conn: sa.Connection, now: float) -> int:
    """Mark DONE every pending request whose pairs all have outcomes (concurrent finishers
    on PostgreSQL may each see the other's pair still open)."""
    if conn.dialect.name != "postgresql":
        close_all = sa.update(saga_requests).where(_requests.state == PENDING, _NO_OPEN_PAIR)
        return conn.execute(close_all.values(state=DONE, finished_at=now)).rowcount
    pending = [
        r[0] for r in conn.execute(sa.select(_requests.id).where(_requests.state == PENDING))
    ]
    if not pending:
        return 0
    # One pass over the open pairs (not a probe per pending request).
    still_open = {r[0] for r in conn.execute(_ANY_OPEN)}
    return _close(conn, [r for r in pending if r not in still_open], now)


def release_items(
    conn: sa.Connection, owner: str, item_ids: typing.Sequence[int], not_before: float | None
) -> int:
    """Give pairs back (open again at ``not_before``, at once when None)."""
    items = saga_request_items.c
    if not item_ids:
        return 0
    return conn.execute(
        sa.update(saga_request_items)
        .where(items.id.in_(list(item_ids)), items.claimed_by == owner, items.outcome.is_(None))
        .values(claimed_by=None, claim_expires=not_before)
    ).rowcount


def release_all(conn: sa.Connection, owner: str) -> int:
    """Give back every open pair ``owner`` holds (a stopping process)."""
    items = saga_request_items.c
    return conn.execute(
        sa.update(saga_request_items)
        .where(items.claimed_by == owner, items.outcome.is_(None))
        .values(claimed_by=None, claim_expires=None)
    ).rowcount


# ---- workers ------------------------------------------------------------------------


def register_worker(conn: sa.Connection, info: WorkerInfo) -> None:
    """Insert (or replace) this process's row in the workers table."""
    conn.execute(sa.delete(saga_workers).where(saga_workers.c.id == info.id))
    conn.execute(
        sa.insert(saga_workers).values(
            id=info.id,
            name=info.name,
            host=info.host,
            pid=info.pid,
            app=info.app,
            saga_types=",".join(info.saga_types),
            started_at=info.started_at,
            heartbeat=info.heartbeat,
            running=info.running,
            served=info.served,
            dedicated=info.dedicated,
            stopped_at=None,
        )
    )


def beat(
    conn: sa.Connection,
    owner: str,
    now: float,
    expires: float,
    running: int,
    held: typing.Sequence[int],
) -> None:
    """Heartbeat: the worker row's time and running count, and the claims of the pairs it
    is serving (``held``). A pair it claimed and no longer serves (its outcome could not
    be recorded) is not renewed: its claim expires and any process takes it again."""
    conn.execute(
        sa.update(saga_workers)
        .where(saga_workers.c.id == owner)
        .values(heartbeat=now, running=running, stopped_at=None)
    )
    items = saga_request_items.c
    for i in range(0, len(held), _CHUNK):
        conn.execute(
            sa.update(saga_request_items)
            .where(
                items.id.in_(list(held[i : i + _CHUNK])),
                items.claimed_by == owner,
                items.outcome.is_(None),
            )
            .values(claim_expires=expires)
        )


def deregister(conn: sa.Connection, owner: str, now: float) -> None:
    """A worker that stopped cleanly: its row stays, shown gone, with when it stopped."""
    conn.execute(
        sa.update(saga_workers).where(saga_workers.c.id == owner).values(stopped_at=now, running=0)
    )


async def list_workers(conn: AsyncConnection, since: float) -> list[WorkerInfo]:
    """Workers that beat after ``since`` (gone ones too), newest start first."""
    w = saga_workers.c
    rows = await conn.execute(
        sa.select(saga_workers).where(w.heartbeat >= since).order_by(w.started_at.desc(), w.id)
    )
    return [
        WorkerInfo(
            id=r.id,
            name=r.name,
            host=r.host,
            pid=r.pid,
            app=r.app,
            saga_types=tuple(t for t in r.saga_types.split(",") if t),
            started_at=r.started_at,
            heartbeat=r.heartbeat,
            running=r.running,
            served=r.served,
            dedicated=bool(r.dedicated),
            stopped_at=r.stopped_at,
        )
        for r in rows
    ]


async def open_claim_holders(conn: AsyncConnection, host: str) -> list[str]:
    """Owners on ``host`` that hold open pairs (to check which of them are dead)."""
    items = saga_request_items.c
    mine = host + ":"
    rows = await conn.execute(
        sa.select(items.claimed_by)
        .where(
            items.outcome.is_(None),
            items.claimed_by.is_not(None),
            sa.func.substr(items.claimed_by, 1, len(mine)) == mine,
        )
        .distinct()
    )
    return [r.claimed_by for r in rows]


async def open_saga_names(conn: AsyncConnection, now: float) -> list[str]:
    """Saga types that have open pairs nobody live holds (to say who can serve them)."""
    items = saga_request_items.c
    rows = await conn.execute(sa.select(items.saga_name).where(_claimable(now, None)).distinct())
    return [r.saga_name for r in rows]


async def claimed_names(conn: AsyncConnection, names: typing.Sequence[str], now: float) -> set[str]:
    """Which of these saga types have pairs someone holds now (an unregistered server:
    a command line serving its own request)."""
    items = saga_request_items.c
    rows = await conn.execute(
        sa.select(items.saga_name)
        .where(
            items.outcome.is_(None),
            items.claim_expires >= now,
            items.claimed_by.is_not(None),
            items.saga_name.in_(list(names)),
        )
        .distinct()
    )
    return {r.saga_name for r in rows}


# ---- progress -----------------------------------------------------------------------


async def request_progress(
    conn: AsyncConnection, request_ids: typing.Sequence[uuid.UUID], now: float
) -> list[RequestProgress]:
    """Counts of each request's pairs: done, failed, taken (and by whom), waiting."""
    if not request_ids:
        return []
    req = saga_requests.c
    items = saga_request_items.c
    heads = {
        r.id: r
        for r in await conn.execute(sa.select(saga_requests).where(req.id.in_(list(request_ids))))
    }
    live = sa.and_(
        items.outcome.is_(None), items.claimed_by.is_not(None), items.claim_expires >= now
    )
    counts = await conn.execute(
        sa.select(
            items.request_id,
            sa.func.count().label("total"),
            sa.func.count(items.outcome).label("done"),
            sa.func.sum(sa.case((items.ok == sa.false(), 1), else_=0)).label("failed"),
            sa.func.sum(sa.case((live, 1), else_=0)).label("taken"),
            sa.func.max(sa.case((live, items.claimed_by), else_=None)).label("taker"),
        )
        .where(items.request_id.in_(list(request_ids)))
        .group_by(items.request_id)
    )
    by_id = {c.request_id: c for c in counts}
    out = []
    for request_id in request_ids:
        head = heads.get(request_id)
        if head is None:
            continue
        c = by_id.get(request_id)
        out.append(
            RequestProgress(
                request_id=request_id,
                kind=head.kind,
                saga_name=head.saga_name,
                requester=head.requester,
                reason=head.reason,
                created_at=head.created_at,
                state=head.state,
                finished_at=head.finished_at,
                total=int(c.total) if c else 0,
                done=int(c.done) if c else 0,
                failed=int(c.failed or 0) if c else 0,
                taken=int(c.taken or 0) if c else 0,
                taker=c.taker if c else None,
            )
        )
    return out


async def recent_requests(conn: AsyncConnection, limit: int) -> list[uuid.UUID]:
    """Ids of the newest requests."""
    req = saga_requests.c
    rows = await conn.execute(sa.select(req.id).order_by(req.created_at.desc()).limit(limit))
    return [r.id for r in rows]


async def request_items(
    conn: AsyncConnection, request_id: uuid.UUID, limit: int
) -> list[RequestItemView]:
    """The pairs of one request, in order."""
    items = saga_request_items.c
    rows = await conn.execute(
        sa.select(saga_request_items)
        .where(items.request_id == request_id)
        .order_by(items.id)
        .limit(limit)
    )
    return [
        RequestItemView(r.saga_id, r.saga_name, r.claimed_by, r.taken_by, r.outcome, r.ok, r.error)
        for r in rows
    ]
