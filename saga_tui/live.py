"""The live loop without Textual: what the operator browses, and the feed that reloads it.

``BrowseState`` is the filter, the page, the marks and what is shown live; handlers change
it and build a ``LoadRequest``. ``LiveFeed`` owns the change probe, the minimum gap
between reloads and the stream's watermark: it waits for a reason to reload, runs the
latest request against a ``SagaReader`` and returns a ``LoadResult``, then the stream's
new lines. The app's worker only posts them; it never looks at the screen.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid

from engine.saga.storage.models import (
    LogRecord,
    PageCursor,
    SagaDetail,
    SagaFilter,
    SagaPage,
    StatusCounts,
)
from engine.saga.storage.reader import SagaReader
from saga_tui.filters import format_filter

PAGE_SIZE = 50
POLL_INTERVAL = 0.25
# In-process checkpoints can arrive thousands of times a second; reload at most this often.
MIN_RELOAD_GAP = 0.1
STREAM_BATCH = 500


@dataclasses.dataclass(frozen=True, slots=True)
class LoadRequest:
    """One reload: the counts, one page, the followed saga, and whether to read the stream."""

    generation: int
    saga_filter: SagaFilter
    after: PageCursor | None
    limit: int
    stream: bool
    follow: uuid.UUID | None


@dataclasses.dataclass(frozen=True, slots=True)
class LoadResult:
    """What one request read; ``detail`` is the followed saga (None when gone or unasked)."""

    request: LoadRequest
    counts: StatusCounts
    page: SagaPage
    detail: SagaDetail | None
    elapsed: float


@dataclasses.dataclass
class BrowseState:
    """The filter, the keyset page, the marks, and what is shown live."""

    page_size: int = PAGE_SIZE
    saga_filter: SagaFilter = dataclasses.field(default_factory=SagaFilter)
    page_after: PageCursor | None = None
    page_back: list[PageCursor | None] = dataclasses.field(default_factory=list)
    marks: set[uuid.UUID] = dataclasses.field(default_factory=set)
    # Bumped by every change that makes a load in flight out of date (never painted).
    generation: int = 0
    stream: bool = True
    follow: uuid.UUID | None = None

    def request(self) -> LoadRequest:
        """The load that shows this state."""
        return LoadRequest(
            self.generation,
            self.saga_filter,
            self.page_after,
            self.page_size,
            self.stream,
            self.follow,
        )

    def is_current(self, result: LoadResult) -> bool:
        """The result was read for this state (not before a filter, page or pause change)."""
        return result.request.generation == self.generation

    def invalidate(self) -> None:
        """Loads in flight must not be shown."""
        self.generation += 1

    def set_filter(self, saga_filter: SagaFilter) -> None:
        """The first page of ``saga_filter``."""
        self.saga_filter = saga_filter
        self.to_first_page()

    def to_first_page(self) -> None:
        """Back to the newest sagas of the same filter."""
        self.page_after = None
        self.page_back.clear()
        self.invalidate()

    def next_page(self, cursor: PageCursor | None) -> bool:
        """Move to the page after ``cursor``; False when there is none."""
        if cursor is None:
            return False
        self.page_back.append(self.page_after)
        self.page_after = cursor
        self.invalidate()
        return True

    def previous_page(self) -> bool:
        """Move one page back; False on the first page."""
        if not self.page_back:
            return False
        self.page_after = self.page_back.pop()
        self.invalidate()
        return True

    def toggle_mark(self, saga_id: uuid.UUID) -> bool:
        """Mark or unmark a saga; True when it is marked now."""
        if saga_id in self.marks:
            self.marks.discard(saga_id)
            return False
        self.marks.add(saga_id)
        return True

    def targets(self, current: uuid.UUID | None, *, on_list: bool) -> list[uuid.UUID]:
        """What r and c act on: the marked sagas on the list, else the current saga."""
        if self.marks and on_list:
            return sorted(self.marks, key=str)
        return [current] if current is not None else []

    def title(self) -> str:
        """``Sagas · status:failed`` (not yet cleaned)."""
        text = format_filter(self.saga_filter)
        return f"Sagas · {text}" if text else "Sagas"

    def subtitle(self, shown: int, more: bool) -> str:
        """``51-100 ·  ] more · 3 marked · newest first``."""
        if shown:
            first = len(self.page_back) * self.page_size + 1
            span = f"{first:,}-{first + shown - 1:,}{' ·  ] more' if more else ''}"
        elif self.saga_filter.is_empty:
            span = "no sagas yet: press n to start one"
        else:
            span = "no sagas match"
        marks = f" · {len(self.marks)} marked" if self.marks else ""
        return f"{span}{marks} · newest first"


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

    def want(self, request: LoadRequest) -> None:
        """Load ``request`` now, and keep it as what a change reloads."""
        self._request = request
        self._forced = True
        self._wake.set()

    def nudge(self) -> None:
        """This process wrote a checkpoint: reload soon (a hint, not data)."""
        if not self.paused:
            self._nudged = True
            self._wake.set()

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
            if nudged and not forced:
                gap = self.min_gap - (time.monotonic() - self._last_reload)
                if gap > 0:
                    await asyncio.sleep(gap)
            token = await self.reader.change_token()
            if token == self._token and not forced and not nudged:
                continue
            self._last_reload = time.monotonic()
            # A request that arrived while this one waited is the one to load.
            result = await self.load(self._request or request)
            self._token = token  # only now: a load that failed is tried again
            return result

    async def load(self, request: LoadRequest) -> LoadResult:
        """Read the counts, the page and the followed saga that ``request`` asks for."""
        reader = self.reader
        started = time.perf_counter()
        counts = await reader.count_by_status()
        page = await reader.list_sagas(
            request.saga_filter, limit=request.limit, after=request.after
        )
        elapsed = time.perf_counter() - started
        detail = await reader.get_saga(request.follow) if request.follow else None
        return LoadResult(request, counts, page, detail, elapsed)

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
