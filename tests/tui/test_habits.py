"""The dashboard at every size and every habit (issue 12), driven under Pilot.

Each test names the point of the issue it covers; each failed on the code before.
"""

from __future__ import annotations

import datetime
import json
import sqlite3
import time
import typing
import unicodedata
import uuid

import pytest
from rich.cells import cell_len
from textual.widgets import Input, TextArea

from engine.saga.storage.enums import SagaStatus, SagaStepStatus
from engine.saga.storage.models import Checkpoint, ErrorInfo, LogWrite, NewSaga
from saga_tui.components.detail import DetailScreen
from saga_tui.components.help import HelpScreen
from saga_tui.components.start_form import StartForm
from tests.tui.conftest import (
    Env,
    notifications,
    row_status,
    screen_showing,
    screen_text,
    select,
    table,
    wait_for,
)


def footer_line(app: typing.Any) -> str:
    return screen_text(app).splitlines()[-1]


@pytest.fixture
def tz(monkeypatch: pytest.MonkeyPatch) -> typing.Iterator[typing.Callable[[str], None]]:
    """Set the process's time zone (TZ) for one test; restored afterwards."""

    def use(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield use
    monkeypatch.undo()
    time.tzset()


async def with_tries(env: Env, saga_id: uuid.UUID | None = None) -> uuid.UUID:
    """A FAILED OrderSaga whose compensation of ReserveInventory took three tries."""
    saga_id = saga_id or uuid.uuid4()
    started, failed = SagaStepStatus.STARTED, SagaStepStatus.FAILED
    logs = [LogWrite("ReserveInventory", "act", started)]
    logs.append(LogWrite("ReserveInventory", "act", SagaStepStatus.COMPLETED, duration_ms=3))
    for attempt in (1, 2, 3):
        logs += [
            LogWrite("ReserveInventory", "compensate", started, attempt=attempt),
            LogWrite(
                "ReserveInventory",
                "compensate",
                failed,
                attempt=attempt,
                duration_ms=2,
                error=ErrorInfo("GatewayError", "timed out"),
            ),
        ]
    await env.storage.apply(
        Checkpoint(
            saga_id=saga_id,
            create=NewSaga("OrderSaga", {"order_id": "o-1"}, 3),
            status=SagaStatus.FAILED,
            steps_done=1,
            logs=tuple(logs),
            error=ErrorInfo("GatewayError", "timed out"),
        )
    )
    return saga_id


def set_times(
    env: Env, saga_id: uuid.UUID, created: datetime.datetime, updated: datetime.datetime
) -> None:
    """Rewrite a saga's stored times (SQLite text, as the engine writes them)."""
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    with sqlite3.connect(env.path) as conn:
        conn.execute(
            "UPDATE saga_executions SET created_at = ?, updated_at = ? WHERE id = ?",
            (created.strftime(fmt), updated.strftime(fmt), saga_id.hex),
        )


# ---- 1. the list follows the newest, or stays put ------------------------------------


async def test_1_the_top_row_follows_the_newest_sagas(env: Env) -> None:
    for _ in range(3):
        await env.run_saga()
    app = env.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 3, what="three rows")
        assert table(app).cursor_row == 0
        newest = [await env.run_saga() for _ in range(4)][-1]
        await wait_for(pilot, lambda: table(app).order[:1] == [str(newest)], what="newest on top")
        # tail -f: the cursor is on the newest saga, the view at the top.
        assert table(app).current_id == newest
        assert table(app).cursor_row == 0 and round(table(app).scroll_y) == 0


