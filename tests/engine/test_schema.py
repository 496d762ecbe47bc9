"""Schema: a fresh database equals a migrated python-cqrs one; bad files fail in one line."""

from __future__ import annotations

import datetime
import enum
import pathlib
import shutil
import sqlite3
import typing
import uuid

import pytest
import sqlalchemy as sa

from engine.saga.storage.enums import SagaStatus, SagaStepStatus
from engine.saga.storage.sqlalchemy import SCHEMA_VERSION, SchemaError, SqlAlchemySagaStorage

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures"


class CqrsSagaStatus(enum.Enum):
    """python-cqrs's saga statuses (it has no COMPENSATED)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    FAILED = "failed"


class CqrsStepStatus(enum.Enum):
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    COMPENSATED = "compensated"


def make_python_cqrs_db(path: typing.Any) -> tuple[uuid.UUID, uuid.UUID]:
    """A database as python-cqrs's SqlAlchemySagaStorage lays it out on SQLite.

    Its log id is an INTEGER primary key here: python-cqrs's BIGINT identity cannot
    insert on SQLite, so that is the shape a working python-cqrs SQLite database has.
    """
    md = sa.MetaData()
    executions = sa.Table(
        "saga_executions",
        md,
        sa.Column("id", sa.Uuid, primary_key=True, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("status", sa.Enum(CqrsSagaStatus), nullable=False),
        sa.Column("context", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("recovery_attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    logs = sa.Table(
        "saga_logs",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("saga_id", sa.Uuid, sa.ForeignKey("saga_executions.id"), nullable=False),
        sa.Column("step_name", sa.String(255), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("status", sa.Enum(CqrsStepStatus), nullable=False),
        sa.Column("details", sa.Text, nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    engine = sa.create_engine(f"sqlite:///{path}")
    running, failed = uuid.uuid4(), uuid.uuid4()
    now = datetime.datetime(2025, 1, 2, 3, 4, 5, 678901)
    with engine.begin() as conn:
        md.create_all(conn)
        for sid, status in ((running, CqrsSagaStatus.RUNNING), (failed, CqrsSagaStatus.FAILED)):
            conn.execute(
                executions.insert().values(
                    id=sid,
                    name="OrderSaga",
                    status=status,
                    context={"order_id": 7},
                    version=1,
                    created_at=now,
                    updated_at=now,
                    recovery_attempts=0,
                ),
            )
        # python-cqrs leaves times to CURRENT_TIMESTAMP: whole seconds, no fraction.
        conn.execute(
            executions.insert().values(
                id=uuid.uuid4(),
                name="TravelSaga",
                status=CqrsSagaStatus.COMPLETED,
                context={},
                version=1,
            ),
        )
        conn.execute(
            logs.insert(),
            [
                {
                    "saga_id": running,
                    "step_name": "Reserve",
                    "action": "act",
                    "status": CqrsStepStatus.STARTED,
                },
                {
                    "saga_id": running,
                    "step_name": "Reserve",
                    "action": "act",
                    "status": CqrsStepStatus.COMPLETED,
                },
            ],
        )
    engine.dispose()
    return running, failed


def describe(path: typing.Any) -> dict[str, typing.Any]:
    """Every table's columns and every index's columns, as SQLite reports them."""
    conn = sqlite3.connect(path)
    try:
        out: dict[str, typing.Any] = {}
        objects = conn.execute(
            "SELECT type, name, tbl_name FROM sqlite_master "
            "WHERE name NOT LIKE 'sqlite_%' ORDER BY name",
        ).fetchall()
        out["objects"] = sorted(objects)
        for kind, name, _ in objects:
            if kind == "table":
                out[f"table {name}"] = conn.execute(f"PRAGMA table_info({name})").fetchall()
                out[f"fks {name}"] = conn.execute(f"PRAGMA foreign_key_list({name})").fetchall()
            elif kind == "index":
                out[f"index {name}"] = conn.execute(f"PRAGMA index_xinfo({name})").fetchall()
        return out
    finally:
        conn.close()


async def test_fresh_schema_equals_migrated_python_cqrs_schema(tmp_path: typing.Any) -> None:
    fresh_path, old_path = tmp_path / "fresh.db", tmp_path / "old.db"
    await SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{fresh_path}").close()
    running, failed = make_python_cqrs_db(old_path)
    migrated = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{old_path}")
    try:
        assert describe(fresh_path) == describe(old_path)
        # python-cqrs's rows survive and read back through the query API.
        counts = await migrated.count_by_status()
        assert counts[SagaStatus.RUNNING] == 1 and counts[SagaStatus.FAILED] == 1
        assert counts.total == 3
        await assert_pages_walk_once(migrated, 3)
        detail = await migrated.get_saga(running)
        assert detail is not None and detail.context == {"order_id": 7}
        assert [(r.id, r.status) for r in detail.logs] == [
            (1, SagaStepStatus.STARTED),
            (2, SagaStepStatus.COMPLETED),
        ]
        assert detail.summary.created_at == datetime.datetime(
            2025, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.UTC
        )
        page = (await migrated.list_sagas()).items
        assert [s.id for s in page[1:]] == sorted([running, failed], key=str, reverse=True)
        await migrated.log_step(failed, "Refund", "compensate", SagaStepStatus.FAILED)
        assert await migrated.last_log_id() == 3
    finally:
        await migrated.close()
    # Opening again is a no-op at the current version.
    with sqlite3.connect(old_path) as raw:
        assert raw.execute("SELECT version FROM saga_schema_version").fetchall() == [
            (SCHEMA_VERSION,)
        ]
    await SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{old_path}").close()
    assert describe(fresh_path) == describe(old_path)


async def assert_pages_walk_once(storage: SqlAlchemySagaStorage, total: int) -> None:
    page = await storage.list_sagas(limit=1)
    seen = [s.id for s in page.items]
    while page.next_cursor is not None:
        page = await storage.list_sagas(limit=1, after=page.next_cursor)
        seen += [s.id for s in page.items]
    assert len(seen) == len(set(seen)) == total


def assert_one_line(exc: SchemaError, path: typing.Any) -> None:
    text = str(exc)
    assert "\n" not in text and str(path) in text


def test_file_that_is_not_a_database(tmp_path: typing.Any) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is a text file, not SQLite\n" * 100)
    with pytest.raises(SchemaError) as info:
        SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{path}")
    assert_one_line(info.value, path)
    assert "not a SQLite database" in str(info.value)


def test_database_of_another_application(tmp_path: typing.Any) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    with pytest.raises(SchemaError) as info:
        SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{path}")
    assert_one_line(info.value, path)
    assert "another application" in str(info.value)
    with sqlite3.connect(path) as raw:  # left untouched
        assert raw.execute("SELECT name FROM sqlite_master").fetchall() == [("users",)]


async def test_newer_schema_version(tmp_path: typing.Any) -> None:
    path = tmp_path / "sagas.db"
    await SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{path}").close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE saga_schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    for read_only in (False, True):
        with pytest.raises(SchemaError) as info:
            SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{path}", read_only=read_only)
        assert_one_line(info.value, path)
        assert "newer" in str(info.value)


async def test_python_cqrs_database_opens_read_only_without_migrating(tmp_path: typing.Any) -> None:
    path = tmp_path / "old.db"
    running, failed = make_python_cqrs_db(path)
    with sqlite3.connect(path) as raw:
        before = raw.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{path}", read_only=True)
    try:
        counts = await storage.count_by_status()
        assert counts[SagaStatus.RUNNING] == 1 and counts[SagaStatus.FAILED] == 1
        page = await storage.list_sagas()
        assert {running, failed} < {s.id for s in page.items}
        assert page.items[0].step_count == 0 and page.items[0].lease_owner is None
        await assert_pages_walk_once(storage, 3)
        detail = await storage.get_saga(running)
        assert detail is not None and detail.context == {"order_id": 7} and detail.audit == []
        assert [(r.status, r.attempt) for r in detail.logs] == [
            (SagaStepStatus.STARTED, 1),
            (SagaStepStatus.COMPLETED, 1),
        ]
        assert [r.id for r in await storage.logs_after(0)] == [1, 2]
        assert await storage.find_ids(str(failed)[:8]) == [failed]
        assert (await storage.lease_candidates(0.0, "h", 10))[0].saga_id == running
    finally:
        await storage.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT type, name, sql FROM sqlite_master").fetchall() == before


async def test_read_only_empty_database_is_refused(tmp_path: typing.Any) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    with pytest.raises(SchemaError) as info:
        SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{path}", read_only=True)
    assert_one_line(info.value, path)


ROWS_SQL = "SELECT id, status, context FROM saga_executions ORDER BY id"


async def test_a_v2_database_migrates_to_the_fresh_schema_and_keeps_its_rows(
    tmp_path: typing.Any,
) -> None:
    """tests/fixtures/schema_v2.db was written by the v2 code (six sample sagas)."""
    fresh_path, old_path = tmp_path / "fresh.db", tmp_path / "v2.db"
    shutil.copy(FIXTURES / "schema_v2.db", old_path)
    with sqlite3.connect(old_path) as raw:
        assert raw.execute("SELECT version FROM saga_schema_version").fetchall() == [(2,)]
        before = raw.execute(
            "SELECT id, status, context FROM saga_executions ORDER BY id"
        ).fetchall()
        logs_before = raw.execute("SELECT COUNT(*) FROM saga_logs").fetchone()[0]
    await SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{fresh_path}").close()
    migrated = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{old_path}")
    try:
        counts = await migrated.count_by_status()
        assert counts.total == len(before) == 6
        page = await migrated.list_sagas(limit=10)
        assert sorted(s.id.hex for s in page.items) == [row[0] for row in before]
        assert await migrated.last_log_id() == logs_before
    finally:
        await migrated.close()
    with sqlite3.connect(old_path) as raw:
        assert raw.execute("SELECT version FROM saga_schema_version").fetchall() == [
            (SCHEMA_VERSION,)
        ]
        after = raw.execute(
            "SELECT id, status, context FROM saga_executions ORDER BY id"
        ).fetchall()
        assert after == before
    fresh, old = describe(fresh_path), describe(old_path)
    # The sample world's own table lives in the same file; it is not ours to compare.
    for key in [k for k in old if "demo_ledger" in str(k)]:
        del old[key]
    old["objects"] = [o for o in old["objects"] if "demo_ledger" not in o]
    assert fresh == old
