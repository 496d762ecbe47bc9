"""The writer's batch statements are planned once per connection, as index lookups.

PostgreSQL plans a prepared statement again at every execution while it prefers custom
plans; for the writer's set-wise statements that planning cost as much server time as
the statement. The writer's session asks for generic plans: this checks that it gets
them, and that on a table of many sagas each is a lookup by the primary key.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest

from engine.saga.storage.enums import SagaStatus, SagaStepStatus
from engine.saga.storage.models import Checkpoint, LogWrite, NewSaga
from engine.saga.storage.postgres.writer import PostgresWriter
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from tests.support import POSTGRES_URL, postgres_database

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="SAGA_TEST_POSTGRES_URL is not set")

OWNER = "testhost:1:1"
MANY = 30_000


def create(saga_id: uuid.UUID) -> Checkpoint:
    return Checkpoint(
        saga_id=saga_id,
        owner=OWNER,
        lease_expires=time.time() + 3600,
        create=NewSaga("OrderSaga", {"n": 0}, 3),
        status=SagaStatus.RUNNING,
        logs=(LogWrite("S1", "act", SagaStepStatus.STARTED),),
    )


def step(saga_id: uuid.UUID, done: int) -> Checkpoint:
    last = done == 3
    return Checkpoint(
        saga_id=saga_id,
        owner=OWNER,
        steps_done=done,
        context={"n": done},
        status=SagaStatus.COMPLETED if last else None,
        release_lease=last,
        logs=(LogWrite(f"S{done}", "act", SagaStepStatus.COMPLETED),),
    )


async def fill(url: str, template: uuid.UUID) -> None:
    """MANY copies of one stored saga under new ids, with fresh statistics."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        columns = [
            r["column_name"]
            for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'saga_executions' ORDER BY ordinal_position"
            )
        ]
        values = ", ".join("gen_random_uuid()" if c == "id" else f'"{c}"' for c in columns)
        # The copies skip the count triggers: this table only has to be large.
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            f"INSERT INTO saga_executions ({', '.join(columns)}) SELECT {values} "
            f"FROM saga_executions, generate_series(1, {MANY}) WHERE id = $1",
            template,
        )
        await conn.execute("ANALYZE saga_executions")
    finally:
        await conn.close()


async def test_batch_statements_use_generic_plans_that_look_sagas_up_by_id() -> None:
    async with postgres_database() as url:
        storage = SqlAlchemySagaStorage.from_url(url)
        try:
            first = uuid.uuid4()
            await storage.apply(create(first))
            await fill(url, first)
            # One saga at a time and many at once: batches of one and of several.
            for _ in range(8):
                saga_id = uuid.uuid4()
                await storage.apply(create(saga_id))
                for done in (1, 2, 3):
                    await storage.apply(step(saga_id, done))
            ids = [uuid.uuid4() for _ in range(24)]
            await asyncio.gather(*(storage.apply(create(i)) for i in ids))
            for done in (1, 2, 3):
                await asyncio.gather(*(storage.apply(step(i, done)) for i in ids))
            detail = await storage.get_saga(ids[0])
            assert detail is not None and detail.summary.status is SagaStatus.COMPLETED

            writer = storage._writer
            assert isinstance(writer, PostgresWriter)
            conn = writer._conn
            assert conn is not None
            prepared = await conn.fetch(
                "SELECT name, statement, generic_plans, custom_plans, "
                "cardinality(parameter_types) AS arity FROM pg_prepared_statements "
                "WHERE statement LIKE '%saga_executions%'"
            )
            updates = [p for p in prepared if "UPDATE saga_executions" in p["statement"]]
            assert updates, [p["statement"][:80] for p in prepared]
            for p in prepared:
                assert p["custom_plans"] == 0, p["statement"][:200]
                assert p["generic_plans"] >= 1, p["statement"][:200]
            for p in updates:
                nulls = ", ".join(["NULL"] * p["arity"])
                plan = "\n".join(
                    r[0] for r in await conn.fetch(f"EXPLAIN EXECUTE {p['name']}({nulls})")
                )
                assert "Seq Scan on saga_executions" not in plan, plan
                assert "saga_executions_pkey" in plan, plan
        finally:
            await storage.close()
