"""The outbox across processes: SIGKILL before delivery, operator redelivery from the CLI."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import uuid

import pytest

from tests.e2e.outbox_app import deliveries
from tests.support import read_line

ROOT = pathlib.Path(__file__).resolve().parents[2]
APP = "tests.e2e.outbox_app:create"


def env(ledger: pathlib.Path, handler: str) -> dict[str, str]:
    return {**os.environ, "OUTBOX_LEDGER": str(ledger), "OUTBOX_HANDLER": handler}


def spawn(db: pathlib.Path, ledger: pathlib.Path, handler: str, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.outbox_app", str(db), mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(ledger, handler),
    )


def saga_tui(
    db: pathlib.Path, ledger: pathlib.Path, handler: str, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "saga_tui", "--db", str(db), "--app", APP, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env(ledger, handler),
        check=False,
    )


def event_rows(db: pathlib.Path, saga_id: str) -> list[tuple[str, str, int, str | None]]:
    conn = sqlite3.connect(db)
    try:
        return list(
            conn.execute(
                "SELECT step_name, state, attempts, claim_owner FROM saga_events"
                " WHERE saga_id = ? ORDER BY id",
                (uuid.UUID(saga_id).hex,),
            )
        )
    finally:
        conn.close()


@pytest.mark.slow
def test_sigkill_after_the_commit_and_before_delivery_another_process_delivers(
    tmp_path: pathlib.Path,
) -> None:
    db, ledger = tmp_path / "sagas.db", tmp_path / "ledger.db"
    proc = spawn(db, ledger, "block", "run")
    try:
        saga_id = read_line(proc, what="saga id").strip()
        assert read_line(proc, what="handler entered").strip() == "in-handler"
        # The step's COMPLETED checkpoint (and its event) is durable; delivery has begun.
        rows = event_rows(db, saga_id)
        assert [(step, state) for step, state, _, _ in rows] == [("Pack", "PENDING")]
        assert rows[0][3] is not None and f":{proc.pid}:" in rows[0][3]
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    assert deliveries(str(ledger)) == []

    # Another process's redelivery pass takes the dead owner's claim and delivers.
    other = spawn(db, ledger, "ok", "deliver")
    out, err = other.communicate(timeout=120)
    assert other.returncode == 0, err
    assert out.strip() == "delivered 1 failed 0 busy 0"
    assert deliveries(str(ledger)) == [(saga_id, "Pack", other.pid)]
    assert event_rows(db, saga_id) == [("Pack", "DELIVERED", 1, None)]

    # Recovering the saga runs its last step; its event follows, in order, once each.
    recovered = saga_tui(db, ledger, "ok", "recover", "--stale")
    assert recovered.returncode == 0, recovered.stderr
    assert [step for _, step, _ in deliveries(str(ledger))] == ["Pack", "Ship"]
    assert [row[:2] for row in event_rows(db, saga_id)] == [
        ("Pack", "DELIVERED"),
        ("Ship", "DELIVERED"),
    ]


@pytest.mark.slow
def test_recover_stale_delivers_what_a_killed_process_left(tmp_path: pathlib.Path) -> None:
    db, ledger = tmp_path / "sagas.db", tmp_path / "ledger.db"
    proc = spawn(db, ledger, "block", "run")
    try:
        saga_id = read_line(proc, what="saga id").strip()
        read_line(proc, what="handler entered")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    recovered = saga_tui(db, ledger, "ok", "recover", "--stale")
    assert recovered.returncode == 0, recovered.stderr
    # the saga's own run (resumed) takes its earlier event first: order holds
    assert [(s, step) for s, step, _ in deliveries(str(ledger))] == [
        (saga_id, "Pack"),
        (saga_id, "Ship"),
    ]


def test_a_failing_handler_is_retried_then_failed_then_redelivered_by_the_operator(
    tmp_path: pathlib.Path,
) -> None:
    db, ledger = tmp_path / "sagas.db", tmp_path / "ledger.db"
    started = saga_tui(db, ledger, "fail", "start", "ParcelSaga", "--json")
    assert started.returncode == 0, started.stderr
    saga_id = json.loads(started.stdout)[0]["id"]
    assert json.loads(started.stdout)[0]["status"] == "COMPLETED"

    listed = saga_tui(db, ledger, "fail", "events", "--failed", "--json")
    assert listed.returncode == 0, listed.stderr
    failed = json.loads(listed.stdout)
    assert [(e["saga_id"], e["step"], e["state"], e["attempts"]) for e in failed] == [
        (saga_id, "Pack", "FAILED", 3)
    ]
    assert failed[0]["last_error"] == "ConnectionError: courier API down (Pack)"
    text = saga_tui(db, ledger, "fail", "events")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert len(lines) == 2 and "PENDING" in lines[0] and "Ship" in lines[0]
    assert "FAILED" in lines[1] and "3 tries" in lines[1] and "courier API down" in lines[1]

    again = saga_tui(db, ledger, "fail", "redeliver", saga_id[:8])
    assert again.returncode == 1, again.stderr
    assert "0 delivered, 1 failed, 1 waiting" in again.stdout
    assert deliveries(str(ledger)) == []

    fixed = saga_tui(db, ledger, "ok", "redeliver", saga_id[:8])
    assert fixed.returncode == 0, fixed.stderr
    assert f"{saga_id}  redeliver  2 delivered, 0 failed" in fixed.stdout
    assert [step for _, step, _ in deliveries(str(ledger))] == ["Pack", "Ship"]
    shown = saga_tui(db, ledger, "ok", "show", saga_id[:8], "--json")
    assert shown.returncode == 0, shown.stderr
    assert [(e["step"], e["state"]) for e in json.loads(shown.stdout)["events"]] == [
        ("Pack", "DELIVERED"),
        ("Ship", "DELIVERED"),
    ]
    shown_text = saga_tui(db, ledger, "ok", "show", saga_id[:8])
    assert shown_text.returncode == 0, shown_text.stderr
    events_part = shown_text.stdout.split("Events:\n", 1)[1].splitlines()
    assert len(events_part) == 2 and all("DELIVERED" in line for line in events_part)
    none_failed = saga_tui(db, ledger, "ok", "events", "--failed")
    assert none_failed.stdout.strip() == "no failed events"
    assert [row[:3] for row in event_rows(db, saga_id)] == [
        ("Pack", "DELIVERED", 7),
        ("Ship", "DELIVERED", 1),
    ]


def test_redeliver_refuses_an_unknown_id_in_one_line(tmp_path: pathlib.Path) -> None:
    db, ledger = tmp_path / "sagas.db", tmp_path / "ledger.db"
    assert saga_tui(db, ledger, "ok", "start", "ParcelSaga").returncode == 0
    run = saga_tui(db, ledger, "ok", "redeliver", "deadbeef")
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == ["saga-tui: deadbeef: no saga with this id"]
