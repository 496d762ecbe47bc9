"""The dashboard's first page answers while another process holds the write lock.

The locker holds ``BEGIN IMMEDIATE`` for the whole test. A dashboard that opened its
database through the write lock (a schema check in a write transaction, a WAL switch)
would wait out the 30 s busy timeout and show nothing; the wait here is shorter.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from saga_tui.cli import make_app
from tests.support import write_locked
from tests.tui.conftest import SIZE, table, wait_for

ROOT = pathlib.Path(__file__).resolve().parents[2]
RELIABLE = "tests.e2e.apps:reliable"
FIRST_PAGE = 20.0
"""Seconds allowed for the first page: below the 30 s busy timeout of a queued writer."""


@pytest.mark.slow
async def test_the_first_page_shows_while_another_process_holds_the_write_lock(
    tmp_path: pathlib.Path,
) -> None:
    db = tmp_path / "locked.db"
    command = ["saga_tui", "--db", str(db), "--app", RELIABLE, "start", "OrderSaga"]
    started = subprocess.run(
        [sys.executable, "-m", *command, "--count", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert started.returncode == 0, started.stderr
    app = make_app(str(db), None, read_only=False)
    with write_locked(db):
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(
                pilot,
                lambda: len(table(app).order) == 3,
                timeout=FIRST_PAGE,
                what="the first page of 3 sagas under the held write lock",
            )
