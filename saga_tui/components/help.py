"""The help screen: every key by group, built from the bindings (with the user's keymap)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from saga_tui import keys
from saga_tui.keys import HelpRows


def keymap_table(rows: HelpRows) -> Table:
    """The key map as a rich table, one titled block per group."""
    table = Table(box=None, show_header=False, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for index, (title, entries) in enumerate(rows):
        if index:
            table.add_row("", "")
        table.add_row(Text(title, style="underline"), "")
        for key, what in entries:
            table.add_row(Text(key), Text(what))
    return table


class HelpScreen(ModalScreen[None]):
    """Every key and what it does."""

    BINDINGS = [*keys.HELP]

    def __init__(self, rows: HelpRows) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        """The key map in a box."""
        with Vertical(id="help-box"):
            yield Static(Text("saga-tui keys", style="bold", end=""), id="help-title")
            with VerticalScroll():
                yield Static(keymap_table(self.rows), id="help-table")
            yield Static(
                Text(
                    "PROGRESS: ■ done  ↺ undone  ✗ failed  □ not run.  TRIES: the most tries "
                    "one step needed.  Click a status count or a column header to filter or "
                    "sort.  esc closes.",
                    end="",
                ),
                id="help-keys",
            )
        yield Footer()
