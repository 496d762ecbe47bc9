"""The dashboard never shows the password of its database URL: title, screens, toasts."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from saga_tui.app import SagaApp
from saga_tui.cli import make_app
from tests.support import POSTGRES_URL, ROLE_PASSWORD, postgres_role_database
from tests.tui.conftest import SIZE, screen_text, table, wait_for

ROOT = pathlib.Path(__file__).resolve().parents[2]
PASSWORD = "S3cretPW"


def everything_shown(app: SagaApp) -> str:
    """The screen, the title bar and every toast (message and title) so far."""
    toasts = [f"{n.title} {n.message}" for n in app._notifications]
    return "\n".join([screen_text(app), app.title, app.sub_title, app.label, *toasts])


async def test_an_unreachable_server_is_reported_without_its_password() -> None:
    app = make_app(f"postgresql+asyncpg://user:{PASSWORD}@127.0.0.1:1/db", None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot,
            lambda: any(n.severity == "error" for n in app._notifications),
            what="the database error toast",
        )
        shown = everything_shown(app)
        assert "Connect call failed" in shown
        assert PASSWORD not in shown


async def test_a_toast_with_a_url_in_its_text_is_masked() -> None:
    # Every toast passes the one sink: also those built from an exception's own text.
    app = make_app(f"postgresql+asyncpg://user:{PASSWORD}@127.0.0.1:1/db", None)
    async with app.run_test(size=SIZE) as pilot:
        app.notify(
            f"cannot reach redis://cache:{PASSWORD}@10.0.0.9/0",
            title=f"postgresql://u:{PASSWORD}@h/db",
        )
        await wait_for(
            pilot, lambda: "redis://" in everything_shown(app), what="the toast with the URL"
        )
        shown = everything_shown(app)
        assert "redis://cache:***@10.0.0.9/0" in shown
        assert PASSWORD not in shown


@pytest.mark.slow
@pytest.mark.skipif(not POSTGRES_URL, reason="SAGA_TEST_POSTGRES_URL is not set")
async def test_a_dashboard_on_a_password_protected_database_never_shows_the_password() -> None:
    with postgres_role_database() as url:
        started = subprocess.run(
            [
                sys.executable,
                "-m",
                "saga_tui",
                "--db",
                url,
                "--app",
                "tests.e2e.apps:reliable",
                "start",
                "OrderSaga",
                "--count",
                "3",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            input="",
            timeout=120,
            check=False,
        )
        assert started.returncode == 0, started.stderr
        assert ROLE_PASSWORD not in started.stdout + started.stderr
        app = make_app(url, None)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: len(table(app).order) == 3, what="3 sagas")
            main = everything_shown(app)
            assert "postgresql+asyncpg" in main  # the title names the kind of database
            assert ROLE_PASSWORD not in main
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen is not app.main_screen, what="detail")
            await wait_for(pilot, lambda: "OrderSaga" in screen_text(app), what="its saga")
            assert ROLE_PASSWORD not in everything_shown(app)
