"""The fleet: 1 and 2 ``saga-tui worker`` processes serving start requests, one run.

    python bench/fleet.py                       # SQLite, and PostgreSQL if SAGA_TEST_POSTGRES_URL
    python bench/fleet.py postgresql://u:p@host/postgres --count 5000

For each database and worker count: a fresh database, N workers (``--concurrency 64``,
a 3-step saga whose steps do nothing, as in vs_python_cqrs.py: the sample sagas' demo
ledger would be measured instead of the fleet), then ``--count`` start
requests of one saga each, written by 8 concurrent clients as fast as they can. Reported:
sagas/s from the first request to the last outcome, and each request's latency from the
request row to its saga's first step STARTED entry (p50, p99). Then, on another fresh
database, the same number of requests committed at once (a queue the workers find when
they look next): "queued" is sagas/s from that commit to the last outcome, what the
workers serve when they, not the clients, set the pace. A run where any saga did not
complete stops with an error instead of figures. PostgreSQL databases are created and
dropped on the server of the URL.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import typing
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dataclasses  # noqa: E402

import di  # noqa: E402
import sqlalchemy as sa  # noqa: E402

import engine  # noqa: E402
from engine.saga.bootstrap import bootstrap  # noqa: E402
from engine.saga.context_codec import dump_context  # noqa: E402
from engine.saga.fleet import RequestBook  # noqa: E402
from engine.saga.mediator import SagaMediator  # noqa: E402
from engine.saga.models import SagaContext  # noqa: E402
from engine.saga.requests import NewRequest  # noqa: E402
from engine.saga.saga import Saga  # noqa: E402
from engine.saga.step import SagaStepHandler  # noqa: E402
from engine.saga.storage.protocol import ISagaStorage  # noqa: E402
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage, requests_store  # noqa: E402
from engine.saga.storage.sqlalchemy.schema import (  # noqa: E402
    saga_logs,
    saga_request_items,
    saga_requests,
)

APP = "bench.fleet:app"
CLIENTS = 8


@dataclasses.dataclass
class BenchContext(SagaContext):
    """The context of the benchmark saga."""

    order_id: str
    steps: int = 0


class _Step(SagaStepHandler[BenchContext, engine.Response]):
    async def act(self, context: BenchContext) -> typing.Any:
        context.steps += 1
        return self._generate_step_result(engine.Response())

    async def compensate(self, context: BenchContext) -> None:
        context.steps -= 1


class Reserve(_Step):
    """Step one."""


class Charge(_Step):
    """Step two."""


class Ship(_Step):
    """Step three."""


class BenchSaga(Saga[BenchContext]):
    """Three steps that do nothing."""

    steps = [Reserve, Charge, Ship]


def app(storage: ISagaStorage) -> SagaMediator:
    """The workers' ``--app``."""
    return bootstrap(
        di.Container(),
        sagas_mapper=lambda m: m.bind(BenchContext, BenchSaga),
        saga_storage=storage,
    )


def _epoch(value: typing.Any) -> float:
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return float(value.timestamp())


def _start_workers(db: str, n: int) -> list[subprocess.Popen[str]]:
    procs = []
    for i in range(n):
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "saga_tui", "--db", db, "--app", APP,
                "worker", "--name", f"bench-{i}", "--concurrency", "64",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("worker "):
            raise SystemExit(f"worker did not start: {line!r}")
        procs.append(proc)
    return procs


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=60)


async def _submit(book: RequestBook, count: int) -> float:
    context = dump_context(BenchContext(order_id="o-1"))
    queue = iter(range(count))

    async def client() -> None:
        for _ in queue:
            await book.submit("start", saga_name="BenchSaga", context=context, count=1)

    t0 = time.time()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return t0


async def _queue(storage: SqlAlchemySagaStorage, count: int) -> float:
    """``count`` one-saga start requests in one transaction; returns when it committed."""
    context = dump_context(BenchContext(order_id="o-1"))
    now = time.time()
    news = [
        NewRequest(uuid.uuid4(), "start", (uuid.uuid4(),), "BenchSaga", context, "bench", "", now)
        for _ in range(count)
    ]

    def insert(conn: sa.Connection) -> None:
        for new in news:
            requests_store.insert_request(conn, new)

    await storage._write(insert)
    return time.time()


