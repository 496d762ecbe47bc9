"""The sample world on PostgreSQL: the ledger lives in the saga database, check takes URLs."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import uuid

import pytest

from tests.support import POSTGRES_URL, postgres_database

ROOT = pathlib.Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="SAGA_TEST_POSTGRES_URL is not set")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sample_sagas", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
async def test_load_and_check_on_postgresql_with_the_ledger_in_the_database() -> None:
    from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
    from sample_sagas.ledger import StaleEffectError
    from sample_sagas.ledger_pg import PostgresLedger

    async with postgres_database() as url:
        load = _run(
            "--db", url, "--count", "40", "--concurrency", "8", "--latency-ms", "0-2",
            "--failure-rate", "0.3", "--compensation-failure-rate", "0",
            "--refund-decline-rate", "0",
        )  # fmt: skip
        assert load.returncode == 0, load.stderr
        check = _run("check", "--db", url)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "checked 40 sagas: 0 disagree" in check.stderr
        ledger = PostgresLedger(url)
        try:
            rows = await ledger.rows()
            assert rows and {r.action for r in rows} == {"do", "undo"}
            saga_id = uuid.uuid4()
            await ledger.record(saga_id, "BookFlight", "do", 2)
            await ledger.record(saga_id, "BookFlight", "undo", 2)
            with pytest.raises(StaleEffectError, match="older than fence 2"):
                await ledger.record(saga_id, "RentCar", "do", 1)
            with pytest.raises(StaleEffectError, match="do after its undo"):
                await ledger.record(saga_id, "BookFlight", "do", 3)
        finally:
            await ledger.aclose()
        storage = SqlAlchemySagaStorage.from_url(url)
        try:
            assert (await storage.count_by_status()).total == 40
        finally:
            await storage.close()
        # A ledger row of a saga that is not stored: check says so (and the refusals).
        check = _run("check", "--db", url)
        assert check.returncode == 1 and "MISSING" in check.stdout
        assert "the ledger refused 2 stale effects" in check.stderr


def test_a_password_in_a_url_is_never_printed() -> None:
    url = "postgresql+asyncpg://saga:s3cr3tpw@127.0.0.1:1/nowhere"
    for args in (("check", "--db", url), ("--db", url, "--count", "1")):
        ran = _run(*args)
        assert ran.returncode == 2, ran.stderr
        assert "s3cr3tpw" not in ran.stdout + ran.stderr
        assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr
