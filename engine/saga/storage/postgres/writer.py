"""Group commit on PostgreSQL: one asyncpg connection, one transaction per batch.

The checkpoints of every saga this process runs that are queued together share one
transaction (``BatchWriter``), usually ONE statement (``batch.apply_whole``: a round
trip and a commit per batch), applied set-wise with asyncpg
directly: SQLAlchemy keeps the schema and every query, but on the hot path each driver
call through it would cost more than the statement. Other writes (claims, requests,
lease renewals) stay Core functions run through the SQLAlchemy engine. Every commit
sends ``NOTIFY saga_changes``, the hint dashboards listen for.
"""

from __future__ import annotations

import asyncio
import contextlib
import typing

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from engine.saga.secrets import get_logger
from engine.saga.storage.models import Checkpoint
from engine.saga.storage.postgres import statements
from engine.saga.storage.postgres.batch import apply_batch, apply_whole
from engine.saga.storage.sqlalchemy import db_values
from engine.saga.storage.sqlalchemy.connect import WRITER_OPTION
from engine.saga.storage.sqlalchemy.writer import BatchWriter, Job, _Item

log = get_logger(__name__)

RETRIES = 5
"""How often a batch is run again after PostgreSQL chose it as a deadlock victim."""

STATEMENTS = 512
"""Prepared statements kept per connection: one per combination of update kinds seen."""

_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)

SERVER_SETTINGS = {"plan_cache_mode": "force_generic_plan"}
"""The writer's session: its few statements are planned once per connection, not at
every execution. PostgreSQL otherwise plans a batch statement again at each bind (its
custom plans), which cost as much server time as running it; the generic plans of its
UPDATEs find sagas by primary key (tests/engine/test_postgres_plans.py)."""


def asyncpg_dsn(url: sa.URL) -> str:
    """The libpq-style DSN asyncpg takes for a SQLAlchemy PostgreSQL URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresWriter(BatchWriter):
    """Group commit of checkpoints through asyncpg; other writes through Core."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self._engine = engine.execution_options(**{WRITER_OPTION: True})
        self._dsn = asyncpg_dsn(engine.url)
        self._conn: asyncpg.Connection | None = None

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                self._dsn, statement_cache_size=STATEMENTS, server_settings=SERVER_SETTINGS
            )
        return self._conn

    async def _execute(self, batch: list[_Item]) -> list[typing.Any]:
        outcomes: list[typing.Any] = [None] * len(batch)
        checkpoints = [
            (i, it.checkpoint) for i, it in enumerate(batch) if it.checkpoint is not None
        ]
        if checkpoints:
            results = await self._checkpoints([cp for _, cp in checkpoints])
            for (i, _), result in zip(checkpoints, results, strict=True):
                outcomes[i] = result
        jobs = [(i, item.job) for i, item in enumerate(batch) if item.job is not None]
        if len(jobs) == 1:
            try:
                outcomes[jobs[0][0]] = await self._job(jobs[0][1])
            except Exception as exc:
                outcomes[jobs[0][0]] = exc
        elif jobs:
            try:
                done = await self._jobs([job for _, job in jobs])
            except Exception as exc:
                done = [exc] * len(jobs)
            for (i, _), outcome in zip(jobs, done, strict=True):
                outcomes[i] = outcome
        return outcomes

    async def _checkpoints(self, items: list[Checkpoint]) -> list[typing.Any]:
        attempt = 0
        while True:
            conn = await self._connection()
            try:
                try:
                    # Most batches are one statement, which is its own transaction.
                    results = await apply_whole(conn, items, db_values.utcnow())
                    if results is None:
                        return await self._commit(conn, items, isolate=False)
                    self.commits += 1
                    return results
                except _RETRYABLE:
                    raise
                except asyncpg.PostgresError:
                    # A statement failed and PostgreSQL aborted the transaction: run the
                    # batch again with a SAVEPOINT around each checkpoint, so only the
                    # culprit fails.
                    return await self._commit(conn, items, isolate=True)
            except _RETRYABLE:
                attempt += 1
                if attempt > RETRIES:
                    raise
                log.warning("saga storage: deadlock on commit, running the batch again")
                await asyncio.sleep(0.01 * attempt)
            except (OSError, asyncpg.InterfaceError):
                await self._drop_connection()
                raise

    async def _commit(
        self, conn: asyncpg.Connection, items: list[Checkpoint], *, isolate: bool
    ) -> list[typing.Any]:
        now = db_values.utcnow()
        await conn.execute("BEGIN")
        try:
            if isolate:
                results = []
                for cp in items:
                    await conn.execute("SAVEPOINT cp")
                    try:
                        results.extend(await apply_batch(conn, [cp], now))
                    except asyncpg.PostgresError as exc:
                        await conn.execute("ROLLBACK TO SAVEPOINT cp")
                        results.append(exc)
                    await conn.execute("RELEASE SAVEPOINT cp")
            else:
                results = await apply_batch(conn, items, now)
            await conn.execute(statements.NOTIFY_AND_COMMIT)
        except BaseException:
            if not conn.is_closed() and conn.is_in_transaction():
                with contextlib.suppress(Exception):
                    await conn.execute("ROLLBACK")
            raise
        self.commits += 1
        return results

    async def _jobs(self, jobs: list[Job]) -> list[typing.Any]:
        """Several jobs in one transaction (one commit), each in a SAVEPOINT: one that
        fails is rolled back alone and its exception is its outcome."""

        def run(conn: sa.Connection) -> list[typing.Any]:
            outcomes: list[typing.Any] = []
            for job in jobs:
                savepoint = conn.begin_nested()
                try:
                    outcomes.append(job(conn))
                except Exception as exc:
                    savepoint.rollback()
                    outcomes.append(exc)
                else:
                    savepoint.commit()
            conn.exec_driver_sql(f"NOTIFY {statements.CHANNEL}")
            return outcomes

        async with self._engine.begin() as conn:
            return await conn.run_sync(run)

    async def _job(self, job: Job) -> typing.Any:
        def run(conn: sa.Connection) -> typing.Any:
            result = job(conn)
            conn.exec_driver_sql(f"NOTIFY {statements.CHANNEL}")
            return result

        async with self._engine.begin() as conn:
            return await conn.run_sync(run)

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def close(self) -> None:
        """Finish queued writes, then close the connection."""
        await super().close()
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), timeout=5)
            except Exception:
                conn.terminate()
