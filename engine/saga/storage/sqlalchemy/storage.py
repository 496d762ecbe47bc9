"""SqlAlchemySagaStorage: the durable ISagaStorage on SQLite (default) or PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import typing
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engine.saga.errors import ReadOnlyStorageError, saga_uuid
from engine.saga.secrets import mask_secrets
from engine.saga.storage.enums import RequestedAction, SagaStatus
from engine.saga.storage.models import (
    NEWEST_FIRST,
    Checkpoint,
    CheckpointResult,
    LeaseInfo,
    LogRecord,
    OperatorAction,
    PageCursor,
    SagaDetail,
    SagaFilter,
    SagaLogEntry,
    SagaOrder,
    SagaPage,
    SagaState,
    StatusCounts,
    resolve_text_filter,
)
from engine.saga.storage.oncall import RECENT_LOG_ROWS, FailureGroup, Pulse, StepStats
from engine.saga.storage.postgres.choose import change_listener, writer_for
from engine.saga.storage.postgres.legacy import install_views
from engine.saga.storage.postgres.legacy import legacy_views as pg_legacy_views
from engine.saga.storage.protocol import ISagaStorage
from engine.saga.storage.sqlalchemy import commands, filtering, oncall, queries
from engine.saga.storage.sqlalchemy.connect import (
    WRITER_OPTION,
    create_engine_for,
    install_connect_statements,
    install_sqlite_hooks,
    open_raw_sqlite,
    read_only_url,
    sqlite_path,
    use_wal,
)
from engine.saga.storage.sqlalchemy.migrations import (
    SchemaError,
    check_schema,
    describe_open_error,
    ensure_schema,
    legacy_views,
)
from engine.saga.storage.sqlalchemy.outbox import SqlEventOutbox
from engine.saga.storage.sqlalchemy.refusals import classify
from engine.saga.storage.sqlalchemy.schema import SCHEMA_VERSION
from engine.saga.storage.sqlalchemy.writer import BatchWriter, CoreWriter, SqliteWriter

if typing.TYPE_CHECKING:
    from engine.saga.storage.postgres.listen import ChangeListener

R = typing.TypeVar("R")


class SqlAlchemySagaStorage(SqlEventOutbox, ISagaStorage):
    """Sagas in a SQL database: group-committed checkpoints, leases and the query API.

    ``session_factory`` must be bound to an async engine. On a SQLite file the schema is
    checked (and migrated) right here, so a bad file fails at construction with a
    one-line :class:`SchemaError`; other databases are checked on first use.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        read_only: bool = False,
        raw_sqlite_writer: bool = True,
    ) -> None:
        bind = session_factory.kw.get("bind")
        if not isinstance(bind, AsyncEngine):
            raise TypeError("session_factory must be an async_sessionmaker bound to an AsyncEngine")
        self.session_factory = session_factory
        self.read_only = read_only
        self._engine: AsyncEngine = bind
        self._owned_engine = False
        self._path = sqlite_path(bind.url) if bind.dialect.name == "sqlite" else None
        self._label = self._path or mask_secrets(bind.url.render_as_string(hide_password=True))
        self._sync_engine: sa.Engine | None = None
        self._probe: sqlite3.Connection | None = None
        self._local_changes = 0
        self._ready = False
        self._ready_lock: asyncio.Lock | None = None
        self._writer: BatchWriter | None = None
        self._listener: ChangeListener | None = None
        install_sqlite_hooks(bind, read_only=read_only)
        if self._path is not None:
            self._open_sqlite(raw_sqlite_writer)
        elif not read_only:
            self._writer = writer_for(bind)

    @classmethod
    def from_url(cls, url: str | sa.URL, *, read_only: bool = False) -> SqlAlchemySagaStorage:
        """Open a database by URL; ``sqlite+aiosqlite:///sagas.db`` is the embedded default."""
        engine = create_engine_for(url, read_only=read_only)
        factory = async_sessionmaker(engine, expire_on_commit=False)
        try:
            storage = cls(factory, read_only=read_only)
        except BaseException:
            # Nothing connected through the async engine yet; dropping the pool is enough.
            engine.sync_engine.dispose()
            raise
        storage._owned_engine = True
        return storage

    # ---- opening ------------------------------------------------------------------------

    def _open_sqlite(self, raw_writer: bool) -> None:
        assert self._path is not None
        url = sa.URL.create("sqlite", database=self._path)
        if self.read_only:
            url = read_only_url(url)
        sync_engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False},
            poolclass=sa.pool.QueuePool,
            pool_size=1,
            max_overflow=1,
        )
        install_sqlite_hooks(sync_engine, read_only=self.read_only)
        try:
            with sync_engine.connect() as conn:
                # A deferred transaction: readers open while another process holds the
                # write lock; the lock is taken only when the schema must be written.
                with conn.begin():
                    version = check_schema(conn, self._label, read_only=self.read_only)
                if version < SCHEMA_VERSION and not self.read_only:
                    conn = conn.execution_options(**{WRITER_OPTION: True})
                    with conn.begin():
                        version = ensure_schema(conn, self._label)
                    use_wal(conn.connection.driver_connection)
                with conn.begin():
                    views = legacy_views(conn) if version < SCHEMA_VERSION else []
        except SchemaError:
            sync_engine.dispose()
            raise
        except sa.exc.DBAPIError as exc:
            sync_engine.dispose()
            raise describe_open_error(self._label, exc) from exc
        if views:
            # The async engine has not connected yet when opened through from_url.
            install_connect_statements(self._engine, views)
        self._ready = True
        self._sync_engine = sync_engine
        self._probe = open_raw_sqlite(self._path, read_only=self.read_only, check_same_thread=False)
        if self.read_only:
            return
        self._writer = SqliteWriter(sync_engine) if raw_writer else CoreWriter(self._engine)

    async def _ensure_ready(self) -> None:
        if self._ready:
            return
        if self._ready_lock is None:
            self._ready_lock = asyncio.Lock()
        async with self._ready_lock:
            if self._ready:
                return
            engine = self._engine.execution_options(**{WRITER_OPTION: not self.read_only})
            try:
                async with engine.begin() as conn:
                    version = await conn.run_sync(
                        functools.partial(
                            ensure_schema, label=self._label, read_only=self.read_only
                        ),
                    )
                    if version < SCHEMA_VERSION:  # python-cqrs's tables, read-only
                        views = await conn.run_sync(pg_legacy_views)
            except sa.exc.DBAPIError as exc:
                raise describe_open_error(self._label, exc) from exc
            if version < SCHEMA_VERSION:
                install_views(self._engine, views)
                await self._engine.dispose()  # every connection from now on has the views
            self._ready = True

    # ---- plumbing -----------------------------------------------------------------------

    def _write_side(self) -> BatchWriter:
        if self.read_only or self._writer is None:
            raise ReadOnlyStorageError(f"{self._label} is open read-only")
        return self._writer

    async def _write(self, job: typing.Callable[[sa.Connection], R]) -> R:
        writer = self._write_side()
        await self._ensure_ready()
        try:
            return await writer.run(job)
        except Exception as exc:
            raise classify(exc) from exc
        finally:
            self._local_changes += 1

    async def _read(self, fn: typing.Callable[..., typing.Awaitable[R]], *args: typing.Any) -> R:
        await self._ensure_ready()
        async with self._engine.connect() as conn:
            return await fn(conn, *args)

    # ---- runner protocol --------------------------------------------------------------

    async def apply(self, checkpoint: Checkpoint) -> CheckpointResult:
        """Write one checkpoint; returns once the batch holding it is committed."""
        writer = self._write_side()
        await self._ensure_ready()
        try:
            return await writer.apply(checkpoint)
        except Exception as exc:
            # A refusal of this saga's data, or a database that cannot take writes.
            raise classify(exc) from exc
        finally:
            self._local_changes += 1

    async def claim(
        self,
        saga_id: uuid.UUID,
        owner: str,
        lease_expires: float,
        *,
        now: float,
        steal_from: str | None = None,
    ) -> SagaState | None:
        """Take the lease with one conditional UPDATE, then load the saga."""
        return await self._write(
            lambda c: commands.claim(c, saga_id, owner, lease_expires, now, steal_from),
        )

    async def renew_leases(self, owner: str, lease_expires: float) -> int:
        """Extend every lease ``owner`` holds with one UPDATE."""
        return await self._write(lambda c: commands.renew_leases(c, owner, lease_expires))

    async def heartbeat(
        self,
        owner: str,
        held: typing.Mapping[uuid.UUID, int],
        lease_expires: float,
        now: float,
    ) -> set[uuid.UUID]:
        """Extend the unexpired leases of ``held`` (id -> fence) still ``owner``'s."""
        return await self._write(
            lambda c: commands.heartbeat(c, owner, held, lease_expires, now),
        )

    async def get_lease(self, saga_id: uuid.UUID) -> LeaseInfo | None:
        """Who holds one saga."""
        return await self._read(queries.get_lease, saga_uuid(saga_id))

    async def lease_candidates(self, now: float, host: str, limit: int) -> list[LeaseInfo]:
        """Unfinished sagas with a free or expired lease, or held on ``host``."""
        return await self._read(queries.lease_candidates, now, host, limit)

    async def request_action(self, saga_id: uuid.UUID, action: RequestedAction) -> None:
        """Store a request for the saga's owner."""
        await self._write(lambda c: commands.request_action(c, saga_id, action))

    async def record_operator_action(self, action: OperatorAction) -> None:
        """Append to the audit table."""
        await self._write(lambda c: commands.record_operator_action(c, action))

    # ---- query API --------------------------------------------------------------------

    async def count_by_status(self) -> StatusCounts:
        """How many sagas are in each status."""
        return await self._read(queries.count_by_status)

    async def list_sagas(
        self,
        saga_filter: SagaFilter = SagaFilter(),
        *,
        limit: int = 200,
        after: PageCursor | None = None,
        before: PageCursor | None = None,
        order: SagaOrder = NEWEST_FIRST,
        at: PageCursor | None = None,
    ) -> SagaPage:
        """A keyset page in ``order`` (newest first by default)."""
        saga_filter = await self._resolve(saga_filter)
        return await self._read(queries.list_sagas, saga_filter, limit, after, before, order, at)

    async def _resolve(self, saga_filter: SagaFilter) -> SagaFilter:
        """The filter as it runs now: its text placed, its stranded rule at this moment."""
        saga_filter = await resolve_text_filter(saga_filter, self.find_ids, self._has_key)
        if saga_filter.worker:
            saga_filter = await self._read(filtering.resolve_worker, saga_filter)
        return await self._read(filtering.resolve_stranded, saga_filter)

    async def _has_key(self, prefix: str) -> bool:
        return await self._read(filtering.has_key, prefix)

    async def count_sagas(self, saga_filter: SagaFilter = SagaFilter()) -> int:
        """How many sagas match the filter (the total from the counts when it is empty)."""
        if saga_filter.is_empty:
            return (await self.count_by_status()).total
        return await self._read(oncall.count_sagas, await self._resolve(saga_filter))

    async def stranded_count(self) -> int:
        """Unfinished sagas nobody runs (lease free or expired, or a dead owner here)."""
        return await self._read(oncall.stranded_count)

    async def failure_groups(self, limit: int = 500) -> list[FailureGroup]:
        """Failed, rolled-back and retrying sagas grouped by cause, biggest first."""
        return await self._read(oncall.failure_groups, None, limit)

    async def pulse(self) -> Pulse:
        """Sagas that ended per ten seconds over the last ten minutes."""
        return await self._read(oncall.pulse)

    async def step_stats(
        self, saga_name: str | None = None, recent: int = RECENT_LOG_ROWS
    ) -> StepStats:
        """Per-step timings and failure rates from the newest ``recent`` log rows."""
        return await self._read(oncall.recent_step_stats, recent, saga_name)

    async def get_saga(self, saga_id: uuid.UUID) -> SagaDetail | None:
        """One saga in full."""
        return await self._read(queries.get_saga, saga_uuid(saga_id))

    async def find_ids(self, prefix: str, limit: int = 2) -> list[uuid.UUID]:
        """Ids whose text form starts with ``prefix``."""
        return await self._read(queries.find_ids, prefix, limit)

    async def logs_after(self, after_id: int, limit: int = 500) -> list[LogRecord]:
        """Log entries above the watermark, oldest first."""
        return await self._read(queries.logs_after, after_id, limit)

    async def last_log_id(self) -> int:
        """The highest log id."""
        return await self._read(queries.last_log_id)

    async def change_token(self) -> int:
        """SQLite's data_version plus this process's own write count; max log id elsewhere.

        The pragma is answered from the connection's shared-memory header in a few
        microseconds, less than a thread hop would cost, so it runs inline.
        """
        if self._probe is not None:
            try:
                version = int(self._probe.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error:
                version = 0
            return version + self._local_changes
        return await self.last_log_id() + self._local_changes

    async def watch_changes(self, callback: typing.Callable[[], None]) -> bool:
        """On PostgreSQL, LISTEN for the writers' NOTIFY; False on SQLite (poll only)."""
        if self._listener is None:
            self._listener = change_listener(self._engine)
            if self._listener is None:
                return False
        self._listener.callbacks.append(callback)
        self._listener.start()
        return True

    def unwatch_changes(self, callback: typing.Callable[[], None]) -> None:
        """Stop calling ``callback`` on notifications."""
        if self._listener is not None and callback in self._listener.callbacks:
            self._listener.callbacks.remove(callback)

    # ---- python-cqrs compatible primitives ---------------------------------------------

    async def load_saga_state(
        self,
        saga_id: uuid.UUID,
        *,
        read_for_update: bool = False,
    ) -> tuple[SagaStatus, dict[str, typing.Any], int]:
        """Status, context and version."""
        await self._ensure_ready()
        async with self._engine.connect() as conn:
            state = await conn.run_sync(commands.load_state, saga_id)
        return state.status, state.context, state.version

    async def get_step_history(self, saga_id: uuid.UUID) -> list[SagaLogEntry]:
        """The saga's log ordered by id."""
        await self._ensure_ready()
        async with self._engine.connect() as conn:
            return await conn.run_sync(commands.load_history, saga_uuid(saga_id))

    async def get_sagas_for_recovery(
        self,
        limit: int,
        max_recovery_attempts: int = 5,
        stale_after_seconds: int | None = None,
        saga_name: str | None = None,
    ) -> list[uuid.UUID]:
        """RUNNING/COMPENSATING sagas, oldest update first."""
        return await self._read(
            queries.sagas_for_recovery,
            limit,
            max_recovery_attempts,
            stale_after_seconds,
            saga_name,
        )

    async def increment_recovery_attempts(
        self,
        saga_id: uuid.UUID,
        new_status: SagaStatus | None = None,
    ) -> None:
        """Count a failed recovery."""
        await self._write(lambda c: commands.increment_recovery_attempts(c, saga_id, new_status))

    async def set_recovery_attempts(self, saga_id: uuid.UUID, attempts: int) -> None:
        """Set the recovery counter."""
        await self._write(lambda c: commands.set_recovery_attempts(c, saga_id, attempts))

    # ---- lifecycle ----------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the writer, close the probe and dispose the engines this storage created."""
        if self._listener is not None:
            await self._listener.close()
        if self._writer is not None:
            await self._writer.close()
        if self._probe is not None:
            with contextlib.suppress(sqlite3.Error):
                self._probe.close()
            self._probe = None
        if self._sync_engine is not None:
            self._sync_engine.dispose()
        if self._owned_engine:
            await self._engine.dispose()
