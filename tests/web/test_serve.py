"""``saga-tui serve`` without a browser: who may connect, bad input, sessions that end."""

from __future__ import annotations

import base64
import http.client
import os
import pathlib
import socket
import subprocess
import sys
import typing

import pytest

import saga_tui
from engine.saga.operator import Operator
from saga_tui.cli import main
from saga_tui.serve import host_name, is_loopback, public_url
from saga_tui.serve_config import SessionConfig
from saga_tui.web_session import build_app
from tests.web.conftest import RELIABLE, ROOT, Prepared, Server, alive

Serve = typing.Callable[..., Server]


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """(status, body) of a plain GET on this machine."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def upgrade(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, http.client.HTTPConnection]:
    """A raw websocket upgrade request: (status, the open connection)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(
        "GET",
        path,
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Version": "13",
            **(headers or {}),
        },
    )
    return conn.getresponse().status, conn


def refused_upgrade(port: int, path: str, headers: dict[str, str] | None = None) -> int:
    status, conn = upgrade(port, path, headers)
    conn.close()
    return status


@pytest.mark.slow
def test_a_non_local_bind_needs_the_token_for_the_page_and_the_websocket(
    serve: Serve, prepared: Prepared
) -> None:
    server = serve("--db", str(prepared.path), "--app", RELIABLE, "--host", "0.0.0.0")
    token = server.token
    assert token is not None
    assert server.read_until("the token is shown only here")

    for path in ("/", "/?token=", f"/?token={token[:-1]}", f"/?token={token}x"):
        status, body = get(server.port, path)
        assert status == 403, path
        assert "token" in body and token not in body
    for path in ("/ws", f"/ws/{token[:-1]}", f"/ws/{token}x", f"/ws?token={token}"):
        assert refused_upgrade(server.port, path) == 403, path
    assert server.sessions() == set()

    status, body = get(server.port, f"/?token={token}")
    assert status == 200 and f"/ws/{token}" in body
    status, conn = upgrade(server.port, f"/ws/{token}?width=100&height=30")
    assert status == 101
    pid = server.session_opened()
    assert server.sessions() == {pid}
    # The token is in no session's command line or environment.
    for name in ("cmdline", "environ"):
        assert token.encode() not in pathlib.Path(f"/proc/{pid}/{name}").read_bytes()
    conn.close()  # the "tab" goes away
    server.read_until(f"closed: web@127.0.0.1 (pid {pid})")
    assert not alive(pid) and server.sessions() == set()
    assert server.stop() == 0
    assert server.stderr == []
    printed = "\n".join(server.lines + server.stderr)
    assert printed.count(token) == 1


@pytest.mark.slow
def test_a_loopback_bind_answers_to_local_names_and_its_own_pages_only(
    serve: Serve, prepared: Prepared
) -> None:
    server = serve("--db", str(prepared.path), "--app", RELIABLE)
    assert server.token is None
    port = server.port
    assert get(port, "/")[0] == 200
    # Behind ``ssh -L 9000:127.0.0.1:PORT`` the browser says localhost:9000: the page's
    # websocket goes back the way the page came.
    status, body = get(port, "/", {"Host": "localhost:9000"})
    assert status == 200 and 'data-session-websocket-url="ws://localhost:9000/ws"' in body
    # A page of a domain that resolves to 127.0.0.1 (DNS rebinding) gets nothing.
    status, body = get(port, "/", {"Host": f"attacker.example:{port}"})
    assert status == 403 and "localhost" in body
    assert refused_upgrade(port, "/ws", {"Host": f"attacker.example:{port}"}) == 403
    # Another site's page may not open a session through the operator's browser.
    assert refused_upgrade(port, "/ws", {"Origin": "http://attacker.example"}) == 403
    assert refused_upgrade(port, "/ws", {"Origin": f"http://127.0.0.1:{port + 1}"}) == 403
    assert server.sessions() == set()

    status, conn = upgrade(port, "/ws", {"Origin": f"http://127.0.0.1:{port}"})
    assert status == 101
    pid = server.session_opened()
    conn.close()
    server.read_until(f"(pid {pid})")
    assert not alive(pid)


