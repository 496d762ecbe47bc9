"""``saga-tui serve`` in a real Chromium: the page, the keys, the sessions, the token."""

from __future__ import annotations

import os
import pathlib
import typing

import pytest

from tests import support
from tests.web.conftest import RELIABLE, Browser, Prepared, Server, Terminal, alive

pytestmark = pytest.mark.slow

Serve = typing.Callable[..., Server]
FILTER_HINT = "name:Order"  # the filter line's placeholder: the line is open


def short(saga_id: typing.Any) -> str:
    return str(saga_id)[:8]


def filter_by(terminal: Terminal, text: str) -> None:
    """``/``, then the filter once its line is open (keys typed sooner reach the table)."""
    terminal.keys("/")
    terminal.showing(FILTER_HINT)
    terminal.keys(text, "Enter")


def open_failed_saga(terminal: Terminal, prepared: Prepared) -> None:
    """Every prepared row shows; the filter leaves the FAILED one; enter opens it."""
    terminal.showing(*(short(s) for s in [*prepared.completed, prepared.failed]))
    filter_by(terminal, "status:failed")
    terminal.wait_for(
        lambda text: (
            short(prepared.failed) in text and not any(short(s) in text for s in prepared.completed)
        ),
        "the table filtered to the FAILED saga",
    )
    terminal.keys("Enter")
    # The detail's header names the saga by its full id; the list shows only 8 characters.
    terminal.showing(str(prepared.failed), "SubscriptionSaga")


def test_a_viewer_sees_the_rows_filters_opens_the_detail_and_r_is_refused(
    serve: Serve, browser: Browser, prepared: Prepared
) -> None:
    server = serve("--db", str(prepared.path), "--app", RELIABLE)
    requested: list[str] = []
    browser.context.on("request", lambda request: requested.append(request.url))
    terminal = browser.open(server.page_url())
    pid = server.session_opened()
    assert server.sessions() == {pid}
    open_failed_saga(terminal, prepared)
    # The page asks no other site for anything (scripts, styles, the font are served here).
    origin = f"http://127.0.0.1:{server.port}/"
    assert requested and all(url.startswith((origin, "ws://127.0.0.1")) for url in requested), (
        requested
    )

    terminal.keys("r")
    # The toast wraps its line: look for words that stay together.
    terminal.showing("read-only: recover refused", "--allow-actions)")
    assert prepared.status(prepared.failed) == "FAILED"
    assert prepared.audit(prepared.failed) == []

    # Closing the tab ends its session process.
    terminal.page.close()
    server.read_until(f"(pid {pid})")
    support.wait_for_sync(lambda: not alive(pid), 30, what="the session process to end")
    assert server.sessions() == set()


def test_with_allow_actions_r_recovers_and_the_audit_names_the_browser(
    serve: Serve, browser: Browser, prepared: Prepared
) -> None:
    server = serve("--db", str(prepared.path), "--app", RELIABLE, "--allow-actions")
    terminal = browser.open(server.page_url())
    open_failed_saga(terminal, prepared)

    terminal.keys("r")
    terminal.showing("confirm", "cancel")  # the confirmation asks first
    terminal.keys("y")
    support.wait_for_sync(
        lambda: prepared.status(prepared.failed) == "COMPENSATED",
        60,
        what="the FAILED saga to be recovered (its refund retried)",
        sleep=terminal.pause,
    )
    support.wait_for_sync(
        lambda: prepared.audit(prepared.failed), 30, what="the audit row", sleep=terminal.pause
    )
    assert prepared.audit(prepared.failed) == [("recover", "web", "127.0.0.1")]
    user, host = prepared.audit(prepared.failed)[0][1:]
    assert f"{user}@{host}" == "web@127.0.0.1"
    # The detail follows the saga: the browser sees the outcome too.
    terminal.showing("COMPENSATED")


def test_many_tabs_each_get_a_session_of_the_same_database(
    serve: Serve, browser: Browser, prepared: Prepared
) -> None:
    server = serve("--db", str(prepared.path), "--app", RELIABLE)
    first = browser.open(server.page_url())
    first_pid = server.session_opened()
    second = browser.open(server.page_url())
    second_pid = server.session_opened()
    assert first_pid != second_pid
    assert server.sessions() == {first_pid, second_pid}
    for tab in (first, second):
        tab.showing(short(prepared.failed), *(short(s) for s in prepared.completed))

    first.page.close()
    support.wait_for_sync(lambda: not alive(first_pid), 30, what="the first tab's session to end")
    assert server.sessions() == {second_pid}
    # The other tab is still live: its keys still work.
    filter_by(second, "status:failed")
    second.wait_for(
        lambda text: short(prepared.completed[0]) not in text, "the second tab to filter"
    )
    # q ends the session; the page says so and offers a new one.
    second.keys("q")
    server.read_until(f"(pid {second_pid})")
    second.page.wait_for_selector("body.-closed .ended", state="visible")
    support.wait_for_sync(lambda: not alive(second_pid), 30, what="the session to end")


def test_a_non_local_bind_serves_only_with_the_token(
    serve: Serve, browser: Browser, prepared: Prepared
) -> None:
    server = serve("--db", str(prepared.path), "--app", RELIABLE, "--host", "0.0.0.0")
    assert server.token is not None and len(server.token) >= 32

    refused = browser.context.new_page()
    response = refused.goto(f"http://127.0.0.1:{server.port}/")
    assert response is not None and response.status == 403
    assert "token" in (refused.text_content("body") or "")
    wrong = refused.goto(f"http://127.0.0.1:{server.port}/?token=not-the-token")
    assert wrong is not None and wrong.status == 403
    assert server.sessions() == set()

    terminal = browser.open(server.page_url())
    server.session_opened()
    terminal.showing(short(prepared.failed))
    assert terminal.websockets[0].url.split("?")[0].endswith(f"/ws/{server.token}")


def test_serve_demo_opens_and_a_screenshot_is_saved(
    serve: Serve, browser: Browser, tmp_path: pathlib.Path
) -> None:
    # As the README says: saga-tui serve --demo (here on a fresh file, the default app).
    server = serve("--db", str(tmp_path / "demo.db"), "--demo")
    terminal = browser.open(server.page_url())
    server.session_opened()
    # The demo's sagas run in the server; the browser session sees them arrive.
    terminal.wait_for(lambda text: "COMPLETED" in text and "✓" in text, "demo sagas on screen")
    terminal.focus()  # the footer lists the keys of the focused table
    terminal.showing("Live steps", "? Help")
    target = pathlib.Path(os.environ.get("SAGA_TUI_SCREENSHOT_DIR", tmp_path)) / "serve.png"
    terminal.pause(2.0)  # a moment of live traffic on the picture
    terminal.page.screenshot(path=str(target))
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert target.stat().st_size > 20_000  # a rendered dashboard, not a blank page
