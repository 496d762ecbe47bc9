"""The live loop without Textual: what the operator browses, and the feed that reloads it.

``BrowseState`` is the filter, the sort, the page, the marks and what is shown live;
handlers change it and build a ``LoadRequest``. On the first page the list either
follows the newest sagas (cursor on the top row, like ``tail -f``) or is anchored at the
saga that was on top when the cursor left it, so rows stay put while newer sagas are
counted above it. ``LiveFeed`` owns the change probe, the minimum gap between reloads
and the stream's watermark: it waits for a reason to reload, runs the latest request
against a ``SagaReader`` and returns a ``LoadResult``, then the stream's new lines. The
app's worker only posts them; it never looks at the screen.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import typing
import uuid

from engine.saga.storage.models import (
    NEWEST_FIRST,
    LogRecord,
    PageCursor,
    SagaDetail,
    SagaFilter,
    SagaOrder,
    SagaPage,
    SagaSummary,
    StatusCounts,
)
from engine.saga.storage.oncall import Pulse
from engine.saga.storage.outbox import EventCounts, StoredEvent
from engine.saga.storage.reader import SagaReader
from saga_tui.columns import sort_label
from saga_tui.filters import format_filter, status_hint

Target = typing.Union[list[uuid.UUID], SagaFilter]  # noqa: UP007

NO_EVENTS = EventCounts()
PAGE_SIZE = 50
POLL_INTERVAL = 0.25
# Checkpoints can arrive thousands of times a second; the list reloads at most this often
# on its own (a person reads no faster, and every reload repaints the page). What the
# operator asks for (a filter, a page, a key) loads at once.
MIN_RELOAD_GAP = 1.0
FOLLOW_GAP = 0.25
"""The gap while a detail follows one saga: its steps take fractions of a second."""
STREAM_BATCH = 500
ONCALL_GAP = 1.0
ROLLING_RELOAD = 5.0
"""Seconds after which the list reloads with no change: time alone strands sagas (a
lease runs out, a process dies) and rolls the pulse's buckets on."""

CursorTo = typing.Literal["first", "last"] | None
"""Where the cursor goes when the next load shows a different page."""


@dataclasses.dataclass(frozen=True, slots=True)
class LoadRequest:
    """One reload: the counts, one page, the followed saga, and whether to read the stream."""

    generation: int
    saga_filter: SagaFilter
    after: PageCursor | None
    limit: int
    stream: bool
    follow: uuid.UUID | None
    order: SagaOrder = NEWEST_FIRST
    at: PageCursor | None = None
    """The anchor: the page starts at this row and the sagas before it are counted."""
    cursor_to: CursorTo = None


@dataclasses.dataclass(frozen=True, slots=True)
class LoadResult:
    """What one request read; ``detail`` is the followed saga (None when gone or unasked)."""

    request: LoadRequest
    counts: StatusCounts
    page: SagaPage
    detail: SagaDetail | None
    elapsed: float
    newer: int = 0
    """Sagas before the anchor (newer ones, newest first); at most a page is counted."""
    newer_more: bool = False
    """More than ``newer`` sagas are before the anchor."""
    stranded: int = 0
    """Unfinished sagas nobody runs (the header's STRANDED count)."""
    pulse: Pulse | None = None
    """Sagas that ended per ten seconds over the last ten minutes (the header's sparklines)."""
    event_counts: EventCounts = NO_EVENTS
    """Stored events waiting and failed (the header)."""
    events: tuple[StoredEvent, ...] = ()
    """The followed saga's events."""


