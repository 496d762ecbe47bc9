"""A python-cqrs PostgreSQL database, shown read-only in the current layout.

python-cqrs keeps the status in native enum types (``sagastatus`` has no COMPENSATED)
and has none of this engine's columns or tables. As on SQLite (``migrations.
legacy_views``), each connection gets TEMP views named like the tables; PostgreSQL
searches the session's temp schema first, so every query of this package reads them
unchanged: statuses as text, missing columns as typed defaults, counts grouped on the
fly, an empty audit.
"""

from __future__ import annotations

import typing

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from engine.saga.storage.sqlalchemy import schema


def _default(column: sa.Column[typing.Any], dialect: sa.Dialect) -> str:
    kind = column.type.compile(dialect=dialect)
    default = column.server_default
    if isinstance(default, sa.DefaultClause) and isinstance(default.arg, sa.TextClause):
        return f"CAST({default.arg.text} AS {kind})"
    return f"CAST(NULL AS {kind})"


def legacy_views(conn: sa.Connection) -> list[str]:
    """TEMP views over the python-cqrs tables in the connection's default schema."""
    inspector = sa.inspect(conn)
    home = inspector.default_schema_name or "public"
    out = []
    for table in (schema.saga_executions, schema.saga_logs):
        present = {c["name"] for c in inspector.get_columns(table.name, schema=home)}
        cols = []
        for column in table.columns:
            if column.name == "status":
                cols.append("CAST(status AS text) AS status")  # a native enum there
            elif column.name in present:
                cols.append(column.name)
            else:
                cols.append(f"{_default(column, conn.dialect)} AS {column.name}")
        out.append(
            f"CREATE OR REPLACE TEMP VIEW {table.name} AS "
            f'SELECT {", ".join(cols)} FROM "{home}".{table.name}'
        )
    out.append(
        "CREATE OR REPLACE TEMP VIEW saga_status_counts AS SELECT CAST(status AS text) AS status,"
        f' CAST(COUNT(*) AS integer) AS n FROM "{home}".saga_executions GROUP BY status',
    )
    audit = ", ".join(
        f"CAST(NULL AS {c.type.compile(dialect=conn.dialect)}) AS {c.name}"
        for c in schema.saga_audit.columns
    )
    out.append(f"CREATE OR REPLACE TEMP VIEW saga_audit AS SELECT {audit} WHERE false")
    return out


def install_views(engine: AsyncEngine, statements: list[str]) -> None:
    """Create the views on every new connection of ``engine``, committed so they stay."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: typing.Any, _record: typing.Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for sql in statements:
                cursor.execute(sql)
        finally:
            cursor.close()
        # The driver opened a transaction; the pool's rollback on return would undo them.
        dbapi_connection.commit()