async def test_1_elsewhere_the_cursor_stays_on_its_saga_and_newer_ones_are_counted(
    env: Env,
) -> None:
    ids = [await env.run_saga() for _ in range(5)]
    app = env.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 5, what="rows")
        await pilot.press("j", "j")
        chosen = table(app).current_id
        assert chosen == ids[2] and table(app).cursor_row == 2
        for _ in range(3):
            await env.run_saga()
        subtitle = lambda: str(table(app).border_subtitle)  # noqa: E731
        await wait_for(pilot, lambda: "↑ 3 newer" in subtitle(), what="3 newer counted")
        # Rows stay put: same saga, same row, same screen line.
        assert table(app).current_id == chosen and table(app).cursor_row == 2
        assert table(app).order == [str(i) for i in reversed(ids)]
        await pilot.press("home")
        await wait_for(pilot, lambda: len(table(app).order) == 8, what="the newest shown")
        assert table(app).cursor_row == 0 and "newer" not in subtitle()
        newest = await env.run_saga()
        await wait_for(pilot, lambda: table(app).current_id == newest, what="following again")


async def test_1_up_from_the_anchored_top_row_shows_the_newer_sagas(env: Env) -> None:
    ids = [await env.run_saga() for _ in range(3)]
    app = env.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 3, what="rows")
        await pilot.press("j")  # off the top row: the page is anchored at ids[2]
        newer = [await env.run_saga() for _ in range(2)]
        await wait_for(pilot, lambda: "↑ 2 newer" in str(table(app).border_subtitle), what="2")
        await pilot.press("k")  # the top row of the page, with newer sagas above it
        assert table(app).current_id == ids[2] and app.browse.anchor is not None
        await pilot.press("k")
        await wait_for(pilot, lambda: table(app).current_id == newer[0], what="the one above")
        await pilot.press("k")
        await wait_for(pilot, lambda: table(app).current_id == newer[1], what="the newest")
        assert table(app).cursor_row == 0 and app.browse.following


# ---- 2. 80x24 shows the failures -------------------------------------------------------


async def test_2_80x24_shows_failed_counts_the_error_column_help_and_quit(env: Env) -> None:
    failed = await env.failed_saga()
    for _ in range(3):
        await env.run_saga()
    app = env.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: str(failed) in table(app).order, what="rows")
        text = await screen_showing(pilot, app, "FAILED 1")
        header = next(line for line in text.splitlines() if " ID " in line)
        assert "ERROR" in header and "STATUS" in header
        assert "TOOK" not in header and "TRIES" not in header  # ERROR outranks them
        row = next(line for line in text.splitlines() if str(failed)[:8] in line)
        assert "RefundDeclinedError" in row or "Declined" in row
        footer = footer_line(app)
        assert "? Help" in footer and "q Quit" in footer
        assert all(len(line) <= 80 for line in text.splitlines())


async def test_2_a_wide_terminal_gives_the_error_the_width(env: Env) -> None:
    failed = await env.failed_saga()
    app = env.app()
    async with app.run_test(size=(200, 50)) as pilot:
        await wait_for(pilot, lambda: str(failed) in table(app).order, what="row")
        error = table(app).summary(failed)
        assert error is not None and error.error_message
        full = f"{error.error_type}: {error.error_message}"
        text = await screen_showing(pilot, app, str(failed)[:8])
        row = next(line for line in text.splitlines() if str(failed)[:8] in line)
        shown = row[row.index(error.error_type or "") :].rstrip(" │")
        assert len(shown) > 40 and shown.rstrip("…") in full
        header = next(line for line in text.splitlines() if " ID " in line)
        for column in ("PROGRESS", "UPDATED", "TOOK", "TRIES", "CREATED", "ERROR"):
            assert column in header


# ---- 3. a filter puts the cursor on the first row --------------------------------------


async def test_3_after_a_filter_the_cursor_is_on_the_first_row(env: Env) -> None:
    for _ in range(6):
        await env.run_saga()
    app = env.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 6, what="rows")
        await pilot.press("j", "j", "j", "j")
        assert table(app).cursor_row == 4
        await pilot.press("slash", *"status:completed", "enter")
        await wait_for(pilot, lambda: app.browse.saga_filter.statuses, what="filtered")
        await wait_for(pilot, lambda: table(app).cursor_row == 0, what="cursor on the first row")
        assert table(app).current_id == uuid.UUID(table(app).order[0])


