"""The live loop without Textual: browse state and the feed, on a real SQLite file."""

from __future__ import annotations

import asyncio
import pathlib
import typing

import pytest

from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import SagaFilter
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from saga_tui.live import BrowseState, LiveFeed
from sample_sagas import create_mediator
from sample_sagas.app import example_context
from tests.support import wait_for
from tests.tui.conftest import FAST


@pytest.fixture
async def storage(tmp_path: pathlib.Path) -> typing.AsyncIterator[SqlAlchemySagaStorage]:
    """A fresh SQLite file."""
    store = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{tmp_path / 'live.db'}")
    try:
        yield store
    finally:
        await store.close()


class CountingReader:
    """A reader that counts the probes and the page reads made through it."""

    def __init__(self, inner: SqlAlchemySagaStorage) -> None:
        self.inner = inner
        self.probes = 0
        self.pages = 0

    def __getattr__(self, name: str) -> typing.Any:
        return getattr(self.inner, name)

    async def change_token(self) -> int:
        self.probes += 1
        return await self.inner.change_token()

    async def list_sagas(self, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:
        self.pages += 1
        return await self.inner.list_sagas(*args, **kwargs)


async def test_the_feed_loads_what_is_asked_then_only_on_change(
    storage: SqlAlchemySagaStorage,
) -> None:
    mediator = create_mediator(storage, knobs=FAST)
    await mediator.run(example_context("OrderSaga"))
    reader = CountingReader(storage)
    feed = LiveFeed(typing.cast(typing.Any, reader), poll_interval=0.01)
    feed.want(BrowseState(page_size=10).request())
    first = await asyncio.wait_for(feed.next(), 10)
    assert first.counts.total == 1 and len(first.page.items) == 1
    # Nothing changed: the feed probes and reads nothing more.
    waiting = asyncio.ensure_future(feed.next())
    probes = reader.probes
    await wait_for(lambda: reader.probes >= probes + 3, what="three more probes")
    assert reader.pages == 1 and not waiting.done()
    # A write through another connection (this test's mediator) is a change.
    await mediator.run(example_context("TravelSaga"))
    second = await asyncio.wait_for(waiting, 10)
    assert second.counts.total == 2 and reader.pages == 2


async def test_a_paused_feed_still_loads_what_is_asked(storage: SqlAlchemySagaStorage) -> None:
    mediator = create_mediator(storage, knobs=FAST)
    await mediator.run(example_context("OrderSaga"))
    feed = LiveFeed(storage, poll_interval=0.01)
    feed.paused = True
    browse = BrowseState()
    browse.set_filter(SagaFilter(statuses=(SagaStatus.COMPLETED,)))
    feed.want(browse.request())
    result = await asyncio.wait_for(feed.next(), 10)
    assert result.counts.total == 1 and browse.is_current(result)
    browse.invalidate()  # as pausing does: what was read before is not shown
    assert not browse.is_current(result)


async def test_the_stream_starts_at_now_and_follows_the_watermark(
    storage: SqlAlchemySagaStorage,
) -> None:
    mediator = create_mediator(storage, knobs=FAST)
    await mediator.run(example_context("OrderSaga"))
    feed = LiveFeed(storage)
    request = BrowseState().request()
    assert await feed.stream_lines(request) == []  # history is not replayed
    await mediator.run(example_context("OrderSaga"))
    lines = await feed.stream_lines(request)
    assert [line.status.name for line in lines[:2]] == ["STARTED", "COMPLETED"]
    assert await feed.stream_lines(request) == []
    hidden = BrowseState(stream=False).request()
    assert await feed.stream_lines(hidden) == [] and feed.watermark is None


def test_browse_state_pages_and_says_where_it_is() -> None:
    browse = BrowseState(page_size=50)
    old = browse.request()
    assert browse.subtitle(0, more=False) == "no sagas yet: press n to start one · newest first"
    assert not browse.next_page(None)
    assert not browse.previous_page()
    cursor = typing.cast(typing.Any, "cursor-after-page-1")
    assert browse.next_page(cursor)
    assert browse.request().after == cursor and browse.request().generation > old.generation
    assert browse.subtitle(50, more=True) == "51-100 ·  ] more · newest first"
    browse.toggle_mark(typing.cast(typing.Any, "a"))
    assert browse.subtitle(50, more=False) == "51-100 · 1 marked · newest first"
    assert browse.previous_page() and browse.page_after is None
    browse.set_filter(SagaFilter(name="Order"))
    assert browse.title() == "Sagas · name:Order"
    assert browse.subtitle(0, more=False) == "no sagas match · 1 marked · newest first"
    browse.set_filter(SagaFilter(text="stranded"))
    assert browse.subtitle(0, more=False).startswith(
        "no sagas match (the status is status:stranded) · "
    )
