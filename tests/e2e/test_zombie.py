"""A runner that lost its lease (paused, or its event loop blocked) wakes up inside steps.

Its sagas were meanwhile recovered or compensated by another process. Its engine writes
are fenced out; its service calls carry the old fence, which the sample ledger refuses,
so no effect lands twice or after its undo, and ``check`` agrees with every saga.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.support import wait_for_sync

ROOT = pathlib.Path(__file__).resolve().parents[2]
QUIET = (
    "--failure-rate", "0",
    "--compensation-failure-rate", "0",
    "--refund-decline-rate", "0",
)  # fmt: skip
APP = ("--app", "tests.e2e.apps:reliable")


def _query(db: pathlib.Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return list(conn.execute(sql, params))
    except sqlite3.OperationalError:
        return []  # the file exists before its tables do


def _run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _leases_expired(db: pathlib.Path) -> bool:
    rows = _query(
        db,
        "SELECT count(*) FROM saga_executions WHERE status = 'RUNNING' AND lease_expires > ?",
        time.time(),
    )
    return bool(rows) and rows[0][0] == 0


def _generator(db: pathlib.Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sample_sagas", "--db", str(db), "--json", *QUIET, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop_outside_a_write(pid: int, db: pathlib.Path) -> None:
    """SIGSTOP ``pid`` at a moment it holds no write lock on ``db``.

    SQLite has one write lock: a process paused inside a write keeps every other writer
    waiting until it resumes (the README says so), which is not what this test is about.
    """
    deadline = time.monotonic() + 60
    while True:
        os.kill(pid, signal.SIGSTOP)
        conn = sqlite3.connect(db, timeout=0.5, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
        finally:
            conn.close()
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.05)


def _check_clean(db: pathlib.Path) -> str:
    check = _run("sample_sagas", "check", "--db", str(db))
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout == ""
    statuses = {row[0] for row in _query(db, "SELECT status FROM saga_executions")}
    assert statuses <= {"COMPLETED", "COMPENSATED"}, statuses
    return check.stderr


@pytest.mark.slow
def test_a_generator_paused_past_its_lease_cannot_apply_stale_effects(
    tmp_path: pathlib.Path,
) -> None:
    db = tmp_path / "zombie.db"
    count = 12
    load = _generator(
        db,
        "--count", str(count),
        "--concurrency", str(count),
        "--latency-ms", "700-700",
        "--lease-seconds", "2",
    )  # fmt: skip
    try:
        # Every saga has done its first step and is inside a later one.
        wait_for_sync(
            lambda: len(_query(db, "SELECT DISTINCT saga_id FROM demo_ledger")) == count,
            timeout=120,
            what="a first effect of every saga",
        )
        _stop_outside_a_write(load.pid, db)
        wait_for_sync(lambda: _leases_expired(db), timeout=30, what="the leases to expire")
        ids = [str(row[0]) for row in _query(db, "SELECT id FROM saga_executions ORDER BY id")]
        assert len(ids) == count
        half = ids[: count // 2]
        compensated = _run(
            "saga_tui", "--db", str(db), *APP, "compensate", "--yes", "--json", *half
        )
        assert compensated.returncode == 0, compensated.stderr
        assert all(r["ok"] for r in json.loads(compensated.stdout))
        recovered = _run("saga_tui", "--db", str(db), *APP, "recover", "--stale", "--json")
        assert recovered.returncode == 0, recovered.stderr
        assert len(json.loads(recovered.stdout)) == count - len(half)
    finally:
        os.kill(load.pid, signal.SIGCONT)
    _out, err = load.communicate(timeout=180)
    assert load.returncode in (0, 1), err
    # The woken generator wrote nothing: every saga ended as the other processes left it.
    fences = dict(_query(db, "SELECT hex(id), fence FROM saga_executions"))
    assert set(fences.values()) == {2}, fences
    _check_clean(db)
    undos = _query(db, "SELECT count(DISTINCT saga_id) FROM demo_ledger WHERE action = 'undo'")
    assert undos[0][0] == len(half)


@pytest.mark.slow
def test_a_step_that_blocks_the_event_loop_past_its_lease_is_refused_by_the_ledger(
    tmp_path: pathlib.Path,
) -> None:
    db = tmp_path / "blocked.db"
    load = _generator(
        db,
        "--count", "1",
        "--concurrency", "1",
        "--latency-ms", "0",
        "--block-ms", "12000",
        "--lease-seconds", "1",
    )  # fmt: skip
    try:
        wait_for_sync(lambda: _query(db, "SELECT id FROM saga_executions"), timeout=60)
        wait_for_sync(lambda: _leases_expired(db), timeout=30, what="the lease to expire")
        (saga_id,) = _query(db, "SELECT id FROM saga_executions")[0]
        # While the first runner is still stuck inside its step, another rolls it back.
        rolled = _run(
            "saga_tui", "--db", str(db), *APP, "compensate", "--yes", "--json", str(saga_id)
        )
        assert rolled.returncode == 0, rolled.stderr
        assert json.loads(rolled.stdout)[0]["status"] == "COMPENSATED"
        assert load.poll() is None, "the blocked step ended before the rollback finished"
        load.communicate(timeout=120)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    refused = _query(db, "SELECT step, action, fence, reason FROM demo_ledger_refused")
    assert len(refused) == 1 and refused[0][1] == "do" and refused[0][2] == 1, refused
    assert "older than fence 2" in str(refused[0][3])
    stderr = _check_clean(db)
    assert "the ledger refused 1 stale effects" in stderr
    assert not _query(db, "SELECT 1 FROM demo_ledger WHERE action = 'do'")
