"""The failure groups view (``g``): failed, rolled-back and retrying sagas grouped by cause.

One row per cause (saga type, step, error type, message pattern) with its count, when it
was first and last seen, a sparkline of the last hour and the newest message. ``enter``
shows the group's sagas in the list; ``r`` and ``c`` act on every saga of the group.
The groups are one grouped query (``failure_groups``), read again every few seconds.
"""

from __future__ import annotations

import typing

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from engine.saga.storage.models import SagaFilter
from engine.saga.storage.oncall import HOUR_BUCKET_SECONDS, FailureGroup
from saga_tui import keys
from saga_tui.pictures import sparkline
from saga_tui.render import Palette, paint, safe
from saga_tui.textfmt import age, clean, error_line, utcnow

if typing.TYPE_CHECKING:
    from engine.saga.storage.reader import SagaReader

REFRESH = 3.0
"""Seconds between reads of the groups while the view is open."""


def group_cells(group: FailureGroup, palette: Palette | None = None) -> list[Text]:
    """COUNT, LAST HOUR, SAGA, STEP, ERROR, LAST, FIRST and MESSAGE of one group.

    The count and its sparkline come first, so a narrow terminal still shows them.
    """
    now = utcnow()
    count = f"{group.count:,}"
    if group.retrying:
        count += f" ({group.retrying}↻)"
    return [
        Text(count, end=""),
        paint(Text(sparkline(group.hour), style="bad", end=""), palette),
        safe(group.saga_name),
        safe(group.step),
        paint(safe(group.error_type, "bad"), palette),
        Text(age(group.last_seen, now), end=""),
        Text(age(group.first_seen, now), end=""),
        safe(group.pattern),
    ]


class GroupsScreen(Screen[str | None]):
    """Failures grouped by cause; dismissed with the group to filter by (or None)."""

    BINDINGS = [*keys.GROUPS_VIEW]

    def __init__(self, reader: SagaReader, palette: Palette) -> None:
        super().__init__()
        self.reader = reader
        self.palette = palette
        self.groups: list[FailureGroup] = []

    def compose(self) -> ComposeResult:
        """Title, the groups, the example of the group under the cursor."""
        yield Static(Text("Failure groups · loading…", end=""), id="groups-title")
        table: DataTable[Text] = DataTable(id="groups-table", cursor_type="row")
        yield table
        yield Static("", id="groups-example")
        yield Footer()

    def on_mount(self) -> None:
        """Columns, the first read, then a read every few seconds."""
        table = self.query_one(DataTable)
        minutes = HOUR_BUCKET_SECONDS // 60
        table.add_column("COUNT", key="count")
        table.add_column(f"LAST HOUR/{minutes}m", key="hour")
        for label in ("SAGA", "STEP", "ERROR", "LAST", "FIRST", "MESSAGE"):
            table.add_column(label, key=label.lower())
        table.focus()
        self.load()
        self.set_interval(REFRESH, self.load)

    @work(exclusive=True, group="groups", exit_on_error=False)
    async def load(self) -> None:
        """Read the groups (one grouped query) and show them."""
        self.show(await self.reader.failure_groups())

    def show(self, groups: list[FailureGroup]) -> None:
        """Draw ``groups``; the cursor stays on its group."""
        table = self.query_one(DataTable)
        keep = self.current.key if self.current else None
        self.groups = groups
        table.clear()
        for group in groups:
            table.add_row(*group_cells(group, self.palette), key=group.key)
        keys_ = [g.key for g in groups]
        if keep in keys_:
            table.move_cursor(row=keys_.index(keep), animate=False)
        total = sum(g.count for g in groups)
        title = (
            f"Failure groups · {len(groups):,} cause{'' if len(groups) == 1 else 's'}, "
            f"{total:,} saga{'' if total == 1 else 's'} · enter shows · r/c act on all · ↻ retrying"
        )
        if not groups:
            title = "Failure groups · no failures: nothing failed, rolled back or retries"
        self.query_one("#groups-title", Static).update(Text(title, end=""))
        self._show_example()

    @property
    def current(self) -> FailureGroup | None:
        """The group under the cursor."""
        table = self.query_one(DataTable)
        if not self.groups or table.cursor_row >= len(self.groups):
            return None
        return self.groups[table.cursor_row]

    def on_data_table_row_highlighted(self) -> None:
        """Show the example message of the group under the cursor."""
        self._show_example()

    def _show_example(self) -> None:
        group = self.current
        widget = self.query_one("#groups-example", Static)
        widget.display = group is not None
        if group is not None:
            text = Text(end="", overflow="fold")
            text.append(f"{clean(group.saga_name)} · {clean(group.step)}\n", style="bold")
            text.append(clean(error_line(group.error_type, group.example)), style="bad")
            widget.update(paint(text, self.palette))

    def on_data_table_row_selected(self) -> None:
        """Enter on a row: show the group's sagas."""
        self.action_filter_group()

    def action_filter_group(self) -> None:
        """Back to the list, filtered to the group under the cursor."""
        group = self.current
        if group is not None:
            self.dismiss(group.key)

    def action_act(self, verb: str) -> None:
        """Recover or compensate every saga of the group (the app asks first)."""
        group = self.current
        if group is None:
            return
        app: typing.Any = self.app
        app.ask_about(verb, SagaFilter(failure_key=group.key))

    def action_close(self) -> None:
        """Back to the list."""
        self.dismiss(None)
