"""PostgreSQL specifics: the asyncpg group-commit writer and the LISTEN/NOTIFY change hint.

asyncpg is an optional dependency (the ``postgres`` extra); nothing here imports it
until a PostgreSQL database is opened.
"""

from __future__ import annotations

import importlib.util

from sqlalchemy.ext.asyncio import AsyncEngine

from engine.saga.storage.sqlalchemy.writer import BatchWriter, CoreWriter


def has_asyncpg() -> bool:
    """True when the asyncpg driver is installed."""
    return importlib.util.find_spec("asyncpg") is not None


def writer_for(engine: AsyncEngine) -> BatchWriter:
    """The write path for a non-SQLite engine: asyncpg on PostgreSQL, Core elsewhere."""
    if engine.dialect.name == "postgresql" and has_asyncpg():
        from engine.saga.storage.postgres.writer import PostgresWriter

        return PostgresWriter(engine)
    return CoreWriter(engine)


__all__ = ["has_asyncpg", "writer_for"]
