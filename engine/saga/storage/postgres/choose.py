"""Where the SQL storage picks its PostgreSQL parts (imported without asyncpg)."""

from __future__ import annotations

import importlib.util
import typing

from sqlalchemy.ext.asyncio import AsyncEngine

from engine.saga.storage.sqlalchemy.writer import BatchWriter, CoreWriter

if typing.TYPE_CHECKING:
    from engine.saga.storage.postgres.listen import ChangeListener


def has_asyncpg() -> bool:
    """True when the asyncpg driver is installed."""
    return importlib.util.find_spec("asyncpg") is not None


def writer_for(engine: AsyncEngine) -> BatchWriter:
    """The write path for a non-SQLite engine: asyncpg on PostgreSQL, Core elsewhere."""
    if engine.dialect.name == "postgresql" and has_asyncpg():
        from engine.saga.storage.postgres.writer import PostgresWriter

        return PostgresWriter(engine)
    return CoreWriter(engine)


def change_listener(engine: AsyncEngine) -> ChangeListener | None:
    """A LISTEN connection for the engine's PostgreSQL database; None elsewhere."""
    if engine.dialect.name != "postgresql" or not has_asyncpg():
        return None
    from engine.saga.storage.postgres.listen import ChangeListener
    from engine.saga.storage.postgres.writer import asyncpg_dsn

    return ChangeListener(asyncpg_dsn(engine.url))


__all__ = ["change_listener", "has_asyncpg", "writer_for"]
