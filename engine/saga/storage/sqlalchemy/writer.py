"""The write path: group commit of checkpoints, one transaction per batch.

``apply()`` queues its checkpoint with a future; one writer task takes everything queued,
writes it in ONE transaction and resolves the futures once the COMMIT returned.
Concurrent sagas therefore share commits, and round trips per durable checkpoint stay
minimal. A lost lease or a missing saga fails only its own checkpoint: both are found
before that checkpoint wrote anything. Any other failure inside a checkpoint rolls the
batch back and runs it again with a SAVEPOINT around each checkpoint, so only the
culprit fails. "database is locked" is retried, never reported.

On SQLite the batch runs in one dedicated thread on a plain sqlite3 connection with
hand-written standard SQL (``raw_checkpoint``; DESIGN.md section 4: each driver call is
what costs);
other write operations run as Core functions in that same thread, so this process has
a single writer connection. Other dialects run the Core functions of ``commands``
through the async engine.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import sqlite3
import time
import typing

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from engine.saga.errors import SagaStorageError
from engine.saga.secrets import get_logger
from engine.saga.storage.models import Checkpoint, CheckpointResult
from engine.saga.storage.sqlalchemy import commands, db_values
from engine.saga.storage.sqlalchemy.connect import BUSY_TIMEOUT_MS, WRITER_OPTION, use_wal
from engine.saga.storage.sqlalchemy.raw_checkpoint import INSERT_LOG, apply_raw
from engine.saga.storage.sqlalchemy.schema import saga_logs
from engine.saga.storage.sqlalchemy.wal import WRITER_FALLBACK_PAGES, WalCheckpointer

log = get_logger(__name__)

R = typing.TypeVar("R")
Job = typing.Callable[[sa.Connection], typing.Any]

LOCK_RETRY_SECONDS = 300.0
"""How long a write keeps retrying while another connection holds the write lock."""

MAX_BATCH = 2000
"""Checkpoints per transaction; bounds the time one commit holds the lock."""

WRITER_CACHE_KIB = -32_768
"""The writer connection's page cache (negative: KiB, so 32 MiB; SQLite's default is 2)."""

INLINE_BATCH = 8
"""Up to this many queued checkpoints are written on the event loop's thread (see
``SqliteWriter._run_inline``); larger batches go to the writer thread, where their SQL
overlaps with the sagas' own work."""

_EXPECTED = (SagaStorageError,)
"""Per-checkpoint refusals raised before that checkpoint wrote anything (a lost lease, a
missing or duplicate saga): they fail one future and leave the rest of the batch. Any
other failure may come after part of the checkpoint was written: the batch runs again
with a SAVEPOINT around each checkpoint."""


def is_lock_error(exc: BaseException) -> bool:
    """True for SQLite's "database is locked" / busy, which a retry resolves."""
    orig = getattr(exc, "orig", exc)
    if not isinstance(orig, sqlite3.OperationalError):
        return False
    text = str(orig).lower()
    return "locked" in text or "busy" in text


@dataclasses.dataclass(slots=True)
class _Item:
    future: asyncio.Future[typing.Any]
    checkpoint: Checkpoint | None = None
    job: Job | None = None


