"""The list screen: title, status counts, the saga table, the filter line, the live stream.

It changes the browse state it is given (filter, page, marks, the stream on or off) and
says so with ``BrowseChanged``; the app then reloads. It draws what the app hands it.
"""

from __future__ import annotations

import uuid

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from engine.saga.storage.models import LogRecord, PageCursor, SagaFilter
from saga_tui import keys
from saga_tui.components.live_stream import LiveStream
from saga_tui.components.saga_table import SagaTable
from saga_tui.components.status_bar import CountsBar, TitleBar
from saga_tui.filters import FilterError, format_filter, parse_filter
from saga_tui.live import BrowseState, LoadResult
from saga_tui.messages import BrowseChanged, StatusChosen
from saga_tui.render import Palette
from saga_tui.textfmt import clean

MIN_SIZE = (40, 10)
COMPACT_HEIGHT = 24


class MainScreen(Screen[None]):
    """The saga list; the app's keys (recover, compensate, ...) act on its cursor too."""

    BINDINGS = [*keys.SAGAS]

    def __init__(self, browse: BrowseState) -> None:
        super().__init__()
        self.browse = browse
        self._next_page: PageCursor | None = None

    def compose(self) -> ComposeResult:
        """Title, counts, table, filter input, live stream, footer."""
        yield TitleBar(id="title")
        yield CountsBar(id="counts")
        with Vertical(id="main"):
            yield SagaTable(id="sagas")
            yield Input(placeholder="status:failed name:Order free text", id="filter")
            yield LiveStream(id="stream")
        yield Static("", id="too-small")
        yield Footer()

    def on_mount(self) -> None:
        """The filter line is hidden until asked for; the table has the keys."""
        self.filter_input.display = False
        self.table.focus()
        self.show_titles()

    @property
    def table(self) -> SagaTable:
        """The saga table."""
        return self.query_one(SagaTable)

    @property
    def stream(self) -> LiveStream:
        """The live step stream."""
        return self.query_one(LiveStream)

    @property
    def filter_input(self) -> Input:
        """The filter line."""
        return self.query_one("#filter", Input)

    def _changed(self) -> None:
        self.show_titles()
        self.post_message(BrowseChanged())

    # ---- drawing --------------------------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        """Lay the list out for the terminal's size."""
        self.layout_for(event.size.width, event.size.height)
        # The compact layout hides the stream through CSS, applied at the next refresh.
        self.call_after_refresh(self.sync_stream)

    def layout_for(self, width: int, height: int) -> None:
        """Compact layout on a small terminal, a one-line reason on a tiny one."""
        self.set_class(width < MIN_SIZE[0] or height < MIN_SIZE[1], "-tiny")
        self.set_class(height < COMPACT_HEIGHT, "-compact")
        self.query_one("#too-small", Static).update(
            Text(
                f"Terminal too small ({width}x{height}): "
                f"make it at least {MIN_SIZE[0]}x{MIN_SIZE[1]}",
                end="",
            ),
        )

    def show_load(self, result: LoadResult, palette: Palette) -> None:
        """Rows, counts and the table's titles from one load (call inside batch_update)."""
        self._next_page = result.page.next_cursor
        self.table.show_page(result.page.items, self.browse.marks, palette)
        self.query_one(CountsBar).show(result.counts, self.browse.saga_filter.statuses)
        self.show_titles()

    def show_titles(self) -> None:
        """``Sagas · status:failed`` above the table, the span and the marks below."""
        table = self.table
        table.border_title = Text(clean(self.browse.title()), end="")  # type: ignore[assignment]
        subtitle = self.browse.subtitle(len(table.order), self._next_page is not None)
        table.border_subtitle = Text(subtitle, end="")  # type: ignore[assignment]

    def show_title(self, label: str, live: str, running: int, clock: str) -> None:
        """The top line."""
        self.query_one("#title", TitleBar).show(label, live, running, clock)

    def add_logs(self, records: list[LogRecord], palette: Palette) -> None:
        """New lines for the live stream."""
        self.stream.add(records, palette)

    def unmark(self, ids: list[uuid.UUID]) -> None:
        """Drop these sagas' marks (after an action on them)."""
        for saga_id in ids:
            if saga_id in self.browse.marks:
                self.browse.marks.discard(saga_id)
                self.table.set_mark(saga_id, False)
        self.show_titles()

    # ---- keys -----------------------------------------------------------------------------

    def action_filter(self) -> None:
        """Show the filter line with the current filter."""
        field = self.filter_input
        field.value = format_filter(self.browse.saga_filter)
        field.display = True
        field.focus()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        try:
            new = parse_filter(event.value)
        except FilterError as exc:
            self.notify(clean(exc), title="Filter", severity="error", markup=False)
            return
        self._close_filter()
        self.set_filter(new)

    def _close_filter(self) -> bool:
        field = self.filter_input
        was_open = bool(field.display)
        field.display = False
        self.table.focus()
        return was_open

    def set_filter(self, new: SagaFilter) -> None:
        """Show the first page of sagas matching ``new``."""
        self.browse.set_filter(new)
        self._changed()

    @on(StatusChosen)
    def filter_by_status(self, message: StatusChosen) -> None:
        """A status count was clicked (or chosen in the palette): filter by it."""
        message.stop()
        statuses = () if message.status is None else (message.status,)
        current = self.browse.saga_filter
        self.set_filter(SagaFilter(statuses, current.name, current.text))

    def action_clear(self) -> None:
        """Esc: close the filter line, else clear the marks, else clear the filter."""
        if self._close_filter():
            return
        if self.browse.marks:
            self.unmark(list(self.browse.marks))
        elif not self.browse.saga_filter.is_empty or self.browse.page_after is not None:
            self.set_filter(SagaFilter())

    def action_page(self, delta: int) -> None:
        """Next (1) or previous (-1) page by keyset."""
        if delta > 0 and not self.browse.next_page(self._next_page):
            self.notify("this is the last page", timeout=2)
            return
        if delta < 0 and not self.browse.previous_page():
            self.notify("this is the first page", timeout=2)
            return
        self.table.move_cursor(row=0, animate=False)
        self._changed()

    def action_toggle_stream(self) -> None:
        """Show or hide the live step stream."""
        self.stream.display = not self.stream.display
        self.sync_stream()

    def sync_stream(self) -> None:
        """Stream lines are read only while the stream is on screen (not compact, not off)."""
        shown = bool(self.stream.display)
        if shown != self.browse.stream:
            self.browse.stream = shown
            self.post_message(BrowseChanged())

    def action_mark(self) -> None:
        """Mark or unmark the saga under the cursor for bulk actions."""
        table = self.table
        saga_id = table.current_id
        if saga_id is None:
            return
        table.set_mark(saga_id, self.browse.toggle_mark(saga_id))
        if table.cursor_row < len(table.order) - 1:
            table.move_cursor(row=table.cursor_row + 1)
        self.show_titles()
