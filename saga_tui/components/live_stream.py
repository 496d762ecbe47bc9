"""The live step stream: the newest log entries of every saga, as they are written."""

from __future__ import annotations

from textual.widgets import RichLog

from engine.saga.storage.models import LogRecord
from saga_tui.render import Palette, log_line

MAX_LINES = 500


class LiveStream(RichLog):
    """A bounded log of step transitions (RichLog writes Text, never markup)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_lines=MAX_LINES, markup=False, wrap=False, auto_scroll=True, **kwargs)  # type: ignore[arg-type]
        self.border_title = "Live steps"

    def add(self, records: list[LogRecord], palette: Palette | None) -> None:
        """Append the records (only the last screenful matters when many arrive)."""
        for record in records[-MAX_LINES:]:
            self.write(log_line(record, palette))
