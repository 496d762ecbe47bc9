"""Shared test helpers: waiting with a deadline, and a throwaway PostgreSQL database.

Tests never sleep and then assert; they wait for the condition they need (or a
subprocess's next line) and fail with a message naming it when the deadline passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import pathlib
import queue
import subprocess
import sys
import threading
import time
import typing
import uuid
import weakref

Condition = typing.Callable[[], typing.Any]
R = typing.TypeVar("R")

POSTGRES_URL = os.environ.get("SAGA_TEST_POSTGRES_URL", "")
"""A PostgreSQL server for the storage tests when one is given (.ci/run starts one):
postgresql://user:password@host:port/maintenance-db"""


async def postgres_admin(*sql: str) -> None:
    """Run ``sql`` statements, in order, on the test server's maintenance database."""
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        for statement in sql:
            await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def postgres_database() -> typing.AsyncIterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards; yields its URL."""
    name = f"saga_test_{uuid.uuid4().hex[:16]}"
    await postgres_admin(f'CREATE DATABASE "{name}"')
    base = POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        await postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_async(coro: typing.Coroutine[typing.Any, typing.Any, R]) -> R:
    """Run a coroutine to its end from synchronous code, on a loop in its own thread."""
    box: list[typing.Any] = []

    def target() -> None:
        try:
            box.append((True, asyncio.run(coro)))
        except BaseException as exc:
            box.append((False, exc))

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    ok, value = box[0]
    if not ok:
        raise value
    return typing.cast(R, value)


@contextlib.contextmanager
def postgres_database_sync() -> typing.Iterator[str]:
    """``postgres_database`` for synchronous tests and fixtures."""
    name = f"saga_test_{uuid.uuid4().hex[:16]}"
    run_async(postgres_admin(f'CREATE DATABASE "{name}"'))
    base = POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        run_async(postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


ROLE_PASSWORD = "Distinct7PW"
"""The password of :func:`postgres_role_database`'s role: in no other text of a test."""


@contextlib.contextmanager
def postgres_role_database() -> typing.Iterator[str]:
    """A fresh database owned by a fresh login role with :data:`ROLE_PASSWORD`; its URL.

    The server's own test URL has a password equal to its user name, so a test that
    looks for a leaked password needs one that appears nowhere else.
    """
    admin = postgres_admin
    suffix = uuid.uuid4().hex[:12]
    role, name = f"saga_role_{suffix}", f"saga_test_{suffix}"
    run_async(
        admin(
            f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{ROLE_PASSWORD}'",
            f'CREATE DATABASE "{name}" OWNER "{role}"',
        )
    )
    host = POSTGRES_URL.rsplit("@", 1)[-1].split("/", 1)[0]
    try:
        yield f"postgresql+asyncpg://{role}:{ROLE_PASSWORD}@{host}/{name}"
    finally:
        run_async(
            admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'DROP ROLE IF EXISTS "{role}"')
        )


