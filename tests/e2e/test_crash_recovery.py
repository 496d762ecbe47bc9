"""Cross-process durability: readers see steps in flight, SIGKILL loses nothing, one runner.

Each test runs on SQLite, and on PostgreSQL too when SAGA_TEST_POSTGRES_URL is set (the
side effects stay in a SQLite file either way: they stand for the outside world).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pathlib
import random
import signal
import sqlite3
import subprocess
import sys
import time
import typing
import uuid

import pytest

from engine.saga.storage.enums import SagaStatus, SagaStepStatus
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from tests.support import (
    POSTGRES_URL,
    pg_fetch,
    postgres_database_sync,
    read_line,
    wait_for,
    wait_for_sync,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
STEPS = ("First", "Second", "Third")


@dataclasses.dataclass
class Target:
    """Where the sagas are (``url``) and the SQLite file of the side effects (``db``)."""

    db: pathlib.Path
    url: str

    @property
    def postgres(self) -> bool:
        return not self.url.startswith("sqlite")

    def query(self, sql: str) -> list[tuple[typing.Any, ...]]:
        """Rows of the saga tables (statements written for both databases)."""
        if self.postgres:
            return pg_fetch(self.url, sql)
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            return conn.execute(sql).fetchall()

    def env(self) -> dict[str, str]:
        return {**os.environ, "CRASH_SAGA_URL": self.url}


@pytest.fixture(params=["sqlite", *(["postgres"] if POSTGRES_URL else [])])
def target(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> typing.Iterator[Target]:
    db = tmp_path / "sagas.db"
    if request.param == "sqlite":
        yield Target(db, f"sqlite+aiosqlite:///{db}")
        return
    with postgres_database_sync() as url:
        yield Target(db, url)


def spawn(target: Target, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.crash_worker", str(target.db), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=target.env(),
    )


def recover(target: Target) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.e2e.crash_worker", str(target.db), "recover"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=target.env(),
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def check_database(target: Target) -> dict[str, int]:
    """Every saga terminal, effects agree with statuses, no completed step run again."""
    sagas = dict(target.query("SELECT id, status FROM saga_executions"))
    started: dict[tuple[str, str], int] = {}
    for saga_id, step in target.query(
        "SELECT saga_id, step_name FROM saga_logs WHERE action='act' AND status='STARTED'"
    ):
        key = (str(uuid.UUID(str(saga_id))), step)
        started[key] = started.get(key, 0) + 1
    acts: dict[tuple[str, str], int] = {}
    undos: set[tuple[str, str]] = set()
    conn = sqlite3.connect(target.db)
    for saga_id, step, kind in conn.execute("SELECT saga_id, step, kind FROM effects"):
        key = (saga_id, step)
        if kind == "act":
            acts[key] = acts.get(key, 0) + 1
        else:
            undos.add(key)
    conn.close()
    tally: dict[str, int] = {}
    for raw_id, status in sagas.items():
        saga_id = str(uuid.UUID(str(raw_id)))
        tally[status] = tally.get(status, 0) + 1
        assert status in ("COMPLETED", "COMPENSATED"), f"{saga_id} left {status}"
        for step in STEPS:
            done = acts.get((saga_id, step), 0)
            # an act runs once per STARTED entry at most: a durable COMPLETED is never redone
            assert done <= max(started.get((saga_id, step), 0), 1), (saga_id, step, done)
            if status == "COMPLETED":
                assert done >= 1, f"{saga_id}: completed without {step}"
                assert (saga_id, step) not in undos, f"{saga_id}: completed but {step} undone"
            elif done:
                assert (saga_id, step) in undos, f"{saga_id}: compensated but {step} not undone"
    return tally


async def test_a_reader_sees_the_step_in_flight_in_another_process(
    target: Target, tmp_path: pathlib.Path
) -> None:
    gate = tmp_path / "gate"
    first = SqlAlchemySagaStorage.from_url(target.url)
    await first.count_by_status()  # create the schema first
    await first.close()
    proc = spawn(target, "block", str(gate))
    try:
        saga_id = uuid.UUID(read_line(proc))
        assert read_line(proc) == "in-act"
        reader = SqlAlchemySagaStorage.from_url(target.url, read_only=True)
        try:
            detail = await reader.get_saga(saga_id)
            assert detail is not None
            assert detail.summary.status is SagaStatus.RUNNING
            assert detail.summary.current_step == "Second"
            lanes = {s.name: s.act.status for s in detail.steps}
            assert lanes == {"First": SagaStepStatus.COMPLETED, "Second": SagaStepStatus.STARTED}
            page = await reader.list_sagas()
            assert [s.id for s in page.items] == [saga_id]
            gate.touch()

            async def completed() -> bool:
                found = await reader.get_saga(saga_id)
                return found is not None and found.summary.status is SagaStatus.COMPLETED

            await wait_for(completed, 30, what="the saga to complete")
        finally:
            await reader.close()
    finally:
        proc.kill()
        proc.wait()


async def test_compensation_asked_of_another_live_process_is_done_by_that_owner(
    target: Target, tmp_path: pathlib.Path
) -> None:
    from engine.saga.bootstrap import bootstrap
    from tests.e2e.crash_worker import CrashContext, CrashSaga, Plain

    gate = tmp_path / "gate"
    storage = SqlAlchemySagaStorage.from_url(target.url)
    await storage.count_by_status()  # the schema, before the other process opens it
    proc = spawn(target, "block", str(gate))
    try:
        saga_id = uuid.UUID(read_line(proc))
        assert read_line(proc) == "in-act"  # Second is running in the other process
        operator = bootstrap(
            Plain(), sagas_mapper=lambda m: m.bind(CrashContext, CrashSaga), saga_storage=storage
        )
        result = await operator.compensate_saga(saga_id, reason="customer called")
        assert result.requested and result.status is SagaStatus.RUNNING
        lease = await storage.get_lease(saga_id)
        assert lease is not None and lease.owner is not None and str(proc.pid) in lease.owner
        gate.touch()
        assert read_line(proc) == "ended CompensationRequestedError"
        detail = await storage.get_saga(saga_id)
        assert detail is not None
        assert detail.summary.status is SagaStatus.COMPENSATED
        assert detail.summary.requested_action is None
        lanes = {s.name: (s.act.status, s.compensate.status) for s in detail.steps}
        assert lanes["First"] == (SagaStepStatus.COMPLETED, SagaStepStatus.COMPLETED)
        assert lanes["Second"] == (SagaStepStatus.COMPLETED, SagaStepStatus.COMPLETED)
        assert lanes["Third"][0] is SagaStepStatus.FAILED  # pre-started, never run
        assert [(a.action, a.reason) for a in detail.audit] == [("compensate", "customer called")]
    finally:
        proc.kill()
        proc.wait()
        await storage.close()
    conn = sqlite3.connect(target.db)
    effects = conn.execute("SELECT step, kind FROM effects ORDER BY id").fetchall()
    conn.close()
    assert effects == [
        ("First", "act"),
        ("Second", "act"),
        ("Second", "undo"),
        ("First", "undo"),
    ]


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing(target: Target) -> None:
    rng = random.Random(int(os.environ.get("CRASH_SEED", "20261127")))
    kills = 0
    for _ in range(20):
        # far more sagas than it can finish before the kill: every run dies mid-load
        proc = spawn(target, "load", "1000000", "32")
        try:
            assert read_line(proc) == "ready"
            time.sleep(rng.uniform(0.02, 0.5))  # the crash moment, not a wait for a result
            assert proc.poll() is None, "the load ended before its crash moment"
            proc.send_signal(signal.SIGKILL)
            kills += 1
        finally:
            proc.wait()
        recover(target)
        check_database(target)
    tally = check_database(target)
    assert kills == 20
    assert tally.get("COMPLETED", 0) > 0 and tally.get("COMPENSATED", 0) > 0


@pytest.mark.slow
def test_two_recoverers_never_run_one_saga_at_once(target: Target) -> None:
    proc = spawn(target, "load", "100000", "64")
    try:
        assert read_line(proc) == "ready"
        wait_for_sync(
            lambda: target.query("SELECT count(*) FROM saga_executions")[0][0] >= 300,
            60,
            interval=0.05,
            what="the load to get going",
        )
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()  # also when the wait failed: the load would run for minutes
        proc.wait()
    stale = target.query(
        "SELECT count(*) FROM saga_executions WHERE status IN ('RUNNING','COMPENSATING')"
    )[0][0]
    assert stale > 0
    conn = sqlite3.connect(target.db)
    before = conn.execute("SELECT coalesce(max(id), 0) FROM effects").fetchone()[0]
    a = spawn(target, "recover")
    b = spawn(target, "recover")
    _, err_a = a.communicate(timeout=300)
    _, err_b = b.communicate(timeout=300)
    assert a.returncode == 0 and b.returncode == 0, (err_a, err_b)
    # Each saga was recovered by one process only, and each of its steps acted once.
    rows = conn.execute(
        "SELECT saga_id, step, kind, pid FROM effects WHERE id > ?", (before,)
    ).fetchall()
    pids_by_saga: dict[str, set[int]] = {}
    acts: dict[tuple[str, str], int] = {}
    for saga_id, step, kind, pid in rows:
        pids_by_saga.setdefault(saga_id, set()).add(pid)
        if kind == "act":
            acts[(saga_id, step)] = acts.get((saga_id, step), 0) + 1
    assert rows, "recovery ran no step at all"
    assert all(len(p) == 1 for p in pids_by_saga.values()), pids_by_saga
    assert all(n == 1 for n in acts.values()), acts
    assert {a.pid, b.pid} >= {p for s in pids_by_saga.values() for p in s}
    conn.close()
    check_database(target)


HOLD_SQLITE_LOCK = """
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute('BEGIN IMMEDIATE')
print('locked', flush=True)
time.sleep(3)
c.execute('COMMIT')
"""

HOLD_POSTGRES_LOCK = """
import asyncio, sys, asyncpg
async def main():
    c = await asyncpg.connect(sys.argv[1].replace('postgresql+asyncpg:', 'postgresql:'))
    await c.execute('BEGIN')
    await c.execute('LOCK TABLE saga_executions IN EXCLUSIVE MODE')
    print('locked', flush=True)
    await asyncio.sleep(3)
    await c.execute('COMMIT')
