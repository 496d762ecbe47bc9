"""Under Pilot, on real SQLite files: the KEY column (business keys in the table, there
only when a saga shown has one and the other columns are comfortable, never narrowing
ERROR), and the reason line of a recover or compensate confirmation, stored with it."""

from __future__ import annotations

import typing
import uuid

from textual.widgets import Input, Static

from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import Checkpoint, NewSaga
from saga_tui.components.confirm import ConfirmScreen
from saga_tui.components.detail import DetailScreen
from sample_sagas.app import example_context
from tests.tui.conftest import (
    Env,
    row_status,
    screen_showing,
    select,
    table,
    wait_for,
)


def header(app: typing.Any) -> str:
    """The saga table's header line as shown."""
    return table(app)._header().text


async def keyless(env: Env) -> uuid.UUID:
    """A COMPLETED saga of a type that declares no business key."""
    saga_id = uuid.uuid4()
    await env.storage.apply(
        Checkpoint(saga_id, create=NewSaga("PlainSaga", {}, 1), status=SagaStatus.COMPLETED)
    )
    return saga_id


async def test_the_table_shows_business_keys_while_a_saga_shown_has_one(env: Env) -> None:
    context = example_context("OrderSaga")
    context.order_id = "ord-9ca8f0"
    keyed = uuid.uuid4()
    await env.mediator.run(context, saga_id=keyed)
    await keyless(env)
    app = env.app()
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 2, what="rows")
        assert [key for key, _ in table(app).columns][:4] == ["mark", "id", "saga", "key"]
        shown = await screen_showing(pilot, app, "ord-9ca8f0")
        row = next(line for line in shown.splitlines() if "ord-9ca8f0" in line)
        assert row.index("OrderSaga") < row.index("ord-9ca8f0") < row.index("COMPLETED")
        assert "KEY" in header(app)
        # Only the keyless saga on the page: no KEY column, the whole header laid out again.
        await pilot.press("slash")
        app.main_screen.query_one("#filter", Input).value = "name:Plain"
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(table(app).order) == 1, what="the plain saga")
        await wait_for(pilot, lambda: "KEY" not in header(app), what="no KEY column")
        assert "key" not in dict(table(app).columns)
        await pilot.press("escape")
        await wait_for(pilot, lambda: "KEY" in header(app), what="the KEY column back")


async def test_on_80_and_120_columns_the_key_gives_way_to_the_error(env: Env) -> None:
    await env.run_saga()
    failed = await env.failed_saga()
    for size in ((80, 24), (120, 40)):
        app = env.app()
        async with app.run_test(size=size) as pilot:
            await wait_for(pilot, lambda a=app: row_status(a, failed) == "FAILED", what="rows")
            shown = dict(table(app).columns)
            assert "key" not in shown and {"status", "error", "saga"} <= set(shown)


async def test_a_reason_typed_in_the_question_is_stored_with_the_compensation(env: Env) -> None:
    saga_id = await env.run_saga()
    app = env.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await select(pilot, app, saga_id)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="question")
        question = app.screen
        assert isinstance(question, ConfirmScreen)
        hint = str(question.query_one("#confirm-keys", Static).render())
        assert "tab: type a reason" in hint
        reason = question.query_one("#confirm-reason", Input)
        assert not reason.has_focus  # y answers at once, as ever
        await pilot.press("tab")
        await wait_for(pilot, lambda: reason.has_focus, what="the reason line")
        # y and n typed into the line are text: the question stays open.
        await pilot.press(*"customer  says y n", "enter")
        await wait_for(pilot, lambda: not reason.has_focus, what="enter ends the reason")
        assert app.screen is question and reason.value == "customer  says y n"
        await pilot.press("y")
        await wait_for(pilot, lambda: row_status(app, saga_id) == "COMPENSATED", what="undone")
        detail = await env.storage.get_saga(saga_id)
        assert detail is not None
        assert [a.reason for a in detail.audit if a.action == "compensate"] == [
            "dashboard: customer says y n"
        ]
        # The saga's history says why.
        await select(pilot, app, saga_id)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
        await wait_for(
            pilot,
            lambda: (
                "(dashboard: customer says y n)"
                in str(app.screen.query_one("#detail-history", Static).render())
            ),
            what="the reason in the history",
        )


async def test_esc_in_the_reason_line_cancels_and_no_reason_is_plain(env: Env) -> None:
    saga_id = await env.run_saga()
    other = await env.run_saga()
    app = env.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await select(pilot, app, saga_id)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="question")
        await pilot.press("tab", *"oops", "escape")
        await wait_for(pilot, lambda: app.screen is app.main_screen, what="cancelled")
        # Nothing asked and nothing typed: the action says only where it came from.
        await select(pilot, app, other)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="question")
        await pilot.press("y")
        await wait_for(pilot, lambda: row_status(app, other) == "COMPENSATED", what="undone")
        assert row_status(app, saga_id) == "COMPLETED"
        detail = await env.storage.get_saga(other)
        assert detail is not None
        assert [a.reason for a in detail.audit if a.action == "compensate"] == ["dashboard"]