# ---- 4. the keys operators know ---------------------------------------------------------


async def test_4_j_k_g_G_home_end_pageup_pagedown_move_the_cursor(env: Env) -> None:
    for _ in range(30):
        await env.run_saga()
    app = env.app()
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 30, what="rows")
        t = table(app)
        await pilot.press("j", "j", "j")
        assert t.cursor_row == 3
        await pilot.press("k")
        assert t.cursor_row == 2
        await pilot.press("G")
        assert t.cursor_row == 29
        await pilot.press("ctrl+home")
        assert t.cursor_row == 0
        await pilot.press("end")
        assert t.cursor_row == 29
        await pilot.press("home")
        assert t.cursor_row == 0
        await pilot.press("pagedown")
        assert t.cursor_row > 5
        await pilot.press("pageup")
        assert t.cursor_row == 0
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        keys = [key for _, rows in app.screen.rows for key, _ in rows]  # type: ignore[attr-defined]
        assert any("ctrl+home" in k for k in keys) and "PgUp" in keys and "PgDn" in keys


# ---- 5. filter mistakes say so ------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("foo:bar", "unknown filter 'foo:bar'"),
        ("is:done", "unknown filter 'is:done'"),
        ("name:", "name: needs a value"),
    ],
)
async def test_5_a_filter_mistake_is_an_error_and_keeps_the_filter(
    env: Env, typed: str, says: str
) -> None:
    await env.run_saga()
    app = env.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 1, what="row")
        await pilot.press("slash", *"status:completed", "enter")
        await wait_for(pilot, lambda: app.browse.saga_filter.statuses, what="a filter")
        before = app.browse.saga_filter
        await pilot.press("slash")
        field = app.main_screen.query_one("#filter", Input)
        field.value = typed
        await pilot.press("enter")
        await wait_for(pilot, lambda: any(says in n for n in notifications(app)), what=says)
        assert app.browse.saga_filter == before
        assert field.display  # still open, to be corrected


async def test_5_a_status_prefix_means_every_status_it_starts(env: Env) -> None:
    done = await env.run_saga()
    undone = await env.run_saga()
    await env.mediator.compensate_saga(undone)
    failed = await env.failed_saga()
    app = env.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 3, what="rows")
        await pilot.press("slash", *"status:comp", "enter")
        await wait_for(
            pilot, lambda: set(table(app).order) == {str(done), str(undone)}, what="comp*"
        )
        assert str(failed) not in table(app).order and not notifications(app)


# ---- 6. y says truthfully where the id went ----------------------------------------------


async def test_6_copy_shows_the_id_and_claims_nothing_it_cannot_know(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    saga_id = await env.run_saga()
    for name in ("TMUX", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    app = env.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await select(pilot, app, saga_id)
        await pilot.press("y")
        await wait_for(pilot, lambda: notifications(app), what="a message")
        (message,) = notifications(app)
        assert str(saga_id) in message
        assert not message.startswith("copied") and "by hand" in message


# ---- 7. the start form ---------------------------------------------------------------------


async def test_7_the_start_form_reports_every_error_and_ctrl_a_selects_all(env: Env) -> None:
    app = env.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, StartForm), what="form")
        form = app.screen
        await wait_for(pilot, lambda: "Cancel" in footer_line(app), what="the form's footer")
        footer = footer_line(app)
        assert "Start" in footer and "Cancel" in footer and "Detail" not in footer
        editor = form.query_one("#start-context", TextArea)
        editor.focus()
        await pilot.press("ctrl+a")
        assert editor.selected_text == editor.text
        editor.text = json.dumps({"order_id": 1, "lines": "x", "address": 5})
        form.query_one("#start-count", Input).value = "0"
        await pilot.press("ctrl+s")

        def errors() -> list[str]:
            return str(form.query_one("#start-error").render()).splitlines()

        await wait_for(pilot, lambda: len(errors()) >= 4, what="every error of the form")
        error = "\n".join(problems := errors())
        assert len(problems) >= 4, error
        assert any("count" in p for p in problems)
        assert any("order_id" in p for p in problems) and any("lines" in p for p in problems)
        assert (await env.storage.count_by_status()).total == 0


