"""Sagas written by other processes: seen while they run; a killed one recovered."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import subprocess
import sys
import uuid

import pytest

from engine.saga.storage.enums import SagaStatus
from saga_tui.components.confirm import ConfirmScreen
from tests import support
from tests.support import read_line
from tests.tui.conftest import (
    SIZE,
    Env,
    row_status,
    screen_showing,
    select,
    table,
    wait_for,
)

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
    return uuid.UUID(await asyncio.to_thread(read_line, proc, 20, what="(a saga id)"))


async def test_another_process_saga_appears_while_it_runs(env: Env) -> None:
    # How fast it appears is measured by bench/, not asserted here (a noisy machine).
    app = env.app(poll_interval=0.25)  # the shipped default
    async with app.run_test(size=SIZE) as pilot:
        proc = spawn(env, "OrderSaga", 400, 0.0, 1)
        try:
            saga_id = await read_id(proc)
            await wait_for(pilot, lambda: str(saga_id) in table(app).order, what="new row")
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
            text = await screen_showing(pilot, app, "▶")
            assert str(saga_id)[:8] in text
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
            await screen_showing(pilot, app, summary.error_type)
        finally:
            proc.wait(20)


@pytest.mark.slow
async def test_recover_saga_left_by_killed_process(env: Env) -> None:
    proc = spawn(env, "OrderSaga", 1500, 0.0, 1)
    try:
        saga_id = await read_id(proc)

        async def past_first_step() -> bool:
            detail = await env.storage.get_saga(saga_id)
            return detail is not None and detail.summary.steps_done >= 1

        await support.wait_for(past_first_step, 20, what="the writer past its first step")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(20)
    detail = await env.storage.get_saga(saga_id)
    assert detail is not None and detail.summary.status is SagaStatus.RUNNING
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, saga_id)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("y")
        await wait_for(
            pilot, lambda: row_status(app, saga_id) == "COMPLETED", timeout=20, what="done"
        )
    rows = env.ledger(saga_id)
    assert {s for s, a in rows if a == "do"} == {"ReserveInventory", "ChargePayment", "ShipOrder"}
