"""The dashboard driven by keys under Pilot, on a real SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

from textual.widgets import Input, Static, TextArea

from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import Checkpoint, NewSaga
from saga_tui.components.confirm import ConfirmScreen
from saga_tui.components.detail import DetailScreen
from saga_tui.components.start_form import StartForm
from sample_sagas import Knobs, create_mediator
from sample_sagas.app import example_context
from tests.tui.conftest import SIZE, Env, notifications, row_status, table, wait_for


async def run_saga(env: Env, name: str = "OrderSaga", mediator: object = None) -> uuid.UUID:
    """Run one sample saga to its end and return its id."""
    saga_id = uuid.uuid4()
    runner = mediator or env.mediator
    # A failing saga is compensated; the test looks at its stored status.
    with contextlib.suppress(Exception):
        await runner.run(example_context(name), saga_id=saga_id)  # type: ignore[attr-defined]
    return saga_id


async def failed_saga(env: Env) -> uuid.UUID:
    """A SubscriptionSaga whose refund was declined during a rollback: FAILED."""
    declining = create_mediator(
        env.storage,
        knobs=Knobs(
            failure_rate=0.0,
            compensation_failure_rate=0.0,
            latency_ms=(0.0, 1.0),
            refund_decline_rate=1.0,
            refund_decline_seconds=1e6,
            compensation_retry_count=1,
            compensation_retry_delay=0.01,
        ),
    )
    saga_id = await run_saga(env, "SubscriptionSaga", declining)
    result = await declining.compensate_saga(saga_id)
    assert result.status is SagaStatus.FAILED, result
    return saga_id


async def select(pilot: object, app: object, saga_id: uuid.UUID) -> None:
    """Move the table cursor onto a saga's row."""
    t = table(app)  # type: ignore[arg-type]
    await wait_for(pilot, lambda: str(saga_id) in t.order, what="row")  # type: ignore[arg-type]
    t.move_cursor(row=t.order.index(str(saga_id)))


async def confirm(pilot: object, app: object) -> None:
    """Wait for the confirmation and say yes."""
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")  # type: ignore[arg-type, attr-defined]
    await pilot.press("y")  # type: ignore[attr-defined]


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
        assert "invalid JSON" in str(error.render())
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
    done = [await run_saga(env) for _ in range(2)]
    failing = create_mediator(env.storage, knobs=Knobs(failure_rate=1.0, latency_ms=(0.0, 1.0)))
    rolled_back = await run_saga(env, "OrderSaga", failing)
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
    ids = [await run_saga(env) for _ in range(3)]
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, ids[1])
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
        screen = app.screen
        await wait_for(pilot, lambda: screen.detail is not None, what="detail loaded")
        header = str(screen.query_one("#detail-header", Static).render())
        assert str(ids[1]) in header and "COMPLETED" in header
        steps = screen.query_one("#detail-steps")
        assert steps.row_count == 3  # type: ignore[attr-defined]
        await pilot.press("escape")
        assert table(app).current_id == ids[1]


async def test_compensate_completed_undoes_ledger(env: Env) -> None:
    saga_id = await run_saga(env)
    assert {a for _, a in env.ledger(saga_id)} == {"do"}
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, saga_id)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        body = str(app.screen.query_one("#confirm-body", Static).render())
        assert "UNDO ShipOrder, ChargePayment, ReserveInventory" in body
        await pilot.press("y")
        await wait_for(pilot, lambda: row_status(app, saga_id) == "COMPENSATED", what="compensated")
    rows = env.ledger(saga_id)
    assert {s for s, a in rows if a == "do"} == {s for s, a in rows if a == "undo"}


async def test_cancel_does_nothing(env: Env) -> None:
    saga_id = await run_saga(env)
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
    saga_id = await failed_saga(env)
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, saga_id)
        assert row_status(app, saga_id) == "FAILED"
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        body = str(app.screen.query_one("#confirm-body", Static).render())
        assert "retry the failed compensations" in body and "ChargeFirstMonth" in body
        await pilot.press("y")
        await wait_for(pilot, lambda: row_status(app, saga_id) == "COMPENSATED", what="retried")


