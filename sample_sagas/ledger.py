"""The demo ledger: every side effect of the fake services, in the sagas' own database.

One row per (saga id, step, action); inserts are ``INSERT OR IGNORE`` so a service
call repeated after a crash or a retry records nothing new. Writes from all running
sagas are group-committed by one thread on one connection, so the ledger adds one
commit per batch, not one per call, to the database the engine also writes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import sqlite3
import time
import typing
import urllib.parse
import uuid

Action = typing.Literal["do", "undo"]

BUSY_TIMEOUT_MS = 30_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS demo_ledger (
    saga_id TEXT NOT NULL,
    step TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('do', 'undo')),
    time REAL NOT NULL,
    UNIQUE (saga_id, step, action)
)
"""


@dataclasses.dataclass(frozen=True, slots=True)
class LedgerRow:
    """One recorded side effect."""

    saga_id: str
    step: str
    action: Action
    time: float


class Ledger(typing.Protocol):
    """Where fake services record their side effects."""

    async def record(self, saga_id: uuid.UUID, step: str, action: Action) -> None:
        """Record a side effect durably (a repeat is a no-op)."""
        ...

    async def has(self, saga_id: uuid.UUID, step: str, action: Action) -> bool:
        """True when that side effect was recorded."""
        ...

    def close(self) -> None:
        """Release connections and threads."""
        ...


class MemoryLedger:
    """A ledger in a set, for storages that are not a SQLite file."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str], float] = {}

    async def record(self, saga_id: uuid.UUID, step: str, action: Action) -> None:
        """Record a side effect (a repeat is a no-op)."""
        self.rows.setdefault((str(saga_id), step, action), time.time())

    async def has(self, saga_id: uuid.UUID, step: str, action: Action) -> bool:
        """True when that side effect was recorded."""
        return (str(saga_id), step, action) in self.rows

    def close(self) -> None:
        """Nothing to release."""


class SqliteLedger:
    """The ``demo_ledger`` table of a SQLite file, group-committed from one thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        # One thread owns the connection: sqlite3 objects stay on the thread that uses them.
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ledger")
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[tuple[str, str, str, float], asyncio.Future[None]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def _connection(self) -> sqlite3.Connection:
        # Opened on first use so a read-only dashboard that never runs a saga never writes.
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(SCHEMA)
        return conn

    def _write_batch(self, rows: list[tuple[str, str, str, float]]) -> None:
        conn = self._connection()
        # IMMEDIATE: queue on the write lock with the busy timeout instead of failing
        # to upgrade a read lock when the engine's writer commits at the same moment.
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT OR IGNORE INTO demo_ledger (saga_id, step, action, time) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _has(self, key: tuple[str, str, str]) -> bool:
        row = (
            self._connection()
            .execute("SELECT 1 FROM demo_ledger WHERE saga_id = ? AND step = ? AND action = ?", key)
            .fetchone()
        )
        return row is not None

    def _ensure_task(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._wake is None:
            # A new event loop (one asyncio.run per command): the old task died with its loop.
            self._loop = loop
            self._wake = asyncio.Event()
            self._task = None
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        return self._wake

    async def _drain(self) -> None:
        assert self._wake is not None and self._loop is not None
        loop = self._loop
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending, []
                rows = [row for row, _ in batch]
                try:
                    await loop.run_in_executor(self._executor, self._write_batch, rows)
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)

    async def record(self, saga_id: uuid.UUID, step: str, action: Action) -> None:
        """Record a side effect; returns once it is committed (a repeat is a no-op)."""
        wake = self._ensure_task()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(((str(saga_id), step, action, time.time()), future))
        wake.set()
        await future

    async def has(self, saga_id: uuid.UUID, step: str, action: Action) -> bool:
        """True when that side effect was committed."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._has, (str(saga_id), step, action))

    def close(self) -> None:
        """Cancel the writer task, close the connection and stop the thread."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._conn is not None:
            self._executor.submit(self._conn.close).result()
            self._conn = None
        self._executor.shutdown(wait=True)


def read_ledger(path: str) -> list[LedgerRow]:
    """Every ledger row of a database file (empty when the table does not exist)."""
    target = f"file:{urllib.parse.quote(path)}?mode=ro"
    conn = sqlite3.connect(target, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'demo_ledger'"
        ).fetchone()
        if not exists:
            return []
        rows = conn.execute("SELECT saga_id, step, action, time FROM demo_ledger").fetchall()
    finally:
        conn.close()
    return [LedgerRow(r[0], r[1], r[2], r[3]) for r in rows]
