"""An application serving requests from its own process: ``worker.serve_requests``."""

from __future__ import annotations

import asyncio
import pathlib

import pytest

from engine.saga.bootstrap import bootstrap
from engine.saga.context_codec import dump_context
from engine.saga.fleet import RequestBook, RequestsUnsupportedError
from engine.saga.storage.memory import MemorySagaStorage
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from engine.saga.worker import RequestServer, serve_requests
from tests.engine.sagas import Ctx, Script, ScriptContainer, mapper
from tests.support import wait_for


def _app(storage: object, script: Script):  # type: ignore[no-untyped-def]
    return bootstrap(
        di_container=ScriptContainer(script), sagas_mapper=mapper, saga_storage=storage
    )


async def test_a_step_running_at_stop_ends_the_run_at_its_boundary(tmp_path: pathlib.Path) -> None:
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    try:
        script = Script(gates={"StepB": asyncio.Event()}, entered={"StepB": asyncio.Event()})
        mediator = _app(storage, script)
        book = RequestBook.of(storage)
        request_id = await book.submit(
            "start", saga_name="ThreeSteps", context=dump_context(Ctx("o1")), count=1
        )
        server = RequestServer(mediator, name="app")
        serving = asyncio.create_task(server.serve())
        await asyncio.wait_for(script.entered["StepB"].wait(), 30)
        (live,) = await book.live_workers()
        assert (live.name, live.dedicated, live.saga_types) == (
            "app",
            True,
            ("FallbackSaga", "ThreeSteps"),
        )
        server.stop()
        script.gates["StepB"].set()  # the step in flight finishes; StepC never starts
        await asyncio.wait_for(serving, 30)
        assert ("act", "StepC") not in script.calls
        (item,) = await book.items(request_id)
        assert (item.outcome, item.claimed_by) == (None, None)  # open for any process
        lease = await storage.get_lease(item.saga_id)
        assert lease is not None and lease.owner is None
        (gone,) = await book.workers()
        assert gone.stopped_at is not None

        # The next server (an application's, until its stop event) picks the request up
        # and finishes the saga where it stopped.
        again = asyncio.Event()
        serving = asyncio.create_task(serve_requests(mediator, stop=again))
        done = await book.wait(request_id, timeout=30)
        again.set()
        await asyncio.wait_for(serving, 30)
        assert done.finished and done.failed == 0
        assert [c for c in script.calls if c == ("act", "StepB")] == [("act", "StepB")]
        assert ("act", "StepC") in script.calls
    finally:
        await storage.close()


async def test_requests_need_a_sql_database() -> None:
    with pytest.raises(RequestsUnsupportedError, match="SQL"):
        RequestBook.of(MemorySagaStorage())


async def test_a_request_for_a_missing_saga_writes_nothing(tmp_path: pathlib.Path) -> None:
    import uuid

    from engine.saga.errors import SagaNotFoundError

    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    try:
        book = RequestBook.of(storage)
        with pytest.raises(SagaNotFoundError):
            await book.submit("compensate", [uuid.uuid4()])
        assert await book.recent() == []
        await wait_for(lambda: True, 1)
    finally:
        await storage.close()


async def test_saga_types_nobody_serves_are_named_until_someone_does(
    tmp_path: pathlib.Path,
) -> None:
    import time
    import uuid

    from engine.saga.requests import WorkerInfo
    from engine.saga.storage.enums import SagaStatus
    from engine.saga.storage.models import Checkpoint, NewSaga

    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    try:
        book = RequestBook.of(storage)
        assert await book.unserved_types() == []
        ghost = uuid.uuid4()
        await storage.apply(
            Checkpoint(
                saga_id=ghost,
                create=NewSaga(name="GhostSaga", context={}, step_count=1),
                status=SagaStatus.RUNNING,
            )
        )
        await book.submit("recover", [ghost])
        assert await book.unserved_types() == ["GhostSaga"]
        # A command line serving its own request (not registered) holds the pair.
        (pair,) = await book.claim("cli:1:1", ["GhostSaga"], 10, time.time() + 60)
        assert await book.unserved_types() == []
        await book.release("cli:1:1", [pair.item_id])
        assert await book.unserved_types() == ["GhostSaga"]
        # A live worker with the type registered.
        now = time.time()
        await book.register(WorkerInfo("w:2:2", "w", "w", 2, "app", ("GhostSaga",), now, now))
        assert await book.unserved_types() == []
    finally:
        await storage.close()


async def test_a_heartbeat_renews_only_the_claims_of_pairs_still_being_served(
    tmp_path: pathlib.Path,
) -> None:
    """A pair whose outcome could not be recorded (its worker lost the database at that
    moment) must not stay claimed by a live worker for ever: its claim runs out."""
    import time

    import sqlalchemy as sa

    from engine.saga.storage.sqlalchemy.schema import saga_request_items

    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    try:
        book = RequestBook.of(storage)
        await book.submit("start", saga_name="ThreeSteps", context=dump_context(Ctx("o")), count=2)
        soon = time.time() + 5
        first, second = await book.claim("w:1:1", ["ThreeSteps"], 10, soon)
        await book.beat("w:1:1", soon + 600, 1, [first.item_id])
        async with storage._engine.connect() as conn:
            items = saga_request_items.c
            rows = await conn.execute(sa.select(items.id, items.claim_expires).order_by(items.id))
            expires = dict(rows.all())
        assert expires[first.item_id] == pytest.approx(soon + 600)
        assert expires[second.item_id] == pytest.approx(soon)  # left to run out
    finally:
        await storage.close()
