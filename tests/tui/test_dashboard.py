"""The dashboard driven by keys under Pilot, on a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import typing
import uuid

import pytest
from textual.command import CommandList, CommandPalette
from textual.widgets import Input, Static, TextArea

from engine.saga.storage.enums import ACTIVE_STATUSES, SagaStatus
from engine.saga.storage.models import SagaPage
from saga_tui import headless
from saga_tui.components.confirm import ConfirmScreen
from saga_tui.components.detail import DetailScreen
from saga_tui.components.start_form import StartForm
from saga_tui.target import UsageError
from sample_sagas import Knobs, create_mediator
from sample_sagas.app import example_context
from tests.tui.conftest import (
    SIZE,
    Env,
    notifications,
    row_status,
    select,
    table,
    wait_for,
)


async def confirm(pilot: typing.Any, app: typing.Any) -> None:
    """Wait for the confirmation and say yes."""
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
    await pilot.press("y")


def confirm_body(app: typing.Any) -> str:
    """The plan lines of the open confirmation."""
    return str(app.screen.query_one("#confirm-body", Static).render())


async def test_start_from_form_invalid_json_writes_nothing(env: Env) -> None:
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, StartForm), what="form")
        form = app.screen
        editor = form.query_one("#start-context", TextArea)
        example = json.loads(editor.text)  # pre-filled with a valid example
        editor.text = '{"order_id": "x",'
        await pilot.press("ctrl+s")
        error = form.query_one("#start-error", Static)
        assert "invalid JSON at line 1" in str(error.render())
        assert isinstance(app.screen, StartForm)
        assert (await env.storage.count_by_status()).total == 0
        editor.text = json.dumps(example)
        form.query_one("#start-count", Input).value = "3"
        await pilot.press("ctrl+s")
        await wait_for(
            pilot,
            lambda: (
                len(table(app).order) == 3
                and all(s.status is SagaStatus.COMPLETED for s in table(app).summaries.values())
            ),
            what="three completed sagas",
        )
        assert (await env.storage.count_by_status())[SagaStatus.COMPLETED] == 3


async def test_filter_by_status_and_text(env: Env) -> None:
    done = [await env.run_saga() for _ in range(2)]
    failing = create_mediator(env.storage, knobs=Knobs(failure_rate=1.0, latency_ms=(0.0, 1.0)))
    rolled_back = await env.run_saga("OrderSaga", failing)
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 3, what="3 rows")
        await pilot.press("slash")
        await pilot.press(*"status:compensated")
        await pilot.press("enter")
        await wait_for(pilot, lambda: table(app).order == [str(rolled_back)], what="filtered")
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(table(app).order) == 3, what="cleared")
        await pilot.press("slash")
        await pilot.press(*str(done[1])[:8])
        await pilot.press("enter")
        await wait_for(pilot, lambda: table(app).order == [str(done[1])], what="text filter")
        # A status count is a filter too.
        await pilot.press("escape")
        await pilot.click("#count-completed")
        await wait_for(pilot, lambda: set(table(app).order) == {str(i) for i in done}, what="chip")


async def test_open_detail_and_back_keeps_cursor(env: Env) -> None:
    ids = [await env.run_saga() for _ in range(3)]
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, ids[1])
        row = table(app).cursor_row
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
        screen = app.screen
        await wait_for(pilot, lambda: screen.detail is not None, what="detail loaded")
        header = str(screen.query_one("#detail-header", Static).render())
        assert str(ids[1]) in header and "COMPLETED" in header
        assert screen.query_one("#detail-steps").row_count == 3
        # While the detail is open, newer sagas push the row down and the saga changes.
        newer = [await env.run_saga() for _ in range(2)]
        await env.mediator.compensate_saga(ids[1])
        await wait_for(
            pilot,
            lambda: (
                screen.detail is not None and screen.detail.summary.status is SagaStatus.COMPENSATED
            ),
            what="the detail followed the compensation",
        )
        # The cursor left the top row, so the list stays put and counts the newer sagas.
        await wait_for(
            pilot, lambda: "↑ 2 newer" in str(table(app).border_subtitle), what="newer counted"
        )
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main_screen, what="back on the list")
        assert table(app).current_id == ids[1]
        assert table(app).cursor_row == row
        assert not {str(i) for i in newer} & set(table(app).order)
        await wait_for(pilot, lambda: row_status(app, ids[1]) == "COMPENSATED", what="updated")


async def test_compensate_completed_undoes_ledger(env: Env) -> None:
    saga_id = await env.run_saga()
    assert {a for _, a in env.ledger(saga_id)} == {"do"}
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, saga_id)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        assert "UNDO ShipOrder, ChargePayment, ReserveInventory" in confirm_body(app)
        await pilot.press("y")
        await wait_for(pilot, lambda: row_status(app, saga_id) == "COMPENSATED", what="compensated")
    rows = env.ledger(saga_id)
    assert {s for s, a in rows if a == "do"} == {s for s, a in rows if a == "undo"}


async def test_the_dialog_and_the_command_line_say_the_same_plan(env: Env) -> None:
    completed, failed = await env.run_saga(), await env.failed_saga()
    undone = await env.run_saga()
    await env.mediator.compensate_saga(undone)
    ids = sorted((completed, failed, undone), key=str)
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        for saga_id in ids:
            await select(pilot, app, saga_id)
            await pilot.press("space")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        title = str(app.screen.query_one("#confirm-title", Static).render())
        dialog = [title, *confirm_body(app).splitlines()]
        await pilot.press("n")
    questions: list[str] = []

    def answer_no(question: str) -> bool:
        questions.append(question)
        return False

    with pytest.raises(UsageError, match="cancelled"):
        await headless.compensate_command(
            env.mediator, print, [str(i) for i in ids], confirm=answer_no
        )
    cli = [line.strip() for line in questions[0].splitlines()]
    assert cli == dialog
    assert cli[0] == "Compensate 2 sagas?  This undoes completed steps."
    plan = "OrderSaga  COMPLETED: will UNDO ShipOrder, ChargePayment, ReserveInventory"
    assert f"{str(completed)[:8]}  {plan}" in cli
    assert f"{str(undone)[:8]}  OrderSaga  COMPENSATED: skipped, already compensated" in cli


async def test_cancel_does_nothing(env: Env) -> None:
    saga_id = await env.run_saga()
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, saga_id)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("n")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="closed")
    summary = (await env.storage.get_saga(saga_id)).summary  # type: ignore[union-attr]
    assert summary.status is SagaStatus.COMPLETED


async def test_retry_failed_compensation(env: Env) -> None:
    saga_id = await env.failed_saga()
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, saga_id)
        assert row_status(app, saga_id) == "FAILED"
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        body = confirm_body(app)
        assert "retry the failed compensations" in body and "ChargeFirstMonth" in body
        await pilot.press("y")
        await wait_for(pilot, lambda: row_status(app, saga_id) == "COMPENSATED", what="retried")


async def test_a_recovery_that_fails_again_is_reported_as_an_error(env: Env) -> None:
    # The dashboard used to call a recovery that left the saga FAILED a success; the one
    # success rule (ActionResult.ok) makes it an error, as on the command line.
    saga_id = await env.failed_saga()
    declining = Knobs(
        failure_rate=0.0,
        latency_ms=(0.0, 1.0),
        refund_decline_rate=1.0,
        refund_decline_seconds=1e6,
        compensation_retry_count=1,
        compensation_retry_delay=0.01,
    )
    app = env.app(knobs=declining)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, saga_id)
        await pilot.press("r")
        await confirm(pilot, app)
        await wait_for(pilot, lambda: notifications(app, "error"), what="an error notification")
        assert any(f"recover {str(saga_id)[:8]}: FAILED" in n for n in notifications(app, "error"))


async def test_mark_three_and_recover_at_once(env: Env) -> None:
    ids = [await env.failed_saga() for _ in range(3)]
    other = await env.run_saga()
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        for saga_id in ids:
            await select(pilot, app, saga_id)
            await pilot.press("space")
        assert app.browse.marks == set(ids)
        await pilot.press("r")
        await confirm(pilot, app)
        await wait_for(
            pilot,
            lambda: all(row_status(app, i) == "COMPENSATED" for i in ids),
            what="all three recovered",
        )
        await wait_for(pilot, lambda: not app.browse.marks, what="marks cleared")
        assert row_status(app, other) == "COMPLETED"


async def test_read_only_refuses_every_action(env: Env) -> None:
    saga_id = await env.run_saga()
    app = env.app(read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, saga_id)
        for key in ("n", "r", "c"):
            await pilot.press(key)
        await pilot.press("space")
        await pilot.press("r")
        await wait_for(pilot, lambda: len(notifications(app)) >= 4, what="refusals")
        refusals = [n for n in notifications(app) if n.startswith("read-only")]
        assert {r.split(":")[1].split()[0] for r in refusals} == {"start", "recover", "compensate"}
        assert app.screen is app.screen_stack[0]


async def test_cursor_stays_when_rows_change(env: Env) -> None:
    ids = [await env.run_saga() for _ in range(4)]
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, ids[1])
        row = table(app).cursor_row
        for _ in range(3):
            await env.run_saga()
        # Off the top row the page stays put and counts the newer sagas above it.
        await wait_for(
            pilot, lambda: "↑ 3 newer" in str(table(app).border_subtitle), what="newer counted"
        )
        assert table(app).current_id == ids[1] and table(app).cursor_row == row
        # Status change in place: the cursor row is updated, not moved.
        await env.mediator.compensate_saga(ids[1])
        await wait_for(pilot, lambda: row_status(app, ids[1]) == "COMPENSATED", what="update")
        assert table(app).current_id == ids[1]


class GatedReader:
    """The app's reader, with page reads held at a gate the test opens."""

    def __init__(self, inner: typing.Any) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()

    def __getattr__(self, name: str) -> typing.Any:
        return getattr(self.inner, name)

    async def list_sagas(self, *args: typing.Any, **kwargs: typing.Any) -> SagaPage:
        page = await self.inner.list_sagas(*args, **kwargs)
        if not self.gate.is_set():
            self.waiting.set()
            await self.gate.wait()
        return page


