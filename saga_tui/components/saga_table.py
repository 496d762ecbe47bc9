"""The saga table: one page of sagas drawn line by line, each row rendered once per change.

A Line API widget instead of a DataTable: a DataTable throws away every rendered cell
when one cell changes, and a live page changes several times a second. Here a row is
rendered again only when what it shows changed (its saga, its mark, an age that ticked),
and the columns are laid out by ``columns.fit`` for the width the table has.

The cursor stays on its saga when rows come and go, on the same screen line; the screen
decides whether the first page follows the newest sagas or stays anchored.
"""

from __future__ import annotations

import datetime
import typing
import uuid

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

from engine.saga.storage.models import SagaOrder, SagaSummary
from saga_tui import keys
from saga_tui.columns import BY_KEY, GAP, Layout, column_at, fit, total_width
from saga_tui.render import Palette, is_stranded, summary_cells
from saga_tui.textfmt import age, took, utcnow, when

RowKey = tuple[object, ...]
STEP_NAME_WIDTH = 12


class SagaTable(ScrollView, can_focus=True, inherit_bindings=False):
    """A page of sagas keyed by id; ``show_page`` keeps the cursor on its saga."""

    BINDINGS = [*keys.TABLE]
    COMPONENT_CLASSES = {"saga-table--header", "saga-table--cursor"}
    DEFAULT_CSS = """
    SagaTable {
        scrollbar-size-vertical: 1;
        overflow-x: hidden;
        & > .saga-table--header { text-style: bold; color: $text; }
        & > .saga-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
        }
        &:focus > .saga-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        &.-wide { overflow-x: auto; }
    }
    """

    class Selected(Message):
        """Enter on a row, or a click on the row under the cursor."""

        def __init__(self, saga_id: uuid.UUID) -> None:
            super().__init__()
            self.saga_id = saga_id

    class Moved(Message):
        """The operator moved the cursor or scrolled (not a reload)."""

    class Edge(Message):
        """The cursor was pushed past the first (-1) or last (1) row of the page."""

        def __init__(self, direction: int) -> None:
            super().__init__()
            self.direction = direction

    class Top(Message):
        """Home: back to the first row of the first page."""

    class HeaderClicked(Message):
        """A column header was clicked (for sorting)."""

        def __init__(self, column: str) -> None:
            super().__init__()
            self.column = column

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.summaries: dict[str, SagaSummary] = {}
        self.order: list[str] = []
        self.cursor_row = 0
        self.marks: set[uuid.UUID] = set()
        self.all_marked = False
        """Every row is marked: the operator marked everything matching the filter."""
        self.palette: Palette = {}
        self.absolute = False
        self.wide = False
        self.sort: SagaOrder = SagaOrder()
        self.now: datetime.datetime = utcnow()
        self.columns: Layout = ()
        self._rows: dict[str, tuple[RowKey, Strip]] = {}
        self._quiet = False  # set while a reload moves the view: not the operator
        self._base = self._cursor = self._head = Style()
        self._paint = (0, 0, 0)  # width, scroll x, scroll y of the paint in progress

    # ---- data -----------------------------------------------------------------------------

    @property
    def current_id(self) -> uuid.UUID | None:
        """The saga under the cursor."""
        if not self.order or not 0 <= self.cursor_row < len(self.order):
            return None
        return uuid.UUID(self.order[self.cursor_row])

    @property
    def at_top(self) -> bool:
        """Cursor on the first row and nothing scrolled above the view."""
        return self.cursor_row == 0 and round(self.scroll_y) == 0

    def summary(self, saga_id: uuid.UUID) -> SagaSummary | None:
        """The row's data, if the saga is on this page."""
        return self.summaries.get(str(saga_id))

    def show_page(
        self,
        items: list[SagaSummary],
        marks: set[uuid.UUID],
        palette: Palette,
        *,
        cursor_to: str | None = None,
        follow: bool = False,
        land_above: str | None = None,
        all_marked: bool = False,
    ) -> None:
        """Show ``items``: the cursor stays on its saga, on the same screen line.

        ``cursor_to`` (first or last) places it for a new page or filter; ``follow`` keeps
        it on the first row; ``land_above`` puts it on the row above that saga.
        """
        keep = self.order[self.cursor_row] if self.order else None
        line = self.cursor_row - round(self.scroll_y)
        shown_before = self._visible()
        top_before = round(self.scroll_y)
        self.order = [str(s.id) for s in items]
        self.summaries = dict(zip(self.order, items, strict=True))
        self.marks = set(marks)
        self.all_marked = all_marked
        self.palette = palette
        count = len(self.order)
        index = {key: i for i, key in enumerate(self.order)}
        scroll: float | None = None
        if land_above is not None and land_above in index:
            row = max(0, index[land_above] - 1)
            scroll = row
        elif cursor_to == "first" or (follow and cursor_to is None):
            row, scroll = 0, 0
        elif cursor_to == "last":
            row, scroll = max(0, count - 1), count
        elif keep is not None and keep in index:
            row = index[keep]
            scroll = row - line
        else:
            row = min(self.cursor_row, max(0, count - 1))
        self.cursor_row = row
        self._resize_virtual()
        if scroll is not None:
            self._quietly(lambda: self.scroll_to(y=max(0, scroll), animate=False, immediate=True))
        if round(self.scroll_y) != top_before or len(shown_before) != len(self._visible()):
            self.refresh()
            return
        # Only the lines whose row changed are painted again (a reload changes a few).
        for y, (old, new) in enumerate(zip(shown_before, self._visible(), strict=True), 1):
            if old != new:
                self.refresh_lines(top_before + y)

    def _visible(self) -> list[tuple[object, ...]]:
        """What each visible row line shows, to find the lines a reload changed."""
        top = round(self.scroll_y)
        rows = range(top, min(len(self.order), top + max(0, self.size.height - 1)))
        return [(self.order[i], self.summaries[self.order[i]], i == self.cursor_row) for i in rows]

    def _quietly(self, move: typing.Callable[[], object]) -> None:
        self._quiet = True
        try:
            move()
        finally:
            self._quiet = False

    def set_mark(self, saga_id: uuid.UUID, marked: bool) -> None:
        """Show or hide the mark on one row."""
        if marked:
            self.marks.add(saga_id)
        else:
            self.marks.discard(saga_id)
        self.refresh()

    def refresh_ages(self, now: datetime.datetime | None = None) -> None:
        """Paint again the lines whose ages (or TOOK so far) read differently at ``now``."""
        self.now = now or utcnow()
        top = round(self.scroll_y)
        for y in range(1, max(1, self.size.height)):
            key = self.order[top + y - 1] if top + y - 1 < len(self.order) else None
            cached = self._rows.get(key) if key is not None else None
            if cached is None:
                continue
            summary = cached[0][0]
            assert isinstance(summary, SagaSummary)
            # A lease runs out with no write: the row turns stranded as the clock moves.
            stranded = is_stranded(summary, self.now.timestamp())
            if self._ages(summary) != cached[0][-3:] or stranded != cached[0][-4]:
                self.refresh_lines(top + y)

    def set_view(
        self, *, absolute: bool, wide: bool, sort: SagaOrder, now: datetime.datetime
    ) -> None:
        """Time mode, wide mode and the sort marker of the header."""
        changed = (absolute, wide, sort) != (self.absolute, self.wide, self.sort)
        self.absolute, self.wide, self.sort, self.now = absolute, wide, sort, now
        self.set_class(wide, "-wide")
        if changed:
            self._resize_virtual()
            self.refresh()

    # ---- layout ---------------------------------------------------------------------------

    def _fit(self) -> Layout:
        error = 0
        if self.wide:
            cells = (summary_cells(s) for s in self.summaries.values())
            error = max((c["error"].cell_len for c in cells), default=0)
        # One column stays free for the vertical scrollbar, so the layout never flips.
        width = max(1, self.size.width - 1)
        keys = any(s.search_key for s in self.summaries.values())
        return fit(
            width, wide=self.wide, error_width=error, absolute_times=self.absolute, keys=keys
        )

    def _resize_virtual(self) -> None:
        columns = self._fit()
        # KEY comes and goes with the page: a new layout repaints every line.
        relaid, self.columns = columns != self.columns, columns
        size = Size(total_width(self.columns), len(self.order) + 1)
        if size == self.virtual_size:
            if relaid:
                self.refresh()
            return
        update = getattr(self, "_scroll_update", None)
        if update is None:
            self.virtual_size = size
            return
        # A new row count needs new scrollbars, not a layout of the whole screen (which
        # would repaint every widget); a scrollbar that appears asks for a layout itself.
        self.set_reactive(Widget.virtual_size, size)
        update(size)
        self.refresh()

    def on_resize(self, _: events.Resize) -> None:
        """Lay the columns out again for the new width."""
        self._resize_virtual()
        self._scroll_cursor_visible()

    # ---- drawing --------------------------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
        """Look styles, size and scroll up once per paint, not once per line (not cheap)."""
        self._base = self.rich_style
        self._cursor = self._base + self.get_component_rich_style("saga-table--cursor")
        self._head = self._base + self.get_component_rich_style("saga-table--header")
        self._paint = (self.size.width, round(self.scroll_x), round(self.scroll_y))
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        """Line ``y`` of the view: the header, or a row (Line API)."""
        width, scroll_x, scroll_y = self._paint
        if y == 0:
            strip = self._header()
        else:
            index = scroll_y + y - 1
            if not 0 <= index < len(self.order):
                return Strip.blank(width, self._base)
            strip = self._row(index)
        if scroll_x == 0 and strip.cell_length == width:
            return strip
        return strip.crop_extend(scroll_x, scroll_x + width, self._base)

    def _header(self) -> Strip:
        cells: dict[str, Text] = {}
        for key, width in self.columns:
            label = BY_KEY[key].label
            if len(label) > width:
                label = BY_KEY[key].short
            if BY_KEY[key].sort == self.sort.key and key != "mark":
                label += " ▼" if self.sort.descending else " ▲"
            cells[key] = Text(label, end="")
        return self._strip(cells, self._head)

    def _row(self, index: int) -> Strip:
        key = self.order[index]
        summary = self.summaries[key]
        marked = self.all_marked or summary.id in self.marks
        cursor = index == self.cursor_row
        # What the row shows, ages included: the row is rendered again only when it changes.
        shown = (
            summary,
            marked,
            cursor,
            self._cursor if cursor else self._base,
            self.columns,
            id(self.palette),
            is_stranded(summary, self.now.timestamp()),
            *self._ages(summary),
        )
        cached = self._rows.get(key)
        if cached is not None and cached[0] == shown:
            return cached[1]
        # A narrow PROGRESS column shows the squares; the step name needs room to be read.
        step = dict(self.columns).get("progress", 0) >= STEP_NAME_WIDTH
        cells = summary_cells(
            summary, marked, self.palette, now=self.now, absolute=self.absolute, step=step
        )
        strip = self._strip(cells, self._cursor if cursor else self._base, cursor=cursor)
        self._rows[key] = (shown, strip)
        if len(self._rows) > 4 * max(len(self.order), 50):
            self._rows = {k: v for k, v in self._rows.items() if k in self.summaries}
        return strip

    def _ages(self, summary: SagaSummary) -> tuple[str, str, str]:
        """UPDATED, CREATED and TOOK as they read now (they change with the clock)."""
        now, absolute = self.now, self.absolute
        if absolute:
            return when(summary.updated_at, now), when(summary.created_at, now), took(summary, now)
        return age(summary.updated_at, now), age(summary.created_at, now), took(summary, now)

    def _strip(self, cells: dict[str, Text], base: Style, *, cursor: bool = False) -> Strip:
        console = self.app.console
        segments: list[Segment] = []
        gap = Segment(" " * GAP)
        for position, (key, width) in enumerate(self.columns):
            if position:
                segments.append(gap)
            text = cells[key]
            text.truncate(width, overflow="ellipsis", pad=True)
            segments.extend(text.render(console))
        line = Segment.apply_style(segments, base, base if cursor else None)
        return Strip(line, total_width(self.columns))

    # ---- cursor ---------------------------------------------------------------------------

    def move_cursor(self, *, row: int, scroll: bool = True) -> None:
        """Put the cursor on ``row`` (clamped) and keep it in view."""
        if not self.order:
            return
        row = max(0, min(row, len(self.order) - 1))
        if row != self.cursor_row:
            self.cursor_row = row
            self.refresh()
        if scroll:
            self._scroll_cursor_visible()
        if not self._quiet:
            self.post_message(self.Moved())

    def _scroll_cursor_visible(self) -> None:
        visible = max(1, self.size.height - 1)
        top = round(self.scroll_y)
        target = top
        if self.cursor_row < top:
            target = self.cursor_row
        elif self.cursor_row >= top + visible:
            target = self.cursor_row - visible + 1
        if target != top:
            self.scroll_to(y=target, animate=False, immediate=True)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        """Scrolling by wheel or scrollbar is the operator moving the view."""
        super().watch_scroll_y(old_value, new_value)
        if round(old_value) != round(new_value) and not self._quiet:
            self.post_message(self.Moved())

    def action_cursor(self, delta: int) -> None:
        """One row up or down; past the edge of the page, the screen decides."""
        row = self.cursor_row + delta
        if not self.order or row < 0 or row >= len(self.order):
            self.post_message(self.Edge(-1 if delta < 0 else 1))
            return
        self.move_cursor(row=row)

    def action_cursor_page(self, direction: int) -> None:
        """One screenful up or down; past the edge of the page, the screen decides."""
        last = len(self.order) - 1
        if not self.order or (self.cursor_row == 0 if direction < 0 else self.cursor_row >= last):
            self.post_message(self.Edge(direction))
            return
        self.move_cursor(row=self.cursor_row + direction * max(1, self.size.height - 2))

    def action_first(self) -> None:
        """Home: the first row; the screen goes back to the first page."""
        self.move_cursor(row=0)
        self._quietly(lambda: self.scroll_to(y=0, animate=False, immediate=True))
        self.post_message(self.Top())

    def action_last(self) -> None:
        """End: the last row of this page."""
        self.move_cursor(row=len(self.order) - 1)

    def action_scroll_columns(self, direction: int) -> None:
        """Scroll sideways by a few columns (wide mode)."""
        self.scroll_to(x=self.scroll_x + direction * 8, animate=False)

    def action_select_cursor(self) -> None:
        """Open the saga under the cursor."""
        saga_id = self.current_id
        if saga_id is not None:
            self.post_message(self.Selected(saga_id))

    def on_click(self, event: events.Click) -> None:
        """A header sorts; a row takes the cursor; a double click opens it."""
        offset = event.get_content_offset(self)
        if offset is None:
            return
        x = offset.x + round(self.scroll_x)
        if offset.y == 0:
            column = column_at(self.columns, x)
            if column is not None and column != "mark":
                self.post_message(self.HeaderClicked(column))
            return
        row = round(self.scroll_y) + offset.y - 1
        if not 0 <= row < len(self.order):
            return
        self.move_cursor(row=row)
        if event.chain >= 2:
            self.action_select_cursor()

    def on_focus(self) -> None:
        """The cursor's colour follows the focus."""
        self.refresh()

    def on_blur(self) -> None:
        """The cursor's colour follows the focus."""
        self.refresh()
