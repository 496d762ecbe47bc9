"""Dashboard test helpers: a real SQLite file, the sample sagas, the app under Pilot."""

from __future__ import annotations

import contextlib
import dataclasses
import html
import pathlib
import re
import sqlite3
import typing
import uuid

import pytest
from rich.cells import cell_len
from textual.pilot import Pilot

from engine.saga.mediator import SagaMediator
from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.protocol import ISagaStorage
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from saga_tui.app import SagaApp
from saga_tui.cli import make_app
from saga_tui.components.saga_table import SagaTable
from sample_sagas import Knobs, create_mediator
from sample_sagas.app import example_context
from tests import support

SIZE = (120, 40)
# Fast, deterministic services: nothing fails unless a test says so.
FAST = Knobs(
    failure_rate=0.0,
    compensation_failure_rate=0.0,
    latency_ms=(0.0, 2.0),
    refund_decline_rate=0.0,
    compensation_retry_count=1,
    compensation_retry_delay=0.01,
)


@dataclasses.dataclass
class Env:
    """One database file with a storage and a mediator on it (the tests' own process)."""

    path: pathlib.Path
    storage: SqlAlchemySagaStorage
    mediator: SagaMediator

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the file."""
        return f"sqlite+aiosqlite:///{self.path}"

    def app(self, knobs: Knobs = FAST, **kwargs: typing.Any) -> SagaApp:
        """The dashboard on this database, as ``saga-tui`` builds it, polling fast.

        It opens its own connection and runs the sample sagas with ``knobs``.
        """
        kwargs.setdefault("poll_interval", 0.05)

        def factory(storage: ISagaStorage) -> SagaMediator:
            return create_mediator(storage, knobs=knobs)

        return make_app(str(self.path), factory, **kwargs)

    def ledger(self, saga_id: uuid.UUID) -> set[tuple[str, str]]:
        """The demo ledger rows of one saga: (step, do|undo)."""
        with sqlite3.connect(self.path) as conn:
            try:
                rows = conn.execute(
                    "SELECT step, action FROM demo_ledger WHERE saga_id = ?", (str(saga_id),)
                ).fetchall()
            except sqlite3.OperationalError:
                return set()
        return {(r[0], r[1]) for r in rows}

    async def run_saga(
        self, name: str = "OrderSaga", mediator: SagaMediator | None = None
    ) -> uuid.UUID:
        """Run one sample saga to its end (a failing one is compensated); its id."""
        saga_id = uuid.uuid4()
        with contextlib.suppress(Exception):
            await (mediator or self.mediator).run(example_context(name), saga_id=saga_id)
        return saga_id

    async def failed_saga(self) -> uuid.UUID:
        """A SubscriptionSaga whose refund was declined during a rollback: FAILED."""
        declining = create_mediator(
            self.storage,
            knobs=Knobs(
                failure_rate=0.0,
                compensation_failure_rate=0.0,
                latency_ms=(0.0, 1.0),
                refund_decline_rate=1.0,
                refund_decline_seconds=1e6,
                compensation_retry_count=1,
                compensation_retry_delay=0.01,
            ),
        )
        saga_id = await self.run_saga("SubscriptionSaga", declining)
        result = await declining.compensate_saga(saga_id)
        assert result.status is SagaStatus.FAILED, result
        return saga_id


@pytest.fixture(autouse=True)
def no_user_keymap(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """The dashboard reads its keymap from a per-test config folder, never the user's."""
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return config


@pytest.fixture
async def env(tmp_path: pathlib.Path) -> typing.AsyncIterator[Env]:
    """A fresh database with the sample sagas registered."""
    path = tmp_path / "sagas.db"
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{path}")
    mediator = create_mediator(storage, knobs=FAST)
    try:
        yield Env(path, storage, mediator)
    finally:
        await storage.close()


async def wait_for(
    pilot: Pilot[typing.Any],
    condition: typing.Callable[[], object],
    timeout: float = 30.0,
    what: str = "condition",
) -> typing.Any:
    """Let the app run until ``condition()`` holds (support.wait_for, Pilot's pauses).

    30 s: a shared machine under a parallel test run took longer than 10 s to show a
    first page (test_habits, once); a deadline only costs time when something is wrong."""
    return await support.wait_for(condition, timeout, what=what, sleep=pilot.pause)


def table(app: SagaApp) -> SagaTable:
    """The saga table of the main screen."""
    return app.main_screen.table


def row_status(app: SagaApp, saga_id: uuid.UUID) -> str | None:
    """The status shown on a saga's row (None when it is not on screen)."""
    summary = table(app).summary(saga_id)
    return summary.status.name if summary else None


async def select(pilot: Pilot[typing.Any], app: SagaApp, saga_id: uuid.UUID) -> None:
    """Move the table cursor onto a saga's row."""
    t = table(app)
    await wait_for(pilot, lambda: str(saga_id) in t.order, what="row")
    t.move_cursor(row=t.order.index(str(saga_id)))


_SAID = "_toasts_said"


@pytest.fixture(autouse=True)
def toasts_said(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each app records every toast it raises: a toast times out after a few seconds, and
    a loaded machine can take longer than that between two looks at the screen."""
    real = SagaApp.notify

    def notify(self: SagaApp, message: typing.Any, *args: typing.Any, **kwargs: typing.Any) -> None:
        severity = kwargs.get("severity", "information")
        self.__dict__.setdefault(_SAID, []).append((str(message), severity))
        real(self, message, *args, **kwargs)

    monkeypatch.setattr(SagaApp, "notify", notify)


def notifications(app: SagaApp, severity: str | None = None) -> list[str]:
    """Every notification message the app raised so far (shown still or timed out), or
    only those of one severity ("error", "warning", "information")."""
    said = app.__dict__.get(_SAID, [])
    return [message for message, level in said if severity in (None, level)]


CHAR_WIDTH = 12.2
"""Pixels per terminal cell in Rich's SVG export."""


def screen_text(app: SagaApp) -> str:
    """The visible screen as plain text (from the app's own screenshot), cells in place.

    Each text run is put at the cell its x position names, so blank stretches come back
    as spaces and columns line up as on a terminal; trailing spaces are dropped.
    """
    svg = app.export_screenshot()
    rows: dict[float, list[tuple[float, str]]] = {}
    for m in re.finditer(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        rows.setdefault(float(m.group(2)), []).append(
            (float(m.group(1)), html.unescape(m.group(3)).replace("\xa0", " "))
        )
    lines = []
    for y in sorted(rows):
        line, cells = "", 0
        for x, text in sorted(rows[y]):
            column = round(x / CHAR_WIDTH)
            if column > cells:
                line += " " * (column - cells)
                cells = column
            line += text
            cells += cell_len(text)
        lines.append(line.rstrip())
    return "\n".join(lines)


async def screen_showing(pilot: Pilot[typing.Any], app: SagaApp, needle: str) -> str:
    """Wait until the screen shows ``needle``; the whole screen's text."""

    def text() -> str | None:
        shown = screen_text(app)
        return shown if needle in shown else None

    return typing.cast(str, await wait_for(pilot, text, what=f"{needle!r} on screen"))
