"""Dashboard test helpers: a real SQLite file, the sample sagas, the app under Pilot."""

from __future__ import annotations

import dataclasses
import pathlib
import sqlite3
import time
import typing
import uuid

import pytest
from textual.pilot import Pilot

from engine.saga.mediator import SagaMediator
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from saga_tui.app import SagaApp
from saga_tui.components.saga_table import SagaTable
from sample_sagas import Knobs, create_mediator

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
    """One database file with a storage and a mediator on it."""

    path: pathlib.Path
    storage: SqlAlchemySagaStorage
    mediator: SagaMediator

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the file."""
        return f"sqlite+aiosqlite:///{self.path}"

    def app(self, **kwargs: typing.Any) -> SagaApp:
        """The dashboard on this database, polling fast."""
        kwargs.setdefault("poll_interval", 0.05)
        return SagaApp(self.storage, self.mediator, label=self.path.name, **kwargs)

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
    predicate: typing.Callable[[], object],
    timeout: float = 10.0,
    what: str = "condition",
) -> None:
    """Let the app run until ``predicate()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.02)


def table(app: SagaApp) -> SagaTable:
    """The saga table of the main screen."""
    return app.screen_stack[0].query_one(SagaTable)


def row_status(app: SagaApp, saga_id: uuid.UUID) -> str | None:
    """The status shown on a saga's row (None when it is not on screen)."""
    summary = table(app).summary(saga_id)
    return summary.status.name if summary else None


def notifications(app: SagaApp) -> list[str]:
    """Every notification message shown so far."""
    return [str(n.message) for n in app._notifications]


def screen_text(app: SagaApp) -> str:
    """The visible screen as plain text (from the app's own screenshot)."""
    import html
    import re

    svg = app.export_screenshot()
    rows: dict[float, list[tuple[float, str]]] = {}
    for m in re.finditer(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        rows.setdefault(float(m.group(2)), []).append(
            (float(m.group(1)), html.unescape(m.group(3)).replace("\xa0", " "))
        )
    lines = []
    for y in sorted(rows):
        lines.append("".join(t for _, t in sorted(rows[y])))
    return "\n".join(lines)