class BatchWriter:
    """Queues writes and runs them in batches from one writer task (group commit)."""

    def __init__(self) -> None:
        self._pending: list[_Item] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.commits = 0

    async def apply(self, checkpoint: Checkpoint) -> CheckpointResult:
        """Write one checkpoint; returns when its batch is committed."""
        result: CheckpointResult = await self._submit(checkpoint=checkpoint)
        return result

    async def run(self, job: typing.Callable[[sa.Connection], R]) -> R:
        """Run a Core write function in its own transaction on the writer connection."""
        result: R = await self._submit(job=job)
        return result

    async def _submit(
        self, *, checkpoint: Checkpoint | None = None, job: Job | None = None
    ) -> typing.Any:
        if self._closed:
            raise SagaStorageError("storage is closed")
        loop = asyncio.get_running_loop()
        item = _Item(loop.create_future(), checkpoint, job)
        self._pending.append(item)
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._drain(), name="saga-storage-writer")
        assert self._wake is not None
        self._wake.set()
        return await item.future

    async def _drain(self) -> None:
        assert self._wake is not None
        wake = self._wake
        while True:
            await wake.wait()
            wake.clear()
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                try:
                    outcomes = await self._execute(batch)
                except Exception as exc:  # the whole batch failed: every waiter learns why
                    outcomes = [exc] * len(batch)
                for item, outcome in zip(batch, outcomes, strict=True):
                    if item.future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        item.future.set_exception(outcome)
                    else:
                        item.future.set_result(outcome)
            if self._closed:
                return

    async def _execute(self, batch: list[_Item]) -> list[typing.Any]:
        raise NotImplementedError

    async def close(self) -> None:
        """Finish queued writes and stop the writer task."""
        self._closed = True
        task = self._task
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            assert self._wake is not None
            self._wake.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=LOCK_RETRY_SECONDS)
        self._task = None


# ---- SQLite: one thread, one connection, raw SQL for checkpoints ----------------------