async def test_mark_three_and_recover_at_once(env: Env) -> None:
    ids = [await failed_saga(env) for _ in range(3)]
    other = await run_saga(env)
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        for saga_id in ids:
            await select(pilot, app, saga_id)
            await pilot.press("space")
        assert app.marks == set(ids)
        await pilot.press("r")
        await confirm(pilot, app)
        await wait_for(
            pilot,
            lambda: all(row_status(app, i) == "COMPENSATED" for i in ids),
            what="all three recovered",
        )
        assert not app.marks
        assert row_status(app, other) == "COMPLETED"


async def test_read_only_refuses_every_action(env: Env) -> None:
    saga_id = await run_saga(env)
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


async def test_unregistered_saga_says_why(env: Env) -> None:
    ghost = uuid.uuid4()
    await env.storage.apply(
        Checkpoint(
            saga_id=ghost,
            create=NewSaga(name="GhostSaga", context={"x": 1}, step_count=2),
            status=SagaStatus.RUNNING,
            current_step="Haunt",
        )
    )
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, ghost)
        await pilot.press("r")
        await wait_for(
            pilot,
            lambda: any("GhostSaga is not registered" in n for n in notifications(app)),
            what="reason",
        )
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
        header = str(app.screen.query_one("#detail-header", Static).render())
        assert "cannot be recovered here" in header and "GhostSaga" in header


async def test_cursor_stays_when_rows_change(env: Env) -> None:
    ids = [await run_saga(env) for _ in range(4)]
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, ids[1])
        for _ in range(3):
            await run_saga(env)
        await wait_for(pilot, lambda: len(table(app).order) == 7, what="new rows")
        assert table(app).current_id == ids[1]
        # Status change in place: the cursor row is updated, not moved.
        await env.mediator.compensate_saga(ids[1])
        await wait_for(pilot, lambda: row_status(app, ids[1]) == "COMPENSATED", what="update")
        assert table(app).current_id == ids[1]


async def test_pause_and_live_stream_toggle(env: Env) -> None:
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await pilot.press("p")
        saga_id = await run_saga(env)
        await pilot.pause(0.4)
        assert str(saga_id) not in table(app).order
        await pilot.press("p")
        await wait_for(pilot, lambda: str(saga_id) in table(app).order, what="resumed")
        stream = app.query_one("#stream")
        await pilot.press("l")
        assert not stream.display
        await pilot.press("l")
        assert stream.display
        await pilot.press("y")
        assert any(str(saga_id) in n for n in notifications(app))
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen", what="help")
        await pilot.press("escape")
        assert app.screen is app.screen_stack[0]


async def test_demo_keeps_sagas_running(env: Env) -> None:
    app = env.app(demo=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) >= 3, timeout=15, what="demo sagas")


async def test_quitting_the_demo_lets_sagas_in_flight_finish(env: Env) -> None:
    from engine.saga.storage.enums import ACTIVE_STATUSES

    env.mediator = create_mediator(
        env.storage, knobs=Knobs(failure_rate=0.0, latency_ms=(100.0, 200.0))
    )
    app = env.app(demo=True)
    async with app.run_test(size=SIZE) as pilot:
        assert app.mediator is not None
        await wait_for(pilot, lambda: app.mediator.running >= 2, timeout=15, what="sagas in flight")
        await app.action_quit()
    counts = await env.storage.count_by_status()
    assert counts.total >= 2
    assert sum(counts[s] for s in ACTIVE_STATUSES) == 0


async def test_detail_follows_a_running_saga(env: Env) -> None:
    slow = create_mediator(env.storage, knobs=Knobs(failure_rate=0.0, latency_ms=(300.0, 300.0)))
    saga_id = uuid.uuid4()
    app = env.app(demo=False)
    app.mediator = slow  # its checkpoints wake the refresh at once
    async with app.run_test(size=SIZE) as pilot:
        task = asyncio.create_task(slow.run(example_context("OrderSaga"), saga_id=saga_id))
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
    rolled_back = await run_saga(env, "OrderSaga", failing)
    await run_saga(env)
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 2, what="rows")
        await pilot.press("ctrl+p")
        await pilot.pause(0.1)
        await pilot.press(*"Show COMPENSATED")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: table(app).order == [str(rolled_back)], what="palette filter")
