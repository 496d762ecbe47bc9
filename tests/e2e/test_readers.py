"""Readers never take the write lock; a file that is not ours is never changed.

The locker is another process holding ``BEGIN IMMEDIATE`` until the test ends; every
reader runs with a timeout shorter than the busy timeout (30 s), so one that waited for
the write lock fails instead of answering.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import sqlite3
import subprocess
import sys
import typing

import pytest

from tests.support import write_locked

ROOT = pathlib.Path(__file__).resolve().parents[2]
RELIABLE = "tests.e2e.apps:reliable"
READER_TIMEOUT = 25.0
"""Below the busy timeout: a reader queued on the write lock fails here."""


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def locked(tmp_path: pathlib.Path) -> typing.Iterator[pathlib.Path]:
    """A saga database with sagas in it, its write lock held by another process."""
    db = tmp_path / "locked.db"
    started = _run(
        "saga_tui", "--db", str(db), "--app", RELIABLE, "start", "OrderSaga", "--count", "3"
    )
    assert started.returncode == 0, started.stderr
    with write_locked(db):
        yield db


@pytest.mark.slow
def test_list_show_and_check_answer_while_another_process_holds_the_write_lock(
    locked: pathlib.Path,
) -> None:
    db = str(locked)
    listed = _run("saga_tui", "--db", db, "list", "--json", timeout=READER_TIMEOUT)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert len(rows) == 3
    text = _run("saga_tui", "--db", db, "list", timeout=READER_TIMEOUT)
    assert text.returncode == 0 and "OrderSaga" in text.stdout, text.stderr
    shown = _run("saga_tui", "--db", db, "show", rows[0]["id"], timeout=READER_TIMEOUT)
    assert shown.returncode == 0 and rows[0]["id"] in shown.stdout, shown.stderr
    checked = _run("sample_sagas", "check", "--db", db, timeout=READER_TIMEOUT)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _sha(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _foreign(path: pathlib.Path) -> None:
    with sqlite3.connect(path) as conn:  # rollback journal, as most applications leave it
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO notes (body) VALUES ('mine, not yours')")
    conn.close()


def _newer(path: pathlib.Path) -> None:
    made = _run("saga_tui", "--db", str(path), "--app", RELIABLE, "start", "OrderSaga")
    assert made.returncode == 0, made.stderr
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("UPDATE saga_schema_version SET version = 99")
    conn.close()


COMMANDS = (
    ("saga_tui", "list"),
    ("saga_tui", "list", "--json"),
    ("saga_tui", "show", "0"),
    ("saga_tui", "recover", "--stale"),
    ("saga_tui", "compensate", "--yes", "0"),
    ("saga_tui", "start", "OrderSaga"),
    ("saga_tui", "--read-only", "list"),
)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["foreign", "newer"])
def test_a_refused_file_is_byte_identical_after_every_command(
    tmp_path: pathlib.Path, kind: str
) -> None:
    path = tmp_path / f"{kind}.db"
    if kind == "foreign":
        _foreign(path)
    else:
        _newer(path)
    before = _sha(path)
    siblings = sorted(p.name for p in tmp_path.iterdir())
    for module, *args in COMMANDS:
        if module == "saga_tui":
            argv = [module, "--db", str(path), "--app", RELIABLE, *args]
            if args[0] == "--read-only":
                argv = [module, "--read-only", "--db", str(path), *args[1:]]
        ran = _run(*argv)
        assert ran.returncode == 2, (args, ran.stdout, ran.stderr)
        assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr
        assert _sha(path) == before, args
    for argv in (
        ["sample_sagas", "check", "--db", str(path)],
        ["sample_sagas", "--db", str(path), "--count", "1", "--latency-ms", "0"],
    ):
        ran = _run(*argv)
        assert ran.returncode == 2, (argv, ran.stdout, ran.stderr)
        assert _sha(path) == before, argv
    assert sorted(p.name for p in tmp_path.iterdir()) == siblings  # no -wal, -shm, ledger
