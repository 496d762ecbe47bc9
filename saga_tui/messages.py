"""Messages that workers and screens post to the app; the app's handlers own every change."""

from __future__ import annotations

import dataclasses
import uuid

from textual.message import Message

from engine.saga.operator import ActionResult
from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import LogRecord, SagaFilter
from saga_tui.live import LoadResult
from saga_tui.operations import ActionPlan, Preview


@dataclasses.dataclass
class Loaded(Message):
    """The live feed read the counts, the page and the followed saga, then the stream's
    new log entries (above its watermark, oldest first)."""

    result: LoadResult
    logs: list[LogRecord] = dataclasses.field(default_factory=list)


class BrowseChanged(Message):
    """The list screen changed the filter, the page or the stream: load it."""


@dataclasses.dataclass
class LoadFailed(Message):
    """A read failed; ``reason`` is one line."""

    reason: str


@dataclasses.dataclass
class FollowChanged(Message):
    """The detail screen follows its saga live again, or froze it."""

    saga_id: uuid.UUID
    follow: bool


@dataclasses.dataclass
class PlansReady(Message):
    """What a recover or compensate will do, read from the database, ready to confirm."""

    preview: Preview

    @property
    def verb(self) -> str:
        """recover or compensate."""
        return self.preview.verb

    @property
    def plans(self) -> list[ActionPlan]:
        """The plans read (for a filter: of its first sagas)."""
        return self.preview.plans


@dataclasses.dataclass
class ActionsFinished(Message):
    """Operator actions ended; one result per saga."""

    verb: str
    results: list[ActionResult]


@dataclasses.dataclass
class StatusChosen(Message):
    """A status count was clicked: filter by it (None for all)."""

    status: SagaStatus | None


class StrandedChosen(Message):
    """The STRANDED count was clicked: filter by stranded sagas."""


@dataclasses.dataclass
class ActionProgress(Message):
    """A bulk action went on: ``done`` of ``total`` sagas acted on."""

    verb: str
    done: int
    total: int


@dataclasses.dataclass
class MarkAllCounted(Message):
    """Every saga matching ``saga_filter`` is marked: ``count`` of them in the database."""

    saga_filter: SagaFilter
    count: int
