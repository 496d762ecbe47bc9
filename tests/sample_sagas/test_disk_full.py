"""A full disk (SQLite ``max_page_count``): the load stops, recover says it failed, nothing
is corrupt, and once there is room again ``recover --stale`` finishes every saga cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import sqlite3
import time
import typing
import uuid

import pytest
import sqlalchemy as sa

from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from saga_tui.headless import recover_command
from sample_sagas import Knobs, create_mediator
from sample_sagas.app import close_ledger, example_context
from sample_sagas.check import find_disagreements
from sample_sagas.ledger import read_ledger
from sample_sagas.load import GIVE_UP_AFTER, run_load
from tests.support import wait_for

QUIET = Knobs(
    failure_rate=0.0,
    compensation_failure_rate=0.0,
    refund_decline_rate=0.0,
    latency_ms=(20.0, 40.0),
    lease_seconds=1.0,
)


def _storage(path: pathlib.Path, max_pages: int | None = None) -> SqlAlchemySagaStorage:
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{path}")
    if max_pages is not None:
        # The writer's engine (the hot path talks to its connection directly).
        engine = storage._sync_engine
        assert engine is not None

        @sa.event.listens_for(engine, "checkout")
        def full(dbapi_connection: typing.Any, *_: typing.Any) -> None:
            # As a full disk: no page beyond those the file has now.
            dbapi_connection.execute(f"PRAGMA max_page_count = {max_pages}")

    return storage


def _pages(path: pathlib.Path) -> int:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(conn.execute("PRAGMA page_count").fetchone()[0])


async def _stale_sagas(path: pathlib.Path, count: int) -> None:
    """``count`` sagas left RUNNING mid-step by a runner that stopped (leases released)."""
    storage = _storage(path)
    mediator = create_mediator(storage, knobs=QUIET)
    tasks = [
        asyncio.create_task(mediator.run(example_context("OrderSaga"), saga_id=uuid.uuid4()))
        for _ in range(count)
    ]
    try:
        await wait_for(lambda: _running(path) == count, timeout=60, what="every saga in a step")
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        close_ledger(storage)
        await storage.close()


def _stored_status(path: pathlib.Path, saga_id: str) -> str | None:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
        row = conn.execute(
            "SELECT status FROM saga_executions WHERE id = ?", (uuid.UUID(saga_id).hex,)
        ).fetchone()
    return row[0] if row else None


def _held(path: pathlib.Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM saga_executions WHERE lease_expires > ?", (time.time(),)
        )
        return int(rows.fetchone()[0])


def _running(path: pathlib.Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
        rows = conn.execute("SELECT count(*) FROM saga_executions WHERE status = 'RUNNING'")
        return int(rows.fetchone()[0])


@pytest.mark.slow
async def test_a_full_disk_stops_the_load_fails_recovery_honestly_and_loses_nothing(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "full.db"
    await _stale_sagas(path, 10)
    # The disk fills up: the load generator stops instead of looping on errors.
    full = _storage(path, _pages(path))
    mediator = create_mediator(full, knobs=QUIET)
    try:
        progress = await run_load(mediator, 100_000, 8, seed=1)
        assert progress.gave_up and "full" in progress.gave_up, progress.gave_up
        assert progress.started < 1000
        assert progress.errors < GIVE_UP_AFTER + 8 + progress.finished
        # Recovering now mostly cannot work: it says so, it does not claim success. (A lease the
        # stopped runner renewed last, on a loaded machine, lapses first: 1 s here.)
        await wait_for(lambda: _held(path) == 0, timeout=30, what="the leases to lapse")
        lines: list[str] = []
        code = await recover_command(mediator, lines.append, [], stale=True, as_json=True)
        results = json.loads("\n".join(lines))
        assert code == 1, lines
        failed = [r for r in results if not r["ok"]]
        assert failed and all("full" in (r["error"] or "") for r in failed), results
        # A recovery whose writes still fit in the file's free space may end its saga; then
        # it really ended (no success is claimed that the database does not hold).
        ended = [_stored_status(path, r["id"]) for r in results if r["ok"]]
        assert set(ended) <= {"COMPLETED", "COMPENSATED"}, (ended, results)
    finally:
        close_ledger(full)
        await full.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # Room again: one sweep ends every saga, and the ledger agrees with each.
    storage = _storage(path)
    mediator = create_mediator(storage, knobs=QUIET)
    try:
        # Leases taken by the stopped recoveries lapse first (1 s in this test).
        await wait_for(lambda: _held(path) == 0, timeout=30, what="the leases to lapse")
        lines = []
        code = await recover_command(mediator, lines.append, [], stale=True, as_json=True)
        assert code == 0, lines
        counts = await storage.count_by_status()
        assert counts.total == counts.by_status[SagaStatus.COMPLETED] >= 10
        checked, bad = await find_disagreements(storage, read_ledger(str(path)))
        assert checked == counts.total and bad == []
    finally:
        close_ledger(storage)
        await storage.close()