async def test_a_reload_in_flight_when_p_is_pressed_is_not_shown(env: Env) -> None:
    first = await env.run_saga()
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: table(app).order == [str(first)], what="first row")
        gated = GatedReader(app.feed.reader)
        app.feed.reader = gated
        gated.gate.clear()
        second = await env.run_saga()
        await wait_for(pilot, gated.waiting.is_set, what="a reload that read the new saga")
        await pilot.press("p")
        # A loaded machine can deliver the key after press() returns: the load must wait
        # until the pause took effect, or it is (rightly) shown.
        await wait_for(pilot, lambda: app.feed.paused, what="paused")
        gated.gate.set()
        await wait_for(
            pilot,
            lambda: (
                app.last_load is not None and any(s.id == second for s in app.last_load.page.items)
            ),
            what="the reload in flight to arrive",
        )
        assert table(app).order == [str(first)]
        assert app.shown is not None and app.shown.counts.total == 1
        await pilot.press("p")
        await wait_for(pilot, lambda: str(second) in table(app).order, what="resumed")


async def test_live_stream_toggle_copy_and_help(env: Env) -> None:
    saga_id = await env.run_saga()
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, saga_id)
        stream = app.main_screen.stream
        await pilot.press("l")
        assert not stream.display and not app.browse.stream
        await pilot.press("l")
        assert stream.display and app.browse.stream
        await pilot.press("y")
        assert any(str(saga_id) in n for n in notifications(app))
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen", what="help")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main_screen, what="help closed")


