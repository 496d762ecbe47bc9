"""Schema version table and ordered forward migrations, run once when storage opens."""

from __future__ import annotations

import os
import typing

import sqlalchemy as sa
from sqlalchemy.schema import CreateColumn

from engine.saga.errors import SchemaError
from engine.saga.storage.sqlalchemy import schema


def _fresh(conn: sa.Connection) -> None:
    schema.metadata.create_all(conn)
    for ddl in schema.count_trigger_ddl(conn.dialect.name):
        conn.exec_driver_sql(ddl)


def _add_missing_columns(conn: sa.Connection, table: sa.Table) -> None:
    present = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    for column in table.columns:
        if column.name in present:
            continue
        # Compiled from the Column itself so a migrated table matches a fresh one.
        ddl = CreateColumn(column).compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {ddl}")


def _rebuild_sqlite_logs(conn: sa.Connection) -> None:
    """Recreate saga_logs with an INTEGER PRIMARY KEY (SQLite's rowid), keeping rows."""
    old = {c["name"] for c in sa.inspect(conn).get_columns("saga_logs")}
    scratch = sa.MetaData()
    schema.saga_executions.to_metadata(scratch)
    new = schema.saga_logs.to_metadata(scratch, name="_saga_logs_v2")
    new.create(conn)
    keep = [c.name for c in schema.saga_logs.columns if c.name in old]
    cols = ", ".join(keep)
    conn.exec_driver_sql(f"INSERT INTO _saga_logs_v2 ({cols}) SELECT {cols} FROM saga_logs")
    conn.exec_driver_sql("DROP TABLE saga_logs")
    conn.exec_driver_sql("ALTER TABLE _saga_logs_v2 RENAME TO saga_logs")


_SQLITE_TIMES = (
    ("saga_executions", "created_at"),
    ("saga_executions", "updated_at"),
    ("saga_logs", "created_at"),
)
"""Columns python-cqrs fills with CURRENT_TIMESTAMP, which has no fraction of a second."""


def _full_time(column: str) -> str:
    # Keyset pages compare times as text: '12:00:00' sorts before '12:00:00.000000', so
    # a row at a page boundary would repeat unless every time has the same form.
    return f"{column} || '.000000'"


def _v1_to_v2(conn: sa.Connection) -> None:
    """python-cqrs's layout -> ours: new columns, SQLite-safe log ids, audit, counts."""
    _add_missing_columns(conn, schema.saga_executions)
    if conn.dialect.name == "sqlite":
        _rebuild_sqlite_logs(conn)
        for table_name, column in _SQLITE_TIMES:
            conn.exec_driver_sql(
                f"UPDATE {table_name} SET {column} = {_full_time(column)}"
                f" WHERE length({column}) = 19",
            )
    else:
        _add_missing_columns(conn, schema.saga_logs)
    for index in (*schema.SAGA_INDEXES, *schema.LOG_INDEXES):
        index.create(conn, checkfirst=True)
    for table in (
        schema.saga_audit,
        schema.saga_status_counts,
        schema.saga_failure_counts,
        schema.saga_schema_version,
    ):
        table.create(conn, checkfirst=True)
    for ddl in schema.count_trigger_ddl(conn.dialect.name):
        conn.exec_driver_sql(ddl)
    for sql in schema.RECOUNT_SQL:
        conn.exec_driver_sql(sql)


def _v2_to_v3(conn: sa.Connection) -> None:
    """Append every column, and create every table and index, the code declares and lacks.

    New columns go at the end of their table in ``schema`` (nullable or defaulted), so
    ALTER TABLE ADD COLUMN leaves a migrated table identical to a fresh one.
    """
    names = set(sa.inspect(conn).get_table_names())
    for table in schema.metadata.sorted_tables:
        if table.name in names:
            _add_missing_columns(conn, table)
        else:
            table.create(conn)
    for table in schema.metadata.sorted_tables:
        for index in table.indexes:
            index.create(conn, checkfirst=True)
    # Triggers declared since the database was made (each statement is idempotent), and
    # a counts table that is new is filled from the rows it counts.
    for ddl in schema.count_trigger_ddl(conn.dialect.name):
        conn.exec_driver_sql(ddl)
    if schema.saga_failure_counts.name not in names:
        for sql in schema.RECOUNT_FAILURES_SQL:
            conn.exec_driver_sql(sql)


def lacks_declared(conn: sa.Connection) -> bool:
    """True when a table, column or index declared in ``schema`` is missing (reads only)."""
    inspector = sa.inspect(conn)
    present = set(inspector.get_table_names())
    for table in schema.metadata.sorted_tables:
        if table.name not in present:
            return True
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        if any(c.name not in columns for c in table.columns):
            return True
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        if any(i.name not in indexes for i in table.indexes if _for_dialect(i, conn)):
            return True
    return False


def _for_dialect(index: sa.Index, conn: sa.Connection) -> bool:
    """False for an index declared only for another database (``ddl_if(dialect=...)``)."""
    condition = getattr(index, "_ddl_if", None)
    wanted = getattr(condition, "dialect", None)
    return wanted is None or wanted == conn.dialect.name


MIGRATIONS: dict[int, typing.Callable[[sa.Connection], None]] = {2: _v1_to_v2, 3: _v2_to_v3}
"""Migration to version N from N-1, applied in order."""


