"""Operator actions as durable requests: write one, see it served, read the outcomes.

The dashboard and the command line act only through here (via ``operations``): an
action is a request row naming its sagas; a live worker with the saga type registered
serves it. When no live process can serve it, this process serves its own request
(local-first: one process on one file still does everything), only that request.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import typing
import uuid

from engine.saga.fleet import RequestBook
from engine.saga.operator import ActionResult
from engine.saga.requests import RequestKind, RequestProgress, WorkerInfo
from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.sqlalchemy.storage import SqlAlchemySagaStorage
from engine.saga.worker import RequestServer
from saga_tui.textfmt import clean

if typing.TYPE_CHECKING:
    from engine.saga.mediator import SagaMediator
    from engine.saga.requests import RequestItemView

Progress = typing.Callable[[RequestProgress], None]

CONCURRENCY = 16
"""Sagas at once when this process serves a request itself (as ``worker``'s default)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Asked:
    """A request written: its id and the saga types it needs a process for."""

    request_id: uuid.UUID
    kind: RequestKind
    saga_names: frozenset[str]


def is_durable(mediator: SagaMediator) -> bool:
    """Actions on this mediator's storage are durable requests (a SQL database)."""
    return isinstance(mediator.storage, SqlAlchemySagaStorage)


async def ask(
    mediator: SagaMediator,
    kind: RequestKind,
    saga_ids: typing.Sequence[uuid.UUID] = (),
    *,
    saga_names: typing.Iterable[str] = (),
    saga_name: str | None = None,
    context: typing.Any = None,
    count: int = 1,
    reason: str = "",
) -> Asked:
    """Write one request (ids resolved now) and return what it needs."""
    book = RequestBook.of(mediator.storage)
    request_id = await book.submit(
        kind,
        saga_ids,
        saga_name=saga_name,
        context=context,
        count=count,
        reason=reason,
        operator=mediator.operator,
    )
    names = set(saga_names)
    if saga_name:
        names.add(saga_name)
    return Asked(request_id, kind, frozenset(names))


async def served_elsewhere(mediator: SagaMediator, names: typing.Iterable[str]) -> bool:
    """A live registered server (a worker, or this dashboard's own) has every one of
    these saga types registered."""
    live = await RequestBook.of(mediator.storage).live_workers()
    return all(any(w.can_run(name) for w in live) for name in names)


NO_WORKER = "no worker is running; it will be served when `saga-tui worker` starts"
WATCH_EVERY = 1.0
"""Seconds between two looks at the workers table while a request is followed."""


def runs_here(mediator: SagaMediator, name: str) -> bool:
    """This process has the saga type registered (it can serve its pairs)."""
    return any(registered == name for registered, _, _ in mediator.registered())


def waiting_reason(unserved: typing.Sequence[str], live: typing.Sequence[WorkerInfo]) -> str:
    """Why pairs of these saga types wait: no worker at all, or none that has them."""
    if not any(w.dedicated for w in live):
        return NO_WORKER
    names = clean(", ".join(sorted(unserved)))
    return (
        f"no live worker has {names} registered; it will be served when "
        "`saga-tui worker --app ...` with it starts"
    )


def waiting_text(types: typing.Sequence[str]) -> str:
    """The header's note while requests of these saga types wait for a worker ("" if none)."""
    if not types:
        return ""
    return f"requests wait for a worker: {', '.join(types)}"


@dataclasses.dataclass
class _Following:
    """One followed request: who serves it here (if anyone) and why it waits."""

    mediator: SagaMediator
    asked: Asked
    server: RequestServer | None = None
    serving: asyncio.Task[None] | None = None
    waiting_for: str | None = None
    concurrency: int = CONCURRENCY

    def serve(self) -> None:
        """Serve this request's pairs of the types this process has, here."""
        self.server = RequestServer(
            self.mediator,
            only_request=self.asked.request_id,
            register=False,
            recover_stale=False,
            concurrency=self.concurrency,
        )
        self.serving = asyncio.create_task(self.server.serve())

    async def watch(self) -> None:
        """Each WATCH_EVERY: serve here when the live servers went away (local-first),
        and say why the pairs no process can serve wait."""
        book = RequestBook.of(self.mediator.storage)
        while True:
            try:
                live = await book.live_workers()
            except Exception:
                pass  # the database went away: the wait says so; look again later
            else:
                self._saw(live)
            await asyncio.sleep(WATCH_EVERY)

    def _saw(self, live: typing.Sequence[WorkerInfo]) -> None:
        unserved = [n for n in sorted(self.asked.saga_names) if not any(w.can_run(n) for w in live)]
        if self.server is None and any(runs_here(self.mediator, n) for n in unserved):
            self.serve()
        if self.server is not None:
            unserved = [n for n in unserved if not runs_here(self.mediator, n)]
        self.waiting_for = waiting_reason(unserved, live) if unserved else None

    def told(self, progress: RequestProgress) -> RequestProgress:
        """``progress`` with why its waiting pairs wait (when nobody can serve them)."""
        if self.waiting_for is None or progress.finished or not progress.waiting:
            return progress
        return dataclasses.replace(progress, waiting_for=self.waiting_for)

    async def stop(self) -> None:
        """Stop serving here: running sagas end at a step boundary, pairs go back."""
        if self.server is not None and self.serving is not None:
            self.server.stop()
            with contextlib.suppress(Exception):
                await asyncio.shield(self.serving)


async def follow(
    mediator: SagaMediator,
    asked: Asked,
    *,
    serve_here: bool | None = None,
    on_progress: Progress | None = None,
    poll: float = 0.1,
    concurrency: int = CONCURRENCY,
) -> list[ActionResult]:
    """Wait until every pair has its outcome; serve the request here when nobody else can
    (``serve_here`` None: decide by the workers table, and again while waiting). Returns
    results in request order. ``on_progress`` hears how far it is, and why it waits when
    no live process can serve some of its sagas."""
    book = RequestBook.of(mediator.storage)
    following = _Following(mediator, asked, concurrency=concurrency)
    if serve_here is None:
        serve_here = not await served_elsewhere(mediator, asked.saga_names)
        watching = asyncio.create_task(following.watch()) if on_progress is not None else None
    else:
        watching = None
    if serve_here:
        following.serve()
    told = None if on_progress is None else lambda p: on_progress(following.told(p))
    try:
        await book.wait(asked.request_id, poll=poll, on_progress=told)
    finally:
        if watching is not None:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watching
        await following.stop()
    return results_of(asked.kind, await book.items(asked.request_id))


def results_of(kind: str, items: typing.Sequence[RequestItemView]) -> list[ActionResult]:
    """Each pair's outcome as the engine's ActionResult (the one success rule)."""
    action = typing.cast(typing.Literal["start", "recover", "compensate"], kind)
    out = []
    for item in items:
        status = SagaStatus.__members__.get(item.outcome or "")
        out.append(
            ActionResult(
                item.saga_id,
                action,
                status,
                requested=item.outcome == "REQUESTED",
                error=item.error if item.outcome == "ERROR" else None,
            )
        )
    return out
