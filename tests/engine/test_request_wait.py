"""Waiting for a request reads its progress less often when that read is slow.

A request's progress counts all its pairs (55 ms for 100,000 on SQLite); read every
0.1 s, a command waiting for a bulk action spent a third of a core on it.
"""

from __future__ import annotations

import asyncio
import pathlib
import typing

import pytest

from engine.saga import fleet
from engine.saga.fleet import RequestBook, poll_after
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from engine.saga.storage.sqlalchemy import requests_store as store

SLOW_READ = 0.3


class _Asked(Exception):
    """Raised by the stand-in sleep: the test has what it asked for."""


def test_the_wait_after_a_read_is_the_poll_or_four_times_the_read() -> None:
    assert poll_after(0.1, 0.001) == 0.1
    assert poll_after(0.1, 0.055) == pytest.approx(0.22)


async def test_a_slow_progress_read_makes_the_wait_longer(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{tmp_path / 'wait.db'}")
    try:
        book = RequestBook.of(storage)
        request_id = await book.submit("start", saga_name="OrderSaga", context={}, count=1)
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
    finally:
        await storage.close()
