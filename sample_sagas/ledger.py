"""The demo ledger: every side effect of the fake services, in the sagas' own database.

One row per (saga id, step, action); inserts are ``INSERT OR IGNORE`` so a service
call repeated after a crash or a retry records nothing new. Writes from all running
sagas are group-committed by one thread on one connection, so the ledger adds one
commit per batch, not one per call, to the database the engine also writes.

The ledger checks fencing tokens as a real service would: it remembers the highest
fence it has seen per saga and refuses an effect carrying a lower one (a runner that
lost its lease, woken after a pause), and it refuses a ``do`` after that step's
``undo``. Each refusal is recorded in ``demo_ledger_refused`` for ``check`` to report.
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
);
CREATE TABLE IF NOT EXISTS demo_ledger_fences (
    saga_id TEXT PRIMARY KEY,
    fence INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS demo_ledger_refused (
    saga_id TEXT NOT NULL,
    step TEXT NOT NULL,
    action TEXT NOT NULL,
    fence INTEGER,
    reason TEXT NOT NULL,
    time REAL NOT NULL
);
"""


class StaleEffectError(Exception):
    """The ledger refused an effect: an older fence than one it has seen, or a do after undo."""


Effect = tuple[str, str, str, float, "int | None"]
"""(saga id, step, action, time, fence) of one effect to record."""


def refusal(effect: Effect, highest: int | None, undone: bool) -> str | None:
    """Why the ledger refuses ``effect``, given the saga's highest fence and the step's undo."""
    _, step, action, _, fence = effect
    if fence is not None and highest is not None and fence < highest:
        return f"{step} {action} carries fence {fence}, older than fence {highest}"
    if action == "do" and undone:
        return f"{step} do after its undo"
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class LedgerRow:
    """One recorded side effect."""

    saga_id: str
    step: str
    action: Action
    time: float
    seq: int = 0
    """Order of recording (the row's insertion order)."""


class Ledger(typing.Protocol):
    """Where fake services record their side effects."""

    async def record(
        self, saga_id: uuid.UUID, step: str, action: Action, fence: int | None = None
    ) -> None:
        """Record a side effect durably (a repeat is a no-op); StaleEffectError if refused."""
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
        self.fences: dict[str, int] = {}
        self.refused: list[tuple[Effect, str]] = []

    async def record(
        self, saga_id: uuid.UUID, step: str, action: Action, fence: int | None = None
    ) -> None:
        """Record a side effect (a repeat is a no-op); StaleEffectError if refused."""
        key = str(saga_id)
        effect: Effect = (key, step, action, time.time(), fence)
        why = refusal(effect, self.fences.get(key), (key, step, "undo") in self.rows)
        if why is not None:
            self.refused.append((effect, why))
            raise StaleEffectError(why)
        if fence is not None:
            self.fences[key] = max(fence, self.fences.get(key, fence))
        self.rows.setdefault((key, step, action), effect[3])

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
        self._pending: list[tuple[Effect, asyncio.Future[None]]] = []
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
        conn.executescript(SCHEMA)
        return conn

    def _write_batch(self, effects: list[Effect]) -> list[str | None]:
        """Record ``effects`` in one transaction; per effect, why it was refused or None."""
        conn = self._connection()
        # IMMEDIATE: queue on the write lock with the busy timeout instead of failing
        # to upgrade a read lock when the engine's writer commits at the same moment.
        # It also makes each fence check and the write that follows it one atomic step.
        conn.execute("BEGIN IMMEDIATE")
        outcomes: list[str | None] = []
        try:
            for effect in effects:
                saga_id, step, action, moment, fence = effect
                found = conn.execute(
                    "SELECT fence FROM demo_ledger_fences WHERE saga_id = ?", (saga_id,)
                ).fetchone()
                undone = (
                    action == "do"
                    and conn.execute(
                        "SELECT 1 FROM demo_ledger"
                        " WHERE saga_id = ? AND step = ? AND action = 'undo'",
                        (saga_id, step),
                    ).fetchone()
                    is not None
                )
                why = refusal(effect, found[0] if found else None, undone)
                outcomes.append(why)
                if why is not None:
                    conn.execute(
                        "INSERT INTO demo_ledger_refused VALUES (?, ?, ?, ?, ?, ?)",
                        (saga_id, step, action, fence, why, moment),
                    )
                    continue
                if fence is not None:
                    conn.execute(
                        "INSERT INTO demo_ledger_fences (saga_id, fence) VALUES (?, ?) "
                        "ON CONFLICT (saga_id) DO UPDATE SET fence = max(fence, excluded.fence)",
                        (saga_id, fence),
                    )
                conn.execute(
                    "INSERT OR IGNORE INTO demo_ledger (saga_id, step, action, time) "
                    "VALUES (?, ?, ?, ?)",
                    (saga_id, step, action, moment),
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes

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
                effects = [effect for effect, _ in batch]
                try:
                    outcomes = await loop.run_in_executor(
                        self._executor, self._write_batch, effects
                    )
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), why in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if why is None:
                        future.set_result(None)
                    else:
                        future.set_exception(StaleEffectError(why))

    async def record(
        self, saga_id: uuid.UUID, step: str, action: Action, fence: int | None = None
    ) -> None:
        """Record a side effect; returns once it is committed (a repeat is a no-op).

        Raises StaleEffectError when the ledger refuses it (the refusal is recorded).
        """
        wake = self._ensure_task()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(((str(saga_id), step, action, time.time(), fence), future))
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
        rows = conn.execute(
            "SELECT saga_id, step, action, time, rowid FROM demo_ledger ORDER BY rowid"
        ).fetchall()
    finally:
        conn.close()
    return [LedgerRow(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def read_refused(path: str) -> list[tuple[str, str, str, int | None, str]]:
    """Effects the ledger refused: (saga id, step, action, fence, reason), oldest first."""
    target = f"file:{urllib.parse.quote(path)}?mode=ro"
    conn = sqlite3.connect(target, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'demo_ledger_refused'"
        ).fetchone()
        if not exists:
            return []
        rows = conn.execute(
            "SELECT saga_id, step, action, fence, reason FROM demo_ledger_refused ORDER BY rowid"
        ).fetchall()
    finally:
        conn.close()
    return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]
