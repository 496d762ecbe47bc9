"""A subprocess for crash tests: runs, blocks or recovers sagas with recorded side effects.

    python -m tests.e2e.crash_worker DB load N CONCURRENCY
    python -m tests.e2e.crash_worker DB block GATE_FILE
    python -m tests.e2e.crash_worker DB recover

The sagas are stored in the SQLite file DB, or at the URL in CRASH_SAGA_URL
(PostgreSQL); the effects are always in DB.

Every act and compensate inserts a row into ``effects`` (its own autocommit sqlite3
connection, so the row is durable before the call returns) with the pid that made it.
Sagas whose number is a multiple of 5 fail at their third step and are compensated.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pathlib
import random
import sqlite3
import sys
import threading
import typing

import engine
from engine.saga.bootstrap import bootstrap
from engine.saga.models import SagaContext
from engine.saga.saga import Saga
from engine.saga.step import SagaStepHandler
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage

EFFECTS_SQL = (
    "CREATE TABLE IF NOT EXISTS effects (id INTEGER PRIMARY KEY, saga_id TEXT, step TEXT,"
    " kind TEXT, pid INTEGER, t REAL DEFAULT (julianday('now')))"
)


class Effects:
    """Side effects recorded durably in the same database file."""

    def __init__(self, db: str, latency: float) -> None:
        self.conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout=30000")
        self.conn.execute(EFFECTS_SQL)
        self.latency = latency
        self.lock = threading.Lock()
        self.gate: pathlib.Path | None = None

    def _insert(self, saga_id: str, step: str, kind: str) -> None:
        # One statement at a time: a sqlite3 connection shared by threads can leave a
        # statement un-reset, which keeps its write lock.
        with self.lock:
            self.conn.execute(
                "INSERT INTO effects (saga_id, step, kind, pid) VALUES (?, ?, ?, ?)",
                (saga_id, step, kind, os.getpid()),
            )

    async def record(self, saga_id: str, step: str, kind: str) -> None:
        await asyncio.to_thread(self._insert, saga_id, step, kind)
        if self.latency:
            await asyncio.sleep(random.uniform(0, self.latency))


EFFECTS: Effects


@dataclasses.dataclass
class CrashContext(SagaContext):
    number: int
    saga_id: str = ""


class _Step(SagaStepHandler[CrashContext, engine.Response]):
    async def act(self, context: CrashContext) -> typing.Any:
        name = type(self).__name__
        if name == "Third" and context.number % 5 == 0:
            raise RuntimeError(f"order {context.number} cannot ship")
        if name == "Second" and EFFECTS.gate is not None:
            print("in-act", flush=True)
            while not EFFECTS.gate.exists():
                await asyncio.sleep(0.01)
        await EFFECTS.record(context.saga_id, name, "act")
        return self._generate_step_result(None)

    async def compensate(self, context: CrashContext) -> None:
        await EFFECTS.record(context.saga_id, type(self).__name__, "undo")


class First(_Step):
    pass


class Second(_Step):
    pass


class Third(_Step):
    pass


class CrashSaga(Saga[CrashContext]):
    steps = [First, Second, Third]


class Plain:
    async def resolve(self, type_: type) -> typing.Any:
        return type_()


async def main(db: str, mode: str, args: list[str]) -> None:
    global EFFECTS
    url = os.environ.get("CRASH_SAGA_URL") or f"sqlite+aiosqlite:///{db}"
    storage = SqlAlchemySagaStorage.from_url(url)
    EFFECTS = Effects(db, latency=0.004 if mode != "recover" else 0.02)
    mediator = bootstrap(
        Plain(),
        sagas_mapper=lambda m: m.bind(CrashContext, CrashSaga),
        saga_storage=storage,
        compensation_retry_delay=0.01,
    )
    try:
        await storage.count_by_status()  # the schema exists before anyone is told "ready"
        if mode == "load":
            count, concurrency = int(args[0]), int(args[1])
            numbers = iter(range(count))
            print("ready", flush=True)

            async def worker() -> None:
                import uuid

                for number in numbers:
                    saga_id = uuid.uuid4()
                    context = CrashContext(number=number, saga_id=str(saga_id))
                    with contextlib.suppress(RuntimeError):
                        await mediator.run(context, saga_id=saga_id)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            print("done", flush=True)
        elif mode == "block":
            import uuid

            EFFECTS.gate = pathlib.Path(args[0])
            saga_id = uuid.uuid4()
            print(saga_id, flush=True)
            try:
                await mediator.run(CrashContext(number=1, saga_id=str(saga_id)), saga_id=saga_id)
            except Exception as exc:
                print(f"ended {type(exc).__name__}", flush=True)
            else:
                print("ended ok", flush=True)
        elif mode == "recover":
            results = await mediator.recover_stale(limit=100_000)
            errors = [r for r in results if r.error]
            print(f"recovered {len(results)} errors {len(errors)}", flush=True)
            for r in errors:
                print("error", r.saga_id, r.error, flush=True)
    finally:
        await storage.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
