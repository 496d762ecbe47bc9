"""A worker whose PostgreSQL database goes away and comes back (restart, failover).

Real subprocess, real server: the database refuses connections for a while (its
backends terminated, new ones not allowed), then takes them again.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import re
import subprocess
import sys
import time
import typing

import pytest
import sqlalchemy as sa

from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from engine.saga.storage.sqlalchemy.schema import (
    saga_executions,
    saga_logs,
    saga_request_items,
)
from tests.e2e.test_fleet import saga_tui
from tests.support import POSTGRES_URL, postgres_admin, postgres_database, read_until, wait_for

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRAWLING = "tests.e2e.apps:crawling"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not POSTGRES_URL, reason="needs SAGA_TEST_POSTGRES_URL"),
]


async def _cut_off(name: str) -> None:
    await postgres_admin(
        f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false',
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
    )


def _worker(url: str, name: str) -> tuple[subprocess.Popen[str], str]:
    """A worker serving; its stderr (the outage lines) comes with its stdout. And its owner."""
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "saga_tui", "--db", url, "--app", CRAWLING,
            "worker", "--name", name, "--lease", "3",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        line = read_until(proc, lambda s: s.startswith("worker "), 60, what="serving")
    except BaseException:
        proc.kill()
        proc.wait(timeout=30)
        raise
    return proc, line.split("(owner ")[1].split(",")[0]


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return saga_tui(url, "--app", CRAWLING, *args, timeout=120)


async def _count(storage: SqlAlchemySagaStorage, status: str) -> int:
    async with storage._engine.connect() as conn:
        query = sa.select(sa.func.count()).where(saga_executions.c.status == status)
        return int((await conn.execute(query)).scalar_one())


async def _running(storage: SqlAlchemySagaStorage, n: int) -> bool:
    return await _count(storage, "RUNNING") >= n


async def _outcomes(storage: SqlAlchemySagaStorage, n: int) -> bool:
    async with storage._engine.connect() as conn:
        query = sa.select(sa.func.count(saga_request_items.c.outcome))
        return int((await conn.execute(query)).scalar_one()) >= n


async def test_a_worker_says_once_that_its_database_went_away_backs_off_and_serves_again() -> None:
    async with postgres_database() as url:
        name = url.rsplit("/", 1)[1]
        proc, owner = _worker(url, "w-out")
        try:
            storage = SqlAlchemySagaStorage.from_url(url)
            try:
                # Sagas in flight when the database goes away (each step takes 1-1.5 s).
                queued = _cli(url, "start", "OrderSaga", "--count", "4", "--no-wait")
                assert queued.returncode == 0, queued.stderr
                await wait_for(
                    lambda: _running(storage, 4), timeout=60, interval=0.1, what="4 running"
                )
            finally:
                await storage.close()
            await _cut_off(name)
            cut = time.monotonic()
            said: list[str] = []

            def saw(needle: str) -> typing.Callable[[str], bool]:
                def check(text: str) -> bool:
                    said.append(text)
                    return needle in text

                return check

            line = read_until(proc, saw(" failed: "), 60, what="the outage")
            # Whichever of its calls noticed first says so: claiming, housekeeping, beating.
            assert line.startswith("saga-tui: worker w-out: "), line
            assert "trying again, at most 5 s apart" in line
            # The outage lasts a while: a worker polling every 0.1 s would try ~60 times.
            await asyncio.sleep(max(0.0, cut + 6.0 - time.monotonic()))
            await postgres_admin(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
            line = read_until(proc, saw("works again"), 60, what="the outage's end")
            back = re.search(r" works again after (\d+) s \((\d+) failed attempts\)$", line)
            assert back is not None, line
            assert int(back.group(1)) >= 3  # the outage lasted 6 s from the cut
            assert int(back.group(2)) <= 15, line  # backed off: 0.2, 0.4, ... 5 s apart
            # One line each way, by the same call: the others' failures are not said again.
            assert len(said) == 2, said
            assert said[0].split(" failed: ")[0] == said[1].split(" works again")[0], said

            # And it serves again: a request made now is taken by this worker ...
            run = _cli(url, "start", "OrderSaga", "--json")
            assert run.returncode == 0, run.stderr
            assert [r["status"] for r in json.loads(run.stdout)] == ["COMPLETED"]
            storage = SqlAlchemySagaStorage.from_url(url)
            try:
                # ... and the sagas the outage interrupted were taken up again and ended.
                await wait_for(lambda: _outcomes(storage, 5), timeout=90, interval=0.2)
                async with storage._engine.connect() as conn:
                    items = saga_request_items.c
                    pairs = list(await conn.execute(sa.select(items.taken_by, items.outcome)))
                    assert pairs == [(owner, "COMPLETED")] * 5
                    assert await _count(storage, "COMPLETED") == 5
                    log = saga_logs.c
                    started = (
                        sa.select(sa.func.count())
                        .where(log.action == "act", log.status == "STARTED")
                        .group_by(log.saga_id, log.step_name)
                    )
                    # A step body the outage cut off was started again (its effect, twice).
                    assert max((await conn.execute(started)).scalars()) >= 2
            finally:
                await storage.close()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
            await postgres_admin(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')


async def test_a_command_waiting_for_its_request_rides_out_the_outage_and_says_so() -> None:
    async with postgres_database() as url:
        name = url.rsplit("/", 1)[1]
        worker, _ = _worker(url, "w-cli")
        command = None
        try:
            command = subprocess.Popen(
                [
                    sys.executable, "-m", "saga_tui", "--db", url, "--app", CRAWLING,
                    "start", "OrderSaga", "--count", "2", "--json",
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
            )  # fmt: skip
            storage = SqlAlchemySagaStorage.from_url(url)
            try:
                await wait_for(lambda: _running(storage, 2), timeout=60, interval=0.1)
            finally:
                await storage.close()
            await _cut_off(name)
            await asyncio.sleep(6.0)  # the outage lasts; the command keeps waiting
            assert command.poll() is None, command.communicate()
            await postgres_admin(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
            out, err = command.communicate(timeout=120)
            assert command.returncode == 0, err
            assert [r["status"] for r in json.loads(out)] == ["COMPLETED"] * 2
            lines = err.splitlines()
            assert len(lines) == 2, err
            assert re.match(
                r"request [0-9a-f]{8}: reading the request's progress failed: .+; "
                r"trying again, at most 5 s apart$",
                lines[0],
            ), err
            assert re.match(r"request [0-9a-f]{8}: its progress reads again$", lines[1]), err
        finally:
            for proc in (worker, command):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=30)
            await postgres_admin(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
