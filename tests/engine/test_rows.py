"""One description of a checkpoint's rows: every backend stores the same thing."""

from __future__ import annotations

import sqlite3
import typing
import uuid

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from engine.saga.storage.enums import SagaStatus, SagaStepStatus
from engine.saga.storage.memory import MemorySagaStorage
from engine.saga.storage.models import Checkpoint, ErrorInfo, LogWrite, NewSaga, SagaLogEntry
from engine.saga.storage.protocol import ISagaStorage
from engine.saga.storage.rows import LOG_COLUMNS, SAGA_COLUMNS, checkpoint_rows
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from engine.saga.storage.sqlalchemy.connect import create_engine_for
from engine.saga.storage.sqlalchemy.schema import saga_executions, saga_logs

OWNER = "host:1:1"
FAR = 4102444800.0
IDS = [uuid.UUID(int=n + 1) for n in range(3)]


def story() -> list[Checkpoint]:
    """Checkpoints touching every column a checkpoint can change, on three sagas."""
    first, second, third = IDS
    boom = ErrorInfo("TimeoutError", "gateway slow", "Traceback ...")
    return [
        Checkpoint(
            first,
            OWNER,
            create=NewSaga("OrderSaga", {"order_id": "o1", "items": [1, 2]}, 3),
            status=SagaStatus.RUNNING,
            logs=(LogWrite("Reserve", "act", SagaStepStatus.STARTED),),
            current_step="Reserve",
            lease_expires=FAR,
        ),
        Checkpoint(second, None, create=NewSaga("TravelSaga", {}, 2)),
        Checkpoint(
            third,
            OWNER,
            create=NewSaga("RefundSaga", {"n": 1}, 1),
            status=SagaStatus.FAILED,
            error=boom,
            bump_recovery_attempts=True,
            release_lease=True,
        ),
        Checkpoint(
            first,
            OWNER,
            logs=(
                LogWrite("Reserve", "act", SagaStepStatus.COMPLETED, duration_ms=2.5),
                LogWrite("Charge", "act", SagaStepStatus.STARTED),
            ),
            context={"order_id": "o1", "items": [1, 2], "reserved": True},
            steps_done=1,
            current_step="Charge",
        ),
        Checkpoint(
            first,
            OWNER,
            logs=(LogWrite("Charge", "act", SagaStepStatus.FAILED, "declined", boom),),
            status=SagaStatus.COMPENSATING,
            error=boom,
            lease_expires=FAR + 1,
            bump_recovery_attempts=True,
        ),
        Checkpoint(
            first,
            OWNER,
            logs=(LogWrite("Reserve", "compensate", SagaStepStatus.COMPLETED, attempt=2),),
            status=SagaStatus.COMPENSATED,
            clear_error=True,
            release_lease=True,
            clear_requested_action=True,
            current_step="",
        ),
        Checkpoint(second, None, status=SagaStatus.RUNNING, steps_done=1, lease_expires=FAR),
    ]


def test_the_description_names_every_column_of_the_schema() -> None:
    assert tuple(c.name for c in saga_executions.columns) == SAGA_COLUMNS
    assert ("id", "saga_id", *LOG_COLUMNS) == tuple(c.name for c in saga_logs.columns)
    insert, update, _, _, _, _ = checkpoint_rows(story()[0], 0.0)
    assert insert is not None and update is None and tuple(insert) == SAGA_COLUMNS
    _, update, increment, _, logs, _ = checkpoint_rows(story()[4], 0.0)
    assert update is not None and set(update) | set(increment) <= set(SAGA_COLUMNS)
    assert all(len(row) == len(LOG_COLUMNS) for row in logs)


async def stored(storage: ISagaStorage) -> list[typing.Any]:
    """What readers get back, times left out: summaries, context and the log."""
    out: list[typing.Any] = []
    for saga_id in IDS:
        detail = await storage.get_saga(saga_id)
        assert detail is not None
        s = detail.summary
        out.append(
            (
                s.id, s.name, s.status, s.step_count, s.steps_done, s.current_step,
                s.recovery_attempts, s.error_type, s.error_message, detail.error_traceback,
                s.lease_owner, s.lease_expires, s.requested_action, s.version,
                s.finished_at is not None, detail.context,
            )
        )  # fmt: skip
        out.append([_log(entry) for entry in detail.logs])
        out.append([_log(entry) for entry in await storage.get_step_history(saga_id)])
    out.append([_log(entry) for entry in await storage.logs_after(0)])
    return out


def _log(entry: SagaLogEntry) -> tuple[typing.Any, ...]:
    return (
        entry.id, entry.saga_id, entry.step_name, entry.action, entry.status, entry.details,
        entry.error_type, entry.error_message, entry.error_traceback, entry.attempt,
        entry.duration_ms,
    )  # fmt: skip


async def run_story(storage: ISagaStorage) -> list[typing.Any]:
    for checkpoint in story():
        await storage.apply(checkpoint)
    return await stored(storage)


@pytest.mark.parametrize("raw_writer", [True, False])
async def test_memory_and_sqlite_store_the_same_rows(
    tmp_path: typing.Any, raw_writer: bool
) -> None:
    memory = await run_story(MemorySagaStorage())
    engine = create_engine_for(f"sqlite+aiosqlite:///{tmp_path / 'sagas.db'}")
    storage = SqlAlchemySagaStorage(async_sessionmaker(engine), raw_sqlite_writer=raw_writer)
    try:
        assert await run_story(storage) == memory
    finally:
        await storage.close()
        await engine.dispose()


async def test_raw_and_core_writers_store_identical_bytes(tmp_path: typing.Any) -> None:
    tables: list[dict[str, list[tuple[typing.Any, ...]]]] = []
    for raw_writer in (True, False):
        path = tmp_path / f"{raw_writer}.db"
        engine = create_engine_for(f"sqlite+aiosqlite:///{path}")
        storage = SqlAlchemySagaStorage(async_sessionmaker(engine), raw_sqlite_writer=raw_writer)
        try:
            await run_story(storage)
        finally:
            await storage.close()
            await engine.dispose()
        with sqlite3.connect(path) as conn:
            times = {"created_at", "updated_at", "finished_at"}
            dump = {}
            for table, columns in (("saga_executions", SAGA_COLUMNS), ("saga_logs", LOG_COLUMNS)):
                kept = [c for c in columns if c not in times]
                query = f"SELECT {', '.join(kept)}, typeof(created_at) FROM {table} ORDER BY rowid"
                dump[table] = conn.execute(query).fetchall()
            tables.append(dump)
    assert tables[0] == tables[1]
    assert tables[0]["saga_executions"][0][:3] == (IDS[0].hex, "OrderSaga", "COMPENSATED")