asyncio.run(main())
"""


async def test_a_write_lock_held_for_three_seconds_makes_the_engine_wait(target: Target) -> None:
    import tests.e2e.crash_worker as worker
    from engine.saga.bootstrap import bootstrap
    from tests.e2e.crash_worker import CrashContext, CrashSaga, Effects, Plain

    storage = SqlAlchemySagaStorage.from_url(target.url)
    await storage.count_by_status()  # the schema, before the lock is taken
    worker.EFFECTS = Effects(str(target.db), latency=0)
    mediator = bootstrap(
        Plain(), sagas_mapper=lambda m: m.bind(CrashContext, CrashSaga), saga_storage=storage
    )
    script, where = (
        (HOLD_POSTGRES_LOCK, target.url) if target.postgres else (HOLD_SQLITE_LOCK, str(target.db))
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, where], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        saga_id = uuid.uuid4()
        await mediator.run(CrashContext(number=1, saga_id=str(saga_id)), saga_id=saga_id)
        waited = time.monotonic() - started
        state = await storage.load_saga_state(saga_id)
        assert state[0] is SagaStatus.COMPLETED
        assert waited > 1.0  # it really waited for the lock instead of failing
    finally:
        holder.wait(timeout=30)
        await storage.close()
        await asyncio.sleep(0)
