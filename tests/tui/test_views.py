"""Sorting, clock times and wide mode on the list, under Pilot on a real SQLite file."""

from __future__ import annotations

import re
import uuid

from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import Checkpoint, ErrorInfo, NewSaga
from tests.tui.conftest import Env, notifications, screen_showing, screen_text, table, wait_for


async def add(env: Env, name: str, status: SagaStatus, error: str | None = None) -> uuid.UUID:
    saga_id = uuid.uuid4()
    await env.storage.apply(
        Checkpoint(
            saga_id=saga_id,
            create=NewSaga(name, {"n": 1}, 3),
            status=status,
            error=ErrorInfo("GatewayError", error) if error else None,
        )
    )
    return saga_id


def statuses(env_app: object) -> list[str]:
    t = table(env_app)  # type: ignore[arg-type]
    return [t.summaries[key].status.name for key in t.order]


def header_x(app: object, label: str) -> int:
    header = next(line for line in screen_text(app).splitlines() if " ID " in line)  # type: ignore[arg-type]
    return header.index(label)


async def test_s_cycles_the_sort_orders_and_newest_first_is_the_default(env: Env) -> None:
    await add(env, "TravelSaga", SagaStatus.COMPLETED)
    await add(env, "OrderSaga", SagaStatus.RUNNING)
    await add(env, "SubscriptionSaga", SagaStatus.FAILED)
    await add(env, "OrderSaga", SagaStatus.COMPENSATED)
    app = env.app()
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 4, what="rows")
        assert statuses(app) == ["COMPENSATED", "FAILED", "RUNNING", "COMPLETED"]
        assert "newest first" in str(table(app).border_subtitle)
        await pilot.press("s")
        await wait_for(pilot, lambda: statuses(app)[0] == "RUNNING", what="by status")
        assert statuses(app) == ["RUNNING", "FAILED", "COMPLETED", "COMPENSATED"]
        assert "by status" in str(table(app).border_subtitle)
        await pilot.press("s")
        names = lambda: [table(app).summaries[k].name for k in table(app).order]  # noqa: E731
        await wait_for(pilot, lambda: names()[0] == "OrderSaga", what="by name")
        assert names() == sorted(names())
        await pilot.press("s", "s")
        await wait_for(
            pilot, lambda: "newest first" in str(table(app).border_subtitle), what="back"
        )


async def test_clicking_a_header_sorts_and_again_reverses(env: Env) -> None:
    for status in (SagaStatus.FAILED, SagaStatus.COMPLETED, SagaStatus.RUNNING):
        await add(env, "OrderSaga", status)
    app = env.app()
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 3, what="rows")
        assert statuses(app) == ["RUNNING", "COMPLETED", "FAILED"]
        # The table's region starts at its border: header line 1, columns as on screen.
        await pilot.click("#sagas", offset=(header_x(app, "STATUS"), 1))
        await wait_for(
            pilot, lambda: statuses(app) == ["RUNNING", "FAILED", "COMPLETED"], what="sorted"
        )
        await screen_showing(pilot, app, "STATUS ▼")
        await pilot.click("#sagas", offset=(header_x(app, "STATUS"), 1))
        await wait_for(
            pilot, lambda: statuses(app) == ["COMPLETED", "FAILED", "RUNNING"], what="reversed"
        )
        await screen_showing(pilot, app, "STATUS ▲")
        await pilot.click("#sagas", offset=(header_x(app, "TOOK"), 1))
        await wait_for(
            pilot, lambda: any("cannot be sorted" in n for n in notifications(app)), what="why"
        )


async def test_t_shows_clock_times_in_the_local_zone(env: Env) -> None:
    saga_id = await add(env, "OrderSaga", SagaStatus.COMPLETED)
    app = env.app()
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 1, what="row")

        def updated() -> str:
            text = screen_text(app)
            row = next(line for line in text.splitlines() if str(saga_id)[:8] in line)
            return row[header_x(app, "UPDATED") :].split()[0]

        assert re.fullmatch(r"\d+s", updated())
        await pilot.press("t")
        await wait_for(pilot, lambda: re.fullmatch(r"\d\d:\d\d:\d\d", updated()), what="clock")
        await pilot.press("t")
        await wait_for(pilot, lambda: re.fullmatch(r"\d+s", updated()), what="ages again")


async def test_wide_mode_shows_the_whole_error_and_scrolls_sideways(env: Env) -> None:
    message = "gateway timed out " + "after retrying " * 12 + "END-OF-ERROR"
    saga_id = await add(env, "OrderSaga", SagaStatus.FAILED, message)
    app = env.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: str(saga_id) in table(app).order, what="row")
        assert "END-OF-ERROR" not in screen_text(app)
        await pilot.press("W")
        for _ in range(40):
            await pilot.press("right")
        text = await screen_showing(pilot, app, "END-OF-ERROR")
        assert "…" not in next(line for line in text.splitlines() if "END-OF-ERROR" in line)
        await pilot.press("W")
        await wait_for(pilot, lambda: round(table(app).scroll_x) == 0, what="fits again")


async def test_the_live_stream_at_80_columns_still_shows_each_outcome(env: Env) -> None:
    app = env.app()
    async with app.run_test(size=(80, 30)) as pilot:
        await wait_for(pilot, lambda: app.feed.watermark is not None, what="the stream started")
        saga_id = await env.run_saga()
        text = await screen_showing(pilot, app, f"{str(saga_id)[:8]} ShipOrder")
        lines = [line for line in text.splitlines() if str(saga_id)[:8] in line]
        assert any("✓ " in line and " ms" in line for line in lines), lines
        assert all(len(line) <= 80 for line in text.splitlines())


async def test_keys_typed_in_one_burst_after_slash_reach_the_filter(env: Env) -> None:
    """A browser or a fast typist delivers '/status:failed' before the app repaints."""
    from textual import events

    failed = await add(env, "OrderSaga", SagaStatus.FAILED, "Boom")
    await add(env, "OrderSaga", SagaStatus.COMPLETED)
    app = env.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 2, what="both rows")
        for char in "/status:failed":
            key = "slash" if char == "/" else ("colon" if char == ":" else char)
            app.post_message(events.Key(key, char))
        app.post_message(events.Key("enter", "\r"))
        await wait_for(pilot, lambda: table(app).order == [str(failed)], what="the filter")


async def test_a_slash_typed_in_the_filter_line_is_text(env: Env) -> None:
    await add(env, "OrderSaga", SagaStatus.FAILED, "a/b")
    app = env.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 1, what="the row")
        await pilot.press("slash", "a", "slash", "b")
        field = app.screen.query_one("#filter")
        await wait_for(pilot, lambda: field.value == "a/b", what="a/b in the filter line")