def stored_version(conn: sa.Connection) -> int | None:
    """The schema version of the database; 0 when empty, None when not ours."""
    names = set(sa.inspect(conn).get_table_names())
    if not names:
        return 0
    if "saga_executions" not in names:
        return None
    if "saga_schema_version" not in names:
        return 1
    row = conn.execute(sa.select(sa.func.max(schema.saga_schema_version.c.version))).scalar()
    return int(row or 1)


def check_schema(conn: sa.Connection, label: str, *, read_only: bool = False) -> int:
    """The schema version this code can use the database at; reads, never writes.

    Raises SchemaError with a one-line reason for a database of another application, a
    newer schema, or (read-only) one that would need setting up first. A version below
    SCHEMA_VERSION means :func:`ensure_schema` has work to do (or, read-only, that a
    python-cqrs database is read through :func:`legacy_views`).
    """
    try:
        version = stored_version(conn)
    except sa.exc.DBAPIError as exc:
        raise describe_open_error(label, exc) from exc
    if version is None:
        raise SchemaError(f"{label}: a database of another application (no saga_executions table)")
    if version > schema.SCHEMA_VERSION:
        raise SchemaError(
            f"{label}: schema version {version} is newer than this saga-tui knows "
            f"({schema.SCHEMA_VERSION}); upgrade saga-tui",
        )
    if version == schema.SCHEMA_VERSION and not read_only and lacks_declared(conn):
        # A v3 database written before a table, column or index was declared:
        # ensure_schema's additive v3 step completes it.
        return version - 1
    if read_only and version < schema.SCHEMA_VERSION:
        if version == 1 and conn.dialect.name in ("sqlite", "postgresql"):
            return version  # python-cqrs's layout: readable through legacy_views()
        what = "empty" if version == 0 else f"at schema version {version}"
        raise SchemaError(
            f"{label}: database is {what}; open it once without read-only to set it up",
        )
    return version


def ensure_schema(conn: sa.Connection, label: str, *, read_only: bool = False) -> int:
    """Check the schema and migrate it forward; raises SchemaError with a one-line reason.

    Must run inside a write transaction (BEGIN IMMEDIATE on SQLite) so two processes
    opening one new file do not both create it; a reader checks with
    :func:`check_schema` first and comes here only when something is to be written.
    """
    version = check_schema(conn, label, read_only=read_only)
    if version == schema.SCHEMA_VERSION or read_only:
        return version
    if version == 0:
        _fresh(conn)
    else:
        for target in range(version + 1, schema.SCHEMA_VERSION + 1):
            MIGRATIONS[target](conn)
    conn.execute(sa.delete(schema.saga_schema_version))
    conn.execute(sa.insert(schema.saga_schema_version).values(version=schema.SCHEMA_VERSION))
    return schema.SCHEMA_VERSION


def describe_open_error(label: str, exc: BaseException) -> SchemaError:
    """Turn a driver error raised while opening into a one-line SchemaError."""
    text = str(getattr(exc, "orig", None) or exc).splitlines()[0] if str(exc) else ""
    if "not a database" in text or "file is encrypted" in text:
        return SchemaError(f"{label}: not a SQLite database")
    if "unable to open" in text or "readonly" in text or "read-only" in text:
        folder = os.path.dirname(os.path.abspath(label)) or "."
        if os.path.exists(label) and not os.access(folder, os.W_OK):
            return SchemaError(
                f"{label}: on a read-only file system; open it with --read-only",
            )
        return SchemaError(f"{label}: cannot open the database file ({text})")
    return SchemaError(f"{label}: cannot open the database ({text or type(exc).__name__})")


def _literal_default(column: sa.Column[typing.Any]) -> str:
    default = column.server_default
    if default is not None and isinstance(default, sa.DefaultClause):
        arg = default.arg
        text = arg.text if isinstance(arg, sa.TextClause) else repr(str(arg))
        if text.isdigit() or text.startswith("'"):
            return text
    return "NULL"


def _view_column(column: sa.Column[typing.Any], present: set[str], times: set[str]) -> str:
    name = column.name
    if name in times:
        return f"CASE WHEN length({name}) = 19 THEN {_full_time(name)} ELSE {name} END AS {name}"
    if name in present:
        return name
    return f"{_literal_default(column)} AS {name}"


def legacy_views(conn: sa.Connection) -> list[str]:
    """TEMP views that show a python-cqrs (v1) SQLite database in the current layout.

    A read-only connection may still create TEMP objects, and unqualified names find
    the temp schema first, so every query of this package reads the views unchanged:
    missing columns read as their defaults, counts are grouped on the fly, and the
    audit is empty.
    """
    inspector = sa.inspect(conn)
    names = set(inspector.get_table_names())
    out = []
    for table in (schema.saga_executions, schema.saga_logs):
        present = (
            {c["name"] for c in inspector.get_columns(table.name)} if table.name in names else set()
        )
        times = {col for tab, col in _SQLITE_TIMES if tab == table.name}
        cols = ", ".join(_view_column(c, present, times) for c in table.columns)
        out.append(
            f"CREATE TEMP VIEW IF NOT EXISTS {table.name} AS SELECT {cols} FROM main.{table.name}"
        )
    out.append(
        "CREATE TEMP VIEW IF NOT EXISTS saga_status_counts AS "
        "SELECT status, COUNT(*) AS n FROM main.saga_executions GROUP BY status",
    )
    audit = ", ".join(f"NULL AS {c.name}" for c in schema.saga_audit.columns)
    out.append(f"CREATE TEMP VIEW IF NOT EXISTS saga_audit AS SELECT {audit} WHERE 0")
    return out
