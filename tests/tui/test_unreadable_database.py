"""A database the dashboard cannot read: said once, in the title and under the table, never
"no sagas yet"; said again when it can be read."""

from __future__ import annotations

import typing

from saga_tui.app import SagaApp
from saga_tui.cli import make_app
from tests.tui.conftest import SIZE, Env, notifications, screen_text, wait_for


def _count_loads(app: SagaApp) -> list[int]:
    """Counts the poll's load attempts from now on (the poll looks ``next`` up each time)."""
    calls = [0]
    real = app.feed.next

    async def counted() -> typing.Any:
        calls[0] += 1
        return await real()

    app.feed.next = counted  # type: ignore[method-assign]
    return calls


def _errors(app: SagaApp) -> list[str]:
    return notifications(app, "error")


async def test_an_unreachable_server_is_said_once_and_never_as_an_empty_list() -> None:
    app = make_app("postgresql+asyncpg://user:pw@127.0.0.1:1/db", None, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: bool(_errors(app)), what="the database error toast")
        calls = _count_loads(app)
        # Three more failed tries (one a second): still one toast for the one reason (every
        # toast raised counts: a slow machine may take longer than a toast stays).
        await wait_for(pilot, lambda: calls[0] >= 3, timeout=30, what="three more tries")
        assert len(_errors(app)) == 1, _errors(app)
        shown = screen_text(app)
        assert "cannot read ✗" in shown
        assert "cannot read the database; trying again every second" in str(
            app.main_screen.table.border_subtitle
        )
        assert "live ●" not in shown
        assert "no sagas yet" not in str(app.main_screen.table.border_subtitle)


async def test_a_database_readable_again_is_said_and_shown(env: Env) -> None:
    saga_id = await env.run_saga()
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: str(saga_id)[:8] in screen_text(app), what="the saga")
        real = app.feed.next
        failures = [0]

        async def failing() -> typing.Any:
            if failures[0] < 2:
                failures[0] += 1
                raise OSError("disk unplugged")
            return await real()

        app.feed.next = failing  # type: ignore[method-assign]
        app.reload()
        await wait_for(pilot, lambda: "cannot read ✗" in screen_text(app), what="the failure")
        assert _errors(app) == ["OSError: disk unplugged"]
        await wait_for(
            pilot,
            lambda: any("read again" in n for n in notifications(app)),
            what="the all-clear",
        )
        await wait_for(pilot, lambda: "live ●" in screen_text(app), what="live again")
        assert "cannot read the database" not in str(app.main_screen.table.border_subtitle)
        assert str(saga_id)[:8] in screen_text(app)
