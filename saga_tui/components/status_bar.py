"""The title line and the status counts (each count is a filter)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import StatusCounts
from saga_tui.messages import StatusChosen
from saga_tui.render import STATUS_MARKS
from saga_tui.textfmt import clean


class TitleBar(Static):
    """``saga-tui · sagas.db · live ● · 3 running in this process      12:04:31``."""

    def show(self, label: str, live: str, running: int, clock: str) -> None:
        """Render the database label, the live state, this process's sagas and the time."""
        left = Text(end="")
        left.append("saga-tui", style="bold")
        left.append(f" · {clean(label)} · {live}")
        if running:
            left.append(f" · {running} running in this process")
        width = self.size.width or 80
        pad = max(1, width - left.cell_len - len(clock))
        left.append(" " * pad + clock)
        left.truncate(width)
        self.update(left)


class CountChip(Static):
    """One status count; clicking it filters the table by that status."""

    def __init__(self, status: SagaStatus | None, **kwargs: object) -> None:
        super().__init__("", **kwargs)  # type: ignore[arg-type]
        self.status = status
        self.add_class("all" if status is None else status.name.lower())

    def show(self, count: int, active: bool) -> None:
        """Render ``RUNNING 12`` (with its mark)."""
        name = "ALL" if self.status is None else f"{STATUS_MARKS[self.status]} {self.status.name}"
        self.update(Text(f"{name} {count:,}", end=""))
        self.set_class(active, "-active")

    def on_click(self) -> None:
        """Filter by this status."""
        self.post_message(StatusChosen(self.status))


class CountsBar(Horizontal):
    """ALL, then one chip per status in lifecycle order."""

    def compose(self) -> ComposeResult:
        """One chip per status."""
        yield CountChip(None, id="count-all")
        for status in SagaStatus:
            yield CountChip(status, id=f"count-{status.name.lower()}")

    def show(self, counts: StatusCounts, active: tuple[SagaStatus, ...]) -> None:
        """Update every chip."""
        for chip in self.query(CountChip):
            if chip.status is None:
                chip.show(counts.total, not active)
            else:
                chip.show(counts[chip.status], chip.status in active)
