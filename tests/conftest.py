"""Shared fixtures: storage on memory, a real SQLite file or PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import pathlib
import typing
import uuid

import pytest

from engine.saga.storage.memory import MemorySagaStorage
from engine.saga.storage.protocol import ISagaStorage

# A PostgreSQL server for the storage tests, when one is given (.ci/run starts one):
# postgresql://user:password@host:port/maintenance-db
POSTGRES_URL = os.environ.get("SAGA_TEST_POSTGRES_URL", "")
STORAGES = ["memory", "sqlite"] + (["postgres"] if POSTGRES_URL else [])


@contextlib.asynccontextmanager
async def postgres_database() -> typing.AsyncIterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards; yields its URL."""
    import asyncpg

    name = f"saga_test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(POSTGRES_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


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
