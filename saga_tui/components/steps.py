"""The Steps view: per step of each saga type, how long its act and compensate take (p50,
p95) and how often they fail, from the newest log rows (bounded, so it stays fast at a
million sagas). ``enter`` shows that saga type in the list.
"""

from __future__ import annotations

import typing

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from engine.saga.storage.oncall import StepStat, StepStats
from saga_tui import keys
from saga_tui.render import Palette, paint, safe
from saga_tui.textfmt import ms

if typing.TYPE_CHECKING:
    from engine.saga.storage.reader import SagaReader

REFRESH = 5.0


def stat_cells(stat: StepStat, palette: Palette | None = None) -> list[Text]:
    """SAGA, STEP, ACTION, RUNS, P50, P95, FAILED of one step action."""
    rate = f"{stat.failure_rate:.0%}" if stat.runs else ""
    return [
        safe(stat.saga_name),
        safe(stat.step),
        Text(stat.action, end=""),
        Text(f"{stat.runs:,}", end=""),
        Text(ms(stat.p50_ms), end=""),
        Text(ms(stat.p95_ms), end=""),
        paint(Text(f"{stat.failures:,} ({rate})", style="bad" if stat.failures else "", end=""),
              palette),
    ]  # fmt: skip


class StepsScreen(Screen[str | None]):
    """Step timings and failure rates; dismissed with a saga type to filter by (or None)."""

    BINDINGS = [*keys.STEPS_VIEW]

    def __init__(self, reader: SagaReader, palette: Palette) -> None:
        super().__init__()
        self.reader = reader
        self.palette = palette
        self.stats: list[StepStat] = []

    def compose(self) -> ComposeResult:
        """Title, the step figures."""
        yield Static(Text("Steps · loading…", end=""), id="steps-title")
        yield DataTable(id="steps-table", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        """Columns, the first read, then one every few seconds."""
        table = self.query_one(DataTable)
        for label in ("SAGA", "STEP", "ACTION", "RUNS", "P50", "P95", "FAILED"):
            table.add_column(label, key=label.lower())
        table.focus()
        self.load()
        self.set_interval(REFRESH, self.load)

    @work(exclusive=True, group="steps", exit_on_error=False)
    async def load(self) -> None:
        """Read the newest log rows' figures and show them."""
        self.show(await self.reader.step_stats())

    def show(self, stats: StepStats) -> None:
        """Draw the figures, saga by saga, the cursor kept on its row."""
        table = self.query_one(DataTable)
        row = table.cursor_row
        self.stats = sorted(stats.steps, key=lambda s: (s.saga_name, s.action != "act"))
        table.clear()
        for stat in self.stats:
            table.add_row(*stat_cells(stat, self.palette))
        if self.stats:
            table.move_cursor(row=min(row, len(self.stats) - 1), animate=False)
        title = f"Steps · from the newest {stats.log_rows:,} log rows · enter: show the saga type"
        self.query_one("#steps-title", Static).update(Text(title, end=""))

    def on_data_table_row_selected(self) -> None:
        """Enter: the list, filtered to the saga type under the cursor."""
        self.action_filter_saga()

    def action_filter_saga(self) -> None:
        """Back to the list, showing this saga type."""
        table = self.query_one(DataTable)
        if self.stats and table.cursor_row < len(self.stats):
            self.dismiss(self.stats[table.cursor_row].saga_name)

    def action_close(self) -> None:
        """Back to the list."""
        self.dismiss(None)
