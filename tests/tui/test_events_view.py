"""The outbox on the dashboard: the detail's events, the header's counts, events:failed, `e`."""

from __future__ import annotations

import pathlib
import typing
import uuid

import pytest

from engine.saga.storage.outbox import EventState
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from saga_tui.cli import make_app
from saga_tui.components.status_bar import TitleBar
from saga_tui.filters import FilterError, format_filter, parse_filter
from tests.e2e import outbox_app
from tests.tui.conftest import SIZE, notifications, screen_showing, select, table, wait_for


@pytest.fixture
async def parcels(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> typing.AsyncIterator[tuple[pathlib.Path, uuid.UUID, uuid.UUID]]:
    """A database with a ParcelSaga whose events were delivered and one whose failed."""
    path = tmp_path / "sagas.db"
    monkeypatch.setenv("OUTBOX_LEDGER", str(tmp_path / "ledger.db"))
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{path}")
    try:
        mediator = outbox_app.create(storage)
        fine, broken = uuid.uuid4(), uuid.uuid4()
        monkeypatch.setenv("OUTBOX_HANDLER", "ok")
        await mediator.run(outbox_app.ParcelContext(parcel="p-1"), saga_id=fine)
        monkeypatch.setenv("OUTBOX_HANDLER", "fail")
        await mediator.run(outbox_app.ParcelContext(parcel="p-2"), saga_id=broken)
    finally:
        await storage.close()
    yield path, fine, broken


async def test_the_detail_lists_events_the_header_counts_them_and_e_redelivers(
    parcels: tuple[pathlib.Path, uuid.UUID, uuid.UUID],
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, _, broken = parcels
    app = make_app(str(path), outbox_app.create, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await screen_showing(pilot, app, "events: 1 pending, ✗ 1 failed")
        await select(pilot, app, broken)
        await pilot.press("enter")
        shown = await screen_showing(pilot, app, "(e redelivers the failed ones)")
        assert "✗ FAILED    Pack → ParcelMoved  domain  tries 3" in shown
        assert "ConnectionError: courier API down (Pack)" in shown
        assert "… PENDING   Ship → ParcelMoved  domain  tries 0" in shown

        monkeypatch.setenv("OUTBOX_HANDLER", "ok")  # the courier API is back
        await pilot.press("e")
        shown = await screen_showing(pilot, app, "✓ DELIVERED Ship → ParcelMoved")
        assert "✓ DELIVERED Pack → ParcelMoved  domain  tries 4" in shown
        assert "redeliver: 2 delivered, 0 failed" in notifications(app)
        assert "operator   redeliver by" in shown
        title = app.main_screen.query_one("#title", TitleBar)
        await wait_for(
            pilot,
            lambda: title._shown is not None and "events:" not in title._shown.plain,
            what="the header without event counts",
        )
    delivered = [(s, step) for s, step, _ in outbox_app.deliveries(str(tmp_path / "ledger.db"))]
    assert delivered[-2:] == [(str(broken), "Pack"), (str(broken), "Ship")]
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{path}")
    try:
        assert {e.state for e in await storage.saga_events(broken)} == {EventState.DELIVERED}
    finally:
        await storage.close()


async def test_the_filter_events_failed_lists_the_sagas_holding_failed_events(
    parcels: tuple[pathlib.Path, uuid.UUID, uuid.UUID],
) -> None:
    path, fine, broken = parcels
    app = make_app(str(path), outbox_app.create, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 2, what="both sagas")
        await pilot.press("slash", *"events:failed", "enter")
        await wait_for(pilot, lambda: table(app).order == [str(broken)], what="only the broken")
        assert str(fine) not in table(app).order
        await screen_showing(pilot, app, "events:failed")


async def test_e_on_a_read_only_dashboard_says_why(
    parcels: tuple[pathlib.Path, uuid.UUID, uuid.UUID],
) -> None:
    path, _, broken = parcels
    app = make_app(str(path), outbox_app.create, read_only=True, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, broken)
        await pilot.press("enter")
        await screen_showing(pilot, app, "✗ FAILED    Pack")
        await pilot.press("e")
        await wait_for(
            pilot,
            lambda: any(n.startswith("read-only: redeliver refused") for n in notifications(app)),
            what="the refusal",
        )


def test_events_filter_words_parse_and_print_back() -> None:
    parsed = parse_filter("events:fail name:Parcel")
    assert (parsed.events, parsed.name) == ("FAILED", "Parcel")
    assert format_filter(parsed) == "name:Parcel events:failed"
    assert parse_filter(format_filter(parsed)) == parsed
    assert parse_filter("events:PENDING").events == "PENDING"
    with pytest.raises(FilterError, match="use events:failed or events:pending"):
        parse_filter("events:lost")


async def test_the_demo_loop_delivers_what_a_dead_process_left(
    parcels: tuple[pathlib.Path, uuid.UUID, uuid.UUID],
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from engine.saga.lease import this_host

    path, _, broken = parcels
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{path}")
    try:
        await storage.retry_failed_events(broken)
        # a process of this host that is gone had claimed them (no pid is 999999999)
        dead = f"{this_host()}:999999999:1"
        claim = await storage.claim_events(broken, dead, time.time() + 3600, now=time.time())
        assert len(claim.events) == 2
    finally:
        await storage.close()
    monkeypatch.setenv("OUTBOX_HANDLER", "ok")
    app = make_app(str(path), outbox_app.create, demo=True, poll_interval=0.05)
    ledger = str(tmp_path / "ledger.db")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot,
            lambda: [s for s, _, _ in outbox_app.deliveries(ledger)].count(str(broken)) == 2,
            what="the broken saga's two events delivered by the demo loop",
        )
    steps = [step for s, step, _ in outbox_app.deliveries(ledger) if s == str(broken)]
    assert steps == ["Pack", "Ship"]
