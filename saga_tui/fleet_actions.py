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
from engine.saga.requests import RequestKind, RequestProgress
from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.sqlalchemy.storage import SqlAlchemySagaStorage
from engine.saga.worker import RequestServer

if typing.TYPE_CHECKING:
    from engine.saga.mediator import SagaMediator
    from engine.saga.requests import RequestItemView

Progress = typing.Callable[[RequestProgress], None]


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


async def follow(
    mediator: SagaMediator,
    asked: Asked,
    *,
    serve_here: bool | None = None,
    on_progress: Progress | None = None,
    poll: float = 0.1,
) -> list[ActionResult]:
    """Wait until every pair has its outcome; serve the request here when nobody else can
    (``serve_here`` None: decide by the workers table). Returns results in request order."""
    book = RequestBook.of(mediator.storage)
    if serve_here is None:
        serve_here = not await served_elsewhere(mediator, asked.saga_names)
    server: RequestServer | None = None
    serving: asyncio.Task[None] | None = None
    if serve_here:
        server = RequestServer(
            mediator, only_request=asked.request_id, register=False, recover_stale=False
        )
        serving = asyncio.create_task(server.serve())
    try:
        await book.wait(asked.request_id, poll=poll, on_progress=on_progress)
    finally:
        if server is not None and serving is not None:
            server.stop()
            with contextlib.suppress(Exception):
                await asyncio.shield(serving)
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
