"""SIGKILL the load generator mid-run; ``saga-tui recover --stale`` must leave it all clean."""

from __future__ import annotations

import json
import os
import pathlib
import random
import signal
import sqlite3
import subprocess
import sys
import time
import typing

import pytest

from tests.support import POSTGRES_URL, postgres_database, wait_for, wait_for_sync

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _count_sagas(db: pathlib.Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM saga_executions").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # the file exists before its tables do


def _run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize("moment", [0, 1, 2])
def test_sigkill_then_recover_stale_leaves_every_saga_terminal_and_clean(
    tmp_path: pathlib.Path, moment: int
) -> None:
    rng = random.Random(1000 + moment)
    db = tmp_path / "killed.db"
    load = subprocess.Popen(
        [
            sys.executable, "-m", "sample_sagas",
            "--db", str(db),
            "--count", "100000",
            "--concurrency", "100",
            "--failure-rate", "0.1",
            "--compensation-failure-rate", "0.02",
            "--latency-ms", "1-30",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # A random moment: after some hundreds of sagas started, plus a random fraction
        # of a second, so the kill lands anywhere in act, compensate or a commit.
        threshold = rng.randrange(150, 1500)
        wait_for_sync(
            lambda: _count_sagas(db) >= threshold, 60, interval=0.01, what=f"{threshold} sagas"
        )
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(load.pid, signal.SIGKILL)
    finally:
        load.kill()
        load.wait(timeout=30)
    assert load.returncode == -signal.SIGKILL

    before = _run("sample_sagas", "check", "--db", str(db))
    assert before.returncode == 1, "the kill left no saga in flight: the test proves nothing"
    assert "not terminal" in before.stdout

    recover = _run("saga_tui", "--db", str(db), "recover", "--stale", "--json")
    assert recover.returncode in (0, 1), recover.stderr
    results = json.loads(recover.stdout)
    assert results, "nothing was recovered"
    # 1 only when a declined refund left a saga FAILED: an outcome, not an error.
    assert all(r["error"] is None for r in results), results
    assert all(r["status"] in ("COMPLETED", "COMPENSATED", "FAILED") for r in results)

    after = _run("sample_sagas", "check", "--db", str(db))
    assert after.returncode == 0, after.stdout[-3000:]
    assert "0 disagree" in after.stderr


@pytest.mark.slow
@pytest.mark.skipif(not POSTGRES_URL, reason="SAGA_TEST_POSTGRES_URL is not set")
async def test_sigkill_then_recover_stale_on_postgresql() -> None:
    import asyncpg

    async with postgres_database() as url:
        plain = url.replace("postgresql+asyncpg://", "postgresql://", 1)

        async def count() -> int:
            conn = await asyncpg.connect(plain)
            try:
                return int(await conn.fetchval("SELECT count(*) FROM saga_executions"))
            except asyncpg.UndefinedTableError:
                return 0  # the database exists before its tables do
            finally:
                await conn.close()

        load = subprocess.Popen(
            [
                sys.executable, "-m", "sample_sagas",
                "--db", url,
                "--count", "100000",
                "--concurrency", "50",
                "--failure-rate", "0.1",
                "--compensation-failure-rate", "0.02",
                "--latency-ms", "1-30",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await wait_for(lambda: _at_least(count, 200), 120, interval=0.05, what="200 sagas")
            os.kill(load.pid, signal.SIGKILL)
        finally:
            load.kill()
            load.wait(timeout=30)
        before = _run("sample_sagas", "check", "--db", url)
        assert before.returncode == 1 and "not terminal" in before.stdout, before.stderr
        recover = _run("saga_tui", "--db", url, "recover", "--stale", "--json")
        assert recover.returncode in (0, 1), recover.stderr
        results = json.loads(recover.stdout)
        assert results and all(r["error"] is None for r in results), results
        after = _run("sample_sagas", "check", "--db", url)
        assert after.returncode == 0, after.stdout[-3000:]
        assert "0 disagree" in after.stderr


async def _at_least(count: typing.Callable[[], typing.Awaitable[int]], n: int) -> bool:
    return await count() >= n
