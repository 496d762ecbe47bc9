"""Throughput of this engine against python-cqrs 5.3.0 on the same 3-step saga, one run.

python-cqrs is installed into a throwaway virtual environment (bench/.cache/pc-venv)
and both engines run the same harness in their own subprocess, one after the other:

    python bench/vs_python_cqrs.py                # memory and SQLite
    python bench/vs_python_cqrs.py --only memory  # just the memory comparison
    python bench/vs_python_cqrs.py --only postgres --pg-url postgresql://u:p@host/db

PostgreSQL (``--pg-url`` or SAGA_TEST_POSTGRES_URL; the URL's user must be allowed to
create databases): each run gets a throwaway database on that server, python-cqrs with
its own tables. Every storage runs with saga ids not given and given
(``stream(ctx, saga_id=uuid4())``, as the seed document does).

Modes: sequential (one saga after another) and N concurrent (N worker tasks that each
run sagas back to back, so no task is created per saga). Each mode runs twice: sagas
started without an id (``saga_id`` "none") and with ``saga_id=uuid.uuid4()`` ("given",
the seed's pattern); each engine is compared with python-cqrs started the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import textwrap
import typing
import uuid

HERE = pathlib.Path(__file__).resolve().parent
CACHE = HERE / ".cache"
PC_VENV = CACHE / "pc-venv"
PC_VERSION = "5.3.0"

# The saga under test, written once for both engines. {pkg} is "engine" or "cqrs".
HARNESS = textwrap.dedent(
    """
    import asyncio, dataclasses, json, logging, os, sys, time, uuid
    logging.disable(logging.CRITICAL)
    import di
    PKG = sys.argv[1]
    MODE = sys.argv[2]
    STORAGE = sys.argv[3]
    COUNT = int(sys.argv[4])
    DB = sys.argv[5] if len(sys.argv) > 5 else ""
    IDS = sys.argv[6] if len(sys.argv) > 6 else "none"
    if PKG == "engine":
        import engine as lib
        from engine.saga.bootstrap import bootstrap
        from engine.saga.saga import Saga
        from engine.saga.step import SagaStepHandler
        from engine.saga.models import SagaContext
        from engine.saga.storage.memory import MemorySagaStorage
        Response = lib.Response
        def stream(m, ctx, saga_id):
            return m.stream(ctx, saga_id=saga_id)
    else:
        import cqrs as lib
        from cqrs.bootstrap.saga import bootstrap
        from cqrs.saga.saga import Saga
        from cqrs.handlers.saga import SagaStepHandler
        from cqrs.saga.models import SagaContext
        from cqrs.saga.storage.memory import MemorySagaStorage
        Response = lib.Response
        def stream(m, ctx, saga_id):
            return m.execute(ctx, saga_id=saga_id)

    @dataclasses.dataclass
    class OrderContext(SagaContext):
        order_id: str
        amount: float = 10.0
        reservation_id: str | None = None
        payment_id: str | None = None
        shipment_id: str | None = None

    class Reserve(SagaStepHandler[OrderContext, Response]):
        async def act(self, context):
            context.reservation_id = "r-" + context.order_id
            return self._generate_step_result(Response())
        async def compensate(self, context):
            context.reservation_id = None

    class Charge(SagaStepHandler[OrderContext, Response]):
        async def act(self, context):
            context.payment_id = "p-" + context.order_id
            return self._generate_step_result(Response())
        async def compensate(self, context):
            context.payment_id = None

    class Ship(SagaStepHandler[OrderContext, Response]):
        async def act(self, context):
            context.shipment_id = "s-" + context.order_id
            return self._generate_step_result(Response())
        async def compensate(self, context):
            context.shipment_id = None

    class OrderSaga(Saga[OrderContext]):
        steps = [Reserve, Charge, Ship]

    def make_storage():
        if STORAGE == "memory":
            return MemorySagaStorage()
        if STORAGE == "postgres":
            return make_postgres()
        if PKG == "engine":
            from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
            return SqlAlchemySagaStorage.from_url("sqlite+aiosqlite:///" + DB)
        return make_cqrs_sqlite()

    def make_postgres():
        url = DB.replace("postgresql://", "postgresql+asyncpg://", 1)
        if PKG == "engine":
            from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
            return SqlAlchemySagaStorage.from_url(url)
        from sqlalchemy.ext.asyncio import create_async_engine, async_sessionmaker
        import cqrs.saga.storage.sqlalchemy as pcs
        eng = create_async_engine(url, pool_size=70, max_overflow=10)
        async def create():
            async with eng.begin() as conn:
                await conn.run_sync(pcs.Base.metadata.create_all)
        make_cqrs_sqlite.create = create
        return pcs.SqlAlchemySagaStorage(async_sessionmaker(eng, expire_on_commit=False))

    def make_cqrs_sqlite():
        import sqlalchemy
        from sqlalchemy import event
        from sqlalchemy.ext.asyncio import create_async_engine, async_sessionmaker
        import cqrs.saga.storage.sqlalchemy as pcs
        # python-cqrs's log id is a BIGINT identity, which SQLite cannot autoincrement:
        # give its log table an INTEGER primary key so it runs here at all.
        pcs.SagaLogModel.__table__.c.id.type = sqlalchemy.Integer()
        eng = create_async_engine("sqlite+aiosqlite:///" + DB)
        @event.listens_for(eng.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
        async def create():
            async with eng.begin() as conn:
                await conn.run_sync(pcs.Base.metadata.create_all)
        asyncio.get_event_loop().run_until_complete(create()) if False else None
        make_cqrs_sqlite.create = create
        return pcs.SqlAlchemySagaStorage(async_sessionmaker(eng, expire_on_commit=False))

    async def main():
        storage = make_storage()
        if getattr(make_cqrs_sqlite, "create", None) and PKG != "engine":
            await make_cqrs_sqlite.create()
        mediator = bootstrap(
            di_container=di.Container(),
            sagas_mapper=lambda m: m.bind(OrderContext, OrderSaga),
            saga_storage=storage,
        )
        given = IDS == "given"
        async def one(i):
            # The seed's pattern passes a fresh id; "none" lets the engine make one.
            saga_id = uuid.uuid4() if given else None
            async for _ in stream(mediator, OrderContext(order_id=str(i)), saga_id):
                pass
        # warm up caches (solvers, adapters, statements) outside the timed part
        for i in range(min(50, COUNT)):
            await one(i)
        counter = iter(range(COUNT))
        async def worker():
            for i in counter:
                await one(i)
        workers = 1 if MODE == "sequential" else int(MODE)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(workers)))
        elapsed = time.perf_counter() - t0
        close = getattr(storage, "close", None)
        if close is not None and PKG == "engine":
            await close()
        print(json.dumps({"sagas": COUNT, "seconds": elapsed, "rate": COUNT / elapsed}))

    asyncio.run(main())
    """,
)


def ensure_python_cqrs() -> pathlib.Path:
    """A virtual environment with python-cqrs 5.3.0, made once and reused."""
    python = PC_VENV / "bin" / "python"
    marker = PC_VENV / f".python-cqrs-{PC_VERSION}-pg"
    if not marker.exists():
        print(f"installing python-cqrs {PC_VERSION} into {PC_VENV} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PC_VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                f"python-cqrs[sqlalchemy]=={PC_VERSION}",
                "di[anyio]",
                "aiosqlite",
                "asyncpg",
                "sqlalchemy[asyncio]",
            ],
            check=True,
        )
        marker.touch()
    return python


def run_one(
    python: str, pkg: str, mode: str, storage: str, count: int, ids: str, pg_url: str
) -> float:
    """Run the harness once in a subprocess and return sagas per second."""
    with tempfile.TemporaryDirectory() as tmp, throwaway_database(storage, pg_url) as pg_db:
        script = pathlib.Path(tmp) / "harness.py"
        script.write_text(HARNESS)
        db = pg_db or str(pathlib.Path(tmp) / "bench.db")
        env = dict(os.environ)
        env["PYTHONPATH"] = str(HERE.parent) if pkg == "engine" else ""
        proc = subprocess.run(
            [python, str(script), pkg, mode, storage, str(count), db, ids],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp,
        )
        if proc.returncode != 0:
            raise SystemExit(f"{pkg} {storage} {mode} ids={ids} failed:\n{proc.stderr[-3000:]}")
        return float(json.loads(proc.stdout.strip().splitlines()[-1])["rate"])


@contextlib.contextmanager
def throwaway_database(storage: str, pg_url: str) -> typing.Iterator[str]:
    """A fresh database on the PostgreSQL server for one run (dropped after); "" otherwise."""
    if storage != "postgres":
        yield ""
        return
    import asyncpg

    name = f"bench_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield pg_url.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    """Run the comparison and print a table (medians of interleaved rounds)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["memory", "sqlite", "postgres"], default=None)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("SAGA_TEST_POSTGRES_URL", ""),
        help="PostgreSQL server (postgresql://user:password@host:port/db); "
        "default SAGA_TEST_POSTGRES_URL; without one PostgreSQL is skipped",
    )
    parser.add_argument("--pg-count", type=int, default=3000)
    parser.add_argument("--pc-pg-count", type=int, default=300)
    parser.add_argument("--memory-count", type=int, default=20000)
    parser.add_argument("--sqlite-count", type=int, default=2000)
    parser.add_argument("--pc-sqlite-count", type=int, default=300)
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="interleaved runs per engine and mode; the median is reported (shared machines)",
    )
    parser.add_argument(
        "--ids",
        choices=["both", "none", "given"],
        default="both",
        help="start sagas without an id, with saga_id=uuid4() (the seed's pattern), or both",
    )
    args = parser.parse_args()
    pc_python = str(ensure_python_cqrs())
    plans = []
    if args.only in (None, "memory"):
        plans += [("memory", m, args.memory_count, args.memory_count) for m in ("sequential", "64")]
    if args.only in (None, "sqlite"):
        plans += [
            ("sqlite", m, args.sqlite_count, args.pc_sqlite_count)
            for m in ("sequential", "16", "64")
        ]
    if args.only in (None, "postgres"):
        if args.pg_url:
            plans += [
                ("postgres", m, args.pg_count, args.pc_pg_count) for m in ("sequential", "64")
            ]
        else:
            print("postgres: skipped (no --pg-url and no SAGA_TEST_POSTGRES_URL)", file=sys.stderr)
    id_modes = ["none", "given"] if args.ids == "both" else [args.ids]
    print(
        f"{'storage':8} {'ids':>5} {'mode':>11} {'engine/s':>10} {'python-cqrs/s':>14}"
        f" {'ratio':>7}   (median of {args.rounds} interleaved rounds)"
    )
    for storage, mode, count, pc_count in plans:
        for ids in id_modes:
            ours: list[float] = []
            theirs: list[float] = []
            for _ in range(args.rounds):
                ours.append(
                    run_one(sys.executable, "engine", mode, storage, count, ids, args.pg_url)
                )
                theirs.append(run_one(pc_python, "cqrs", mode, storage, pc_count, ids, args.pg_url))
            mine, other = statistics.median(ours), statistics.median(theirs)
            label = mode if mode == "sequential" else f"{mode} conc."
            print(
                f"{storage:8} {ids:>5} {label:>11} {mine:10.0f} {other:14.0f} {mine / other:6.1f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