@pytest.mark.slow
def test_stopping_the_server_ends_every_session(serve: Serve, prepared: Prepared) -> None:
    server = serve("--db", str(prepared.path), "--app", RELIABLE)
    connections = []
    pids = []
    for _ in range(2):
        status, conn = upgrade(server.port, "/ws")
        assert status == 101
        connections.append(conn)
        pids.append(server.session_opened())
    assert server.sessions() == set(pids)
    assert server.stop() == 0
    assert not any(alive(pid) for pid in pids)
    assert server.stderr == []  # nothing went wrong on the way (no asyncio warnings)
    for conn in connections:
        conn.close()


def test_serve_without_textual_serve_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    monkeypatch.setitem(sys.modules, "textual_serve", None)  # import fails as if missing
    monkeypatch.delitem(sys.modules, "saga_tui.serve", raising=False)
    monkeypatch.delattr(saga_tui, "serve", raising=False)
    assert main(["serve", "--db", str(tmp_path / "sagas.db")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        'saga-tui: serve needs textual-serve, which is not installed: pip install "saga-tui[web]"'
    ]
    assert not (tmp_path / "sagas.db").exists()


def serve_once(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "saga_tui", "serve", "--port", "0", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def usage_error(run: subprocess.CompletedProcess[str], needle: str) -> None:
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], run.stderr


@pytest.mark.slow
def test_bad_input_is_one_line_and_exit_2(tmp_path: pathlib.Path, prepared: Prepared) -> None:
    missing = tmp_path / "missing.db"
    usage_error(serve_once("--db", str(missing)), "no such database file")
    assert not missing.exists()
    usage_error(
        serve_once("--db", str(prepared.path), "--allow-actions", "--read-only"), "contradict"
    )
    usage_error(serve_once("--db", str(prepared.path), "--app", "tests.e2e.apps:broken"), "--app")
    usage_error(serve_once("--db", str(prepared.path), "--port", "70000"), "port")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        usage_error(serve_once("--db", str(prepared.path), "--port", port), "cannot listen")


def test_a_session_started_outside_serve_says_so() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SAGA_TUI_SERVE"}
    run = subprocess.run(
        [sys.executable, "-m", "saga_tui.web_session", "--client", "127.0.0.1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2 and "saga-tui serve" in run.stderr


async def test_a_session_is_read_only_unless_actions_are_allowed(prepared: Prepared) -> None:
    url = f"sqlite+aiosqlite:///{prepared.path}"
    viewer = build_app(SessionConfig(url, RELIABLE, allow_actions=False), "192.0.2.7")
    acting = build_app(SessionConfig(url, RELIABLE, allow_actions=True), "2001:db8::7")
    try:
        assert viewer.read_only and viewer.reader.read_only  # a read-only connection
        assert "--allow-actions" in viewer.read_only_why
        assert not acting.read_only and not acting.reader.read_only
        assert acting.mediator is not None
        assert acting.mediator.operator == Operator("web", "2001:db8::7")
    finally:
        await viewer.reader.close()
        await acting.reader.close()


def test_session_config_travels_in_the_environment() -> None:
    config = SessionConfig("postgresql+asyncpg://u:secret@db/sagas", "app:make", True)
    assert SessionConfig.from_env({"SAGA_TUI_SERVE": config.to_env()}) == config
    with pytest.raises(KeyError):
        SessionConfig.from_env({})


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LocalHost", True),
        ("app.localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("localhost.attacker.example", False),
        ("db-host", False),
    ],
)
def test_what_counts_as_local(host: str, local: bool) -> None:
    assert is_loopback(host) is local


def test_host_headers_and_printed_addresses() -> None:
    assert host_name("127.0.0.1:8000") == "127.0.0.1"
    assert host_name("[::1]:8000") == "::1"
    assert host_name("localhost") == "localhost"
    assert public_url("127.0.0.1", 8000, None) == "http://127.0.0.1:8000/"
    assert public_url("::1", 8001, None) == "http://[::1]:8001/"
    assert public_url("0.0.0.0", 8002, "t-1").endswith(":8002/?token=t-1")
    assert "0.0.0.0" not in public_url("0.0.0.0", 8002, "t-1")
