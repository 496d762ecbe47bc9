"""Sagas written by other processes: seen within half a second; a killed one recovered."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import subprocess
import sys
import time
import uuid

from engine.saga.storage.enums import SagaStatus
from saga_tui.components.confirm import ConfirmScreen
from tests.tui.conftest import SIZE, Env, row_status, screen_text, table, wait_for

ROOT = pathlib.Path(__file__).resolve().parents[2]


def spawn(
    env: Env, saga: str, latency_ms: float, failure_rate: float, count: int
) -> subprocess.Popen[str]:
    """Start a writer process on the dashboard's database."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.tui.writer",
            str(env.path),
            saga,
            str(latency_ms),
            str(failure_rate),
            str(count),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


async def read_id(proc: subprocess.Popen[str]) -> uuid.UUID:
    """The next saga id the writer prints."""
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
    return uuid.UUID(line.strip())


async def test_other_process_saga_appears_within_half_a_second(env: Env) -> None:
    app = env.app(poll_interval=0.25)  # the shipped default
    async with app.run_test(size=SIZE) as pilot:
        proc = spawn(env, "OrderSaga", 400, 0.0, 1)
        try:
            saga_id = await read_id(proc)
            # The moment it exists in the database, the clock starts.
            deadline = time.monotonic() + 20
            while await env.storage.get_saga(saga_id) is None:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.005)
            written = time.monotonic()
            await wait_for(pilot, lambda: str(saga_id) in table(app).order, what="new row")
            assert time.monotonic() - written < 0.5
            # Its step in flight is visible while it runs.
            await wait_for(
                pilot,
                lambda: (
                    (s := table(app).summary(saga_id)) is not None
                    and s.status is SagaStatus.RUNNING
                    and s.current_step is not None
                ),
                what="step in flight",
            )
            text = screen_text(app)
            assert "▶" in text and str(saga_id)[:8] in text
            await wait_for(pilot, lambda: row_status(app, saga_id) == "COMPLETED", what="done")
        finally:
            proc.wait(20)


async def test_failure_in_other_process_shows_the_error(env: Env) -> None:
    app = env.app(poll_interval=0.25)
    async with app.run_test(size=SIZE) as pilot:
        proc = spawn(env, "OrderSaga", 5, 1.0, 1)
        try:
            saga_id = await read_id(proc)
            await wait_for(
                pilot, lambda: row_status(app, saga_id) == "COMPENSATED", what="rolled back"
            )
            summary = table(app).summary(saga_id)
            assert summary is not None and summary.error_type
            await pilot.pause(0.1)
            assert summary.error_type in screen_text(app)
        finally:
            proc.wait(20)


async def test_recover_saga_left_by_killed_process(env: Env) -> None:
    proc = spawn(env, "OrderSaga", 1500, 0.0, 1)
    try:
        saga_id = await read_id(proc)
        deadline = time.monotonic() + 20
        while True:
            detail = await env.storage.get_saga(saga_id)
            if detail is not None and detail.summary.steps_done >= 1:
                break
            assert time.monotonic() < deadline, "the writer never got past its first step"
            await asyncio.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(20)
    detail = await env.storage.get_saga(saga_id)
    assert detail is not None and detail.summary.status is SagaStatus.RUNNING
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: str(saga_id) in table(app).order, what="row")
        t = table(app)
        t.move_cursor(row=t.order.index(str(saga_id)))
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: row_status(app, saga_id) == "COMPLETED", timeout=20, what="done"
        )
    rows = env.ledger(saga_id)
    assert {s for s, a in rows if a == "do"} == {"ReserveInventory", "ChargePayment", "ShipOrder"}
