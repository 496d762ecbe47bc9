"""Closing finished requests stays cheap on PostgreSQL whatever its statistics say.

Right after a burst of requests, before autovacuum has analyzed the request tables,
PostgreSQL believed a handful of rows were pending and planned the closing NOT EXISTS
as a nested loop over every (pending request, open pair): 8,000 requests took seconds,
every two seconds, in the writer that the sagas' checkpoints wait for. Here each
statement a close runs is replayed under EXPLAIN ANALYZE on such a fresh database.
"""

from __future__ import annotations

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

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="SAGA_TEST_POSTGRES_URL is not set")

REQUESTS = 2000
FINISHED = 64
OWNER = "testhost:1:1"
Step = typing.Callable[[sa.Connection], typing.Any]


def _removed_by_join_filters(plan: dict[str, typing.Any]) -> int:
    own = int(plan.get("Rows Removed by Join Filter", 0))
    return own + sum(_removed_by_join_filters(p) for p in plan.get("Plans", ()))


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


def _replayed(conn: sa.Connection, act: Step, before: Step | None) -> list[dict[str, typing.Any]]:
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
        explained = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        plans.append(explained.scalar_one()[0]["Plan"])
        undo.rollback()
    return plans


async def _plans(
    storage: SqlAlchemySagaStorage, act: Step, before: Step | None = None
) -> list[dict[str, typing.Any]]:
    async with storage._engine.connect() as conn, conn.begin() as tx:
        plans = await conn.run_sync(_replayed, act, before)
        await tx.rollback()
    assert plans
    return plans


async def test_closing_requests_after_a_burst_never_joins_every_request_to_every_pair() -> None:
    async with postgres_database() as url:
        storage = SqlAlchemySagaStorage.from_url(url)
        try:
            await storage.count_by_status()
            await _burst(storage)
            claimed: list[ClaimedItem] = []

            def claim(conn: sa.Connection) -> None:
                now = time.time()
                claimed[:] = store.claim_items(conn, OWNER, ["OrderSaga"], FINISHED, now, now + 60)
                assert len(claimed) == FINISHED

            def finish(conn: sa.Connection) -> None:
                done = [store.Finish(i.item_id, OWNER, "COMPLETED", True, None) for i in claimed]
                assert all(store.finish_items(conn, done, time.time()))

            # The worker's pass over every pending request, and a worker finishing pairs.
            closing = await _plans(storage, lambda c: store.close_finished(c, time.time()))
            finishing = await _plans(storage, finish, claim)
            for plan in closing + finishing:
                # No join tests every open pair against every request it looks at
                # (a close of 1,000 pending requests: 1.5 million rows thrown away).
                assert _removed_by_join_filters(plan) <= FINISHED, plan
            assert await RequestBook.of(storage).close_finished() == REQUESTS // 2
            progress = await RequestBook.of(storage).recent(limit=REQUESTS)
            assert sum(p.state == "DONE" for p in progress) == REQUESTS // 2
        finally:
            await storage.close()
