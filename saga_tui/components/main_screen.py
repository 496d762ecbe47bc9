"""The list screen: title, status counts, the saga table, the filter line, the live stream.

It changes the browse state it is given (filter, sort, page, anchor, marks, the stream
on or off) and says so with ``BrowseChanged``; the app then reloads. It draws what the
app hands it. On the first page the list follows the newest sagas while the cursor is
on the top row; once the cursor or the view moves down, the page is anchored at the saga
then on top, rows stay put, and the subtitle counts the newer sagas above.
"""

from __future__ import annotations

import uuid

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from engine.saga.storage.models import LogRecord, PageCursor, SagaFilter, SagaOrder
from saga_tui import keys
from saga_tui.columns import BY_KEY, header_sort, next_sort
from saga_tui.components.live_stream import LiveStream
from saga_tui.components.saga_table import SagaTable
from saga_tui.components.status_bar import CountsBar, PulseBar, TitleBar
from saga_tui.filters import FilterError, format_filter, parse_filter
from saga_tui.live import BrowseState, LoadResult
from saga_tui.messages import BrowseChanged, StatusChosen, StrandedChosen
from saga_tui.render import Palette
from saga_tui.textfmt import clean, utcnow

MIN_SIZE = (40, 10)
COMPACT_HEIGHT = 24
SHORT_HEIGHT = 36
"""Below this many rows the live stream shows four lines, not seven."""
FOOTER_WIDE = 120
WRITES = frozenset({"saga.new", "saga.recover", "saga.compensate"})