@dataclasses.dataclass
class BrowseState:
    """The filter, the sort, the keyset page, the marks, and what is shown live."""

    page_size: int = PAGE_SIZE
    saga_filter: SagaFilter = dataclasses.field(default_factory=SagaFilter)
    order: SagaOrder = NEWEST_FIRST
    page_after: PageCursor | None = None
    page_back: list[PageCursor | None] = dataclasses.field(default_factory=list)
    anchor: PageCursor | None = None
    marks: set[uuid.UUID] = dataclasses.field(default_factory=set)
    marked_filter: SagaFilter | None = None
    """Every saga matching this filter is marked (``*``); r and c act on the filter."""
    marked_count: int = 0
    """How many sagas matched ``marked_filter`` when it was marked (from the database)."""
    # Bumped by every change that makes a load in flight out of date (never painted).
    generation: int = 0
    stream: bool = True
    follow: uuid.UUID | None = None
    cursor_to: CursorTo = "first"
    absolute_times: bool = False
    wide: bool = False
    # The generation the cursor move was asked for: any later change voids it.
    _cursor_generation: int = 0

    @property
    def on_first_page(self) -> bool:
        """The page starts at the beginning of the order (anchored or not)."""
        return self.page_after is None

    @property
    def following(self) -> bool:
        """The list shows the newest sagas as they come (first page, not anchored)."""
        return self.page_after is None and self.anchor is None

    def request(self) -> LoadRequest:
        """The load that shows this state (the cursor move applies once per generation)."""
        return LoadRequest(
            self.generation,
            self.saga_filter,
            self.page_after,
            self.page_size,
            self.stream,
            self.follow,
            self.order,
            self.anchor if self.page_after is None else None,
            self.cursor_to if self._cursor_generation == self.generation else None,
        )

    def is_current(self, result: LoadResult) -> bool:
        """The result was read for this state (not before a filter, page or pause change)."""
        return result.request.generation == self.generation

    def invalidate(self) -> None:
        """Loads in flight must not be shown."""
        self.generation += 1

    def _new_view(self, cursor_to: CursorTo) -> None:
        # Another page or order: nothing read before is shown, the cursor goes to one end.
        self.invalidate()
        self.cursor_to = cursor_to
        self._cursor_generation = self.generation

    def set_filter(self, saga_filter: SagaFilter) -> None:
        """The first page of ``saga_filter``, cursor on its first row (marking all ends)."""
        self.saga_filter = saga_filter
        self.marked_filter = None
        self.to_first_page()

    def mark_all(self, saga_filter: SagaFilter, count: int) -> None:
        """Mark every saga matching ``saga_filter`` (``count`` of them, as counted)."""
        self.marks.clear()
        self.marked_filter = saga_filter
        self.marked_count = count

    def clear_marks(self) -> None:
        """No saga is marked."""
        self.marks.clear()
        self.marked_filter = None

    def set_order(self, order: SagaOrder) -> None:
        """The first page in ``order``, cursor on its first row."""
        self.order = order
        self.to_first_page()

    def to_first_page(self) -> None:
        """Back to the start of the order, following it, cursor on the first row."""
        self.page_after = None
        self.page_back.clear()
        self.anchor = None
        self._new_view("first")

    def anchor_at(self, top: SagaSummary) -> bool:
        """Keep the first page where it is, from ``top`` down; True when that is new."""
        if not self.following:
            return False
        self.anchor = self.order.cursor(top)
        return True

    def next_page(self, cursor: PageCursor | None) -> bool:
        """Move to the page after ``cursor``; False when there is none."""
        if cursor is None:
            return False
        self.page_back.append(self.page_after)
        self.page_after = cursor
        self.anchor = None
        self._new_view("first")
        return True

    def previous_page(self, *, cursor_to: CursorTo = "first") -> bool:
        """Move one page back; False on the first page."""
        if not self.page_back:
            return False
        self.page_after = self.page_back.pop()
        self.anchor = None
        self._new_view(cursor_to)
        return True

    def toggle_mark(self, saga_id: uuid.UUID) -> bool:
        """Mark or unmark a saga; True when it is marked now."""
        if saga_id in self.marks:
            self.marks.discard(saga_id)
            return False
        self.marks.add(saga_id)
        return True

    def targets(self, current: uuid.UUID | None, *, on_list: bool) -> Target:
        """What r and c act on: the marked filter or sagas on the list, else the current one."""
        if self.marked_filter is not None and on_list:
            return self.marked_filter
        if self.marks and on_list:
            return sorted(self.marks, key=str)
        return [current] if current is not None else []

    def title(self) -> str:
        """``Sagas · status:failed`` (not yet cleaned)."""
        text = format_filter(self.saga_filter)
        return f"Sagas · {text}" if text else "Sagas"

    def subtitle(self, shown: int, more: bool, above: int = 0, above_more: bool = False) -> str:
        """``↑ 12 newer (home) · 1-50 ·  ] more · 3 marked · newest first``.

        ``above`` counts the sagas before the first one in view (hidden above it).
        """
        if shown:
            first = len(self.page_back) * self.page_size + 1
            span = f"{first:,}-{first + shown - 1:,}{' ·  ] more' if more else ''}"
        elif self.saga_filter.is_empty:
            span = "no sagas yet: press n to start one"
        else:
            meant = status_hint(self.saga_filter)
            span = f"no sagas match (the status is {meant})" if meant else "no sagas match"
        hint = ""
        if above and self.on_first_page:
            word = "newer" if self.order == NEWEST_FIRST else "above"
            hint = f"↑ {above}{'+' if above_more else ''} {word} (home) · "
        marks = f" · {len(self.marks)} marked" if self.marks else ""
        if self.marked_filter is not None:
            marks = f" · all {self.marked_count:,} matching marked (esc clears)"
        return f"{hint}{span}{marks} · {sort_label(self.order.key, self.order.descending)}"


def count_before(items: typing.Sequence[SagaSummary], at: PageCursor, order: SagaOrder) -> int:
    """How many of ``items`` (a page in ``order``) come before the cursor's position."""

    def key(value: str | None, created: typing.Any, saga_id: uuid.UUID) -> tuple[typing.Any, ...]:
        return (value or "", created, str(saga_id))

    mark = key(at.value, at.created_at, at.saga_id)
    keys = (key(order.value(s), s.created_at, s.id) for s in items)
    return sum(1 for k in keys if (k > mark if order.descending else k < mark))


