"""Plain data crossing the storage boundary: writes, loaded state and query results.

No ORM objects leave storage; the TUI and the CLI only ever see these dataclasses.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import typing
import uuid

from engine.saga.storage.enums import RequestedAction, SagaStatus, SagaStepStatus
from engine.saga.storage.outbox import EventWrite

Action = typing.Literal["act", "compensate"]


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class SagaLogEntry:
    """One entry of a saga's step log: the one read model of a log row.

    python-cqrs's shape (``saga_id, step_name, action, status, timestamp, details``,
    positional in that order) plus what the dashboard shows: the log id, the saga's
    name, the error, the attempt and the duration. ``created_at`` is ``timestamp``.
    """

    saga_id: uuid.UUID
    step_name: str
    action: Action
    status: SagaStepStatus
    timestamp: datetime.datetime
    details: str | None = None
    _: dataclasses.KW_ONLY
    id: int = 0
    saga_name: str = ""
    error_type: str | None = None
    error_message: str | None = None
    error_traceback: str | None = None
    attempt: int = 1
    duration_ms: float | None = None
    unreadable: str | None = None
    """Why a stored field of this row could not be read (shown instead of guessing)."""

    @property
    def created_at(self) -> datetime.datetime:
        """When the entry was written (the column's name; python-cqrs says ``timestamp``)."""
        return self.timestamp

    def __repr__(self) -> str:
        return (
            f"SagaLogEntry(saga_id={self.saga_id}, step_name='{self.step_name}', "
            f"action='{self.action}', status={self.status}, timestamp={self.timestamp})"
        )


LogRecord = SagaLogEntry
"""The name the query API used for log entries before there was one model."""


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An exception as stored: type name, message and formatted traceback."""

    type: str
    message: str
    traceback: str | None = None


@dataclasses.dataclass(slots=True)
class LogWrite:
    """A step log entry to append as part of a checkpoint."""

    step_name: str
    action: Action
    status: SagaStepStatus
    details: str | None = None
    error: ErrorInfo | None = None
    attempt: int = 1
    duration_ms: float | None = None


@dataclasses.dataclass(slots=True)
class NewSaga:
    """The row to insert when a checkpoint creates a saga."""

    name: str
    context: dict[str, typing.Any]
    step_count: int
    search_key: str | None = None
    """The saga's business key: the values of its ``search_keys`` fields, space-separated."""


@dataclasses.dataclass(frozen=True, slots=True)
class FailureMark:
    """A failure's cause as stored on its saga, for grouping: key, step, type, message.

    ``key`` is ``engine.saga.grouping.failure_key`` of the rest; an empty key clears the
    saga's mark (a rollback that ended clean, with no failure behind it).
    """

    key: str
    step: str
    type: str
    message: str


NO_FAILURE = FailureMark("", "", "", "")
"""The mark that clears a saga's failure columns."""


@dataclasses.dataclass(slots=True)
class Checkpoint:
    """One atomic, durable write: everything in it commits together or not at all.

    When ``owner`` is set the write only applies while that owner holds the lease with
    ``fence`` (when set): the fence the owner's claim got. Otherwise storage raises
    :class:`LeaseLostError` and writes nothing.
    """

    saga_id: uuid.UUID
    owner: str | None = None
    create: NewSaga | None = None
    status: SagaStatus | None = None
    context: dict[str, typing.Any] | None = None
    logs: tuple[LogWrite, ...] = ()
    current_step: str | None = None
    steps_done: int | None = None
    error: ErrorInfo | None = None
    clear_error: bool = False
    lease_expires: float | None = None
    release_lease: bool = False
    clear_requested_action: bool = False
    bump_recovery_attempts: bool = False
    fence: int | None = None
    failure: FailureMark | None = None
    """The failure to group the saga by (``NO_FAILURE`` clears it); None leaves it."""
    events: tuple[EventWrite, ...] = ()
    """The step's events, stored in the same transaction (the outbox)."""


@dataclasses.dataclass(frozen=True, slots=True)
class CheckpointResult:
    """What the writer learns back from a checkpoint (a pending operator request)."""

    requested_action: RequestedAction | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class OperatorAction:
    """An operator action on a saga, for the audit table."""

    saga_id: uuid.UUID
    action: str
    reason: str = ""
    os_user: str = ""
    host: str = ""
    outcome: str = ""
    id: int = 0
    created_at: datetime.datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class SagaState:
    """What a runner needs to resume a saga it has claimed."""

    saga_id: uuid.UUID
    name: str
    status: SagaStatus
    context: dict[str, typing.Any]
    version: int
    history: list[SagaLogEntry]
    requested_action: RequestedAction | None = None
    recovery_attempts: int = 0
    fence: int = 0
    """The fence this claim got: every write of the run is conditioned on it."""


@dataclasses.dataclass(frozen=True, slots=True)
class LeaseInfo:
    """Who holds a saga, as read for stale detection."""

    saga_id: uuid.UUID
    status: SagaStatus
    owner: str | None
    expires: float | None
    fence: int = 0


# ---- query API results -------------------------------------------------------------


_ID_START = re.compile(r"[0-9a-f]{1,8}(-[0-9a-f]{0,4}){0,3}(-[0-9a-f]{0,12})?")


@dataclasses.dataclass(frozen=True, slots=True)
class SagaFilter:
    """Which sagas a page shows. Empty fields match everything."""

    statuses: tuple[SagaStatus, ...] = ()
    name: str | None = None
    text: str | None = None
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None
    text_in_errors_only: bool = False
    """Set by storage when no id starts with an id-like ``text``: search errors instead."""
    stranded: bool = False
    """Only unfinished sagas nobody runs: lease free or expired, or a dead owner here."""
    key: str | None = None
    """The start of a business key (``key:ord-9ca8``)."""
    failure_key: str | None = None
    """One failure group (``group:KEY``): sagas grouped under that cause."""
    text_in_keys: bool = False
    """Set by storage when ``text`` starts a business key: match keys, not errors."""
    dead_owners: tuple[str, ...] = ()
    """Set by storage for ``stranded``: owners on this host whose process is gone."""
    now: float | None = None
    """Set by storage for ``stranded``: the time leases are judged at."""
    events: str | None = None
    """Only sagas holding events in this state (``FAILED`` or ``PENDING``)."""
    worker: str | None = None
    """A worker (``worker:w1``, by name or ``host:pid``): sagas it runs, or served a request of."""
    worker_owners: tuple[str, ...] | None = None
    """Set by storage for ``worker``: the owner ids of the registered workers so named."""

    @property
    def is_empty(self) -> bool:
        """True when the filter matches every saga."""
        return not (
            self.statuses
            or self.name
            or self.text
            or self.since
            or self.until
            or self.stranded
            or self.key
            or self.failure_key
            or self.events
            or self.worker
        )

    @property
    def id_prefix(self) -> str | None:
        """``text`` as the start of a saga id when it looks like one, else None.

        Text of 4+ characters that could begin a UUID's text form and holds a digit
        matches ids by prefix (an index range in SQL); any other text matches the error
        type and message, and so does id-like text that starts no id (storage checks
        that first, with an index seek). Substrings in the middle of ids are not
        searched: no index can serve them on a million sagas.
        """
        text = (self.text or "").strip().lower()
        if self.text_in_errors_only or self.text_in_keys:
            return None
        if len(text) >= 4 and _ID_START.fullmatch(text) and any(c.isdigit() for c in text):
            return text
        return None


async def resolve_text_filter(
    saga_filter: SagaFilter,
    find_ids: typing.Callable[[str, int], typing.Awaitable[list[uuid.UUID]]],
    has_key: typing.Callable[[str], typing.Awaitable[bool]] | None = None,
) -> SagaFilter:
    """The filter to run: text that starts a saga id matches ids, else text that starts
    a business key matches keys, else it searches the errors (each an index seek)."""
    text = (saga_filter.text or "").strip()
    if not text or saga_filter.text_in_errors_only or saga_filter.text_in_keys:
        return saga_filter
    prefix = saga_filter.id_prefix
    if prefix is not None and await find_ids(prefix, 1):
        return saga_filter
    if has_key is not None and await has_key(text):
        return dataclasses.replace(saga_filter, text_in_keys=True)
    if prefix is not None:
        return dataclasses.replace(saga_filter, text_in_errors_only=True)
    return saga_filter


SortKey = typing.Literal["created", "status", "name"]


@dataclasses.dataclass(frozen=True, slots=True)
class SagaOrder:
    """How a page is sorted: by creation time, status or saga name; then time and id.

    All keyset columns run in one direction, so every order walks one index forwards
    or backwards: (created_at, id), (status, created_at, id), (name, created_at, id).
    """

    key: SortKey = "created"
    descending: bool = True

    def value(self, summary: SagaSummary) -> str | None:
        """The sort column's value of a saga (None for the time order)."""
        if self.key == "status":
            return summary.status.name
        if self.key == "name":
            return summary.name
        return None

    def cursor(self, summary: SagaSummary) -> PageCursor:
        """The keyset position of ``summary`` in this order."""
        return PageCursor(summary.created_at, summary.id, self.value(summary))


NEWEST_FIRST = SagaOrder()


@dataclasses.dataclass(frozen=True, slots=True)
class PageCursor:
    """Keyset position in a stable order (newest first: created_at desc, id desc).

    ``value`` is the row's status name or saga name when the order sorts by it.
    """

    created_at: datetime.datetime
    saga_id: uuid.UUID
    value: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class SagaSummary:
    """One row of the saga table."""

    id: uuid.UUID
    name: str
    status: SagaStatus
    created_at: datetime.datetime
    updated_at: datetime.datetime
    step_count: int = 0
    steps_done: int = 0
    current_step: str | None = None
    recovery_attempts: int = 0
    error_type: str | None = None
    error_message: str | None = None
    lease_owner: str | None = None
    lease_expires: float | None = None
    requested_action: RequestedAction | None = None
    finished_at: datetime.datetime | None = None
    version: int = 1
    tries: int = 0
    """The most times one step action was started (a lane's tries); 0 before any step."""
    unreadable: str | None = None
    """Why the stored row could not be read (an unknown status, a time or number that
    does not parse): the row is shown as unreadable with this reason, never guessed."""
    search_key: str | None = None
    """The business key (the values of the saga's ``search_keys`` fields)."""
    failure_key: str | None = None
    """The failure group the saga is in (see ``engine.saga.grouping``)."""

    @property
    def duration(self) -> datetime.timedelta:
        """Wall time from creation to finish (or to the last update while running)."""
        end = self.finished_at or self.updated_at
        return end - self.created_at


@dataclasses.dataclass(frozen=True, slots=True)
class SagaPage:
    """A page of sagas plus the cursors to move from it."""

    items: list[SagaSummary]
    next_cursor: PageCursor | None
    prev_cursor: PageCursor | None


@dataclasses.dataclass(frozen=True, slots=True)
class LaneView:
    """One lane (act or compensate) of one step, derived from the log."""

    status: SagaStepStatus | None = None
    attempts: int = 0
    duration_ms: float | None = None
    started_at: datetime.datetime | None = None
    error_type: str | None = None
    error_message: str | None = None

    @property
    def in_flight(self) -> bool:
        """True when the lane started and has not finished."""
        return self.status is SagaStepStatus.STARTED


@dataclasses.dataclass(frozen=True, slots=True)
class StepView:
    """A step of one saga with its act and compensate lanes."""

    name: str
    act: LaneView
    compensate: LaneView


@dataclasses.dataclass(frozen=True, slots=True)
class SagaDetail:
    """One saga with its context, steps, full log and operator history."""

    summary: SagaSummary
    context: dict[str, typing.Any] | None
    context_raw: str
    context_error: str | None
    steps: list[StepView]
    logs: list[SagaLogEntry]
    audit: list[OperatorAction]
    error_traceback: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class StatusCounts:
    """How many sagas are in each status."""

    by_status: dict[SagaStatus, int]
    unreadable: int = 0
    """Sagas whose stored status this code cannot read."""

    @property
    def total(self) -> int:
        """All sagas, unreadable ones included."""
        return sum(self.by_status.values()) + self.unreadable

    def __getitem__(self, status: SagaStatus) -> int:
        return self.by_status.get(status, 0)