def pg_fetch(url: str, sql: str, *args: typing.Any) -> list[tuple[typing.Any, ...]]:
    """The rows of one query on a PostgreSQL database (a SQLAlchemy or libpq URL)."""
    import asyncpg

    async def fetch() -> list[tuple[typing.Any, ...]]:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
        try:
            return [tuple(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return run_async(fetch())


async def wait_for(
    condition: Condition,
    timeout: float = 10.0,
    *,
    interval: float = 0.02,
    what: str = "condition",
    sleep: typing.Callable[[float], typing.Awaitable[typing.Any]] | None = None,
) -> typing.Any:
    """Await until ``condition()`` (sync or async) is truthy; return its value.

    ``sleep`` replaces ``asyncio.sleep`` between tries (``pilot.pause`` under Textual, so
    the app processes its messages while the test waits).
    """
    pause = sleep or asyncio.sleep
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pause(interval)


def wait_for_sync(
    condition: Condition,
    timeout: float = 10.0,
    *,
    interval: float = 0.02,
    what: str = "condition",
    sleep: typing.Callable[[float], typing.Any] = time.sleep,
) -> typing.Any:
    """The same as :func:`wait_for` outside an event loop.

    ``sleep`` replaces ``time.sleep`` between tries (a Playwright page's wait, so the
    browser's events are delivered while the test waits).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        sleep(interval)


_READERS: weakref.WeakKeyDictionary[subprocess.Popen[str], queue.Queue[str | None]] = (
    weakref.WeakKeyDictionary()
)


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """A queue fed by one thread reading ``proc``'s stdout (None once it closes).

    A thread, not ``select``: a select on the pipe cannot see lines already pulled into
    Python's read buffer, so a second line arriving in the same chunk would be missed.
    """
    lines = _READERS.get(proc)
    if lines is None:
        assert proc.stdout is not None
        stdout = proc.stdout
        lines = _READERS[proc] = queue.Queue()

        def pump(out: typing.IO[str] = stdout, into: queue.Queue[str | None] = lines) -> None:
            try:
                for line in out:
                    into.put(line)
            except (OSError, ValueError):
                pass  # the pipe was closed under us
            into.put(None)

        threading.Thread(target=pump, daemon=True, name=f"stdout-{proc.pid}").start()
    return lines


def read_line(proc: subprocess.Popen[str], timeout: float = 30.0, *, what: str = "") -> str:
    """The next stdout line of ``proc`` (stripped).

    Fails with the process's stderr when it exits first, and after ``timeout`` seconds.
    """
    lines = _lines(proc)
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"process said nothing in {timeout}s {what}".rstrip()) from None
    if line is None:
        lines.put(None)  # stays closed for the next reader
        proc.wait(timeout=10)
        err = proc.stderr.read() if proc.stderr is not None else ""
        raise AssertionError(f"process exited {proc.returncode} {what}: {err}")
    return line.strip()


def read_until(
    proc: subprocess.Popen[str],
    predicate: typing.Callable[[str], bool],
    timeout: float = 30.0,
    *,
    what: str = "a matching line",
) -> str:
    """Read stdout lines until one satisfies ``predicate``; return it."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        line = read_line(proc, left, what=f"(waiting for {what})")
        if predicate(line):
            return line


# ---- a hostile database --------------------------------------------------------------

EVIL = "\u202e\u200b\u2066\x1b]0;pwned\x07\x1b[2J\x9b31m\x85\x00end"
FORBIDDEN = ("\x1b", "\x07", "\x9b", "\x85", "\u202e", "\u200b", "\u2066", "\x00")


def assert_harmless(text: str, where: str) -> None:
    """Fail naming ``where`` when ``text`` carries any raw character of EVIL."""
    found = [repr(c) for c in FORBIDDEN if c in text]
    assert not found, f"{where} shows raw {found}"


async def hostile_sagas(storage: typing.Any) -> tuple[uuid.UUID, uuid.UUID]:
    """One saga with a hostile name; one OrderSaga with hostile steps, errors, context.

    Control characters of every kind in every text column (see EVIL), operator and
    reason included: no output path may show them raw.
    """
    from engine.saga.storage.enums import SagaStatus, SagaStepStatus
    from engine.saga.storage.models import (
        Checkpoint,
        ErrorInfo,
        LogWrite,
        NewSaga,
        OperatorAction,
    )

    named = uuid.uuid4()
    await storage.apply(
        Checkpoint(
            saga_id=named,
            create=NewSaga(name=f"Saga{EVIL}", context={f"k{EVIL}": EVIL}, step_count=2),
            status=SagaStatus.RUNNING,
            current_step=f"Step{EVIL}",
            logs=(LogWrite(f"Step{EVIL}", "act", SagaStepStatus.STARTED),),
        )
    )
    order = uuid.uuid4()
    error = ErrorInfo(f"Err{EVIL}", f"message {EVIL}", f"Traceback\n  line {EVIL}")
    await storage.apply(
        Checkpoint(
            saga_id=order,
            create=NewSaga(name="OrderSaga", context={f"key{EVIL}": [EVIL]}, step_count=3),
            status=SagaStatus.FAILED,
            current_step=f"Charge{EVIL}",
            error=error,
            logs=(
                LogWrite(f"Reserve{EVIL}", "act", SagaStepStatus.STARTED),
                LogWrite(f"Reserve{EVIL}", "act", SagaStepStatus.COMPLETED),
                LogWrite(f"Charge{EVIL}", "act", SagaStepStatus.STARTED),
                LogWrite(f"Charge{EVIL}", "act", SagaStepStatus.FAILED, error=error),
                LogWrite(f"Reserve{EVIL}", "compensate", SagaStepStatus.FAILED, error=error),
            ),
        )
    )
    for saga_id in (named, order):
        await storage.record_operator_action(
            OperatorAction(saga_id, "recover", f"reason {EVIL}", f"user{EVIL}", f"host{EVIL}", EVIL)
        )
    return named, order


@contextlib.contextmanager
def write_locked(db: str | os.PathLike[str]) -> typing.Iterator[None]:
    """Another process holds ``BEGIN IMMEDIATE`` on the SQLite file ``db`` meanwhile."""
    import sys

    locker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(locker, 60, what="the locker") == "locked"
        yield
    finally:
        assert locker.stdin is not None
        locker.stdin.close()
        locker.wait(timeout=30)


ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_module(*args: str, module: str = "saga_tui") -> subprocess.CompletedProcess[str]:
    """``python -m module args`` in its own process: no terminal, nothing on stdin."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        input="",
        timeout=120,
        check=False,
    )
