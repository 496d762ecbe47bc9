"""Where the write rate stops: the engine beside the bare cost of the rows it writes.

    python bench/floors.py [--sagas 3000] [--rounds 3] [--only sqlite|postgres]
                           [--pg-url postgresql://u:p@host/db]

Sagas per second, each run on a fresh file in its own subprocess, interleaved rounds,
medians; a saga is the four checkpoints the engine writes for three steps (the create
with the first STARTED entry, two step checkpoints that each carry the next STARTED, the
last COMPLETED):

* ``engine``: the 3-step saga of ``vs_python_cqrs.py`` through the mediator, ids given;
* ``rows``: the same checkpoints written by the writer's own SQL
  (``raw_checkpoint.apply_raw``) in a plain loop, no engine and no event loop;
* ``rows, primary keys only``: the same after dropping every secondary index (the
  dashboard's and recovery's queries need them; this shows what they cost to keep);
* ``bare``: two 4-column tables with integer keys, the same transactions: what SQLite
  does on this machine at all.

On PostgreSQL (``--pg-url`` or SAGA_TEST_POSTGRES_URL; a throwaway database per run):

* ``engine``: the same saga through the mediator;
* ``rows``: the same checkpoints as the writer's batch statements
  (``postgres.batch.apply_whole``) on one asyncpg connection, no engine;
* ``bare``: one 4-column row INSERTed per transaction (64 rows per transaction when
  concurrent), four transactions per saga: the server's commit rate.

"sequential" commits every checkpoint alone; "64 concurrent" commits 64 sagas'
checkpoints per transaction, as group commit does.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import typing
import uuid

HERE = pathlib.Path(__file__).resolve().parent
SCRIPT = pathlib.Path(__file__).resolve()
CONTEXT = {"order_id": "1", "amount": 10.0, "reservation_id": None, "payment_id": None}
OWNER = "bench:1:1"
KINDS = ("rows", "rows-pk-only", "bare")
PG_KINDS = ("pg-rows", "pg-bare")


def checkpoints(saga_id: uuid.UUID) -> list:
    """The four checkpoints of a 3-step saga, as the engine writes them."""
    from engine.saga.storage.enums import SagaStatus
    from engine.saga.storage.enums import SagaStepStatus as S
    from engine.saga.storage.models import Checkpoint, LogWrite, NewSaga

    steps = ("Reserve", "Charge", "Ship")
    out = [
        Checkpoint(
            saga_id,
            OWNER,
            create=NewSaga("OrderSaga", CONTEXT, 3, None),
            status=SagaStatus.RUNNING,
            logs=(LogWrite(steps[0], "act", S.STARTED),),
            current_step=steps[0],
            lease_expires=time.time() + 60,
            fence=1,
        )
    ]
    for i in (1, 2):
        out.append(
            Checkpoint(
                saga_id,
                OWNER,
                logs=(
                    LogWrite(steps[i - 1], "act", S.COMPLETED, duration_ms=0.1),
                    LogWrite(steps[i], "act", S.STARTED),
                ),
                context={**CONTEXT, "step": i},
                steps_done=i,
                current_step=steps[i],
                fence=1,
            )
        )
    out.append(
        Checkpoint(
            saga_id,
            OWNER,
            logs=(LogWrite(steps[2], "act", S.COMPLETED, duration_ms=0.1),),
            context={**CONTEXT, "step": 3},
            steps_done=3,
            status=SagaStatus.COMPLETED,
            release_lease=True,
            current_step="",
            fence=1,
        )
    )
    return out


def saga_groups(sagas: int, per_commit: int) -> list[list[list]]:
    """The sagas' checkpoints, built before the clock starts, ``per_commit`` to a group."""
    return [
        [checkpoints(uuid.uuid4()) for _ in range(per_commit)]
        for _ in range(max(1, sagas // per_commit))
    ]


def rows_rate(path: str, sagas: int, per_commit: int, pk_only: bool) -> float:
    """The engine's checkpoints through apply_raw on this schema; sagas per second."""
    from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage, db_values
    from engine.saga.storage.sqlalchemy.connect import open_raw_sqlite
    from engine.saga.storage.sqlalchemy.raw_checkpoint import INSERT_LOG, apply_raw

    async def create_schema() -> None:
        storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{path}")
        await storage.count_by_status()
        await storage.close()

    asyncio.run(create_schema())
    conn = open_raw_sqlite(path)
    conn.execute("PRAGMA journal_mode = WAL")
    if pk_only:
        indexes = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'ix_%'"
        ).fetchall()
        for (name,) in indexes:
            conn.execute(f"DROP INDEX {name}")
    groups = saga_groups(sagas, per_commit)
    t0 = time.perf_counter()
    for group in groups:
        for step in range(4):
            conn.execute("BEGIN IMMEDIATE")
            now = db_values.time_to_db(db_values.utcnow())
            logs: list[tuple] = []
            for saga in group:
                apply_raw(conn, saga[step], now, logs)
            conn.executemany(INSERT_LOG, logs)
            conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return len(groups) * per_commit / elapsed


def bare_rate(path: str, sagas: int, per_commit: int) -> float:
    """Two small tables with integer keys, four transactions per saga; sagas per second."""
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE s (id INTEGER PRIMARY KEY, status TEXT, context TEXT, step INT)")
    conn.execute("CREATE TABLE l (id INTEGER PRIMARY KEY, saga INT, step TEXT, status TEXT)")
    context = json.dumps(CONTEXT)
    groups = max(1, sagas // per_commit)
    t0 = time.perf_counter()
    for g in range(groups):
        ids = range(g * per_commit, (g + 1) * per_commit)
        for step in range(4):
            conn.execute("BEGIN IMMEDIATE")
            for i in ids:
                if step == 0:
                    conn.execute("INSERT INTO s VALUES (?, 'RUNNING', ?, 0)", (i, context))
                else:
                    conn.execute(
                        "UPDATE s SET context = ?, step = ? WHERE id = ?", (context, step, i)
                    )
                conn.execute("INSERT INTO l (saga, step, status) VALUES (?, 'A', 'DONE')", (i,))
            conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return groups * per_commit / elapsed


async def pg_rows_rate(url: str, sagas: int, per_commit: int) -> float:
    """The engine's checkpoints as the writer's batch statements; sagas per second."""
    import asyncpg

    from engine.saga.storage.postgres.batch import apply_whole
    from engine.saga.storage.postgres.writer import SERVER_SETTINGS
    from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage, db_values

    storage = SqlAlchemySagaStorage.from_url(
        url.replace("postgresql://", "postgresql+asyncpg://", 1)
    )
    await storage.count_by_status()  # creates the schema
    await storage.close()
    conn = await asyncpg.connect(url, server_settings=SERVER_SETTINGS)
    groups = saga_groups(sagas, per_commit)
    t0 = time.perf_counter()
    for group in groups:
        for step in range(4):
            results = await apply_whole(conn, [saga[step] for saga in group], db_values.utcnow())
            assert results is not None and not any(isinstance(r, Exception) for r in results)
    elapsed = time.perf_counter() - t0
    await conn.close()
    return len(groups) * per_commit / elapsed


async def pg_bare_rate(url: str, sagas: int, per_commit: int) -> float:
    """Small rows, one transaction per checkpoint (a row, or 64 rows); sagas per second."""
    import asyncpg

    conn = await asyncpg.connect(url)
    await conn.execute("CREATE TABLE bare (id bigserial PRIMARY KEY, saga int, step int, v text)")
    groups = max(1, sagas // per_commit)
    rows = [(i, 0, "x") for i in range(per_commit)]
    t0 = time.perf_counter()
    for _ in range(groups * 4):
        if per_commit == 1:
            await conn.execute("INSERT INTO bare (saga, step, v) VALUES (1, 0, 'x')")
        else:
            async with conn.transaction():
                await conn.executemany("INSERT INTO bare (saga, step, v) VALUES ($1, $2, $3)", rows)
    elapsed = time.perf_counter() - t0
    await conn.close()
    return groups * per_commit / elapsed


@functools.cache
def _vs_python_cqrs() -> typing.Any:
    """bench/vs_python_cqrs.py, loaded once: its harness and throwaway databases."""
    spec = importlib.util.spec_from_file_location("vs_python_cqrs", HERE / "vs_python_cqrs.py")
    assert spec is not None and spec.loader is not None
    vs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vs)
    return vs


def engine_rate(mode: str, sagas: int, storage: str = "sqlite", pg_url: str = "") -> float:
    """The whole engine, through vs_python_cqrs.py's harness (a fresh file or database)."""
    vs = _vs_python_cqrs()
    return float(vs.run_one(sys.executable, "engine", mode, storage, sagas, "given", pg_url))


def one_run(kind: str, per_commit: int, sagas: int, pg_url: str = "") -> float:
    """One measurement in a fresh subprocess on a fresh file or database."""
    storage = "postgres" if kind.startswith("pg-") else "sqlite"
    with (
        tempfile.TemporaryDirectory() as tmp,
        _vs_python_cqrs().throwaway_database(storage, pg_url) as database,
    ):
        proc = subprocess.run(
            [
                sys.executable,
                str(SCRIPT),
                "--one",
                kind,
                str(per_commit),
                str(sagas),
                tmp,
                database,
            ],
            capture_output=True,
            text=True,
            cwd=HERE.parent,
        )
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    """Print the table: per mode, the engine and the floors beside it."""
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        kind, per_commit, sagas, folder = (
            sys.argv[2],
            int(sys.argv[3]),
            int(sys.argv[4]),
            sys.argv[5],
        )
        sys.path.insert(0, str(HERE.parent))
        path = str(pathlib.Path(folder) / "floor.db")
        url = sys.argv[6] if len(sys.argv) > 6 else ""
        if kind == "pg-rows":
            print(asyncio.run(pg_rows_rate(url, sagas, per_commit)))
        elif kind == "pg-bare":
            print(asyncio.run(pg_bare_rate(url, sagas, per_commit)))
        elif kind == "bare":
            print(bare_rate(path, sagas, per_commit))
        else:
            print(rows_rate(path, sagas, per_commit, pk_only=kind == "rows-pk-only"))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["sqlite", "postgres"], default=None)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("SAGA_TEST_POSTGRES_URL", ""),
        help="PostgreSQL server; default SAGA_TEST_POSTGRES_URL; without one it is skipped",
    )
    args = parser.parse_args()
    print(f"sagas/s, median of {args.rounds} interleaved rounds, {args.sagas} sagas per run")
    print(
        f"{'database':10} {'mode':14} {'engine':>8} {'rows':>8} {'rows, pk only':>14} {'bare':>8}"
    )
    plans: list[tuple[str, tuple[str, ...]]] = []
    if args.only in (None, "sqlite"):
        plans.append(("sqlite", KINDS))
    if args.only in (None, "postgres") and args.pg_url:
        plans.append(("postgres", PG_KINDS))
    for storage, kinds in plans:
        for mode, per_commit in (("sequential", 1), ("64", 64)):
            rates: dict[str, list[float]] = {k: [] for k in ("engine", *kinds)}
            for _ in range(args.rounds):
                rates["engine"].append(engine_rate(mode, args.sagas, storage, args.pg_url))
                for kind in kinds:
                    rates[kind].append(one_run(kind, per_commit, args.sagas, args.pg_url))
            med = {k.removeprefix("pg-"): statistics.median(v) for k, v in rates.items()}
            label = mode if mode == "sequential" else f"{mode} concurrent"
            pk_only = f"{med['rows-pk-only']:14.0f}" if "rows-pk-only" in med else f"{'':14}"
            print(
                f"{storage:10} {label:14} {med['engine']:8.0f} {med['rows']:8.0f}"
                f" {pk_only} {med['bare']:8.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