class SqliteWriter(BatchWriter):
    """Group commit on one dedicated thread that owns the process's writer connection."""

    def __init__(self, sync_engine: sa.Engine) -> None:
        super().__init__()
        self._engine = sync_engine
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="saga-sqlite-writer",
        )
        self._conn: sa.Connection | None = None
        self._inline = False  # the connection's busy timeout is 0 while writing inline
        path = sync_engine.url.database
        self._checkpointer = WalCheckpointer(path) if path and path != ":memory:" else None

    def _connection(self) -> sa.Connection:
        if self._conn is None:
            conn = self._engine.connect().execution_options(**{WRITER_OPTION: True})
            try:
                # The first write of this process: the file is ours (checked on open).
                _retry_locked(lambda: use_wal(conn.connection.driver_connection))
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            if self._checkpointer is not None:
                raw = typing.cast(sqlite3.Connection, conn.connection.driver_connection)
                raw.execute(f"PRAGMA wal_autocheckpoint = {WRITER_FALLBACK_PAGES}")
            # Every checkpoint touches the saga row, a few index pages and the log's
            # last pages: a cache that holds them spares a read syscall per page.
            driver = typing.cast(sqlite3.Connection, conn.connection.driver_connection)
            driver.execute(f"PRAGMA cache_size = {WRITER_CACHE_KIB}")
        return self._conn

    async def _execute(self, batch: list[_Item]) -> list[typing.Any]:
        if self._conn is not None and len(batch) <= INLINE_BATCH:
            outcomes = self._run_inline(batch)
            if outcomes is not None:
                return outcomes
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run_batch, batch)

    def _run_inline(self, batch: list[_Item]) -> list[typing.Any] | None:
        """A small batch of checkpoints on the event loop's thread, or None when it cannot.

        Two thread hops cost more than the transaction itself (on a small VM a hop is
        ~80 us each way, a WAL commit ~50 us), so a few checkpoints are written here.
        Never blocking: the lock is tried once (busy timeout 0); when another connection
        holds it, or the batch carries other jobs, the writer thread takes the batch and
        waits for the lock as usual. Only the writer task calls this, never while the
        thread runs a batch, so the connection is used by one thread at a time.
        """
        if any(item.checkpoint is None for item in batch):
            return None
        assert self._conn is not None
        raw = typing.cast(sqlite3.Connection, self._conn.connection.driver_connection)
        if not self._inline:
            raw.execute("PRAGMA busy_timeout = 0")
            self._inline = True
        items = [(i, typing.cast(Checkpoint, it.checkpoint)) for i, it in enumerate(batch)]
        try:
            return self._checkpoints(self._conn, items)
        except sqlite3.OperationalError as exc:
            if is_lock_error(exc):
                return None  # nothing was written: the thread waits for the lock
            raise

    def _threaded(self) -> None:
        """Back to the busy timeout before the thread uses the connection."""
        if self._inline and self._conn is not None:
            raw = typing.cast(sqlite3.Connection, self._conn.connection.driver_connection)
            raw.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._inline = False

    def _run_batch(self, batch: list[_Item]) -> list[typing.Any]:
        conn = self._connection()
        self._threaded()
        outcomes: list[typing.Any] = [None] * len(batch)
        checkpoints = [
            (i, it.checkpoint) for i, it in enumerate(batch) if it.checkpoint is not None
        ]
        if checkpoints:
            results = _retry_locked(lambda: self._checkpoints(conn, checkpoints))
            for (i, _), result in zip(checkpoints, results, strict=True):
                outcomes[i] = result
        jobs = [(i, item.job) for i, item in enumerate(batch) if item.job is not None]
        if len(jobs) == 1:
            outcomes[jobs[0][0]] = self._job(conn, jobs[0][1])
        elif jobs:
            for (i, _), outcome in zip(jobs, self._jobs(conn, [j for _, j in jobs]), strict=True):
                outcomes[i] = outcome
        return outcomes

    def _checkpoints(
        self,
        conn: sa.Connection,
        items: list[tuple[int, Checkpoint]],
    ) -> list[typing.Any]:
        raw = typing.cast(sqlite3.Connection, conn.connection.driver_connection)
        try:
            return self._commit_batch(raw, items, isolate=False)
        except sqlite3.OperationalError:
            raise
        except Exception:
            # A checkpoint failed after writing part of itself: run the batch again with
            # a SAVEPOINT around each one so only the culprit fails.
            return self._commit_batch(raw, items, isolate=True)

    def _commit_batch(
        self,
        raw: sqlite3.Connection,
        items: list[tuple[int, Checkpoint]],
        *,
        isolate: bool,
    ) -> list[typing.Any]:
        now = db_values.time_to_db(db_values.utcnow())
        results: list[typing.Any] = []
        logs: list[tuple[typing.Any, ...]] = []
        raw.execute("BEGIN IMMEDIATE")
        try:
            for _, cp in items:
                if not isolate:
                    try:
                        results.append(apply_raw(raw, cp, now, logs))
                    except _EXPECTED as exc:
                        results.append(exc)
                    continue
                raw.execute("SAVEPOINT cp")
                try:
                    results.append(apply_raw(raw, cp, now))
                except sqlite3.OperationalError:
                    raise
                except Exception as exc:
                    raw.execute("ROLLBACK TO cp")
                    results.append(exc)
                raw.execute("RELEASE cp")
            if logs:
                raw.executemany(INSERT_LOG, logs)
            raw.execute("COMMIT")
        except BaseException:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raise
        self.commits += 1
        if self._checkpointer is not None:
            self._checkpointer.committed()
        return results

    def _jobs(self, conn: sa.Connection, jobs: list[Job]) -> list[typing.Any]:
        """Several jobs in one transaction, each in a SAVEPOINT: one that fails is rolled
        back alone and its exception is its outcome (as in a transaction of its own)."""

        def once() -> list[typing.Any]:
            outcomes: list[typing.Any] = []
            try:
                with conn.begin():
                    for job in jobs:
                        savepoint = conn.begin_nested()
                        try:
                            outcomes.append(job(conn))
                        except sa.exc.OperationalError as exc:
                            if is_lock_error(exc):
                                raise  # the whole lot runs again
                            savepoint.rollback()
                            outcomes.append(exc)
                        except Exception as exc:
                            savepoint.rollback()
                            outcomes.append(exc)
                        else:
                            savepoint.commit()
            except BaseException:
                if conn.in_transaction():
                    conn.rollback()
                raise
            return outcomes

        try:
            return _retry_locked(once)
        except Exception as exc:
            return [exc] * len(jobs)

    def _job(self, conn: sa.Connection, job: Job) -> typing.Any:
        def once() -> typing.Any:
            try:
                with conn.begin():
                    return job(conn)
            except BaseException:
                if conn.in_transaction():
                    conn.rollback()
                raise

        try:
            return _retry_locked(once)
        except Exception as exc:
            return exc

    async def close(self) -> None:
        """Drain, then close the connection in its own thread and stop the thread."""
        await super().close()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):
            await loop.run_in_executor(self._executor, self._close_conn)
        self._executor.shutdown(wait=True)
        if self._checkpointer is not None:
            self._checkpointer.close()

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _retry_locked(fn: typing.Callable[[], R]) -> R:
    """Run ``fn``; while SQLite says locked/busy, back off and run it again."""
    deadline = time.monotonic() + LOCK_RETRY_SECONDS
    delay = 0.01
    while True:
        try:
            return fn()
        except (sqlite3.OperationalError, sa.exc.OperationalError) as exc:
            if not is_lock_error(exc) or time.monotonic() > deadline:
                raise
            log.warning("saga storage: database is locked, retrying in %.2fs", delay)
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