async def _outcomes(storage: SqlAlchemySagaStorage, count: int) -> tuple[float, int]:
    """Waits until ``count`` pairs have outcomes: (the last one's time, how many failed)."""
    items = saga_request_items.c
    while True:
        async with storage._engine.connect() as conn:
            done = (await conn.execute(sa.select(sa.func.count(items.outcome)))).scalar_one()
        if done >= count:
            break
        await asyncio.sleep(0.2)
    async with storage._engine.connect() as conn:
        last = (await conn.execute(sa.select(sa.func.max(items.finished_at)))).scalar_one()
        failed = (
            await conn.execute(sa.select(sa.func.count()).where(items.outcome != "COMPLETED"))
        ).scalar_one()
    return last, failed


async def _measure(
    url: str, db_arg: str, workers: int, count: int, *, queued: bool = False
) -> dict[str, float]:
    storage = SqlAlchemySagaStorage.from_url(url)
    await storage.count_by_status()  # creates the schema before the workers race to
    procs = _start_workers(db_arg, workers)
    try:
        if queued:
            await asyncio.sleep(1.0)  # every worker has looked for work and found none
            t0 = await _queue(storage, count)
        else:
            t0 = await _submit(RequestBook.of(storage), count)
        last, failed = await _outcomes(storage, count)
        latencies = [] if queued else await _latencies(storage)
    finally:
        _stop(procs)
        await storage.close()
    if failed or (not queued and len(latencies) != count):
        raise SystemExit(f"{failed} of {count} sagas did not complete, {len(latencies)} started")
    if queued:
        return {"rate": count / (last - t0)}
    q = statistics.quantiles(latencies, n=100)
    return {"rate": count / (last - t0), "p50": q[49], "p99": q[98]}


async def _latencies(storage: SqlAlchemySagaStorage) -> list[float]:
    """Per request, ms from its row to its saga's first STARTED entry (made with the saga)."""
    items = saga_request_items.c
    first_log = (
        sa.select(saga_logs.c.saga_id, sa.func.min(saga_logs.c.id).label("id"))
        .where(saga_logs.c.action == "act", saga_logs.c.status == "STARTED")
        .group_by(saga_logs.c.saga_id)
        .subquery()
    )
    async with storage._engine.connect() as conn:
        rows = await conn.execute(
            sa.select(saga_requests.c.created_at, saga_logs.c.created_at).select_from(
                saga_request_items.join(saga_requests, saga_requests.c.id == items.request_id)
                .join(first_log, first_log.c.saga_id == items.saga_id)
                .join(saga_logs, saga_logs.c.id == first_log.c.id)
            )
        )
        return sorted((_epoch(started) - asked) * 1000 for asked, started in rows)


async def _postgres_db(admin_url: str) -> tuple[str, str, typing.Callable[[], typing.Any]]:
    import asyncpg

    name = f"saga_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = admin_url.rsplit("/", 1)[0]
    url = f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)

    async def drop() -> None:
        conn = await asyncpg.connect(admin_url)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    return url, url, drop


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("postgres", nargs="?", default=os.environ.get("SAGA_TEST_POSTGRES_URL"))
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    print(f"{args.count} start requests, {CLIENTS} clients, workers with --concurrency 64")
    print(
        f"{'database':<11}{'workers':>8}{'sagas/s':>10}{'p50 ms':>10}{'p99 ms':>10}"
        f"{'queued sagas/s':>16}"
    )
    for backend in ("sqlite", "postgresql"):
        if backend == "postgresql" and not args.postgres:
            print("postgresql: skipped (give a URL or set SAGA_TEST_POSTGRES_URL)")
            continue
        for n in counts:
            live = await _fresh(backend, args.postgres, n, args.count, queued=False)
            queue = await _fresh(backend, args.postgres, n, args.count, queued=True)
            print(
                f"{backend:<11}{n:>8}{live['rate']:>10.0f}{live['p50']:>10.0f}"
                f"{live['p99']:>10.0f}{queue['rate']:>16.0f}",
                flush=True,
            )


async def _fresh(
    backend: str, postgres: str | None, workers: int, count: int, *, queued: bool
) -> dict[str, float]:
    """One measurement on a database of its own."""
    drop = None
    if backend == "sqlite":
        folder = tempfile.mkdtemp(prefix="saga-fleet-")
        path = os.path.join(folder, "fleet.db")
        url, db_arg = f"sqlite+aiosqlite:///{path}", path
    else:
        assert postgres is not None
        url, db_arg, drop = await _postgres_db(postgres)
    try:
        return await _measure(url, db_arg, workers, count, queued=queued)
    finally:
        if drop is not None:
            await drop()


if __name__ == "__main__":
    asyncio.run(main())
