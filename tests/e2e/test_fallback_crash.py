"""A process killed between a Fallback's failed primary and its fallback: the recovered
fallback still runs on the context as it was before the primary."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import uuid

import pytest

from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from tests.support import read_line

ROOT = pathlib.Path(__file__).resolve().parents[2]
BEFORE_PRIMARY = {"trip": "t1", "note": "original", "seats": ["1A", "planned"], "carrier": None}


def worker(db: pathlib.Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.fallback_worker", str(db), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def saw(line: str) -> dict[str, object]:
    label, _, payload = line.partition(" ")
    assert label == "fallback-saw", line
    seen: dict[str, object] = json.loads(payload)
    return seen


@pytest.mark.slow
async def test_a_fallback_recovered_after_a_kill_runs_on_the_context_before_the_primary(
    tmp_path: pathlib.Path,
) -> None:
    db = tmp_path / "sagas.db"
    proc = worker(db, "run", str(tmp_path / "never-opened"))
    try:
        saga_id = uuid.UUID(read_line(proc, what="(saga id)"))
        # The primary changed the context and failed; the fallback is now in flight.
        assert saw(read_line(proc, what="(first fallback)")) == BEFORE_PRIMARY
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{db}")
    try:
        status, stored, _ = await storage.load_saga_state(saga_id)
        assert status is SagaStatus.RUNNING
        # Nothing of the failed primary was stored.
        assert stored == BEFORE_PRIMARY
    finally:
        await storage.close()

    recovery = worker(db, "recover")
    try:
        assert saw(read_line(recovery, what="(recovered fallback)")) == BEFORE_PRIMARY
        assert read_line(recovery, what="(recovery result)") == "recovered 1"
        assert recovery.wait(timeout=60) == 0
    finally:
        if recovery.poll() is None:
            recovery.kill()
            recovery.wait(timeout=30)

    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{db}")
    try:
        status, stored, _ = await storage.load_saga_state(saga_id)
        assert status is SagaStatus.COMPLETED
        assert stored == {**BEFORE_PRIMARY, "carrier": "train"}
        history = [(e.step_name, e.status.name) for e in await storage.get_step_history(saga_id)]
        assert ("Airline", "FAILED") in history and history[-1] == ("Train", "COMPLETED")
        assert ("Airline", "STARTED") in history
        assert history.count(("Airline", "STARTED")) == 1  # the primary was not run again
    finally:
        await storage.close()
