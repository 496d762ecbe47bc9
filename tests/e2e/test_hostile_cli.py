"""No control character from the database reaches the output of any command, text or JSON."""

from __future__ import annotations

import asyncio
import pathlib
import subprocess
import sys

import pytest

from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from tests.support import assert_harmless, hostile_sagas

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
        errors="surrogateescape",
    )


async def _build(path: pathlib.Path) -> tuple[str, str]:
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{path}")
    try:
        named, order = await hostile_sagas(storage)
    finally:
        await storage.close()
    return str(named), str(order)


@pytest.mark.slow
def test_no_command_prints_a_raw_control_character(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "hostile.db"
    named, order = asyncio.run(_build(db))
    app = ("--app", "tests.e2e.apps:reliable")
    commands = [
        ("saga_tui", "--db", str(db), "list"),
        ("saga_tui", "--db", str(db), "list", "--json"),
        ("saga_tui", "--db", str(db), "list", "--status", "failed"),
        ("saga_tui", "--db", str(db), "show", named),
        ("saga_tui", "--db", str(db), "show", order),
        ("saga_tui", "--db", str(db), "show", order, "--json"),
        # Its saga type is not in the app: the request waits for a worker (--no-wait).
        ("saga_tui", "--db", str(db), *app, "recover", named, "--no-wait"),
        ("saga_tui", "--db", str(db), *app, "recover", named, "--no-wait", "--json"),
        ("saga_tui", "--db", str(db), *app, "compensate", "--yes", order),
        ("saga_tui", "--db", str(db), *app, "compensate", "--yes", order, "--json"),
        ("saga_tui", "--db", str(db), *app, "recover", "--stale", "--json"),
        ("sample_sagas", "check", "--db", str(db)),
    ]
    shown = ""
    for argv in commands:
        ran = _run(*argv)
        assert ran.returncode in (0, 1, 2), (argv, ran.stderr)
        assert_harmless(ran.stdout, f"stdout of {argv[3:]}")
        assert_harmless(ran.stderr, f"stderr of {argv[3:]}")
        shown += ran.stdout
    # Shown as visible escapes, not dropped.
    assert "Charge\\u202e\\u200b\\u2066\\x1b]0;pwned\\a" in shown
    assert "user\\u202e" in shown and "reason \\u202e" in shown


@pytest.mark.slow
def test_malformed_rows_are_listed_as_unreadable_with_the_reason(tmp_path: pathlib.Path) -> None:
    import json
    import sqlite3

    db = tmp_path / "malformed.db"
    started = _run(
        "saga_tui", "--db", str(db), "--app", "tests.e2e.apps:reliable",
        "start", "OrderSaga", "--count", "3",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    with sqlite3.connect(db) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM saga_executions ORDER BY id")]
        conn.execute("UPDATE saga_executions SET status = 'HACKED' WHERE id = ?", (ids[0],))
        conn.execute("UPDATE saga_executions SET created_at = 'not a time' WHERE id = ?", (ids[1],))
    conn.close()
    listed = _run("saga_tui", "--db", str(db), "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("UNREADABLE") == 2
    assert "unreadable row: status 'HACKED' is not a saga status" in listed.stdout
    as_json = _run("saga_tui", "--db", str(db), "list", "--json")
    assert as_json.returncode == 0, as_json.stderr
    rows = {r["id"].replace("-", ""): r for r in json.loads(as_json.stdout)}
    assert len(rows) == 3
    assert rows[ids[1]]["unreadable"] == "created_at 'not a time' is not a time"
    assert rows[ids[2]]["unreadable"] is None
    shown = _run("saga_tui", "--db", str(db), "show", ids[0])
    assert shown.returncode == 0 and "UNREADABLE" in shown.stdout, shown.stderr
