"""A password in a database URL (or in an error's text) never reaches a command's output.

Every command runs as a real subprocess; stdout and stderr are searched for the password.
The URLs are unreachable (port 1), do not parse, or (with a server) carry a wrong password.
"""

from __future__ import annotations

import json
import pathlib
import signal
import subprocess
import sys
import uuid

import pytest

from tests.e2e.secret_app import PASSWORD as APP_PASSWORD
from tests.support import (
    POSTGRES_URL,
    ROLE_PASSWORD,
    pg_fetch,
    postgres_role_database,
    read_until,
    run_module,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
PASSWORD = "S3cretPW"
UNREACHABLE = f"postgresql+asyncpg://user:{PASSWORD}@127.0.0.1:1/db"
# Does not parse (a space in the user, an unclosed IPv6 host): no parser can mask it.
MALFORMED = f"postgresql+asyncpg://us er:{PASSWORD}@[::1/db"
SOME_ID = str(uuid.UUID(int=1))

COMMANDS: tuple[tuple[str, ...], ...] = (
    ("list",),
    ("--read-only", "list"),
    ("groups",),
    ("show", SOME_ID),
    ("recover", "--stale"),
    ("compensate", "--yes", SOME_ID),
    ("start", "OrderSaga"),
    ("start", "OrderSaga", "--no-wait"),
    ("events",),
    ("redeliver", SOME_ID),
    ("worker",),
    ("serve", "--port", "0"),
    ("-v", "list"),
    ("-v", "worker"),
)


def run(*args: str, module: str = "saga_tui") -> subprocess.CompletedProcess[str]:
    """One command in its own process, no terminal, nothing on stdin."""
    return run_module(*args, module=module)


def assert_hidden(ran: subprocess.CompletedProcess[str], password: str = PASSWORD) -> None:
    """The password appears nowhere in what the command printed."""
    printed = ran.stdout + ran.stderr
    assert password not in printed, printed


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_unreachable_server_is_reported_without_its_password(command: tuple[str, ...]) -> None:
    ran = run("--db", UNREACHABLE, *command)
    assert ran.returncode != 0, ran.stdout
    assert ran.stderr.strip(), "a failure says why"
    assert_hidden(ran)


@pytest.mark.parametrize("command", ((), *COMMANDS), ids=lambda c: " ".join(c) or "dashboard")
def test_a_url_that_does_not_parse_is_reported_with_its_password_masked(
    command: tuple[str, ...],
) -> None:
    ran = run("--db", MALFORMED, *command)
    assert ran.returncode == 2, ran.stderr
    assert "not a database URL" in ran.stderr
    assert "us er:***@" in ran.stderr  # the rest of the URL is still there to fix it
    assert_hidden(ran)


@pytest.mark.parametrize(
    "command",
    (("start", "CacheSaga"), ("worker",), ("serve", "--allow-actions", "--port", "0"), ()),
    ids=lambda c: " ".join(c) or "dashboard",
)
def test_an_app_factory_failing_with_a_url_is_reported_with_its_password_masked(
    tmp_path: pathlib.Path, command: tuple[str, ...]
) -> None:
    db = tmp_path / "sagas.db"
    db.touch()  # serve opens only an existing file; an empty one is a new database
    ran = run("--db", str(db), "--app", "tests.e2e.secret_app:broken", *command)
    assert ran.returncode == 2, ran.stderr
    assert "the factory failed: cannot reach redis://cache:***@10.0.0.9" in ran.stderr
    assert_hidden(ran, APP_PASSWORD)


def test_a_step_error_with_a_url_is_masked_in_results_listings_and_engine_logs(
    tmp_path: pathlib.Path,
) -> None:
    db = str(tmp_path / "sagas.db")
    app = ("--db", db, "--app", "tests.e2e.secret_app:leaky")
    started = run("-v", *app, "start", "CacheSaga", "--count", "2")
    assert started.returncode == 1, started.stderr  # the sagas compensated
    # -v shows the engine's log: the step's failure is logged, masked.
    assert "ended in compensation: ConnectionError: cannot warm k1: redis://cache:***@" in (
        started.stderr
    )
    assert_hidden(started, APP_PASSWORD)
    for command in (("list",), ("list", "--json"), ("groups",), ("groups", "--json")):
        listed = run(*app, *command)
        assert listed.returncode == 0, listed.stderr
        assert "redis://cache:***@" in listed.stdout
        assert_hidden(listed, APP_PASSWORD)
    saga_id = json.loads(run(*app, "list", "--json").stdout)[0]["id"]
    for command in (("show", saga_id), ("show", saga_id, "--json")):
        shown = run(*app, *command)
        assert shown.returncode == 0, shown.stderr
        assert_hidden(shown, APP_PASSWORD)


@pytest.mark.parametrize("db", (UNREACHABLE, MALFORMED), ids=("unreachable", "malformed"))
def test_the_load_generator_and_check_hide_the_password(db: str) -> None:
    for args in (("--db", db, "--count", "1"), ("check", "--db", db)):
        ran = run(*args, module="sample_sagas")
        assert ran.returncode == 2, ran.stderr
        assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr
        assert_hidden(ran)


needs_postgres = pytest.mark.skipif(not POSTGRES_URL, reason="SAGA_TEST_POSTGRES_URL is not set")
SERVER = "127.0.0.1:5432"


def _server(template: str) -> str:
    """``template`` on the test server's host and port."""
    host = POSTGRES_URL.rsplit("@", 1)[-1].split("/", 1)[0] if POSTGRES_URL else SERVER
    return template.replace(SERVER, host)


@needs_postgres
@pytest.mark.parametrize(
    "url",
    (
        "postgresql+asyncpg://postgres:WrongPW9@127.0.0.1:5432/postgres",
        "postgresql+asyncpg://nosuchrole9:WrongPW9@127.0.0.1:5432/postgres",
        "postgresql+asyncpg://nosuchrole9@127.0.0.1:5432/postgres?password=WrongPW9",
        "postgresql://postgres:WrongPW9@127.0.0.1:5432/postgres",
    ),
    ids=("wrong-password", "no-such-role", "password-in-query", "libpq-scheme"),
)
def test_a_server_refusing_the_login_is_reported_without_the_password(url: str) -> None:
    url = _server(url)
    for command in (("list",), ("start", "OrderSaga"), ("worker",), ("recover", "--stale")):
        ran = run("--db", url, *command)
        assert ran.returncode != 0, ran.stdout
        assert "***" in ran.stderr, ran.stderr  # the URL is named, its password masked
        assert_hidden(ran, "WrongPW9")
    for args in (("--db", url, "--count", "1"), ("check", "--db", url)):
        ran = run(*args, module="sample_sagas")
        assert ran.returncode == 2, ran.stderr
        assert_hidden(ran, "WrongPW9")


@needs_postgres
@pytest.mark.slow
def test_a_worker_and_its_requests_never_store_or_print_the_password() -> None:
    with postgres_role_database() as url:
        app = ("--db", url, "--app", "tests.e2e.apps:reliable")
        worker = subprocess.Popen(
            [sys.executable, "-m", "saga_tui", "-v", *app, "worker"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            serving = read_until(worker, lambda line: "serving" in line, 60, what="serving")
            assert "on postgresql+asyncpg" in serving
            for command in (("start", "OrderSaga", "--count", "3"), ("recover", "--stale")):
                ran = run("-v", *app, *command)
                assert ran.returncode == 0, ran.stderr
                assert_hidden(ran, ROLE_PASSWORD)
        finally:
            worker.send_signal(signal.SIGTERM)
            out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        assert ROLE_PASSWORD not in serving + out + err
        stored = {
            table: pg_fetch(url, f"SELECT row_to_json(t)::text FROM {table} t")
            for table in ("saga_workers", "saga_requests", "saga_request_items", "saga_audit")
        }
        assert stored["saga_workers"] and stored["saga_requests"], stored
        assert ROLE_PASSWORD not in repr(stored)