async def test_7_the_start_form_fits_80x24(env: Env) -> None:
    app = env.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, StartForm), what="form")
        text = await screen_showing(pilot, app, "Count")
        line = next(line for line in text.splitlines() if "Count" in line)
        assert "Start" in line and "Cancel" in line
        await wait_for(pilot, lambda: "^s Start" in footer_line(app), what="the form's footer")


# ---- 8. --read-only shows ----------------------------------------------------------------------


async def test_8_read_only_is_in_the_title_and_the_footer_offers_no_writes(env: Env) -> None:
    saga_id = await env.run_saga()
    app = env.app(read_only=True)
    async with app.run_test(size=(200, 40)) as pilot:
        await wait_for(pilot, lambda: str(saga_id) in table(app).order, what="row")
        text = await screen_showing(pilot, app, "q Quit")
        assert "read-only" in text.splitlines()[0]
        footer = footer_line(app)
        assert "New" not in footer and "Recover" not in footer and "Compensate" not in footer
        assert "Filter" in footer and "Quit" in footer
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
        await screen_showing(pilot, app, "esc Back")
        detail_footer = footer_line(app)
        assert "Recover" not in detail_footer and "Back" in detail_footer


# ---- 9. one meaning of tries; one took; compensated rows ------------------------------------


async def test_9_tries_means_the_same_in_the_list_the_lanes_and_the_detail(env: Env) -> None:
    saga_id = await with_tries(env)
    app = env.app()
    async with app.run_test(size=(200, 50)) as pilot:
        await select(pilot, app, saga_id)
        summary = table(app).summary(saga_id)
        assert summary is not None and summary.tries == 3
        text = screen_text(app)
        header = next(line for line in text.splitlines() if " ID " in line)
        row = next(line for line in text.splitlines() if str(saga_id)[:8] in line)
        column = header.index("TRIES")
        assert row[column : column + 5].strip() == "3"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
        text = await screen_showing(pilot, app, "3 tries")
        assert "tries 3" in text and "recoveries 0" in text and "attempts" not in text


async def test_9_a_stranded_saga_took_the_same_in_the_list_and_the_detail(env: Env) -> None:
    saga_id = uuid.uuid4()
    await env.storage.apply(
        Checkpoint(
            saga_id=saga_id,
            create=NewSaga("OrderSaga", {"order_id": "o"}, 3),
            status=SagaStatus.RUNNING,
            current_step="ChargePayment",
        )
    )
    created = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
    set_times(env, saga_id, created, created + datetime.timedelta(milliseconds=36))
    app = env.app()
    async with app.run_test(size=(200, 50)) as pilot:
        await select(pilot, app, saga_id)
        text = screen_text(app)
        header = next(line for line in text.splitlines() if " ID " in line)
        row = next(line for line in text.splitlines() if str(saga_id)[:8] in line)
        took = row[header.index("TOOK") :].split()[0]
        assert took.startswith("2h")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
        await screen_showing(pilot, app, f"took {took}")


async def test_9_compensated_rows_show_no_squares_of_applied_steps(env: Env) -> None:
    saga_id = await env.run_saga()
    await env.mediator.compensate_saga(saga_id)
    app = env.app()
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: row_status(app, saga_id) == "COMPENSATED", what="row")
        text = screen_text(app)
        row = next(line for line in text.splitlines() if str(saga_id)[:8] in line)
        assert "↺↺↺" in row and "■" not in row


# ---- 10. milliseconds and the time zone ------------------------------------------------------


