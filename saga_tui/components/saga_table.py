"""The saga table: one page of sagas, updated in place by key so the cursor never jumps."""

from __future__ import annotations

import uuid

from rich.text import Text
from textual.widgets import DataTable

from engine.saga.storage.models import SagaSummary
from saga_tui import keys
from saga_tui.render import Palette, summary_row
from saga_tui.textfmt import age, took

COLUMNS = (
    ("mark", " ", 1),
    ("id", "ID", 8),
    ("saga", "SAGA", 16),
    ("status", "STATUS", 14),
    ("progress", "PROGRESS", 24),
    ("updated", "UPDATED", 8),
    ("took", "TOOK", 7),
    ("tries", "TRIES", 5),
    ("error", "ERROR", 40),
)


class SagaTable(DataTable[object]):
    """A DataTable keyed by saga id; ``show_page`` diffs instead of rebuilding."""

    # DataTable binds enter without a footer label; name it so the footer shows it.
    BINDINGS = [*keys.TABLE]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)  # type: ignore[arg-type]
        self.summaries: dict[str, SagaSummary] = {}
        self.order: list[str] = []
        self._ages: dict[str, str] = {}
        # What the rows were drawn with, as given by the last show_page and set_mark.
        self._marks: set[uuid.UUID] = set()
        self._palette: Palette = {}

    def on_mount(self) -> None:
        """Declare the columns once."""
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    @property
    def current_id(self) -> uuid.UUID | None:
        """The saga under the cursor."""
        if not self.order or not 0 <= self.cursor_row < len(self.order):
            return None
        return uuid.UUID(self.order[self.cursor_row])

    def summary(self, saga_id: uuid.UUID) -> SagaSummary | None:
        """The row's data, if the saga is on this page."""
        return self.summaries.get(str(saga_id))

    def show_page(
        self,
        items: list[SagaSummary],
        marks: set[uuid.UUID],
        palette: Palette,
    ) -> None:
        """Make the rows equal ``items``: update, add and remove by key; keep the cursor.

        Call inside ``app.batch_update()`` so the screen changes once.
        """
        keep = self.order[self.cursor_row] if self.order else None
        old_row = self.cursor_row
        wanted = [str(s.id) for s in items]
        wanted_set = set(wanted)
        repaint = palette != self._palette
        self._marks = set(marks)
        self._palette = palette
        if repaint or not wanted_set.intersection(self.summaries):
            # Another page or filter: nothing to keep, so one rebuild beats 2n row edits.
            self.clear()
            self.summaries = {}
            self._ages = {}
            for summary, key in zip(items, wanted, strict=True):
                self.add_row(*summary_row(summary, summary.id in marks, palette), key=key)
                self.summaries[key] = summary
            self.order = wanted
            if wanted:
                row = wanted.index(keep) if keep in wanted_set else min(old_row, len(wanted) - 1)
                self.move_cursor(row=row, animate=False, scroll=False)
            return
        for key in [k for k in self.order if k not in wanted_set]:
            self.remove_row(key)
            self.summaries.pop(key, None)
        for summary, key in zip(items, wanted, strict=True):
            cells = summary_row(summary, summary.id in marks, palette)
            if key in self.summaries:
                old = summary_row(self.summaries[key], summary.id in marks, palette)
                for (column, _, _), new_cell, old_cell in zip(COLUMNS, cells, old, strict=True):
                    # Ages change every second; everything else only when the row changed.
                    if new_cell != old_cell or column == "updated":
                        self.update_cell(key, column, new_cell)
                self._ages[key] = cells[5].plain
            else:
                self.add_row(*cells, key=key)
            self.summaries[key] = summary
        current = [str(row.key.value) for row in self.ordered_rows]
        if current != wanted:
            rank = {key: index for index, key in enumerate(wanted)}
            self._sort_by_rank(rank)
        self.order = wanted
        if keep is not None and keep in wanted_set:
            self.move_cursor(row=wanted.index(keep), animate=False, scroll=False)
        elif wanted:
            self.move_cursor(row=min(old_row, len(wanted) - 1), animate=False, scroll=False)

    def _sort_by_rank(self, rank: dict[str, int]) -> None:
        # DataTable sorts by cell values; the id column holds the short id, which is
        # unique on one page except in freak collisions, where a rebuild is the fallback.
        shorts = {key[:8]: index for key, index in rank.items()}
        if len(shorts) != len(rank):
            self._rebuild(list(rank))
            return
        self.sort("id", key=lambda cell: shorts.get(str(cell), 0))

    def _rebuild(self, keys: list[str]) -> None:
        summaries = [self.summaries[k] for k in keys]
        self.clear()
        for summary in summaries:
            row = summary_row(summary, summary.id in self._marks, self._palette)
            self.add_row(*row, key=str(summary.id))

    def refresh_ages(self) -> None:
        """Re-render UPDATED (and TOOK of unfinished sagas) from the cached rows (no query)."""
        for key in self.order:
            summary = self.summaries[key]
            text = age(summary.updated_at)
            # Old sagas' ages ("3d4h") rarely change: touch only cells that do.
            if self._ages.get(key) != text:
                self._ages[key] = text
                self.update_cell(key, "updated", Text(text, end=""))
            if not summary.status.is_terminal:
                self.update_cell(key, "took", Text(took(summary), end=""))

    def set_mark(self, saga_id: uuid.UUID, marked: bool) -> None:
        """Show or hide the mark on one row."""
        if marked:
            self._marks.add(saga_id)
        else:
            self._marks.discard(saga_id)
        summary = self.summaries.get(str(saga_id))
        if summary is not None:
            self.update_cell(str(saga_id), "mark", summary_row(summary, marked, self._palette)[0])
