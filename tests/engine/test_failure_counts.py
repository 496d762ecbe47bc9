"""The failure counts table: triggers keep it equal to the rows on SQLite and PostgreSQL
through every change of cause and status, a database that predates it gets it filled
when opened, and one opened read-only without it still groups its failures."""

from __future__ import annotations

import contextlib
import pathlib
import sqlite3
import typing
import uuid

import pytest
import sqlalchemy as sa

import engine
from engine.saga.bootstrap import bootstrap
from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.protocol import ISagaStorage
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from tests.engine.sagas import Ctx, Script, ScriptContainer, mapper

Counts = dict[tuple[str, str], int]


def make(storage: ISagaStorage, script: Script) -> engine.SagaMediator:
    """A mediator on ``storage`` whose retries do not wait."""

    async def sleep(seconds: float) -> None:
        return None

    return bootstrap(
        di_container=ScriptContainer(script),
        saga_storage=storage,
        sleep=sleep,
        sagas_mapper=mapper,
        compensation_retry_count=1,
    )


async def run(mediator: engine.SagaMediator, context: typing.Any) -> uuid.UUID:
    saga_id = uuid.uuid4()
    with contextlib.suppress(Exception):
        await mediator.run(context, saga_id=saga_id)
    return saga_id


async def kept_and_recounted(storage: SqlAlchemySagaStorage) -> tuple[Counts, Counts]:
    """The counts table's non-zero rows, and the same counted from the sagas."""
    async with storage._engine.connect() as conn:
        kept = await conn.execute(
            sa.text("SELECT failure_key, status, n FROM saga_failure_counts WHERE n <> 0")
        )
        counted = await conn.execute(
            sa.text(
                "SELECT failure_key, status, COUNT(*) FROM saga_executions"
                " WHERE failure_key IS NOT NULL GROUP BY failure_key, status"
            )
        )
        return (
            {(k, str(s)): int(n) for k, s, n in kept},
            {(k, str(s)): int(n) for k, s, n in counted},
        )


async def failures(mediator: engine.SagaMediator, script: Script) -> uuid.UUID:
    """Two causes rolled back, one undo refused (FAILED): the FAILED saga's id."""
    for n in range(3):
        script.fail_act = {"StepB": ValueError(f"limit {n} exceeded")}
        await run(mediator, Ctx(f"o-{n}"))
    script.fail_act = {"StepC": TimeoutError("gateway timed out")}
    await run(mediator, Ctx("t"))
    script.fail_act = {"StepB": ValueError("limit 99 exceeded")}
    script.fail_compensate = {"StepA": -1}
    failed = await run(mediator, Ctx("f"))
    script.fail_act, script.fail_compensate = {}, {}
    return failed


async def test_triggers_keep_the_counts_equal_to_the_rows(storage: ISagaStorage) -> None:
    if not isinstance(storage, SqlAlchemySagaStorage):
        pytest.skip("the memory store groups its rows directly")
    script = Script()
    mediator = make(storage, script)
    await run(mediator, Ctx("fine"))
    failed = await failures(mediator, script)
    kept, counted = await kept_and_recounted(storage)
    assert kept == counted and sum(kept.values()) == 5
    assert sorted(kept.values()) == [1, 1, 3]
    # FAILED -> COMPENSATED under another cause: the saga moves from one row to another.
    assert (await mediator.recover_saga(failed)).status is SagaStatus.COMPENSATED
    kept, counted = await kept_and_recounted(storage)
    assert kept == counted and sorted(kept.values()) == [1, 4]
    groups = await storage.failure_groups()
    assert [(g.step, g.count) for g in groups] == [("StepB", 4), ("StepC", 1)]


async def test_a_database_made_before_the_counts_table_gets_it_filled(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "sagas.db"
    url = f"sqlite+aiosqlite:///{path}"
    storage = SqlAlchemySagaStorage.from_url(url)
    try:
        script = Script()
        await failures(make(storage, script), script)
        before = [(g.key, g.count, g.by_status) for g in await storage.failure_groups()]
    finally:
        await storage.close()
    assert [count for _, count, _ in before] == [3, 1, 1]
    # As the previous release left it: no counts table, no triggers keeping it.
    with sqlite3.connect(path) as conn:
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%failure%'"
        ).fetchall():
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("DROP TABLE saga_failure_counts")

    # Read-only, nothing is written: the groups are counted from the failure index.
    reader = SqlAlchemySagaStorage.from_url(url, read_only=True)
    try:
        assert [(g.key, g.count, g.by_status) for g in await reader.failure_groups()] == before
    finally:
        await reader.close()
    with sqlite3.connect(path) as conn:
        assert not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'saga_failure_counts'"
        ).fetchall()

    # Opened to write: the table is made, filled from the rows, and kept from then on.
    storage = SqlAlchemySagaStorage.from_url(url)
    try:
        assert [(g.key, g.count, g.by_status) for g in await storage.failure_groups()] == before
        script = Script(fail_act={"StepC": TimeoutError("gateway timed out")})
        await run(make(storage, script), Ctx("t2"))
        kept, counted = await kept_and_recounted(storage)
        assert kept == counted and sorted(kept.values()) == [1, 2, 3]
    finally:
        await storage.close()
