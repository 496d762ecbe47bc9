"""Shared fixtures: storage on memory and on a real SQLite file, and a deadline waiter."""

from __future__ import annotations

import asyncio
import pathlib
import time
import typing

import pytest

from engine.saga.storage.memory import MemorySagaStorage
from engine.saga.storage.protocol import ISagaStorage


@pytest.fixture(params=["memory", "sqlite"])
async def storage(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> typing.AsyncIterator[ISagaStorage]:
    """Every engine semantics test runs against both storages."""
    if request.param == "memory":
        store: ISagaStorage = MemorySagaStorage()
    else:
        from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage

        store = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{tmp_path / 'sagas.db'}")
    try:
        yield store
    finally:
        await store.close()


async def wait_until(
    predicate: typing.Callable[[], typing.Awaitable[bool] | bool],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition",
) -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value) or isinstance(value, typing.Awaitable):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)
