"""The key map, shown on ``?`` and written into the README."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYMAP: tuple[tuple[str, str], ...] = (
    ("enter", "open the saga's detail"),
    ("n", "start new sagas (form: saga type, context JSON, count)"),
    ("r", "recover the saga (or every marked saga)"),
    ("c", "compensate the saga (or every marked saga); asks first"),
    ("space", "mark / unmark the saga for bulk r and c"),
    ("/", "filter: free text and status:failed name:Order"),
    ("esc", "back / clear the filter and the marks"),
    ("p", "pause / resume live updates"),
    ("l", "show / hide the live step stream"),
    ("y", "copy the saga's full id"),
    ("] / [", "next / previous page"),
    ("f", "(detail) follow the saga live / freeze"),
    ("?", "this help"),
    ("ctrl+p", "command palette"),
    ("q", "quit"),
)


def keymap_table() -> Table:
    """The key map as a rich table."""
    table = Table(box=None, show_header=False, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for key, what in KEYMAP:
        table.add_row(Text(key), Text(what))
    return table


class HelpScreen(ModalScreen[None]):
    """Every key and what it does."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="help.close")]

    def compose(self) -> ComposeResult:
        """The key map in a box."""
        with Vertical(id="help-box"):
            yield Static(Text("saga-tui keys", style="bold", end=""), id="help-title")
            with VerticalScroll():
                yield Static(keymap_table())
            yield Static(
                Text("Click a status count to filter by it.  esc closes.", end=""),
                id="help-keys",
            )
