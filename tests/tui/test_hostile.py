"""A hostile database: control characters in every text column never reach the screen.

Escape sequences, BEL, C1 controls, bidi overrides and zero-width characters are put in
the saga name, current step, step names, error type/message/traceback, context keys and
values, operator and reason; the table, the detail, the live stream, the confirmation
dialog and the toasts show them as visible escapes only.
"""

from __future__ import annotations

from engine.saga.storage.enums import SagaStepStatus
from engine.saga.storage.models import Checkpoint, ErrorInfo, LogWrite
from saga_tui.components.detail import DetailScreen
from tests.support import EVIL, assert_harmless, hostile_sagas
from tests.tui.conftest import (
    SIZE,
    Env,
    notifications,
    screen_showing,
    screen_text,
    select,
    table,
    wait_for,
)


async def test_no_control_character_reaches_any_dashboard_screen(env: Env) -> None:
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        named, order = await hostile_sagas(env.storage)
        await wait_for(pilot, lambda: str(order) in table(app).order, what="rows")
        await screen_showing(pilot, app, "Saga\\u202e")
        # New log lines reach the live stream while the app runs.
        error = ErrorInfo(f"Err{EVIL}", f"stream {EVIL}")
        failed = LogWrite(f"Live{EVIL}", "act", SagaStepStatus.FAILED, error=error)
        await env.storage.apply(Checkpoint(saga_id=named, logs=(failed,)))
        text = await screen_showing(pilot, app, "Live\\u202e")
        assert_harmless(text, "the table and stream")
        await select(pilot, app, named)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
        text = await screen_showing(pilot, app, "user\\u202e")
        assert_harmless(text, "the detail of the hostile name")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main_screen, what="the list")
        await select(pilot, app, order)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
        await wait_for(pilot, lambda: app.screen.detail is not None, what="loaded")  # type: ignore[attr-defined]
        text = await screen_showing(pilot, app, "line \\u202e")
        assert "Reserve\\u202e" in text and "Err\\u202e" in text and '"key\\u202e' in text
        assert_harmless(text, "the detail")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main_screen, what="the list")
        await select(pilot, app, order)
        await pilot.press("c")
        text = await screen_showing(pilot, app, "confirm")
        assert "Reserve\\u202e" in text or "Charge\\u202e" in text, text
        assert_harmless(text, "the confirmation dialog")
        await pilot.press("y")
        await wait_for(pilot, lambda: notifications(app), what="a toast")
        await select(pilot, app, named)
        # A saga type this app does not know: the request waits for a worker that has it.
        await pilot.press("r")
        text = await screen_showing(pilot, app, "Recover 1 saga?")
        assert_harmless(text, "the confirmation for an unknown saga type")
        await pilot.press("y")
        await wait_for(pilot, lambda: len(notifications(app)) >= 2, what="the second toast")
        for message in notifications(app):
            assert_harmless(message, "a toast")
        assert_harmless(screen_text(app), "the screen after the actions")


async def test_malformed_rows_never_blank_the_dashboard(env: Env) -> None:
    import sqlite3

    ids = [await env.run_saga() for _ in range(4)]
    with sqlite3.connect(env.path) as conn:
        conn.execute("UPDATE saga_executions SET status = 'HACKED' WHERE id = ?", (ids[0].hex,))
        conn.execute(
            "UPDATE saga_executions SET created_at = 'not a time' WHERE id = ?", (ids[1].hex,)
        )
        conn.execute("UPDATE saga_executions SET steps_done = 'many' WHERE id = ?", (ids[2].hex,))
        conn.execute(
            "UPDATE saga_logs SET status = 'WEIRD' WHERE id = (SELECT max(id) FROM saga_logs)"
        )
    conn.close()
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 4, what="all four rows")
        text = await screen_showing(pilot, app, "unreadable row: status 'HACKED'")
        assert "ALL 4" in text
        assert text.count("UNREADABLE") == 3, text
        await select(pilot, app, ids[3])
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
        await wait_for(pilot, lambda: app.screen.detail is not None, what="loaded")  # type: ignore[attr-defined]
