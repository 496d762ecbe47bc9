"""WAL checkpoints off the commit path: a thread with its own connection copies the WAL back.

With SQLite's default, the COMMIT that takes the WAL past 1,000 pages also runs the
checkpoint (copying pages into the database file, two fsyncs) while every saga of the
batch waits for it. A checkpoint needs no write lock, so the writer connection leaves
them to this thread (a PASSIVE checkpoint soon after commits, at most every INTERVAL)
and checkpoints itself only past WRITER_FALLBACK_PAGES, should this thread fall behind.
"""

from __future__ import annotations

import sqlite3
import threading

from engine.saga.secrets import get_logger
from engine.saga.storage.sqlalchemy.connect import open_raw_sqlite

log = get_logger(__name__)

INTERVAL = 0.05
"""Seconds between two checkpoints while commits keep coming."""

WRITER_FALLBACK_PAGES = 10_000
"""The writer connection's own ``wal_autocheckpoint``: only reached if this thread lags."""


class WalCheckpointer:
    """Runs PASSIVE checkpoints of one database file from a daemon thread."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def committed(self) -> None:
        """Note a commit: a checkpoint follows soon (called from the writer thread)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="saga-sqlite-checkpoint", daemon=True
            )
            self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        try:
            conn = open_raw_sqlite(self._path)
        except sqlite3.Error:
            log.warning("no WAL checkpoint thread for %s; the writer checkpoints", self._path)
            return
        try:
            while True:
                self._wake.wait()
                if self._stop.is_set():
                    return
                self._wake.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:  # another checkpointer runs: the next round catches up
                    log.debug("WAL checkpoint of %s skipped", self._path, exc_info=True)
                # Let commits accumulate: a page written again meanwhile is copied once.
                self._stop.wait(INTERVAL)
        finally:
            conn.close()

    def close(self) -> None:
        """Stop the thread (the last connection to close checkpoints what is left)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
