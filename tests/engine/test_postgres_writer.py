"""The asyncpg write path and the change hint, on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import time
import typing
import uuid

import pytest

from engine.saga.errors import SagaExistsError
from engine.saga.storage.enums import RequestedAction, SagaStatus, SagaStepStatus
from engine.saga.storage.models import Checkpoint, LogWrite, NewSaga
from engine.saga.storage.postgres.writer import PostgresWriter
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from tests.support import POSTGRES_URL, postgres_database, wait_for

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="SAGA_TEST_POSTGRES_URL is not set")

OWNER = "testhost:1:1"
FAR = time.time() + 3600


@pytest.fixture
async def url() -> typing.AsyncIterator[str]:
    async with postgres_database() as url:
        yield url


@pytest.fixture
async def storage(url: str) -> typing.AsyncIterator[SqlAlchemySagaStorage]:
    store = SqlAlchemySagaStorage.from_url(url)
    try:
        yield store
    finally:
        await store.close()


def create(saga_id: uuid.UUID) -> Checkpoint:
    return Checkpoint(
        saga_id=saga_id,
        owner=OWNER,
        lease_expires=FAR,
        create=NewSaga("OrderSaga", {"n": 1}, 3),
        status=SagaStatus.RUNNING,
        logs=(LogWrite("S1", "act", SagaStepStatus.STARTED),),
    )


def step(saga_id: uuid.UUID, done: int, name: str | None = None) -> Checkpoint:
    return Checkpoint(
        saga_id=saga_id,
        owner=OWNER,
        steps_done=done,
        context={"n": done},
        logs=(LogWrite(typing.cast(str, name or f"S{done}"), "act", SagaStepStatus.COMPLETED),),
    )


def writer(storage: SqlAlchemySagaStorage) -> PostgresWriter:
    assert isinstance(storage._writer, PostgresWriter)
    return storage._writer


async def test_a_batch_of_creates_and_steps_is_one_commit(storage: SqlAlchemySagaStorage) -> None:
    await storage.count_by_status()  # the schema, before counting commits
    ids = [uuid.uuid4() for _ in range(32)]
    before = writer(storage).commits
    await asyncio.gather(*(storage.apply(create(i)) for i in ids))
    await asyncio.gather(*(storage.apply(step(i, 1)) for i in ids))
    assert writer(storage).commits - before <= 4  # 64 checkpoints in a handful of commits
    counts = await storage.count_by_status()
    assert counts[SagaStatus.RUNNING] == 32
    for saga_id in ids[:3]:
        detail = await storage.get_saga(saga_id)
        assert detail is not None and detail.summary.steps_done == 1
        assert [(e.step_name, e.status.name) for e in detail.logs] == [
            ("S1", "STARTED"),
            ("S1", "COMPLETED"),
        ]


async def test_an_existing_id_is_refused_alone_and_writes_nothing(
    storage: SqlAlchemySagaStorage,
) -> None:
    taken = uuid.uuid4()
    await storage.apply(create(taken))
    fresh = uuid.uuid4()
    results = await asyncio.gather(
        storage.apply(create(taken)), storage.apply(create(fresh)), return_exceptions=True
    )
    assert isinstance(results[0], SagaExistsError)
    assert not isinstance(results[1], BaseException)
    assert len(await storage.get_step_history(taken)) == 1  # no second STARTED


async def test_one_saga_twice_in_a_batch_applies_in_order(storage: SqlAlchemySagaStorage) -> None:
    saga_id = uuid.uuid4()
    await storage.apply(create(saga_id))
    await asyncio.gather(*(storage.apply(step(saga_id, n)) for n in (1, 2, 3)))
    state = await storage.load_saga_state(saga_id)
    assert state[1] == {"n": 3} and state[2] == 4  # version: 1 + three context writes
    names = [e.step_name for e in await storage.get_step_history(saga_id)]
    assert names == ["S1", "S1", "S2", "S3"]


@pytest.mark.parametrize("path", ["one statement", "transaction"])
async def test_a_checkpoint_the_server_refuses_fails_alone(
    storage: SqlAlchemySagaStorage, path: str
) -> None:
    ids = [uuid.uuid4() for _ in range(5)]
    await asyncio.gather(*(storage.apply(create(i)) for i in ids))
    if path == "transaction":
        # A request to clear makes the batch a multi-statement transaction.
        await storage.request_action(ids[0], RequestedAction.COMPENSATE)
    checkpoints = [step(i, 1, name="bad\x00name" if n == 2 else None) for n, i in enumerate(ids)]
    if path == "transaction":
        checkpoints[0] = Checkpoint(saga_id=ids[0], owner=OWNER, clear_requested_action=True)
    results = await asyncio.gather(
        *(storage.apply(cp) for cp in checkpoints), return_exceptions=True
    )
    assert isinstance(results[2], Exception)  # PostgreSQL takes no NUL in text
    assert all(not isinstance(r, BaseException) for n, r in enumerate(results) if n != 2)
    if path == "transaction":
        assert results[0].requested_action is RequestedAction.COMPENSATE  # type: ignore[union-attr]
    bad = await storage.get_saga(ids[2])
    assert bad is not None and bad.summary.steps_done == 0 and len(bad.logs) == 1
    assert (await storage.get_saga(ids[3])).summary.steps_done == 1  # type: ignore[union-attr]


async def test_notify_reaches_a_watcher_and_listening_resumes_after_a_lost_connection(
    url: str, storage: SqlAlchemySagaStorage
) -> None:
    import asyncpg

    other = SqlAlchemySagaStorage.from_url(url)  # another writer, its own connections
    heard: list[float] = []
    try:
        assert await storage.watch_changes(lambda: heard.append(time.monotonic()))
        listener = storage._listener
        assert listener is not None
        await wait_for(listener.listening.is_set, what="listening")
        start = len(heard)
        await other.apply(create(uuid.uuid4()))
        await wait_for(lambda: len(heard) > start, what="notification of a commit")
        # The server drops the listening connection: the listener connects again.
        admin = await asyncpg.connect(POSTGRES_URL)
        try:
            dropped = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%' AND datname = $1",
                url.rsplit("/", 1)[1],
            )
        finally:
            await admin.close()
        assert dropped == 1
        # It may reconnect faster than a poll sees it gone: count connections instead.
        await wait_for(lambda: listener.connections == 2, what="listening again")
        await wait_for(listener.listening.is_set, what="listening again")
        start = len(heard)
        await other.apply(create(uuid.uuid4()))
        await wait_for(lambda: len(heard) > start, what="notification after reconnecting")
    finally:
        await other.close()
