"""Connection settings: the one place that knows SQLite's pragmas and locking rules."""

from __future__ import annotations

import os
import sqlite3
import typing
import urllib.parse

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from engine.saga.storage.sqlalchemy.db_values import context_to_db

BUSY_TIMEOUT_MS = 30_000
"""How long a connection waits for another writer before SQLite reports "locked"."""

WRITER_OPTION = "saga_writer"
"""Execution option marking a connection whose transactions write (BEGIN IMMEDIATE)."""


def is_sqlite(engine: sa.Engine | AsyncEngine) -> bool:
    """True for SQLite engines of any driver."""
    return engine.dialect.name == "sqlite"


def sqlite_path(url: sa.URL) -> str | None:
    """The file behind a SQLite URL, None for an in-memory database."""
    database = url.database
    if not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        parsed = urllib.parse.urlparse(database)
        if dict(urllib.parse.parse_qsl(parsed.query)).get("mode") == "memory":
            return None
        return parsed.path
    return database


def apply_sqlite_pragmas(dbapi_connection: typing.Any, *, read_only: bool = False) -> None:
    """synchronous=NORMAL, busy_timeout and foreign keys on a fresh connection.

    These change the connection only, never the file: a file that turns out to belong to
    another application is left byte for byte as it was. WAL, which is written into the
    file, is switched on by :func:`use_wal` once the file is known to be ours.
    """
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def use_wal(dbapi_connection: typing.Any) -> None:
    """Put a saga database in WAL mode (persistent in the file) unless it already is.

    Reading the mode takes no lock; changing it does, so this runs only for a file
    that is ours and that a writer opens.
    """
    cursor = dbapi_connection.cursor()
    try:
        mode = cursor.execute("PRAGMA journal_mode").fetchone()
        if not mode or str(mode[0]).lower() != "wal":
            cursor.execute("PRAGMA journal_mode = WAL")
    finally:
        cursor.close()


def install_sqlite_hooks(engine: sa.Engine | AsyncEngine, *, read_only: bool = False) -> None:
    """Attach the pragmas and explicit BEGIN handling to a SQLite engine (idempotent).

    The driver's implicit transactions are turned off so BEGIN is ours: IMMEDIATE on
    connections marked as writers, so they queue on SQLite's lock with the busy timeout
    instead of failing to upgrade a read lock; deferred for readers, which then never
    hold a write lock.
    """
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    if not is_sqlite(sync_engine) or getattr(sync_engine, "_saga_hooks", False):
        return
    sync_engine._saga_hooks = True  # type: ignore[attr-defined]

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: typing.Any, _record: typing.Any) -> None:
        dbapi_connection.isolation_level = None
        apply_sqlite_pragmas(dbapi_connection, read_only=read_only)

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        if conn.get_execution_options().get(WRITER_OPTION) and not read_only:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def read_only_uri(path: str) -> str:
    """A ``mode=ro`` URI for ``path``; ``immutable=1`` too on a read-only file system.

    A WAL database needs its ``-shm`` file even to be read; where that file cannot be
    created (read-only media, a snapshot mount) SQLite can still read the file as
    immutable, since nothing can change it there.
    """
    quoted = urllib.parse.quote(path)
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not os.access(folder, os.W_OK) and not os.path.exists(path + "-shm"):
        return f"file:{quoted}?mode=ro&immutable=1"
    return f"file:{quoted}?mode=ro"


def read_only_url(url: sa.URL) -> sa.URL:
    """The same SQLite database opened through a ``mode=ro`` URI."""
    path = sqlite_path(url)
    if path is None:
        return url
    return url.set(database=read_only_uri(path), query={**url.query, "uri": "true"})


ASYNC_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}
"""The driver a URL without one gets: the async ones this package installs."""


def async_url(url: str | sa.URL) -> sa.URL:
    """``url`` parsed, with the async driver when it names none (``postgresql://`` works)."""
    if isinstance(url, str) and url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    parsed = sa.make_url(url)
    driver = ASYNC_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


def create_engine_for(url: str | sa.URL, *, read_only: bool = False) -> AsyncEngine:
    """An async engine with this package's settings for the URL's dialect."""
    parsed = async_url(url)
    if parsed.get_backend_name() == "sqlite":
        if read_only:
            parsed = read_only_url(parsed)
        engine = create_async_engine(parsed, json_serializer=context_to_db)
        install_sqlite_hooks(engine, read_only=read_only)
        return engine
    return create_async_engine(parsed, pool_pre_ping=True, json_serializer=context_to_db)


def open_raw_sqlite(
    path: str,
    *,
    read_only: bool = False,
    check_same_thread: bool = True,
) -> sqlite3.Connection:
    """A plain sqlite3 connection with the same settings, in autocommit mode."""
    if read_only:
        target = read_only_uri(path)
        conn = sqlite3.connect(
            target,
            uri=True,
            isolation_level=None,
            check_same_thread=check_same_thread,
        )
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread)
    apply_sqlite_pragmas(conn, read_only=read_only)
    return conn


def install_connect_statements(engine: sa.Engine | AsyncEngine, statements: list[str]) -> None:
    """Run ``statements`` on every new connection of ``engine`` (after the pragmas)."""
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: typing.Any, _record: typing.Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for sql in statements:
                cursor.execute(sql)
        finally:
            cursor.close()
