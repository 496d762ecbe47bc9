"""Writes queued together share one transaction; one that fails is undone alone.

The storage's Core write functions (requests, claims, audit rows) queued while a
transaction is being written go into the next one, each in a SAVEPOINT (SQLite and
PostgreSQL): a failing one raises to its own caller and leaves no row, the others land.
"""

from __future__ import annotations

import asyncio
import pathlib
import typing
import uuid

import pytest
import sqlalchemy as sa

from engine.saga.storage.models import OperatorAction
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage, commands
from engine.saga.storage.sqlalchemy.schema import saga_audit
from tests.support import POSTGRES_URL, postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
async def storage(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> typing.AsyncIterator[SqlAlchemySagaStorage]:
    if request.param == "sqlite":
        made = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}")
        yield made
        await made.close()
        return
    if not POSTGRES_URL:
        pytest.skip("SAGA_TEST_POSTGRES_URL is not set")
    async with postgres_database() as url:
        made = SqlAlchemySagaStorage.from_url(url)
        yield made
        await made.close()


class Refused(Exception):
    """The failing job's own error."""


async def test_jobs_queued_together_commit_together_and_fail_alone(
    storage: SqlAlchemySagaStorage,
) -> None:
    await storage.count_by_status()  # the schema, before the writes race
    ids = [uuid.uuid4() for _ in range(12)]
    bad = ids[5]

    def job(saga_id: uuid.UUID) -> typing.Callable[[sa.Connection], str]:
        def write(conn: sa.Connection) -> str:
            commands.record_operator_action(conn, OperatorAction(saga_id, "recover", "r"))
            if saga_id == bad:
                raise Refused("no")  # after writing its row: the row must go
            return str(saga_id)

        return write

    commits = [0]
    engine = storage._sync_engine or storage._engine.sync_engine
    sa.event.listen(engine, "commit", lambda _conn: commits.__setitem__(0, commits[0] + 1))
    outcomes = await asyncio.gather(
        *(storage._write(job(saga_id)) for saga_id in ids), return_exceptions=True
    )
    for saga_id, outcome in zip(ids, outcomes, strict=True):
        if saga_id == bad:
            assert isinstance(outcome, Exception) and "no" in str(outcome), outcome
        else:
            assert outcome == str(saga_id)
    async with storage._engine.connect() as conn:
        stored = {r.saga_id for r in await conn.execute(sa.select(saga_audit.c.saga_id))}
    assert stored == set(ids) - {bad}
    # Fewer transactions than jobs: the twelve shared a few (the first goes alone).
    assert 1 <= commits[0] <= 4, commits
