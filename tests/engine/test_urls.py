"""Database URLs as users write them: without a driver, the async one is used."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from engine.saga.storage.sqlalchemy.connect import async_url


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u:p@h/db", "postgresql+asyncpg"),
        ("postgres://u:p@h/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u:p@h/db", "postgresql+asyncpg"),
        ("sqlite:///x.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite"),
    ],
)
def test_a_url_without_a_driver_gets_the_async_one(given: str, driver: str) -> None:
    url = async_url(given)
    assert url.drivername == driver
    assert url.database in ("db", "x.db")


@pytest.mark.skipif(
    not os.environ.get("SAGA_TEST_POSTGRES_URL"), reason="needs SAGA_TEST_POSTGRES_URL"
)
def test_the_command_line_opens_a_plain_postgresql_url() -> None:
    url = os.environ["SAGA_TEST_POSTGRES_URL"].replace("postgresql+asyncpg://", "postgresql://")
    done = subprocess.run(
        [sys.executable, "-m", "saga_tui", "--db", url, "--read-only", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "psycopg" not in done.stderr
