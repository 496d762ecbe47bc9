"""The live step stream: the newest log entries of every saga, as they are written.

A tail, not a scrollback: it shows the newest lines that fit, newest at the bottom (a
saga's whole history is in its detail). Lines are rendered once when they arrive, and
the widget never changes size, so a burst of entries repaints a few lines, never the
layout of the screen.
"""

from __future__ import annotations

import collections

from rich.segment import Segment
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

from engine.saga.storage.models import LogRecord
from saga_tui.render import Palette, log_line

MAX_LINES = 200
"""Lines kept: more than any terminal is tall."""


class LiveStream(Widget):
    """The newest step transitions, one line each (Text, never markup)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.border_title = "Live steps"
        # Records are kept, not lines: a line is worded for the width it is shown at.
        self.lines: collections.deque[LogRecord | Text] = collections.deque(maxlen=MAX_LINES)
        self.palette: Palette | None = None
        self._strips: dict[int, tuple[int, Strip]] = {}

    def add(self, records: list[LogRecord], palette: Palette | None) -> None:
        """Append the records (a burst keeps its newest lines and says how many it skipped)."""
        if not records:
            return
        self.palette = palette
        skipped = len(records) - MAX_LINES
        if skipped > 0:
            self.lines.append(Text(f"… {skipped:,} more entries", style="dim", end=""))
        self.lines.extend(records[-MAX_LINES:])
        self._strips.clear()
        self.refresh()

    def _line(self, item: LogRecord | Text, width: int) -> Text:
        return item.copy() if isinstance(item, Text) else log_line(item, self.palette, width)

    def render_line(self, y: int) -> Strip:
        """Line ``y`` of the view: the newest lines fill it from the bottom (Line API)."""
        width, height = self.size.width, self.size.height
        index = len(self.lines) - height + y
        style = self.rich_style
        if not 0 <= index < len(self.lines):
            return Strip.blank(width, style)
        cached = self._strips.get(y)
        if cached is not None and cached[0] == width:
            return cached[1]
        text = self._line(self.lines[index], width)
        text.truncate(width, overflow="crop", pad=True)
        segments = list(text.render(self.app.console))
        strip = Strip(Segment.apply_style(segments, style), width)
        self._strips[y] = (width, strip)
        return strip

    def on_resize(self) -> None:
        """Render again for the new width."""
        self._strips.clear()
