"""RequestBook: write operator requests, follow their progress, read the workers table.

The one entry point for anything that asks the fleet to act (the command line, the
dashboard, scripts) and for anything that serves requests (``engine.saga.worker``).
Requests need a SQL database: every process of the fleet must see them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
import typing
import uuid

from engine.saga.context_codec import dump_context
from engine.saga.operator import Operator, this_operator
from engine.saga.requests import (
    GONE_AFTER,
    ClaimedItem,
    NewRequest,
    RequestItemView,
    RequestKind,
    RequestProgress,
    WorkerInfo,
)
from engine.saga.retrying import Retrying
from engine.saga.storage.models import OperatorAction
from engine.saga.storage.sqlalchemy import requests_store as store

if typing.TYPE_CHECKING:
    from engine.saga.storage.protocol import ISagaStorage
    from engine.saga.storage.sqlalchemy.storage import SqlAlchemySagaStorage

KEEP_WORKERS_SECONDS = 3600.0
"""Gone workers stay in the view for an hour after their last beat."""


WAIT_PATIENCE = 120.0
"""Seconds a wait for a request rides out a database it cannot read before it fails."""


def poll_after(poll: float, read_for: float) -> float:
    """Seconds until the next progress read, which took ``read_for``: ``poll``, or longer
    for a large request, whose counts read all its pairs (55 ms for 100,000 on SQLite),
    so that waiting spends at most a fifth of its time reading."""
    return max(poll, 4.0 * read_for)


class RequestsUnsupportedError(TypeError):
    """Requests live in a SQL database; an in-memory storage cannot hold them."""


def _sql(storage: ISagaStorage) -> SqlAlchemySagaStorage:
    from engine.saga.storage.sqlalchemy.storage import SqlAlchemySagaStorage

    if not isinstance(storage, SqlAlchemySagaStorage):
        raise RequestsUnsupportedError(
            "operator requests need a SQL storage (SqlAlchemySagaStorage)"
        )
    return storage


@dataclasses.dataclass
class RequestBook:
    """Requests and workers in one database."""

    storage: SqlAlchemySagaStorage
    _finishing: list[tuple[store.Finish, asyncio.Future[bool]]] = dataclasses.field(
        default_factory=list, init=False, repr=False
    )
    _finisher: asyncio.Future[None] | None = dataclasses.field(default=None, init=False, repr=False)

    @classmethod
    def of(cls, storage: ISagaStorage) -> RequestBook:
        """The book of ``storage``; RequestsUnsupportedError when it is not SQL."""
        return cls(_sql(storage))

    # ---- asking ---------------------------------------------------------------------

    async def submit(
        self,
        kind: RequestKind,
        saga_ids: typing.Sequence[uuid.UUID] = (),
        *,
        saga_name: str | None = None,
        context: typing.Any = None,
        count: int = 1,
        reason: str = "",
        operator: Operator | None = None,
    ) -> uuid.UUID:
        """Write one request; returns its id. Ids are resolved now (start: made now).

        Raises SagaNotFoundError (nothing written) when a saga to act on does not exist.
        """
        if kind == "start":
            if saga_name is None:
                raise ValueError("a start request needs the saga name")
            stored = dump_context(context) if not isinstance(context, dict) else context
            ids = tuple(uuid.uuid4() for _ in range(max(0, count)))
        else:
            stored = None
            ids = tuple(dict.fromkeys(saga_ids))
        new = NewRequest(
            request_id=uuid.uuid4(),
            kind=kind,
            saga_ids=ids,
            saga_name=saga_name,
            context=stored,
            requester=str(operator or this_operator()),
            reason=reason,
            created_at=time.time(),
        )
        await self.storage._write(lambda c: store.insert_request(c, new))
        return new.request_id

    async def progress(self, request_ids: typing.Sequence[uuid.UUID]) -> list[RequestProgress]:
        """How far each request is (unknown ids are left out); takers named as workers."""
        found = await self.storage._read(store.request_progress, list(request_ids), time.time())
        if not any(p.taker for p in found):
            return found
        names = {w.id: w.name for w in await self.workers()}
        return [
            dataclasses.replace(p, taker=names.get(p.taker, p.taker)) if p.taker else p
            for p in found
        ]

    async def recent(self, limit: int = 20) -> list[RequestProgress]:
        """The newest requests with their progress."""
        ids = await self.storage._read(store.recent_requests, limit)
        return await self.progress(ids)

    async def items(self, request_id: uuid.UUID, limit: int = 10_000) -> list[RequestItemView]:
        """The pairs of one request with their outcomes."""
        return await self.storage._read(store.request_items, request_id, limit)

    async def wait(
        self,
        request_id: uuid.UUID,
        *,
        poll: float = 0.1,
        timeout: float | None = None,
        on_progress: typing.Callable[[RequestProgress], None] | None = None,
        patience: float = WAIT_PATIENCE,
    ) -> RequestProgress:
        """Poll until every pair has an outcome (or ``timeout``); returns the last progress.

        A database that cannot be read (a restart, a failover) is waited for up to
        ``patience`` seconds, tried again with backoff; meanwhile ``on_progress`` hears
        the last progress read with its ``trouble`` set, and once more when it clears.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        reading = Retrying("reading the request's progress", None, base=poll)
        current: RequestProgress | None = None
        while True:
            began = time.monotonic()
            try:
                # Naming the takers costs a read of the workers table: only for a watcher.
                found = await (
                    self.progress([request_id])
                    if on_progress is not None
                    else self.storage._read(store.request_progress, [request_id], time.time())
                )
            except Exception as exc:
                pause = reading.failed(exc)
                late = deadline is not None and time.monotonic() > deadline
                if reading.failing_for > patience or late:
                    raise
                if on_progress is not None and current is not None and reading.failures == 1:
                    on_progress(dataclasses.replace(current, trouble=reading.said))
                await asyncio.sleep(pause)
                continue
            read_for = time.monotonic() - began
            reading.succeeded()
            if not found:
                raise KeyError(f"request {request_id} not found")
            current = found[0]
            if on_progress is not None:
                on_progress(current)
            if current.finished or (deadline is not None and time.monotonic() > deadline):
                return current
            await asyncio.sleep(poll_after(poll, read_for))

    # ---- the workers table --------------------------------------------------------------

    async def workers(self, *, keep: float = KEEP_WORKERS_SECONDS) -> list[WorkerInfo]:
        """Workers heard from in the last ``keep`` seconds, gone ones included."""
        return await self.storage._read(store.list_workers, time.time() - keep)

    async def live_workers(self, *, dedicated_only: bool = False) -> list[WorkerInfo]:
        """Workers beating now."""
        now = time.time()
        found = await self.storage._read(store.list_workers, now - GONE_AFTER)
        return [w for w in found if w.alive(now) and (w.dedicated or not dedicated_only)]

    async def unserved_types(self) -> list[str]:
        """Saga types with open requests that no live process has registered, nor serves
        unregistered (a command line serving its own request), sorted."""
        now = time.time()
        names = await self.storage._read(store.open_saga_names, now)
        if not names:
            return []
        live = await self.live_workers()
        missing = [n for n in names if not any(w.can_run(n) for w in live)]
        if missing:
            busy = await self.storage._read(store.claimed_names, missing, now)
            missing = [n for n in missing if n not in busy]
        return sorted(missing)

    # ---- serving (used by engine.saga.worker) -----------------------------------------

    async def register(self, info: WorkerInfo) -> None:
        """Add this process to the workers table."""
        await self.storage._write(lambda c: store.register_worker(c, info))

    async def beat(
        self, owner: str, expires: float, running: int, held: typing.Sequence[int] = ()
    ) -> None:
        """Heartbeat: the row's time and count, and the claims of the pairs in ``held``
        (those this owner is serving; others it claimed expire)."""
        now = time.time()
        await self.storage._write(lambda c: store.beat(c, owner, now, expires, running, held))

    async def deregister(self, owner: str) -> None:
        """Mark this process stopped (the row stays, shown gone)."""
        now = time.time()
        await self.storage._write(lambda c: store.deregister(c, owner, now))

    async def claim(
        self,
        owner: str,
        names: typing.Sequence[str],
        limit: int,
        expires: float,
        dead: typing.Sequence[str] = (),
        request_id: uuid.UUID | None = None,
    ) -> list[ClaimedItem]:
        """Take up to ``limit`` open pairs of the saga types in ``names`` (of one request)."""
        now = time.time()
        return await self.storage._write(
            lambda c: store.claim_items(
                c, owner, list(names), limit, now, expires, list(dead), request_id
            )
        )

    async def has_open(
        self,
        names: typing.Sequence[str],
        dead: typing.Sequence[str] = (),
        request_id: uuid.UUID | None = None,
    ) -> bool:
        """Whether open pairs of these saga types wait (a read: no write lock taken)."""
        return await self.storage._read(
            store.has_open_items, list(names), time.time(), list(dead), request_id
        )

    async def finish(
        self,
        item: ClaimedItem,
        owner: str,
        outcome: str,
        ok: bool,
        error: str | None,
        audit: OperatorAction | None = None,
    ) -> bool:
        """Record the pair's one outcome (and its audit row, in the same transaction);
        False, and nothing written, when the claim was lost meanwhile.

        Outcomes that arrive while one transaction is being written share the next one
        (group commit, as checkpoints do): a busy server writes a handful of
        transactions a second instead of one per saga.
        """
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._finishing.append(
            (store.Finish(item.item_id, owner, outcome, ok, error, audit), future)
        )
        if self._finisher is None or self._finisher.done():
            self._finisher = asyncio.ensure_future(self._write_finishes())
        return await asyncio.shield(future)

    async def _write_finishes(self) -> None:
        while self._finishing:
            batch, self._finishing = self._finishing, []
            job = functools.partial(store.finish_items, done=[f for f, _ in batch], now=time.time())
            try:
                done = await self.storage._write(job)
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), recorded in zip(batch, done, strict=True):
                if not future.done():
                    future.set_result(recorded)

    async def release(
        self, owner: str, item_ids: typing.Sequence[int], not_before: float | None = None
    ) -> int:
        """Give pairs back, open again at ``not_before`` (at once when None)."""
        ids = list(item_ids)
        return await self.storage._write(lambda c: store.release_items(c, owner, ids, not_before))

    async def release_all(self, owner: str) -> int:
        """Give back every open pair ``owner`` holds."""
        return await self.storage._write(lambda c: store.release_all(c, owner))

    async def close_finished(self) -> int:
        """Mark DONE the requests whose pairs all have outcomes."""
        now = time.time()
        return await self.storage._write(lambda c: store.close_finished(c, now))

    async def claim_holders(self, host: str) -> list[str]:
        """Owners on ``host`` holding open pairs."""
        return await self.storage._read(store.open_claim_holders, host)
