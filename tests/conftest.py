"""Shared fixtures: storage on memory, a real SQLite file or PostgreSQL."""

from __future__ import annotations

import pathlib
import typing

import pytest

from engine.saga.storage.memory import MemorySagaStorage
from engine.saga.storage.protocol import ISagaStorage
from tests.support import POSTGRES_URL, postgres_database

STORAGES = ["memory", "sqlite"] + (["postgres"] if POSTGRES_URL else [])


@pytest.fixture(params=STORAGES)
async def storage(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> typing.AsyncIterator[ISagaStorage]:
    """Every engine semantics test runs against memory, SQLite (and PostgreSQL if given)."""
    from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage

    if request.param == "postgres":
        async with postgres_database() as url:
            store: ISagaStorage = SqlAlchemySagaStorage.from_url(url)
            try:
                yield store
            finally:
                await store.close()
        return
    if request.param == "memory":
        store = MemorySagaStorage()
    else:
        store = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{tmp_path / 'sagas.db'}")
    try:
        yield store
    finally:
        await store.close()
