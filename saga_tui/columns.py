"""The saga table's columns, and which of them fit how wide on a terminal of a given width.

Columns are kept by priority (ERROR outranks PROGRESS, UPDATED, TOOK and TRIES), grown
towards a comfortable width in a fixed order, and ERROR takes what is left, so a wide
terminal gives the width to the error. The extras (KEY, CREATED) come in only once every
other column is comfortable, so they never narrow the error. Wide mode keeps every column
at full width and lets the table scroll sideways. KEY (the business key) is left out when
no saga on the page has one. No Textual here: the table widget asks ``fit``.
"""

from __future__ import annotations

import dataclasses

from engine.saga.storage.models import SortKey

GAP = 1
FLEX_FLOOR = 10
"""ERROR is still shown, narrower than its minimum, when at least this much is left."""


@dataclasses.dataclass(frozen=True, slots=True)
class Column:
    """One column: its minimum and comfortable widths, and when it is dropped."""

    key: str
    label: str
    min: int
    want: int
    priority: int
    """Lower is kept first when the terminal is narrow."""
    sort: SortKey | None = None
    """The sort order a click on the header picks (None: no index serves one)."""
    extra: bool = False
    """Shown only when every other column already has its comfortable width."""
    short: str = ""
    """The header where the label does not fit."""


# Screen order. ERROR is the flexible column: it takes the width that is left.
COLUMNS: tuple[Column, ...] = (
    Column("mark", "", 1, 1, 0),
    Column("id", "ID", 8, 8, 0),
    Column("saga", "SAGA", 10, 16, 2, sort="name"),
    Column("key", "KEY", 10, 14, 6, extra=True),
    Column("status", "STATUS", 14, 14, 1, sort="status"),
    Column("progress", "PROGRESS", 5, 18, 4, short="STEPS"),
    Column("updated", "UPDATED", 8, 8, 5),
    Column("took", "TOOK", 7, 7, 7),
    Column("tries", "TRIES", 5, 5, 8),
    Column("created", "CREATED", 9, 9, 9, sort="created", extra=True),
    Column("error", "ERROR", 24, 40, 3),
)
BY_KEY = {c.key: c for c in COLUMNS}
FLEX = "error"
# After every kept column has its minimum, the leftover goes to these in turn.
GROWTH = ("saga", "progress", "error")
# Wider than comfortable once everything is in: the step name gets its full width.
WIDE_PROGRESS = 24
ABSOLUTE_TIME_WIDTH = 11
"""``11-26 16:58`` (``16:58:41`` today): absolute times need more than ages."""

Layout = tuple[tuple[str, int], ...]
"""(column key, width) in screen order."""


def _base(key: str, absolute_times: bool) -> Column:
    column = BY_KEY[key]
    if absolute_times and key in ("updated", "created"):
        width = ABSOLUTE_TIME_WIDTH
        return dataclasses.replace(column, min=width, want=width)
    return column


def fit(
    width: int,
    *,
    wide: bool = False,
    error_width: int = 0,
    absolute_times: bool = False,
    keys: bool = True,
) -> Layout:
    """Columns and widths for ``width`` cells (screen order); wide mode keeps all of them.

    ``error_width`` is the longest error on the page, the width wide mode gives ERROR;
    ``keys`` says whether any saga shown has a business key (no KEY column otherwise).
    """
    shown = [c for c in COLUMNS if keys or c.key != "key"]
    columns = {c.key: _base(c.key, absolute_times) for c in shown}
    if wide:
        widths = {key: column.want for key, column in columns.items()}
        widths["progress"] = WIDE_PROGRESS
        left = width - sum(widths.values()) - GAP * (len(widths) - 1) + widths[FLEX]
        widths[FLEX] = max(columns[FLEX].want, error_width, left)
        return tuple((c.key, widths[c.key]) for c in shown)
    kept: dict[str, int] = {}
    used = -GAP
    for column in sorted(columns.values(), key=lambda c: c.priority):
        if column.extra:
            continue
        cost = column.min + GAP
        if used + cost > width:
            # ERROR squeezes in narrower rather than vanish; nothing after it is shown.
            room = width - used - GAP
            if column.key == FLEX and room >= FLEX_FLOOR:
                kept[column.key] = room
                used += room + GAP
            break
        kept[column.key] = column.min
        used += cost
    left = width - used
    for key in GROWTH:
        if key in kept and left > 0:
            grow = min(left, max(0, columns[key].want - kept[key]))
            kept[key] += grow
            left -= grow
    regular = [key for key, column in columns.items() if not column.extra]
    if all(k in kept and kept[k] >= columns[k].want for k in regular):
        # Everything is comfortable: the extras (KEY, CREATED) come in, the step name widens.
        extras = [c for c in columns.values() if c.extra]
        for column in extras:
            if column.min + GAP <= left:
                kept[column.key] = column.min
                left -= column.min + GAP
        for column in extras:
            if column.key in kept:
                grow = min(left, column.want - kept[column.key])
                kept[column.key] += grow
                left -= grow
        grow = min(left, max(0, WIDE_PROGRESS - kept["progress"]))
        kept["progress"] += grow
        left -= grow
    if FLEX in kept:
        kept[FLEX] += max(0, left)
    return tuple((c.key, kept[c.key]) for c in shown if c.key in kept)


def total_width(layout: Layout) -> int:
    """Cells a row of ``layout`` takes."""
    return sum(w for _, w in layout) + GAP * max(0, len(layout) - 1)


def column_at(layout: Layout, x: int) -> str | None:
    """The column under cell ``x`` of a row (None in a gap or beyond the last)."""
    left = 0
    for key, width in layout:
        if left <= x < left + width:
            return key
        left += width + GAP
    return None


def sort_label(key: SortKey, descending: bool) -> str:
    """How a sort order reads in the table's subtitle."""
    words: dict[tuple[str, bool], str] = {
        ("created", True): "newest first",
        ("created", False): "oldest first",
        ("status", True): "by status (running, pending, failed, completed, …)",
        ("status", False): "by status (compensated, compensating, completed, …)",
        ("name", False): "by saga A→Z, oldest first",
        ("name", True): "by saga Z→A, newest first",
    }
    return words[(key, descending)]


SORT_CYCLE: tuple[tuple[SortKey, bool], ...] = (
    ("created", True),
    ("status", True),
    ("name", False),
    ("created", False),
)
"""What ``s`` steps through; newest first is the default."""


def next_sort(key: SortKey, descending: bool) -> tuple[SortKey, bool]:
    """The sort after (key, descending) in the ``s`` cycle."""
    current = (key, descending)
    index = SORT_CYCLE.index(current) if current in SORT_CYCLE else -1
    return SORT_CYCLE[(index + 1) % len(SORT_CYCLE)]


def header_sort(column: str, key: SortKey, descending: bool) -> tuple[SortKey, bool] | None:
    """The sort a click on ``column``'s header picks: its order, or the same reversed."""
    wanted = BY_KEY[column].sort if column in BY_KEY else None
    if wanted is None:
        return None
    if wanted == key:
        return key, not descending
    natural: dict[str, bool] = {"created": True, "status": True, "name": False}
    return wanted, natural[wanted]
