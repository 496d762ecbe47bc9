"""The title line and the status counts (each count is a filter)."""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid
from textual.widgets import Static

from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import StatusCounts
from engine.saga.storage.oncall import Pulse
from saga_tui.messages import StatusChosen, StrandedChosen
from saga_tui.pictures import pulse_text
from saga_tui.render import STATUS_MARKS, STRANDED_MARK, Palette
from saga_tui.textfmt import clean

CHIP_GAP = 3


class TitleBar(Static):
    """``saga-tui · sagas.db · read-only · live ● · 3 running here      12:04:31 JST``."""

    _shown: Text | None = None

    def show(
        self,
        label: str,
        live: str,
        running: int,
        clock: str,
        *,
        read_only: bool,
        events: str = "",
        waiting: str = "",
    ) -> None:
        """Render the database label, read-only, the live state, this process's sagas, the time.

        ``events`` (the outbox's pending and failed counts) shows when there are any;
        ``waiting`` when requests wait for a worker nobody runs.
        """
        left = Text(end="")
        left.append("saga-tui", style="bold")
        left.append(f" · {clean(label)}")
        if read_only:
            left.append(" · ")
            left.append("read-only", style="bold reverse")
        left.append(f" · {live}")
        width = self.size.width or 80
        if events:
            left.append(" · ")
            left.append(events, style="bold")
        if waiting:
            left.append(" · ")
            left.append(clean(waiting), style="bold reverse")
        if running:
            more = f" · {running} running in this process"
            if left.cell_len + len(more) + len(clock) + 1 > width:
                more = f" · {running} running here"
            left.append(more)
        pad = max(1, width - left.cell_len - len(clock))
        left.append(" " * pad + clock)
        left.truncate(width)
        if left != self._shown:
            self._shown = left
            self.update(left, layout=False)  # one line, always as wide as the screen


class CountChip(Static):
    """One status count; clicking it filters the table by that status."""

    def __init__(self, status: SagaStatus | None, **kwargs: object) -> None:
        super().__init__("", **kwargs)  # type: ignore[arg-type]
        self.status = status
        self.add_class("all" if status is None else status.name.lower())
        self.text = ""

    def show(self, count: int, active: bool) -> None:
        """Render ``● RUNNING 12`` (status mark, name, count)."""
        name = "ALL" if self.status is None else f"{STATUS_MARKS[self.status]} {self.status.name}"
        text = f"{name} {count:,}"
        if text != self.text:
            # A new width needs a layout; the same width only a repaint.
            self.update(Text(text, end=""), layout=len(text) != len(self.text))
            self.text = text
        self.set_class(active, "-active")

    def on_click(self) -> None:
        """Filter by this status."""
        self.post_message(StatusChosen(self.status))


class StrandedChip(CountChip):
    """``⚠ STRANDED 48``: unfinished sagas nobody runs; clicking it filters by them."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(None, **kwargs)
        self.set_classes("stranded")

    def show(self, count: int, active: bool) -> None:
        """Render ``⚠ STRANDED 48``."""
        text = f"{STRANDED_MARK} STRANDED {count:,}"
        if text != self.text:
            self.update(Text(text, end=""), layout=len(text) != len(self.text))
            self.text = text
        self.set_class(active, "-active")
        self.set_class(count > 0, "-some")

    def on_click(self) -> None:
        """Filter by stranded sagas."""
        self.post_message(StrandedChosen())


class PulseBar(Static):
    """The last ten minutes: sparklines of sagas completed, compensated and failed."""

    _shown: Text | None = None

    def show(self, pulse: Pulse | None, palette: Palette) -> None:
        """Draw the pulse for the width the bar has."""
        if pulse is None:
            return
        text = pulse_text(pulse, max(20, (self.size.width or self.app.size.width) - 2), palette)
        if text != self._shown:
            self._shown = text
            self.update(text, layout=False)


class CountsBar(Grid):
    """ALL, then one chip per status in lifecycle order; on a narrow terminal, two rows.

    The names are never cut: when they do not fit on one line the chips wrap, so FAILED
    is always on screen.
    """

    DEFAULT_CSS = """
    CountsBar {
        height: 1;
        padding: 0 1;
        grid-gutter: 0 3;
        grid-columns: auto;
        grid-rows: 1;
    }
    """

    _grid: tuple[int, int] | None = None

    def compose(self) -> ComposeResult:
        """One chip per status."""
        yield CountChip(None, id="count-all")
        for status in SagaStatus:
            yield CountChip(status, id=f"count-{status.name.lower()}")
        yield StrandedChip(id="count-stranded")

    def show(
        self,
        counts: StatusCounts,
        active: tuple[SagaStatus, ...],
        stranded: int = 0,
        stranded_active: bool = False,
    ) -> None:
        """Update every chip, then lay them out for the width."""
        for chip in self.query(CountChip):
            if isinstance(chip, StrandedChip):
                chip.show(stranded, stranded_active)
            elif chip.status is None:
                chip.show(counts.total, not active and not stranded_active)
            else:
                chip.show(counts[chip.status], chip.status in active)
        self.wrap()

    def wrap(self) -> None:
        """As many chips per row as fit (every row the same count), rows as needed."""
        chips = list(self.query(CountChip))
        width = max(1, (self.size.width or self.app.size.width) - 2)
        per_row = len(chips)
        while per_row > 1 and not _fits(chips, per_row, width):
            per_row -= 1
        grid = (per_row, math.ceil(len(chips) / per_row))
        if grid != self._grid:
            self._grid = grid
            self.styles.grid_size_columns, self.styles.height = grid

    def on_resize(self) -> None:
        """Wrap again for the new width."""
        self.wrap()


def _fits(chips: list[CountChip], per_row: int, width: int) -> bool:
    # Grid columns are as wide as their widest chip.
    columns = [max(len(chip.text) for chip in chips[start::per_row]) for start in range(per_row)]
    return sum(columns) + CHIP_GAP * (per_row - 1) <= width
