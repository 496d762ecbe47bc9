"""Claiming and closing requests stay cheap however many pairs a burst left open.

Right after a burst of requests, before autovacuum has analyzed the request tables,
PostgreSQL believed a handful of rows were pending and planned the closing NOT EXISTS
as a nested loop over every (pending request, open pair): 8,000 requests took seconds,
every two seconds, in the writer that the sagas' checkpoints wait for. And a claim read
every open pair and sorted them to take the oldest few. Here each statement a close or
a claim runs is replayed under EXPLAIN on such a database.
"""

from __future__ import annotations

import contextlib
import pathlib
import time
import typing
import uuid

import pytest
import sqlalchemy as sa

from engine.saga.fleet import RequestBook
from engine.saga.requests import ClaimedItem, NewRequest
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from engine.saga.storage.sqlalchemy import requests_store as store
from tests.support import POSTGRES_URL, postgres_database

needs_postgres = pytest.mark.skipif(not POSTGRES_URL, reason="SAGA_TEST_POSTGRES_URL is not set")

REQUESTS = 2000
FINISHED = 64
OWNER = "testhost:1:1"
Step = typing.Callable[[sa.Connection], typing.Any]


def _removed(plan: dict[str, typing.Any], by: str = "Join Filter") -> int:
    """Rows a plan's nodes read and threw away (``by`` "Join Filter" or "Filter")."""
    own = int(plan.get(f"Rows Removed by {by}", 0))
    return own + sum(_removed(p, by) for p in plan.get("Plans", ()))


def _nodes(plan: dict[str, typing.Any]) -> list[str]:
    return [plan["Node Type"], *(n for p in plan.get("Plans", ()) for n in _nodes(p))]


async def _burst(storage: SqlAlchemySagaStorage) -> None:
    """REQUESTS one-saga start requests in one transaction; half their pairs finished."""
    now = time.time()
    news = [
        NewRequest(uuid.uuid4(), "start", (uuid.uuid4(),), "OrderSaga", {}, "op@host", "", now)
        for _ in range(REQUESTS)
    ]

    def insert(conn: sa.Connection) -> None:
        for new in news:
            store.insert_request(conn, new)

    await storage._write(insert)
    async with storage._engine.begin() as conn:
        items = store.saga_request_items
        half = sa.select(items.c.id).order_by(items.c.id).limit(REQUESTS // 2).scalar_subquery()
        await conn.execute(
            sa.update(items)
            .where(items.c.id.in_(half))
            .values(outcome="COMPLETED", ok=True, finished_at=now)
        )


def _explain(conn: sa.Connection, sql: str, params: typing.Any) -> typing.Any:
    """PostgreSQL: the executed plan as JSON; SQLite: the query plan's lines."""
    if conn.dialect.name == "postgresql":
        explained = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        return explained.scalar_one()[0]["Plan"]
    return [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)]


def _replayed(conn: sa.Connection, act: Step, before: Step | None) -> list[typing.Any]:
    """The plans of what ``act`` runs (after ``before``), each replayed and undone."""
    if before is not None:
        before(conn)
    seen: list[tuple[str, typing.Any]] = []

    def capture(
        _c: typing.Any, _cur: typing.Any, sql: str, params: typing.Any, *_: typing.Any
    ) -> None:
        seen.append((sql, params))

    undo = conn.begin_nested()
    sa.event.listen(conn, "before_cursor_execute", capture)
    try:
        act(conn)
    finally:
        sa.event.remove(conn, "before_cursor_execute", capture)
    undo.rollback()
    plans = []
    for sql, params in seen:
        undo = conn.begin_nested()
        plans.append(_explain(conn, sql, params))
        undo.rollback()
    return plans


async def _plans(
    storage: SqlAlchemySagaStorage, act: Step, before: Step | None = None
) -> list[typing.Any]:
    async with storage._engine.connect() as conn, conn.begin() as tx:
        plans = await conn.run_sync(_replayed, act, before)
        await tx.rollback()
    assert plans
    return plans


def _claim_some(claimed: list[ClaimedItem]) -> Step:
    def claim(conn: sa.Connection) -> None:
        now = time.time()
        claimed[:] = store.claim_items(conn, OWNER, ["OrderSaga"], FINISHED, now, now + 60)
        assert len(claimed) == FINISHED

    return claim


@needs_postgres
async def test_closing_requests_after_a_burst_never_joins_every_request_to_every_pair() -> None:
    async with postgres_database() as url:
        storage = SqlAlchemySagaStorage.from_url(url)
        try:
            await storage.count_by_status()
            await _burst(storage)
            claimed: list[ClaimedItem] = []

            def finish(conn: sa.Connection) -> None:
                done = [store.Finish(i.item_id, OWNER, "COMPLETED", True, None) for i in claimed]
                assert all(store.finish_items(conn, done, time.time()))

            # The worker's pass over every pending request, and a worker finishing pairs.
            closing = await _plans(storage, lambda c: store.close_finished(c, time.time()))
            finishing = await _plans(storage, finish, _claim_some(claimed))
            for plan in closing + finishing:
                # No join tests every open pair against every request it looks at
                # (a close of 1,000 pending requests: 1.5 million rows thrown away).
                assert _removed(plan) <= FINISHED, plan
            assert await RequestBook.of(storage).close_finished() == REQUESTS // 2
            progress = await RequestBook.of(storage).recent(limit=REQUESTS)
            assert sum(p.state == "DONE" for p in progress) == REQUESTS // 2
        finally:
            await storage.close()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=needs_postgres)])
async def test_a_claim_takes_the_oldest_open_pairs_without_reading_every_open_pair(
    backend: str, tmp_path: pathlib.Path
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'requests.db'}"
        else:
            url = await stack.enter_async_context(postgres_database())
        storage = SqlAlchemySagaStorage.from_url(url)
        stack.push_async_callback(storage.close)
        await storage.count_by_status()
        await _burst(storage)
        if backend == "postgresql":  # as autovacuum leaves it a minute later
            async with storage._engine.begin() as conn:
                await conn.exec_driver_sql("ANALYZE saga_request_items")
        claimed: list[ClaimedItem] = []
        # The claim's first statement picks the pairs (the others take and read them by id).
        pick = (await _plans(storage, _claim_some(claimed)))[0]
        if backend == "sqlite":
            assert not [line for line in pick if "TEMP B-TREE" in line], pick
        else:
            # Not the 1,000 finished pairs before the open ones, nor a sort of them.
            assert _removed(pick, "Filter") <= FINISHED, pick
            assert "Sort" not in _nodes(pick), pick
