"""LISTEN saga_changes: the hint that another process committed, on PostgreSQL.

A hint only (procrastinate's rule): a notification can be lost (the connection dropped,
the server restarted, a writer that does not notify), so readers keep polling as the
guarantee; the hint only lets them see a commit at once instead of at the next poll.
The connection is made again after it is lost, with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import typing

import asyncpg

from engine.saga.secrets import get_logger
from engine.saga.storage.postgres.statements import CHANNEL

log = get_logger(__name__)

RECONNECT_MAX = 5.0
"""Longest wait between two attempts to listen again after the connection was lost."""


class ChangeListener:
    """One LISTEN connection that calls every subscriber on each notification."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self.callbacks: list[typing.Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self.listening = asyncio.Event()
        self.connections = 0
        """How many times a LISTEN connection was made (a reconnect adds one)."""

    def start(self) -> None:
        """Begin listening in a background task (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="saga-change-listener"
            )

    def _notified(self, *_args: typing.Any) -> None:
        for callback in list(self.callbacks):
            callback()

    async def _run(self) -> None:
        delay = 0.1
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self._dsn)
                self._conn = conn
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._notified)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.debug("saga changes: cannot listen (%s), retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            delay = 0.1
            self.connections += 1
            self.listening.set()
            # Anything committed while no one listened is missed: tell subscribers once.
            self._notified()
            await lost.wait()
            self.listening.clear()
            self._conn = None

    async def close(self) -> None:
        """Stop listening and close the connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), timeout=5)
            except Exception:
                conn.terminate()
