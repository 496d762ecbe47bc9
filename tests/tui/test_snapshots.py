"""Snapshots of every screen at 80x24, 120x40 and 200x50, so a layout change fails a test.

The scene is fixed: sagas with set ids, names, statuses, steps, errors and times, a
frozen clock and the UTC time zone. Each snapshot is the screen as text, cell by cell
(``screen_text``: the app's own screenshot), stored in ``tests/tui/snapshots``. After an
intended change, look at the new screens and store them:

    SAGA_SNAPSHOT_UPDATE=1 pytest tests/tui/test_snapshots.py
"""

from __future__ import annotations

import datetime
import difflib
import os
import pathlib
import sqlite3
import time
import typing
import uuid

import pytest

from engine.saga.storage.enums import SagaStatus, SagaStepStatus
from engine.saga.storage.models import Checkpoint, ErrorInfo, LogWrite, NewSaga
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from saga_tui import textfmt
from saga_tui.components.confirm import ConfirmScreen
from saga_tui.components.detail import DetailScreen
from saga_tui.components.help import HelpScreen
from saga_tui.components.start_form import StartForm
from tests.tui.conftest import Env, screen_text, select, table, wait_for

SNAPSHOTS = pathlib.Path(__file__).parent / "snapshots"
SIZES = [(80, 24), (120, 40), (200, 50)]
VIEWS = ["list", "detail", "start", "confirm", "help"]
NOW = datetime.datetime(2030, 5, 17, 12, 0, 0, tzinfo=datetime.UTC)
TRACEBACK = """Traceback (most recent call last):
  File "sample_sagas/refund.py", line 88, in compensate
    await self.gateway.refund(context.amount)
RefundDeclinedError: refund of 9.90 declined by the card gateway"""

STARTED, DONE, FAILED = SagaStepStatus.STARTED, SagaStepStatus.COMPLETED, SagaStepStatus.FAILED
ORDER_STEPS = ("ReserveInventory", "ChargePayment", "ShipOrder")
TRAVEL_STEPS = ("BookFlight", "BookHotel", "RentCar")
SUB_STEPS = ("CreateAccount", "ChargeFirstMonth", "SendWelcome")


def saga_id(n: int) -> uuid.UUID:
    return uuid.UUID(f"{n:08x}-5a9a-4000-8000-{n:012x}")


def acts(steps: typing.Sequence[str], done: int) -> list[LogWrite]:
    out: list[LogWrite] = []
    for index, step in enumerate(steps[:done]):
        out += [LogWrite(step, "act", STARTED), LogWrite(step, "act", DONE, duration_ms=40 + index)]
    return out


def undo(steps: typing.Sequence[str], tries: int = 1, ok: bool = True) -> list[LogWrite]:
    out: list[LogWrite] = []
    for step in reversed(steps):
        for attempt in range(1, tries + 1):
            last = attempt == tries
            out.append(LogWrite(step, "compensate", STARTED, attempt=attempt))
            if last and ok:
                out.append(LogWrite(step, "compensate", DONE, attempt=attempt, duration_ms=12))
            else:
                error = ErrorInfo("RefundDeclinedError", "refund of 9.90 declined", TRACEBACK)
                out.append(
                    LogWrite(
                        step, "compensate", FAILED, attempt=attempt, duration_ms=9, error=error
                    )
                )
    return out


def scene() -> list[Checkpoint]:
    """Eight sagas, newest first: running, failed, rolled back, done, waiting."""
    declined = ErrorInfo("RefundDeclinedError", "refund of 9.90 declined", TRACEBACK)
    no_seats = ErrorInfo("NoSeatsError", "no seats Lima -> Lisbon on 2030-06-01")
    carrier = ErrorInfo("CarrierUnavailableError", "no carrier delivers to 1 Main Street, Lisbon")
    sagas: list[tuple[int, str, SagaStatus, int, str | None, list[LogWrite], ErrorInfo | None]] = [
        (8, "OrderSaga", SagaStatus.RUNNING, 1, "ChargePayment",
         [*acts(ORDER_STEPS, 1), LogWrite("ChargePayment", "act", STARTED)], None),
        (7, "SubscriptionSaga", SagaStatus.FAILED, 2, "ChargeFirstMonth",
         [*acts(SUB_STEPS, 2), *undo(SUB_STEPS[1:2], tries=3, ok=False),
          *undo(SUB_STEPS[:1])], declined),
        (6, "TravelSaga", SagaStatus.COMPENSATED, 0, None,
         [LogWrite("BookFlight", "act", STARTED),
          LogWrite("BookFlight", "act", FAILED, error=no_seats, duration_ms=31)], no_seats),
        (5, "OrderSaga", SagaStatus.COMPENSATED, 2, None,
         [*acts(ORDER_STEPS, 2), LogWrite("ShipOrder", "act", STARTED),
          LogWrite("ShipOrder", "act", FAILED, error=carrier, duration_ms=18),
          *undo(ORDER_STEPS[:2])], carrier),
        (4, "OrderSaga", SagaStatus.COMPLETED, 3, None, acts(ORDER_STEPS, 3), None),
        (3, "TravelSaga", SagaStatus.COMPLETED, 3, None, acts(TRAVEL_STEPS, 3), None),
        (2, "SubscriptionSaga", SagaStatus.COMPLETED, 3, None, acts(SUB_STEPS, 3), None),
        (1, "OrderSaga", SagaStatus.PENDING, 0, None, [], None),
    ]  # fmt: skip
    return [
        Checkpoint(
            saga_id=saga_id(n),
            create=NewSaga(name, {"order_id": f"ord-{n:04d}", "customer": "ada"}, 3),
            status=status,
            steps_done=done,
            current_step=current,
            logs=tuple(logs),
            error=error,
        )
        for n, name, status, done, current, logs, error in sagas
    ]


