"""Database text is shown as text; bad input gives one line, never a traceback."""

from __future__ import annotations

import pathlib
import sqlite3
import uuid

import pytest

from engine.saga.storage.enums import SagaStatus, SagaStepStatus
from engine.saga.storage.models import Checkpoint, ErrorInfo, LogWrite, NewSaga
from saga_tui import cli
from saga_tui.components.detail import DetailScreen
from saga_tui.components.start_form import StartForm
from tests.tui.conftest import (
    SIZE,
    Env,
    notifications,
    screen_showing,
    select,
    table,
    wait_for,
)

HOSTILE = "[bold]x[/bold] [@click=app.quit]quit[/] \x1b]0;title\x07 \x1b[2J"


async def hostile_saga(env: Env) -> uuid.UUID:
    """A saga whose name, step, error and context carry markup and control characters."""
    saga_id = uuid.uuid4()
    await env.storage.apply(
        Checkpoint(
            saga_id=saga_id,
            create=NewSaga(name="[@click=app.quit]Saga", context={"note": HOSTILE}, step_count=1),
            status=SagaStatus.FAILED,
            current_step="[bold]Step\x1b[2J",
            error=ErrorInfo("[@click=app.quit]Err", HOSTILE, "Traceback\n  " + HOSTILE),
            logs=(
                LogWrite("[bold]Step\x1b[2J", "act", SagaStepStatus.STARTED),
                LogWrite(
                    "[bold]Step\x1b[2J",
                    "act",
                    SagaStepStatus.FAILED,
                    error=ErrorInfo("[@click=app.quit]Err", HOSTILE, HOSTILE),
                ),
            ),
        )
    )
    return saga_id


async def test_markup_and_control_characters_show_literally(env: Env) -> None:
    saga_id = await hostile_saga(env)
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: str(saga_id) in table(app).order, what="row")
        text = await screen_showing(pilot, app, "[@click=app.qu")
        assert "[bold]Step\\x1b[" in text  # the PROGRESS column cuts the step name's rest
        assert "\x1b" not in text and "\x07" not in text
        # Clicking the text triggers nothing: the app still takes keys afterwards.
        await pilot.click("#sagas", offset=(20, 2))
        await pilot.click("#sagas", offset=(110, 2))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
        await wait_for(pilot, lambda: app.screen.detail is not None, what="loaded")  # type: ignore[attr-defined]
        text = await screen_showing(pilot, app, "[@click=app.quit]Err")
        assert "\\x1b[2J" in text
        assert "[bold]x[/bold]" in text and "\\x1b]0;title\\a" in text
        assert "\x1b" not in text and "\x07" not in text
        await pilot.click("#detail-error", offset=(5, 2))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main_screen, what="back on the list")


async def test_context_that_no_longer_parses(env: Env) -> None:
    saga_id = await env.run_saga()
    with sqlite3.connect(env.path) as conn:
        conn.execute(
            "UPDATE saga_executions SET context = '{broken', status = 'RUNNING' WHERE id = ?",
            (saga_id.hex,),
        )
        if conn.total_changes == 0:
            conn.execute(
                "UPDATE saga_executions SET context = '{broken', status = 'RUNNING' WHERE id = ?",
                (str(saga_id),),
            )
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, saga_id)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
        await screen_showing(pilot, app, "stored context does not parse")
        await pilot.press("r")
        await pilot.press("y")
        await wait_for(
            pilot,
            lambda: any("context" in n and "\n" not in n for n in notifications(app)),
            what="one-line error",
        )


@pytest.mark.parametrize("size", [(60, 15), (200, 60)])
async def test_small_and_large_terminals(env: Env, size: tuple[int, int]) -> None:
    await env.run_saga()
    app = env.app()
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 1, what="row")
        await screen_showing(pilot, app, "OrderSaga")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="the detail")
        await screen_showing(pilot, app, "ShipOrder")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main_screen, what="back")
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, StartForm), what="the start form")
        await screen_showing(pilot, app, "Start sagas")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main_screen, what="closed")


async def test_a_tiny_terminal_says_why_and_grows_back(env: Env) -> None:
    await env.run_saga()
    app = env.app()
    async with app.run_test(size=(30, 8)) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 1, what="row")
        await screen_showing(pilot, app, "Terminal too small")
        await pilot.resize_terminal(100, 30)
        await screen_showing(pilot, app, "OrderSaga")


def test_the_dashboard_refuses_bad_inputs_with_one_line_and_exit_2(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_db = tmp_path / "notes.txt"
    not_db.write_text("hello, this is not a database\n" * 100)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as conn:
        conn.execute("CREATE TABLE saga_executions (id TEXT PRIMARY KEY)")
        conn.execute("CREATE TABLE saga_schema_version (version INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO saga_schema_version VALUES (999)")
    cases = [
        (str(not_db), "sample_sagas:create_mediator", False),
        (str(other), "sample_sagas:create_mediator", False),
        (str(newer), "sample_sagas:create_mediator", False),
        (str(tmp_path / "missing.db"), "sample_sagas:create_mediator", True),
        (str(tmp_path / "fresh.db"), "no_such_module:factory", False),
        (str(tmp_path / "nodir" / "x.db"), "sample_sagas:create_mediator", False),
    ]
    for db, app, read_only in cases:
        args = ["--db", db, "--app", app] + (["--read-only"] if read_only else [])
        assert cli.main(args) == 2, db
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "fresh.db").exists()  # a broken --app creates nothing
    assert not_db.read_text().startswith("hello")
    with sqlite3.connect(other) as conn:  # another application's database is left alone
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"invoices"}
