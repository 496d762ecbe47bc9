"""Free-text search: an id prefix when the text starts an id, error text otherwise."""

from __future__ import annotations

import asyncio
import typing
import uuid

from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import Checkpoint, ErrorInfo, NewSaga, SagaFilter
from engine.saga.storage.protocol import ISagaStorage


async def add(storage: ISagaStorage, saga_id: uuid.UUID, error: str | None) -> None:
    await storage.apply(
        Checkpoint(
            saga_id=saga_id,
            create=NewSaga("OrderSaga", {"n": 1}, 3),
            status=SagaStatus.FAILED if error else SagaStatus.COMPLETED,
            error=ErrorInfo("ChargeError", error) if error else None,
        ),
    )


async def test_id_like_text_that_starts_no_id_searches_errors(storage: ISagaStorage) -> None:
    declined = uuid.UUID("aaaaaaaa-0000-4000-8000-000000000001")
    other = uuid.UUID("abcd1234-0000-4000-8000-000000000002")
    await add(storage, declined, "card declined: limit 1500 EUR")
    await add(storage, other, None)

    async def ids(text: str) -> list[uuid.UUID]:
        page = await storage.list_sagas(SagaFilter(text=text))
        return [s.id for s in page.items]

    assert await ids("abcd1234") == [other]  # an id prefix
    assert await ids("1500") == [declined]  # looks like an id, starts none: error text
    assert await ids("declined") == [declined]
    assert await ids("ffff0000") == []


def test_every_storage_is_a_saga_reader(tmp_path: typing.Any) -> None:
    """The dashboard's read-only protocol is satisfied by both storages."""
    from engine.saga.storage.memory import MemorySagaStorage
    from engine.saga.storage.reader import SagaReader
    from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage

    assert isinstance(MemorySagaStorage(), SagaReader)
    store = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
    assert isinstance(store, SagaReader)
    asyncio.run(store.close())
