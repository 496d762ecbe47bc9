"""The fleet end to end: ``saga-tui worker`` subprocesses serving durable requests.

Real processes on a real SQLite file (and PostgreSQL when SAGA_TEST_POSTGRES_URL is set):
requests written by the command line, served by workers, workers killed and stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import typing
import uuid

import pytest
import sqlalchemy as sa

from engine.saga.fleet import RequestBook
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from engine.saga.storage.sqlalchemy.schema import (
    saga_executions,
    saga_logs,
    saga_request_items,
)
from tests.support import POSTGRES_URL, postgres_database, read_until, wait_for

ROOT = pathlib.Path(__file__).resolve().parents[2]
RELIABLE = "tests.e2e.apps:reliable"
DECLINING = "tests.e2e.apps:declining"
STEADY = "tests.e2e.apps:steady"
SLOW = "tests.e2e.apps:slow"

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite"] + (["postgres"] if POSTGRES_URL else []))
async def db_url(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> typing.AsyncIterator[str]:
    """A fresh database URL the subprocesses and the test share."""
    if request.param == "postgres":
        async with postgres_database() as url:
            yield url
        return
    yield f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}"


def _cli_db(url: str) -> str:
    return url.removeprefix("sqlite+aiosqlite:///") if url.startswith("sqlite") else url


def saga_tui(url: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "saga_tui", "--db", _cli_db(url), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


class Worker:
    """One ``saga-tui worker`` subprocess; ``owner`` is its lease owner id."""

    def __init__(self, url: str, app: str, name: str, *extra: str, host: str | None = None):
        env = dict(os.environ)
        if host is not None:
            env["SAGA_HOST_ID"] = host
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "saga_tui", "--db", _cli_db(url), "--app", app,
                "worker", "--name", name, *extra,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
        line = read_until(self.proc, lambda s: s.startswith("worker "), 60, what="serving")
        self.owner = line.split("(owner ")[1].split(",")[0]
        self.name = name

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def term(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        # stdout is read by tests.support's reader thread: the last line comes from it.
        line = read_until(self.proc, lambda s: " stopped" in s, 120, what="stopped")
        self.proc.wait(timeout=60)
        return self.proc.returncode, line

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@contextlib.asynccontextmanager
async def opened(url: str) -> typing.AsyncIterator[SqlAlchemySagaStorage]:
    storage = SqlAlchemySagaStorage.from_url(url)
    try:
        yield storage
    finally:
        await storage.close()


async def rows(storage: SqlAlchemySagaStorage, query: sa.Select[typing.Any]) -> list[typing.Any]:
    async with storage._engine.connect() as conn:
        return list(await conn.execute(query))


def request_id_of(run: subprocess.CompletedProcess[str]) -> uuid.UUID:
    assert run.returncode == 0, run.stderr
    return uuid.UUID(json.loads(run.stdout)["request"])


async def test_start_compensate_recover_requests_are_served_by_a_worker(db_url: str) -> None:
    # A FAILED saga made before any worker lives: the command line serves it itself.
    failed = saga_tui(db_url, "--app", DECLINING, "start", "SubscriptionSaga", "--json")
    assert failed.returncode == 1, failed.stderr
    failed_id = json.loads(failed.stdout)[0]["id"]
    worker = Worker(db_url, RELIABLE, "w1")
    try:
        started = saga_tui(
            db_url, "--app", RELIABLE, "start", "OrderSaga", "--count", "4", "--json"
        )
        assert started.returncode == 0, started.stderr
        ids = [r["id"] for r in json.loads(started.stdout)]
        assert [r["status"] for r in json.loads(started.stdout)] == ["COMPLETED"] * 4
        undo = saga_tui(db_url, "--app", RELIABLE, "compensate", *ids[:2], "--yes", "--json")
        assert undo.returncode == 0, undo.stderr
        assert [r["status"] for r in json.loads(undo.stdout)] == ["COMPENSATED"] * 2
        again = saga_tui(db_url, "--app", RELIABLE, "recover", failed_id, "--json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)[0]["status"] == "COMPENSATED"
        async with opened(db_url) as storage:
            pairs = await rows(storage, sa.select(saga_request_items))
            # Four starts, two compensations, one recovery; the first start (no worker yet)
            # was served by the command line itself.
            served = [p for p in pairs if str(p.saga_id) != failed_id or p.outcome != "FAILED"]
            assert len(pairs) == 8
            assert {p.taken_by for p in served} == {worker.owner}
            assert all(p.outcome is not None for p in pairs)
            book = RequestBook.of(storage)
            workers = await book.workers()
            assert [(w.name, w.served) for w in workers] == [("w1", 7)]
            # The worker's sagas by its name: the four it started and the one it recovered.
            listed = saga_tui(db_url, "list", "--filter", "worker:w1", "--json")
            assert listed.returncode == 0, listed.stderr
            assert {r["id"] for r in json.loads(listed.stdout)} == {*ids, failed_id}
            detail = await storage.get_saga(uuid.UUID(failed_id))
            assert detail is not None
            last = detail.audit[-1]
            # Audited as the operator who asked, with the reason, though a worker ran it.
            assert (last.action, last.reason, last.outcome) == (
                "recover",
                "saga-tui command line",
                "COMPENSATED",
            )
    finally:
        code, out = worker.term()
    assert code == 0, out
    assert "stopped: served 7" in out


async def test_no_wait_returns_the_request_and_a_worker_started_later_serves_it(
    db_url: str,
) -> None:
    run = saga_tui(
        db_url, "--app", RELIABLE, "start", "OrderSaga", "--count", "3", "--no-wait", "--json"
    )
    request_id = request_id_of(run)
    async with opened(db_url) as storage:
        book = RequestBook.of(storage)
        (progress,) = await book.progress([request_id])
        assert (progress.total, progress.done, progress.taken) == (3, 0, 0)
        assert progress.describe() == "start 3 OrderSaga: 0 of 3 done, pending"
        worker = Worker(db_url, RELIABLE, "late")
        try:
            done = await book.wait(request_id, timeout=120)
            assert done.finished and done.failed == 0, done
            assert done.state in ("PENDING", "DONE")
            await wait_for(lambda: _state(book, request_id), 30, what="the request marked DONE")
        finally:
            code, _ = worker.term()
        assert code == 0


async def _state(book: RequestBook, request_id: uuid.UUID) -> bool:
    (progress,) = await book.progress([request_id])
    return progress.state == "DONE"


async def _outcomes_of(storage: SqlAlchemySagaStorage, request_id: uuid.UUID) -> int:
    items = saga_request_items.c
    found = await rows(
        storage,
        sa.select(sa.func.count(items.outcome)).where(items.request_id == request_id),
    )
    return int(found[0][0])


async def test_two_workers_one_killed_every_pair_gets_exactly_one_outcome(
    tmp_path: pathlib.Path, db_url: str
) -> None:
    url = db_url
    first, second = Worker(url, STEADY, "a"), Worker(url, STEADY, "b")
    try:
        start = request_id_of(
            saga_tui(
                url, "--app", STEADY, "start", "OrderSaga", "--count", "500", "--no-wait", "--json"
            )
        )
        async with opened(url) as storage:
            await wait_for(lambda: _at_least(storage, start, 100), 120, what="100 outcomes")
            first.kill()
            items = saga_request_items.c
            held = await rows(
                storage,
                sa.select(items.id).where(items.claimed_by == first.owner, items.outcome.is_(None)),
            )
            owned = await rows(
                storage,
                sa.select(saga_executions.c.id).where(saga_executions.c.lease_owner == first.owner),
            )
            assert held or owned, "the killed worker held nothing: the test proves nothing"
            book = RequestBook.of(storage)
            done = await book.wait(start, timeout=240)
            assert done.finished, done
            # A bulk compensate of a filter (every completed OrderSaga) across two workers.
            third = Worker(url, STEADY, "c")
            try:
                page = await rows(
                    storage,
                    sa.select(saga_executions.c.id).where(
                        saga_executions.c.status == "COMPLETED",
                        saga_executions.c.name == "OrderSaga",
                    ),
                )
                ids = [r.id for r in page]
                assert len(ids) == 500
                undo = await book.submit("compensate", ids, reason="test")
                await wait_for(lambda: _at_least(storage, undo, 100), 120, what="100 undone")
                second.kill()
                undone = await book.wait(undo, timeout=240)
                assert undone.finished and undone.failed == 0, undone
            finally:
                third.term()
            pairs = await rows(storage, sa.select(saga_request_items))
            assert len(pairs) == 1000
            assert len({(p.request_id, p.saga_id) for p in pairs}) == 1000
            assert all(p.outcome is not None and p.ok for p in pairs)
            statuses = await rows(
                storage, sa.select(saga_executions.c.status, sa.func.count()).group_by("status")
            )
            assert dict(statuses) == {"COMPENSATED": 500}
    finally:
        for worker in (first, second):
            worker.close()
    if not url.startswith("sqlite"):
        return  # the sample services keep their ledger in a SQLite file only
    check = subprocess.run(
        [sys.executable, "-m", "sample_sagas", "check", "--db", str(tmp_path / "fleet.db")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


async def _at_least(storage: SqlAlchemySagaStorage, request_id: uuid.UUID, n: int) -> bool:
    return await _outcomes_of(storage, request_id) >= n


async def test_sigterm_during_load_gives_everything_back_and_the_worker_is_gone(
    db_url: str,
) -> None:
    worker = Worker(db_url, SLOW, "stopping", "--concurrency", "8", "--grace", "10")
    try:
        start = request_id_of(
            saga_tui(
                db_url, "--app", SLOW, "start", "TravelSaga", "--count", "30", "--no-wait", "--json"
            )
        )
        async with opened(db_url) as storage:
            await wait_for(lambda: _at_least(storage, start, 2), 120, what="two sagas done")
            code, out = worker.term()
            assert code == 0, out
            assert "stopped" in out
            ex = saga_executions.c
            kept = await rows(storage, sa.select(ex.id).where(ex.lease_owner == worker.owner))
            assert kept == [], "a lease was left to expire"
            items = saga_request_items.c
            held = await rows(storage, sa.select(items.id).where(items.claimed_by == worker.owner))
            assert held == []
            unfinished = await rows(
                storage, sa.select(ex.status, ex.lease_owner).where(ex.status == "RUNNING")
            )
            # Stopped at a step boundary: free for any process at once, nobody's lease.
            assert all(owner is None for _, owner in unfinished)
            book = RequestBook.of(storage)
            (gone,) = await book.workers()
            assert gone.stopped_at is not None and not gone.alive(gone.stopped_at + 0.001)
            assert await book.live_workers() == []
            # Nothing is stranded: the next worker finishes the request.
            after = Worker(db_url, SLOW, "after", "--concurrency", "16")
            try:
                done = await book.wait(start, timeout=240)
                assert done.finished and done.failed == 0, done
                running = await rows(storage, sa.select(ex.id).where(ex.status == "RUNNING"))
                assert running == []
            finally:
                after.term()
    finally:
        worker.close()


@pytest.mark.parametrize(
    ("successor_host", "lease"), [("host-a", "60"), ("host-b", "4")], ids=["same", "other"]
)
async def test_a_dead_owner_is_taken_over_at_once_only_on_its_own_host(
    db_url: str, successor_host: str, lease: str
) -> None:
    # Two simulated hosts on one machine (SAGA_HOST_ID): the dead-owner shortcut applies
    # to owners on this host; another host's leases end by expiry.
    first = Worker(db_url, SLOW, "a", "--lease", lease, "--concurrency", "4", host="host-a")
    try:
        start = request_id_of(
            saga_tui(
                db_url, "--app", SLOW, "start", "TravelSaga", "--count", "40", "--no-wait", "--json"
            )
        )
        async with opened(db_url) as storage:
            ex = saga_executions.c
            held = sa.select(ex.id, ex.lease_expires).where(ex.lease_owner == first.owner)
            await wait_for(lambda: rows(storage, held), 120, what="sagas running on host-a")
            first.kill()
            at_kill = {r.id: r.lease_expires for r in await rows(storage, held)}
            assert at_kill
            logs = saga_logs
            (last_log,) = await rows(storage, sa.select(sa.func.max(logs.c.id)))
            successor = Worker(db_url, SLOW, "b", "--lease", lease, host=successor_host)
            try:
                book = RequestBook.of(storage)
                done = await book.wait(start, timeout=240)
                assert done.finished and done.failed == 0, await book.items(start)
            finally:
                successor.term()
            later = await rows(
                storage,
                sa.select(logs.c.saga_id, sa.func.min(logs.c.created_at))
                .where(logs.c.id > last_log[0], logs.c.saga_id.in_(list(at_kill)))
                .group_by(logs.c.saga_id),
            )
            assert len(later) == len(at_kill)
            for saga_id, first_write in later:
                when = _epoch(first_write)
                if successor_host == "host-a":
                    assert when < at_kill[saga_id], "waited for the lease of a dead local owner"
                else:
                    assert when >= at_kill[saga_id], "took another host's saga before expiry"
    finally:
        first.close()


def _epoch(value: typing.Any) -> float:
    import datetime

    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return float(value.timestamp())


GREETER = "tests.e2e.apps:greeter"


async def test_a_request_nobody_can_serve_says_so_once_until_a_worker_serves_it(
    db_url: str, tmp_path: pathlib.Path
) -> None:
    # GreetingSaga is not in the samples (RELIABLE) and no worker runs: the command line
    # writes the request, says once on stderr that it waits for a worker, and finishes when
    # a worker with the saga type starts. stdout stays the JSON results (stderr a file, not
    # a terminal: no progress lines).
    made = saga_tui(db_url, "--app", GREETER, "start", "GreetingSaga", "--json")
    assert made.returncode == 0, made.stderr
    greeting = json.loads(made.stdout)[0]["id"]
    err = tmp_path / "stderr.txt"
    with err.open("w") as sink:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "saga_tui", "--db", _cli_db(db_url),
                "--app", RELIABLE, "compensate", greeting, "--yes", "--json",
            ],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=sink, stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            await wait_for(lambda: "waiting for a worker" in err.read_text(), 60, what="the wait")
            assert proc.poll() is None
            worker = Worker(db_url, GREETER, "w-greet")
            try:
                out, _ = proc.communicate(timeout=120)
            finally:
                code, _ = worker.term()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    said = err.read_text()
    assert proc.returncode == 0, said
    assert code == 0
    assert [r["status"] for r in json.loads(out)] == ["COMPENSATED"]
    assert said.count("waiting for a worker") == 1, said
    assert "waiting for a worker: none is running; start one with `saga-tui --db " in said
    assert "of 1 done" not in said  # no progress lines on a pipe
    async with opened(db_url) as storage:
        (pair,) = [
            p
            for p in await rows(storage, sa.select(saga_request_items))
            if str(p.saga_id) == greeting and p.outcome == "COMPENSATED"
        ]
        workers = {w.id: w.name for w in await RequestBook.of(storage).workers()}
        assert workers[pair.taken_by] == "w-greet"


async def test_on_a_terminal_the_command_line_shows_how_its_request_goes(
    tmp_path: pathlib.Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}"
    worker = Worker(url, SLOW, "w-slow", "--concurrency", "1")
    try:
        started = saga_tui(url, "--app", SLOW, "start", "OrderSaga", "--count", "3", "--json")
        assert started.returncode == 0, started.stderr
        ids = [r["id"] for r in json.loads(started.stdout)]
        # stderr on a pseudo-terminal, stdout a pipe: progress lines go to the terminal only.
        master, slave = os.openpty()
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "saga_tui", "--db", _cli_db(url), "--app", SLOW,
                "compensate", *ids, "--yes", "--json",
            ],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        os.close(slave)
        seen: list[bytes] = []
        reader = threading.Thread(target=_drain, args=(master, seen), daemon=True)
        reader.start()
        out, _ = proc.communicate(timeout=120)
        reader.join(timeout=30)
        os.close(master)
    finally:
        code, _ = worker.term()
    assert code == 0
    said = b"".join(seen).decode()
    assert proc.returncode == 0, said
    assert [r["status"] for r in json.loads(out)] == ["COMPENSATED"] * 3
    lines = [line.split("\x1b[2K")[-1] for line in said.replace("\r\n", "\n").split("\n")]
    progress = [line for line in lines if re.fullmatch(PROGRESS_LINE, line)]
    assert progress, said
    assert "waiting for a worker" not in said  # a worker with the saga type lives


PROGRESS_LINE = (
    r"request [0-9a-f]{8}: compensate 3 sagas: [0-3] of 3 done, (pending|taken by w-slow)"
)


def _drain(fd: int, into: list[bytes]) -> None:
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the terminal's other end closed
            return
        if not chunk:
            return
        into.append(chunk)
