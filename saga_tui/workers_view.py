"""The workers view (``w``): every process serving requests, live or gone, read each second.

``enter`` goes back to the list filtered to the worker under the cursor (``worker:NAME``).
"""

from __future__ import annotations

import time
import typing

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from engine.saga.lease import owner_is_dead
from engine.saga.requests import WorkerInfo
from saga_tui import keys
from saga_tui.textfmt import clean

if typing.TYPE_CHECKING:
    from engine.saga.fleet import RequestBook

# What an operator scans for first (alive? busy?) comes first: at 80 columns the table
# scrolls sideways from APP on.
COLUMNS = ("NAME", "STATE", "HEARTBEAT", "RUNNING", "SERVED", "HOST", "PID", "APP", "TYPES")


def age(seconds: float) -> str:
    """``4s``, ``3m``, ``2h``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{int(seconds)}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    return f"{int(seconds // 3600)}h"


def worker_state(worker: WorkerInfo, now: float) -> str:
    """``live``, ``stopped`` (deregistered) or ``gone`` (its heartbeat stopped)."""
    if worker.stopped_at is not None:
        return "stopped"
    if not worker.alive(now) or owner_is_dead(worker.id):
        return "gone"
    return "live" if worker.dedicated else "live (dashboard)"


def waiting_note(types: typing.Sequence[str], worker_alive: bool) -> str:
    """Why open requests wait: no worker runs, or none has their saga types."""
    names = clean(", ".join(types))
    if not worker_alive:
        return f"requests for {names} wait: no worker is running; start `saga-tui worker`"
    return (
        f"requests for {names} wait: no live worker has them registered; "
        "start `saga-tui worker --app MODULE:FACTORY` with them"
    )


def worker_row(worker: WorkerInfo, now: float) -> tuple[Text, ...]:
    """One table row, every database value cleaned."""
    state = worker_state(worker, now)
    style = "green" if state.startswith("live") else "dim"
    return (
        Text(clean(worker.name)),
        Text(state, style=style),
        Text(age(now - worker.heartbeat) + " ago"),
        Text(str(worker.running if state.startswith("live") else 0)),
        Text(str(worker.served)),
        Text(clean(worker.host)),
        Text(str(worker.pid)),
        Text(clean(worker.app)),
        Text(clean(", ".join(worker.saga_types))),
    )


class WorkersScreen(ModalScreen[str | None]):
    """Workers heard from in the last hour, refreshed every second; dismissed with the
    name of the worker whose sagas to show (or None)."""

    BINDINGS = [*keys.WORKERS]

    def __init__(self, book: RequestBook) -> None:
        super().__init__()
        self.book = book
        self._names: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        """A title, the table and a one-line summary."""
        with Vertical(id="workers-box"):
            yield Static(Text("Workers", style="bold", end=""), id="workers-title")
            table: DataTable[Text] = DataTable(id="workers-table", cursor_type="row")
            table.add_columns(*COLUMNS)
            yield table
            yield Static("reading the workers table…", id="workers-summary")
        yield Footer()

    def on_mount(self) -> None:
        """Read now and every second."""
        self._load()
        self.set_interval(1.0, self._load)

    @work(exclusive=True, group="workers", exit_on_error=False)
    async def _load(self) -> None:
        found = await self.book.workers()
        self._show(found, await self.book.unserved_types())

    def _show(self, found: list[WorkerInfo], waiting: list[str]) -> None:
        if not self.is_attached:
            return
        now = time.time()
        table = self.query_one("#workers-table", DataTable)
        # Refreshing must not move the cursor: it stays on its worker.
        current = self._current_id(table)
        table.clear()
        self._names = {w.id: w.name for w in found}
        for worker in found:
            table.add_row(*worker_row(worker, now), key=worker.id)
        if current in self._names:
            table.move_cursor(row=table.get_row_index(current), animate=False)
        live = sum(1 for w in found if worker_state(w, now).startswith("live"))
        text = (
            f"{live} live, {len(found) - live} gone or stopped"
            if found
            else "no worker has run in the last hour: start one with `saga-tui worker`"
        )
        if waiting:
            text += "\n" + waiting_note(waiting, any(w.alive(now) and w.dedicated for w in found))
        self.query_one("#workers-summary", Static).update(Text(text))

    def action_filter_worker(self) -> None:
        """Back to the list, filtered to the sagas of the worker under the cursor."""
        name = self._names.get(self._current_id(self.query_one("#workers-table", DataTable)) or "")
        if name:
            self.dismiss(name)

    @staticmethod
    def _current_id(table: DataTable[Text]) -> str | None:
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def on_data_table_row_selected(self) -> None:
        """Enter on a row: show the worker's sagas."""
        self.action_filter_worker()