async def build(path: pathlib.Path) -> None:
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{path}")
    try:
        for checkpoint in reversed(scene()):
            await storage.apply(checkpoint)
    finally:
        await storage.close()
    # Fixed times: saga n was created n*7 minutes before NOW and took n*1.3 seconds;
    # its log entries are 137 ms apart.
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    with sqlite3.connect(path) as conn:
        for (n,) in [(n,) for n in range(1, 9)]:
            sid = saga_id(n)
            created = NOW - datetime.timedelta(minutes=(9 - n) * 7)
            finished = created + datetime.timedelta(seconds=n * 1.3)
            conn.execute(
                "UPDATE saga_executions SET created_at = ?, updated_at = ?,"
                " finished_at = CASE WHEN finished_at IS NULL THEN NULL ELSE ? END WHERE id = ?",
                (created.strftime(fmt), finished.strftime(fmt), finished.strftime(fmt), sid.hex),
            )
            logs = conn.execute(
                "SELECT id FROM saga_logs WHERE saga_id = ? ORDER BY id", (sid.hex,)
            ).fetchall()
            for index, (log_id,) in enumerate(logs):
                at = created + datetime.timedelta(milliseconds=137 * (index + 1))
                conn.execute(
                    "UPDATE saga_logs SET created_at = ? WHERE id = ?", (at.strftime(fmt), log_id)
                )


@pytest.fixture
async def frozen(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> typing.AsyncIterator[Env]:
    """The scene in a fresh database, the clock stopped at NOW, the time zone UTC."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr(textfmt, "_now", lambda: NOW)
    for name in ("TMUX", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "sagas.db"
    await build(path)
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{path}")
    try:
        from sample_sagas import create_mediator
        from tests.tui.conftest import FAST

        yield Env(path, storage, create_mediator(storage, knobs=FAST))
    finally:
        await storage.close()
        monkeypatch.undo()
        time.tzset()


async def open_view(pilot: typing.Any, app: typing.Any, view: str) -> None:
    """Go to ``view`` and wait until it shows what it is for."""
    await wait_for(pilot, lambda: len(table(app).order) == 8, what="the scene")
    if view == "detail":
        await select(pilot, app, saga_id(7))
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, DetailScreen) and app.screen.detail is not None,
            what="the detail",
        )
    elif view == "start":
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, StartForm), what="the form")
    elif view == "confirm":
        await select(pilot, app, saga_id(4))
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the dialog")
    elif view == "help":
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help")
    else:
        await select(pilot, app, saga_id(7))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("view", VIEWS)
async def test_snapshot(frozen: Env, view: str, size: tuple[int, int]) -> None:
    app = frozen.app()
    async with app.run_test(size=size) as pilot:
        await open_view(pilot, app, view)
        # The same screen twice in a row: nothing is still moving.
        seen: list[str] = []

        def settled() -> bool:
            seen.append(screen_text(app))
            return len(seen) > 1 and seen[-1] == seen[-2]

        await wait_for(pilot, settled, what="a screen that stopped changing")
        shown = seen[-1]
    stored = SNAPSHOTS / f"{view}-{size[0]}x{size[1]}.txt"
    if os.environ.get("SAGA_SNAPSHOT_UPDATE"):
        SNAPSHOTS.mkdir(exist_ok=True)
        stored.write_text(shown + "\n", encoding="utf-8")
        return
    assert stored.exists(), f"no snapshot {stored.name}: run with SAGA_SNAPSHOT_UPDATE=1"
    expected = stored.read_text(encoding="utf-8").rstrip("\n")
    if shown != expected:
        diff = "\n".join(
            difflib.unified_diff(
                expected.splitlines(), shown.splitlines(), "stored", "now", lineterm=""
            )
        )
        pytest.fail(f"{stored.name} changed:\n{diff}")
