"""Cross-process durability: readers see steps in flight, SIGKILL loses nothing, one runner."""

from __future__ import annotations

import asyncio
import os
import pathlib
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid

import pytest

from engine.saga.storage.enums import SagaStatus, SagaStepStatus
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from tests.support import read_line, wait_for, wait_for_sync

ROOT = pathlib.Path(__file__).resolve().parents[2]
STEPS = ("First", "Second", "Third")


def spawn(db: pathlib.Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.crash_worker", str(db), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def recover(db: pathlib.Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.e2e.crash_worker", str(db), "recover"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def check_database(db: pathlib.Path) -> dict[str, int]:
    """Every saga terminal, effects agree with statuses, no completed step run again."""
    conn = sqlite3.connect(db)
    sagas = dict(conn.execute("SELECT id, status FROM saga_executions").fetchall())
    started: dict[tuple[str, str], int] = {}
    for saga_id, step in conn.execute(
        "SELECT saga_id, step_name FROM saga_logs WHERE action='act' AND status='STARTED'"
    ):
        key = (str(uuid.UUID(str(saga_id))), step)
        started[key] = started.get(key, 0) + 1
    acts: dict[tuple[str, str], int] = {}
    undos: set[tuple[str, str]] = set()
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


async def test_a_reader_sees_the_step_in_flight_in_another_process(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "sagas.db"
    gate = tmp_path / "gate"
    SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{db}")  # create the schema first
    proc = spawn(db, "block", str(gate))
    try:
        saga_id = uuid.UUID(read_line(proc))
        assert read_line(proc) == "in-act"
        reader = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{db}", read_only=True)
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
    tmp_path: pathlib.Path,
) -> None:
    from engine.saga.bootstrap import bootstrap
    from tests.e2e.crash_worker import CrashContext, CrashSaga, Plain

    db = tmp_path / "sagas.db"
    gate = tmp_path / "gate"
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{db}")
    proc = spawn(db, "block", str(gate))
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
    conn = sqlite3.connect(db)
    effects = conn.execute("SELECT step, kind FROM effects ORDER BY id").fetchall()
    conn.close()
    assert effects == [
        ("First", "act"),
        ("Second", "act"),
        ("Second", "undo"),
        ("First", "undo"),
    ]


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "sagas.db"
    rng = random.Random(int(os.environ.get("CRASH_SEED", "20261127")))
    kills = 0
    for _ in range(20):
        # far more sagas than it can finish before the kill: every run dies mid-load
        proc = spawn(db, "load", "1000000", "32")
        try:
            assert read_line(proc) == "ready"
            time.sleep(rng.uniform(0.02, 0.5))  # the crash moment, not a wait for a result
            assert proc.poll() is None, "the load ended before its crash moment"
            proc.send_signal(signal.SIGKILL)
            kills += 1
        finally:
            proc.wait()
        recover(db)
        check_database(db)
    tally = check_database(db)
    assert kills == 20
    assert tally.get("COMPLETED", 0) > 0 and tally.get("COMPENSATED", 0) > 0


@pytest.mark.slow
def test_two_recoverers_never_run_one_saga_at_once(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "sagas.db"
    proc = spawn(db, "load", "100000", "64")
    try:
        assert read_line(proc) == "ready"
        conn = sqlite3.connect(db)
        wait_for_sync(
            lambda: conn.execute("SELECT count(*) FROM saga_executions").fetchone()[0] >= 300,
            60,
            interval=0.05,
            what="the load to get going",
        )
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    stale = conn.execute(
        "SELECT count(*) FROM saga_executions WHERE status IN ('RUNNING','COMPENSATING')"
    ).fetchone()[0]
    assert stale > 0
    before = conn.execute("SELECT coalesce(max(id), 0) FROM effects").fetchone()[0]
    a = spawn(db, "recover")
    b = spawn(db, "recover")
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
    check_database(db)


async def test_a_write_lock_held_for_three_seconds_makes_the_engine_wait(
    tmp_path: pathlib.Path,
) -> None:
    import tests.e2e.crash_worker as worker
    from engine.saga.bootstrap import bootstrap
    from tests.e2e.crash_worker import CrashContext, CrashSaga, Effects, Plain

    db = tmp_path / "sagas.db"
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{db}")
    worker.EFFECTS = Effects(str(db), latency=0)
    mediator = bootstrap(
        Plain(), sagas_mapper=lambda m: m.bind(CrashContext, CrashSaga), saga_storage=storage
    )
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(3)\n"
            "c.execute('COMMIT')\n",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
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