async def test_demo_keeps_sagas_running(env: Env) -> None:
    app = env.app(demo=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) >= 3, timeout=15, what="demo sagas")


async def test_quitting_the_demo_lets_sagas_in_flight_finish(env: Env) -> None:
    app = env.app(knobs=Knobs(failure_rate=0.0, latency_ms=(100.0, 200.0)), demo=True)
    async with app.run_test(size=SIZE) as pilot:
        mediator = app.mediator
        assert mediator is not None
        await wait_for(pilot, lambda: mediator.running >= 2, timeout=15, what="sagas in flight")
        await app.action_quit()
    counts = await env.storage.count_by_status()
    assert counts.total >= 2
    assert sum(counts[s] for s in ACTIVE_STATUSES) == 0


async def test_detail_follows_a_running_saga(env: Env) -> None:
    # A saga of the dashboard's own process: its checkpoints wake the refresh. The list
    # reloads at most once a second while sagas change, so steps take long enough here
    # for the saga to be listed and opened while it runs.
    app = env.app(knobs=Knobs(failure_rate=0.0, latency_ms=(1500.0, 1500.0)))
    saga_id = uuid.uuid4()
    async with app.run_test(size=SIZE) as pilot:
        assert app.mediator is not None
        task = asyncio.create_task(app.mediator.run(example_context("OrderSaga"), saga_id=saga_id))
        await select(pilot, app, saga_id)
        # Pilot.press waits for an idle app, which a busy live screen is not; the action
        # is what enter triggers.
        app.action_open_detail()
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
        screen = app.screen
        await wait_for(
            pilot,
            lambda: screen.detail is not None and any(s.act.in_flight for s in screen.detail.steps),
            what="a step in flight",
        )
        await wait_for(
            pilot,
            lambda: (
                screen.detail is not None and screen.detail.summary.status is SagaStatus.COMPLETED
            ),
            what="followed to the end",
        )
        await task


async def test_command_palette_filters_by_status(env: Env) -> None:
    failing = create_mediator(env.storage, knobs=Knobs(failure_rate=1.0, latency_ms=(0.0, 1.0)))
    rolled_back = await env.run_saga("OrderSaga", failing)
    await env.run_saga()
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 2, what="rows")
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")
        await pilot.press(*"Show COMPENSATED")

        def highlighted() -> str:
            found = app.screen.query_one(CommandList)
            index = found.highlighted
            return "" if index is None else str(found.get_option_at_index(index).prompt)

        await wait_for(pilot, lambda: "COMPENSATED" in highlighted(), what="the command")
        await pilot.press("enter")
        await wait_for(pilot, lambda: table(app).order == [str(rolled_back)], what="palette filter")