class LiveFeed:
    """Reloads when the database changed, when told to, or when this process wrote."""

    def __init__(
        self,
        reader: SagaReader,
        *,
        poll_interval: float = POLL_INTERVAL,
        min_gap: float = MIN_RELOAD_GAP,
    ) -> None:
        self.reader = reader
        self.poll_interval = poll_interval
        self.min_gap = min_gap
        self.paused = False
        self.watermark: int | None = None
        self._request: LoadRequest | None = None
        self._wake = asyncio.Event()
        self._forced = False
        self._nudged = False
        self._token: int | None = None
        self._last_reload = 0.0
        self._oncall_read: tuple[float, int, Pulse] | None = None
        self._listening = False

    def want(self, request: LoadRequest) -> None:
        """Load ``request`` now, and keep it as what a change reloads."""
        self._request = request
        self._forced = True
        self._wake.set()

    def nudge(self) -> None:
        """A checkpoint was written (here, or elsewhere as notified): reload soon (a hint)."""
        if not self.paused:
            self._nudged = True
            self._wake.set()

    async def listen(self) -> bool:
        """Reload when the database says another process committed (PostgreSQL's NOTIFY).

        A hint on top of polling, which stays the guarantee; False where there is none.
        """
        if self._listening:
            return True
        watch = getattr(self.reader, "watch_changes", None)
        self._listening = bool(watch is not None and await watch(self.nudge))
        return self._listening

    def stop_listening(self) -> None:
        """Stop taking hints from the database."""
        if self._listening:
            self._listening = False
            self.reader.unwatch_changes(self.nudge)  # type: ignore[attr-defined]

    async def next(self) -> LoadResult:
        """Wait for a reason to reload, then load; one load at a time, never overlapping."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()
            forced, nudged = self._forced, self._nudged
            self._forced = self._nudged = False
            request = self._request
            if request is None or (self.paused and not forced):
                continue
            token = await self.reader.change_token()
            rolled = time.monotonic() - self._last_reload >= ROLLING_RELOAD
            if token == self._token and not forced and not nudged and not rolled:
                continue
            if not forced and await self._forced_during_gap():
                continue  # the operator asked for something meanwhile: that, at once
            self._nudged = False  # this load reads whatever the hints were about
            self._last_reload = time.monotonic()
            # A request that arrived while this one waited is the one to load.
            result = await self.load(self._request or request)
            self._token = token  # only now: a load that failed is tried again
            return result

    async def _forced_during_gap(self) -> bool:
        """Wait out the minimum gap since the last reload; True if a load was asked meanwhile."""
        following = self._request is not None and self._request.follow is not None
        deadline = self._last_reload + (
            min(FOLLOW_GAP, self.min_gap) if following else self.min_gap
        )
        while (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)
            self._wake.clear()
            if self._forced:
                self._wake.set()  # the next round takes it without waiting
                return True
        return False

    async def load(self, request: LoadRequest) -> LoadResult:
        """Read the counts, the page and the followed saga that ``request`` asks for."""
        reader = self.reader
        started = time.perf_counter()
        counts = await reader.count_by_status()
        f, limit, order = request.saga_filter, request.limit, request.order
        if request.at is not None:
            page = await reader.list_sagas(f, limit=limit, order=order, at=request.at)
        else:
            page = await reader.list_sagas(f, limit=limit, after=request.after, order=order)
        newer, newer_more = 0, False
        if request.at is not None:
            # The sagas before the anchor: the first page says how many, up to a page.
            head = await reader.list_sagas(f, limit=limit, order=order)
            newer = count_before(head.items, request.at, order)
            newer_more = newer == len(head.items) and head.next_cursor is not None
        elapsed = time.perf_counter() - started
        detail = await reader.get_saga(request.follow) if request.follow else None
        stranded, pulse = await self._oncall()
        event_counts = await reader.event_counts()
        events = tuple(await reader.saga_events(request.follow)) if request.follow else ()
        return LoadResult(
            request,
            counts,
            page,
            detail,
            elapsed,
            newer,
            newer_more,
            stranded,
            pulse,
            event_counts,
            events,
        )

    async def _oncall(self) -> tuple[int, Pulse]:
        """The header's STRANDED count and pulse: read at most once a second (two
        aggregates over their own indexes), so a reload of the page costs no more."""
        now = time.monotonic()
        if self._oncall_read is None or now - self._oncall_read[0] >= ONCALL_GAP:
            stranded = await self.reader.stranded_count()
            pulse = await self.reader.pulse()
            self._oncall_read = (now, stranded, pulse)
        return self._oncall_read[1], self._oncall_read[2]

    async def stream_lines(self, request: LoadRequest) -> list[LogRecord]:
        """Log entries above the watermark, oldest first (read after the page is shown)."""
        if not request.stream:
            self.watermark = None  # shown again, the stream starts from then, not from here
            return []
        if self.watermark is None:
            self.watermark = await self.reader.last_log_id()
            return []
        logs = await self.reader.logs_after(self.watermark, STREAM_BATCH)
        if logs:
            self.watermark = logs[-1].id
            if len(logs) == STREAM_BATCH:
                # Far behind (a burst): skip to the newest rather than replay history.
                self.watermark = await self.reader.last_log_id()
        return logs
