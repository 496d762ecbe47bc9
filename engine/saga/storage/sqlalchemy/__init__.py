"""SQL storage for sagas: SQLite by default (``sqlite+aiosqlite``), PostgreSQL to scale out."""

from engine.saga.errors import SchemaError
from engine.saga.storage.sqlalchemy.schema import SCHEMA_VERSION
from engine.saga.storage.sqlalchemy.storage import SqlAlchemySagaStorage

__all__ = ["SCHEMA_VERSION", "SchemaError", "SqlAlchemySagaStorage"]