class MainScreen(Screen[None]):
    """The saga list; the app's keys (recover, compensate, ...) act on its cursor too."""

    BINDINGS = [*keys.SAGAS]

    def __init__(self, browse: BrowseState, *, read_only: bool = False) -> None:
        super().__init__()
        self.browse = browse
        self.read_only = read_only
        self._next_page: PageCursor | None = None
        self._newer = (0, False)
        self._applied = -1  # the generation whose cursor move was applied
        self._land_above: str | None = None
        self._progress: str | None = None
        self._unreadable = False  # the last load failed: the page shown may be stale

    def compose(self) -> ComposeResult:
        """Title, counts, table, filter input, live stream, footer."""
        yield TitleBar(id="title")
        yield CountsBar(id="counts")
        yield PulseBar(id="pulse")
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
        self.show_footer(self.app.size.width)

    @property
    def table(self) -> SagaTable:
        """The saga table."""
        return self.query_one(SagaTable)

    @property
    def stream(self) -> LiveStream:
        """The live step stream."""
        return self.query_one(LiveStream)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """A slash typed into the filter line is text, not the filter key again."""
        return not (action == "filter" and self.focused is self.filter_input)

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
        self.show_footer(event.size.width)
        self.sync_stream()

    def layout_for(self, width: int, height: int) -> None:
        """Compact layout on a small terminal, a one-line reason on a tiny one."""
        self.set_class(width < MIN_SIZE[0] or height < MIN_SIZE[1], "-tiny")
        self.set_class(height < COMPACT_HEIGHT, "-compact")
        self.set_class(height < SHORT_HEIGHT, "-short")
        self.query_one("#too-small", Static).update(
            Text(
                f"Terminal too small ({width}x{height}): "
                f"make it at least {MIN_SIZE[0]}x{MIN_SIZE[1]}",
                end="",
            ),
        )

    def show_footer(self, width: int) -> None:
        """The keys the footer offers: what fits, ? and q first; no writes when read-only."""
        hidden = WRITES if self.read_only else ()
        keymap = self.app.user_keys.keymap if hasattr(self.app, "user_keys") else {}
        shown, palette = keys.footer_ids(
            [*keys.TABLE[:1], *keys.SAGAS],
            width,
            keymap,
            hidden=hidden,
            compact=width < FOOTER_WIDE,
        )
        keys.show_in_footer([self, self.table], shown)
        footer = self.query_one(Footer)
        footer.show_command_palette = palette
        footer.compact = width < FOOTER_WIDE

    def show_load(self, result: LoadResult, palette: Palette) -> None:
        """Rows, counts and the table's titles from one load (call inside batch_update)."""
        browse = self.browse
        self._next_page = result.page.next_cursor
        self._newer = (result.newer, result.newer_more)
        fresh = result.request.generation != self._applied
        self._applied = result.request.generation
        table = self.table
        # Ages move on once a second, with this reload when it is time (one paint for both).
        now = utcnow()
        if (now - table.now).total_seconds() < 1.0:
            now = table.now
        table.set_view(absolute=browse.absolute_times, wide=browse.wide, sort=browse.order, now=now)
        table.show_page(
            result.page.items,
            browse.marks,
            palette,
            cursor_to=result.request.cursor_to if fresh else None,
            follow=browse.following,
            land_above=self._land_above,
            all_marked=browse.marked_filter is not None,
        )
        self._land_above = None
        f = browse.saga_filter
        self.query_one(CountsBar).show(result.counts, f.statuses, result.stranded, f.stranded)
        self.query_one(PulseBar).show(result.pulse, palette)
        self._sync_anchor()

    def show_titles(self) -> None:
        """``Sagas · status:failed`` above the table; span, newer, marks, sort below."""
        table = self.table
        table.border_title = Text(clean(self.browse.title()), end="")  # type: ignore[assignment]
        newer, more = self._newer
        above = (newer if self.browse.anchor is not None else 0) + round(table.scroll_y)
        subtitle = self.browse.subtitle(
            len(table.order), self._next_page is not None, above, more and above >= newer
        )
        if self._unreadable:
            # Not "no sagas yet" over a database that could not be read.
            subtitle = "cannot read the database; trying again every second"
        if self._progress:
            subtitle = f"{self._progress} · {subtitle}"
        table.border_subtitle = Text(subtitle, end="")  # type: ignore[assignment]

    def show_title(
        self, label: str, live: str, running: int, clock: str, events: str = "", waiting: str = ""
    ) -> None:
        """The top line."""
        self.query_one("#title", TitleBar).show(
            label, live, running, clock, read_only=self.read_only, events=events, waiting=waiting
        )

    def add_logs(self, records: list[LogRecord], palette: Palette) -> None:
        """New lines for the live stream."""
        self.stream.add(records, palette)

    def show_unreadable(self, unreadable: bool) -> None:
        """Say below the table that the database cannot be read now (or no longer)."""
        if unreadable != self._unreadable:
            self._unreadable = unreadable
            self.show_titles()

    def show_progress(self, text: str | None) -> None:
        """``recover: 1,200 / 10,000 sagas`` below the table while a bulk action runs."""
        self._progress = text
        self.show_titles()

    def show_marks(self) -> None:
        """Draw the marks again after they changed all at once (mark all, clear)."""
        table = self.table
        table.all_marked = self.browse.marked_filter is not None
        table.marks = set(self.browse.marks)
        table.refresh()
        self.show_titles()

    def unmark(self, ids: list[uuid.UUID]) -> None:
        """Drop these sagas' marks (after an action on them)."""
        for saga_id in ids:
            if saga_id in self.browse.marks:
                self.browse.marks.discard(saga_id)
                self.table.set_mark(saga_id, False)
        self.show_titles()

    # ---- following and anchoring ----------------------------------------------------------

    def _sync_anchor(self) -> None:
        """Follow the newest while at the top; anchor the page once the view moved down."""
        browse, table = self.browse, self.table
        anchor = browse.anchor
        if browse.following and not table.at_top and table.order:
            top = table.summary(uuid.UUID(table.order[0]))
            if top is not None:
                browse.anchor_at(top)
        elif anchor is not None and table.at_top and self._newer[0] == 0:
            browse.anchor = None  # nothing newer above: the top row follows again
        self.show_titles()
        if browse.anchor != anchor:
            # The live feed reloads what it was last asked for: ask for the new page.
            self.post_message(BrowseChanged())

    @on(SagaTable.Moved)
    def _moved(self) -> None:
        self._sync_anchor()

    @on(SagaTable.Top)
    def _top(self) -> None:
        # Home also from an anchored or later page: back to the newest, following.
        if not self.browse.following:
            self.browse.to_first_page()
            self._changed()
        self._sync_anchor()

    @on(SagaTable.Edge)
    def _edge(self, message: SagaTable.Edge) -> None:
        browse, table = self.browse, self.table
        if message.direction > 0:
            if not browse.next_page(self._next_page):
                self.notify("this is the last page", timeout=2)
                return
        elif browse.anchor is not None and self._newer[0] > 0 and table.order:
            # Up from the anchored top row: show the newer sagas, cursor on the one above.
            self._land_above = table.order[0]
            browse.anchor = None
            browse.invalidate()
        elif not browse.previous_page(cursor_to="last"):
            return
        self._changed()

    @on(SagaTable.HeaderClicked)
    def _header_clicked(self, message: SagaTable.HeaderClicked) -> None:
        order = self.browse.order
        chosen = header_sort(message.column, order.key, order.descending)
        if chosen is None:
            label = BY_KEY[message.column].label
            self.notify(
                f"{label} cannot be sorted: no index serves it on a large database "
                "(s sorts by time, status or saga name)",
                timeout=4,
            )
            return
        self.browse.set_order(SagaOrder(*chosen))
        self._changed()

    def action_sort(self) -> None:
        """Sort by the next order of the cycle."""
        order = self.browse.order
        self.browse.set_order(SagaOrder(*next_sort(order.key, order.descending)))
        self._changed()

    def action_toggle_wide(self) -> None:
        """Every column at full width (scroll sideways), or columns that fit."""
        self.browse.wide = not self.browse.wide
        table = self.table
        table.set_view(
            absolute=self.browse.absolute_times,
            wide=self.browse.wide,
            sort=self.browse.order,
            now=utcnow(),
        )
        self.notify(
            "wide: every column, ← → scroll" if self.browse.wide else "columns fit", timeout=2
        )

    # ---- keys -----------------------------------------------------------------------------

    def action_filter(self) -> None:
        """Show the filter line with the current filter."""
        field = self.filter_input
        field.value = format_filter(self.browse.saga_filter)
        field.display = True
        # At once, not at the next idle moment as focus() does: keys already queued
        # behind the slash (a fast typist, a browser) must reach the filter line.
        self.set_focus(field)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        try:
            new = parse_filter(event.value)
        except FilterError as exc:
            self.notify(clean(exc), title="Filter", severity="error", markup=False, timeout=8)
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
        """Show the first page of sagas matching ``new``, cursor on the first row."""
        self.browse.set_filter(new)
        self.table.move_cursor(row=0)
        self._changed()

    @on(StrandedChosen)
    def _stranded_chosen(self, message: StrandedChosen) -> None:
        message.stop()
        self.set_filter(SagaFilter(stranded=True))

    def action_stranded(self) -> None:
        """Show only the stranded sagas; pressed again, every saga."""
        stranded = not self.browse.saga_filter.stranded
        self.set_filter(SagaFilter(stranded=True) if stranded else SagaFilter())

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
        if self.browse.marked_filter is not None:
            self.browse.clear_marks()
            self.show_marks()
        elif self.browse.marks:
            self.unmark(list(self.browse.marks))
        elif not self.browse.saga_filter.is_empty or not self.browse.following:
            self.set_filter(SagaFilter())

    def action_page(self, delta: int) -> None:
        """Next (1) or previous (-1) page by keyset."""
        if delta > 0 and not self.browse.next_page(self._next_page):
            self.notify("this is the last page", timeout=2)
            return
        if delta < 0 and not self.browse.previous_page():
            self.notify("this is the first page", timeout=2)
            return
        self._changed()

    def action_toggle_stream(self) -> None:
        """Show or hide the live step stream."""
        self.toggle_class("-stream-off")
        self.sync_stream()

    def sync_stream(self) -> None:
        """Stream lines are read only while the stream is on screen (not compact, not off)."""
        shown = not (self.has_class("-compact") or self.has_class("-stream-off"))
        if shown != self.browse.stream:
            self.browse.stream = shown
            self.post_message(BrowseChanged())

    def action_mark(self) -> None:
        """Mark or unmark the saga under the cursor for bulk actions."""
        table = self.table
        saga_id = table.current_id
        if saga_id is None:
            return
        if self.browse.marked_filter is not None:
            self.notify("every matching saga is marked: esc clears the marks", timeout=3)
            return
        table.set_mark(saga_id, self.browse.toggle_mark(saga_id))
        if table.cursor_row < len(table.order) - 1:
            table.move_cursor(row=table.cursor_row + 1)
        self.show_titles()