async def test_10_history_has_milliseconds_and_the_time_zone_is_shown(
    env: Env, tz: typing.Callable[[str], None]
) -> None:
    tz("Asia/Tokyo")
    saga_id = await env.run_saga()
    app = env.app()
    async with app.run_test(size=(160, 50)) as pilot:
        await select(pilot, app, saga_id)
        title = screen_text(app).splitlines()[0]
        assert title.rstrip().endswith("JST")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
        screen = app.screen
        assert isinstance(screen, DetailScreen)
        await wait_for(pilot, lambda: screen.detail is not None, what="loaded")
        history = str(screen.query_one("#detail-history").render())
        assert "JST" in history and "UTC+09:00" in history
        stamps = [line.split()[1] for line in history.splitlines()[1:] if line.strip()]
        assert stamps and all(len(s) == 12 and s[8] == "." for s in stamps), stamps
        # Local time: Tokyo is nine hours ahead of the stored UTC.
        first = screen.detail.logs[0].created_at if screen.detail else None
        assert first is not None
        assert (
            stamps[0]
            == first.astimezone(datetime.timezone(datetime.timedelta(hours=9))).strftime(
                "%H:%M:%S.%f"
            )[:-3]
        )


# ---- 11. text that would move or hide what is shown ----------------------------------------


def naive_width(text: str) -> int:
    """Cells as a terminal that knows no emoji sequences (tmux, xterm) counts them."""
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in "WF" else 1
    return width


async def test_11_bidi_overrides_emoji_and_long_values_in_the_detail(env: Env) -> None:
    saga_id = uuid.uuid4()
    long_value = "x" * 4990 + "THE-END-42"
    emoji = "❤️ 👍🏽 👩‍👩‍👧 1️⃣ 🇯🇵"
    await env.storage.apply(
        Checkpoint(
            saga_id=saga_id,
            create=NewSaga(
                "OrderSaga",
                {"file": "invoice\u202egpj.exe", "mood": emoji, "blob": long_value},
                3,
            ),
            status=SagaStatus.COMPLETED,
            error=ErrorInfo("Oops", f"{emoji} \u202eevil"),
        )
    )
    app = env.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await select(pilot, app, saga_id)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
        text = await screen_showing(pilot, app, "invoice")
        assert "\u202e" not in text and "invoice\\u202egpj.exe" in text
        for line in text.splitlines():
            assert naive_width(line) == cell_len(line), line  # no border moves
        app.screen.query_one("#detail-body").scroll_end(animate=False)
        await screen_showing(pilot, app, "THE-END-42")  # wrapped, so it is on screen


# ---- 12. a resize after l l ----------------------------------------------------------------------


async def test_12_l_l_then_a_small_terminal_still_shows_rows(env: Env) -> None:
    ids = [await env.run_saga() for _ in range(5)]
    app = env.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 5, what="rows")
        await pilot.press("l", "l")
        await pilot.resize_terminal(60, 15)
        text = await screen_showing(pilot, app, str(ids[-1])[:8])
        assert sum(1 for i in ids if str(i)[:8] in text) >= 3
        assert not app.main_screen.stream.display and not app.browse.stream
        await pilot.resize_terminal(120, 40)
        await wait_for(pilot, lambda: app.main_screen.stream.display, what="stream back")


# ---- 13. repaint only what changed ------------------------------------------------------------


async def test_13_a_reload_repaints_only_the_rows_that_changed(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [await env.run_saga() for _ in range(6)]
    app = env.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 6, what="rows")
        # Clock times do not tick; anchored, the rows stay where they are.
        await pilot.press("t", "j", "j")
        t = table(app)
        await wait_for(pilot, lambda: t.absolute, what="clock times")
        rendered: list[str] = []
        original = t._strip

        def counting(cells: typing.Any, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:
            rendered.append(cells["id"].plain)
            return original(cells, *args, **kwargs)

        monkeypatch.setattr(t, "_strip", counting)
        await env.mediator.compensate_saga(ids[0])
        await wait_for(pilot, lambda: row_status(app, ids[0]) == "COMPENSATED", what="update")
        await wait_for(pilot, lambda: str(ids[0])[:8] in rendered, what="the row repainted")
        assert set(rendered) <= {str(ids[0])[:8], "ID"}, rendered