# ---- other dialects: Core through the async engine ---------------------------------------


class CoreWriter(BatchWriter):
    """Group commit through SQLAlchemy Core on an async engine (PostgreSQL and others)."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self._engine = engine.execution_options(**{WRITER_OPTION: True})

    async def _execute(self, batch: list[_Item]) -> list[typing.Any]:
        outcomes: list[typing.Any] = [None] * len(batch)
        checkpoints = [
            (i, it.checkpoint) for i, it in enumerate(batch) if it.checkpoint is not None
        ]
        if checkpoints:
            items = [cp for _, cp in checkpoints]
            try:
                results = await _retry_locked_async(
                    lambda conn: _core_checkpoints(conn, items, isolate=False),
                    self._engine,
                )
            except sa.exc.OperationalError:
                raise
            except Exception:
                # Something failed mid-checkpoint (and PostgreSQL aborts the whole
                # transaction on any error): run again with a SAVEPOINT per checkpoint.
                results = await _retry_locked_async(
                    lambda conn: _core_checkpoints(conn, items, isolate=True),
                    self._engine,
                )
            self.commits += 1
            for (i, _), result in zip(checkpoints, results, strict=True):
                outcomes[i] = result
        for i, item in enumerate(batch):
            if item.job is not None:
                try:
                    outcomes[i] = await _retry_locked_async(item.job, self._engine)
                except Exception as exc:
                    outcomes[i] = exc
        return outcomes


def _core_checkpoints(
    conn: sa.Connection,
    items: list[Checkpoint],
    *,
    isolate: bool,
) -> list[typing.Any]:
    now = db_values.utcnow()
    results: list[typing.Any] = []
    logs: list[dict[str, typing.Any]] = []
    for cp in items:
        if not isolate:
            # Lost lease and missing saga are found by an UPDATE that matched nothing:
            # no statement failed and nothing was written, so no SAVEPOINT is needed;
            # the batch's log rows go in one INSERT, in checkpoint order.
            try:
                results.append(commands.apply_checkpoint(conn, cp, now, defer_logs=logs))
            except SagaStorageError as exc:
                results.append(exc)
            continue
        try:
            with conn.begin_nested():
                results.append(commands.apply_checkpoint(conn, cp, now))
        except sa.exc.OperationalError:
            raise  # locked/busy or a lost connection: the whole batch is retried or fails
        except Exception as exc:
            results.append(exc)
    if logs:
        conn.execute(sa.insert(saga_logs), logs)
    return results


async def _retry_locked_async(job: Job, engine: AsyncEngine) -> typing.Any:
    deadline = time.monotonic() + LOCK_RETRY_SECONDS
    delay = 0.01
    while True:
        try:
            async with engine.begin() as conn:
                return await conn.run_sync(job)
        except sa.exc.OperationalError as exc:
            if not is_lock_error(exc) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


__all__ = ["BatchWriter", "CoreWriter", "SqliteWriter", "apply_raw"]
