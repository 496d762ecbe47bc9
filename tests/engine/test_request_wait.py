"""Waiting for a request reads its progress less often when that read is slow.

A request's progress counts all its pairs (55 ms for 100,000 on SQLite); read every
0.1 s, a command waiting for a bulk action spent a third of a core on it.
"""

from __future__ import annotations

import asyncio
import pathlib
import typing
import uuid

import pytest

from engine.saga import fleet
from engine.saga.fleet import RequestBook, poll_after
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from engine.saga.storage.sqlalchemy import requests_store as store

SLOW_READ = 0.3


class _Asked(Exception):
    """Raised by the stand-in sleep: the test has what it asked for."""


Waiting = tuple[SqlAlchemySagaStorage, RequestBook, uuid.UUID]


@pytest.fixture
async def waiting(tmp_path: pathlib.Path) -> typing.AsyncIterator[Waiting]:
    """A SQLite storage holding one start request nobody serves."""
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{tmp_path / 'wait.db'}")
    try:
        book = RequestBook.of(storage)
        request_id = await book.submit("start", saga_name="OrderSaga", context={}, count=1)
        yield storage, book, request_id
    finally:
        await storage.close()


def test_the_wait_after_a_read_is_the_poll_or_four_times_the_read() -> None:
    assert poll_after(0.1, 0.001) == 0.1
    assert poll_after(0.1, 0.055) == pytest.approx(0.22)


async def test_a_slow_progress_read_makes_the_wait_longer(
    waiting: Waiting, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage, book, request_id = waiting
    real_read, real_sleep = storage._read, asyncio.sleep

    async def slow_read(fn: typing.Any, *args: typing.Any) -> typing.Any:
        if fn is store.request_progress:
            await real_sleep(SLOW_READ)  # a read of many pairs
        return await real_read(fn, *args)

    asked: list[float] = []

    async def sleep(seconds: float) -> None:
        asked.append(seconds)
        raise _Asked

    monkeypatch.setattr(storage, "_read", slow_read)
    monkeypatch.setattr(fleet.asyncio, "sleep", sleep)
    try:
        with pytest.raises(_Asked):
            await book.wait(request_id, poll=0.01)
    finally:
        monkeypatch.undo()  # asyncio.sleep again before anything else awaits it
    # Nobody serves the request: it waits, here four times as long as the read took.
    assert asked and asked[0] >= 4 * SLOW_READ, asked


async def test_a_wait_rides_out_unreadable_progress_then_gives_up_past_its_patience(
    waiting: Waiting, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy as sa

    from engine.saga.requests import RequestProgress

    storage, book, request_id = waiting
    real_read = storage._read
    reads = iter(["ok", "gone", "gone", "ok", "gone", *["gone"] * 1000])

    async def flaky(fn: typing.Any, *args: typing.Any) -> typing.Any:
        if next(reads) == "gone":
            raise sa.exc.OperationalError("SELECT", {}, ConnectionError("server closed"))
        return await real_read(fn, *args)

    monkeypatch.setattr(storage, "_read", flaky)
    seen: list[RequestProgress] = []
    with pytest.raises(sa.exc.OperationalError):
        await book.wait(request_id, poll=0.01, on_progress=seen.append, patience=0.5)
    troubles = [p.trouble for p in seen]
    # Read, failed twice (said once), read again (cleared), failed until past patience.
    assert troubles[0] is None and troubles[2] is None and troubles[1] == troubles[3]
    assert len(troubles) == 4
    assert troubles[1] is not None and troubles[1].startswith(
        "reading the request's progress failed: "
    )
    assert "server closed" in troubles[1] and troubles[1].endswith(
        "; trying again, at most 5 s apart"
    )
