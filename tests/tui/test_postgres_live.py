"""The dashboard on PostgreSQL: another process's commit arrives by NOTIFY, or by polling."""

from __future__ import annotations

import asyncio
import pathlib
import subprocess
import sys
import typing
import uuid

import pytest

from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from saga_tui.app import SagaApp
from saga_tui.cli import make_app
from tests.support import POSTGRES_URL, postgres_database, read_line
from tests.tui.conftest import SIZE, row_status, wait_for

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="SAGA_TEST_POSTGRES_URL is not set")

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
async def pg_url() -> typing.AsyncIterator[str]:
    """A fresh PostgreSQL database with the saga schema."""
    async with postgres_database() as url:
        storage = SqlAlchemySagaStorage.from_url(url)
        await storage.count_by_status()  # creates the schema
        await storage.close()
        yield url


def spawn_writer(url: str) -> subprocess.Popen[str]:
    """Another process that runs one OrderSaga on the database and prints its id first."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.tui.writer", url, "OrderSaga", "5", "0", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def storage_of(app: SagaApp) -> SqlAlchemySagaStorage:
    return typing.cast(SqlAlchemySagaStorage, app.reader)


async def test_another_process_commit_arrives_by_notify_without_polling(pg_url: str) -> None:
    # Polling once an hour: only the NOTIFY of the writer's commits can show the saga.
    app = make_app(pg_url, None, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        listener = storage_of(app)._listener
        await wait_for(pilot, lambda: listener is not None and listener.listening.is_set())
        proc = spawn_writer(pg_url)
        try:
            saga_id = uuid.UUID(await asyncio.to_thread(read_line, proc, 30, what="saga id"))
            await wait_for(
                pilot, lambda: row_status(app, saga_id) == "COMPLETED", what="notified commit"
            )
        finally:
            proc.wait(30)


async def test_another_process_commit_arrives_by_polling_when_notifications_are_lost(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def deaf(self: SqlAlchemySagaStorage, callback: typing.Any) -> bool:
        return False  # every notification lost

    monkeypatch.setattr(SqlAlchemySagaStorage, "watch_changes", deaf)
    app = make_app(pg_url, None)  # the shipped poll interval
    async with app.run_test(size=SIZE) as pilot:
        assert storage_of(app)._listener is None
        proc = spawn_writer(pg_url)
        try:
            saga_id = uuid.UUID(await asyncio.to_thread(read_line, proc, 30, what="saga id"))
            await wait_for(
                pilot, lambda: row_status(app, saga_id) == "COMPLETED", what="polled commit"
            )
        finally:
            proc.wait(30)
