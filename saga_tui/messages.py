"""Messages that workers post to the app; the app's handlers own every state change."""

from __future__ import annotations

import dataclasses
import uuid

from rich.text import Text
from textual.message import Message

from engine.saga.operator import ActionResult
from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import LogRecord, SagaDetail, SagaPage, StatusCounts


@dataclasses.dataclass
class Snapshot(Message):
    """The counts and the visible page, read together after a change."""

    counts: StatusCounts
    page: SagaPage
    generation: int
    elapsed: float


@dataclasses.dataclass
class NewLogs(Message):
    """Log entries above the stream's watermark, oldest first."""

    records: list[LogRecord]


@dataclasses.dataclass
class DetailLoaded(Message):
    """One saga in full, for the detail screen (None when it vanished)."""

    saga_id: uuid.UUID
    detail: SagaDetail | None


@dataclasses.dataclass
class ActionsFinished(Message):
    """Operator actions ended; one result (or error line) per saga."""

    verb: str
    results: list[ActionResult]
    errors: list[str]


@dataclasses.dataclass
class LoadFailed(Message):
    """A read failed; ``reason`` is one line for the status bar."""

    reason: str


@dataclasses.dataclass
class StatusChosen(Message):
    """A status count was clicked: filter by it (None for all)."""

    status: SagaStatus | None


@dataclasses.dataclass
class PlanReady(Message):
    """What a recover/compensate will do, read from the database, ready to confirm."""

    verb: str
    ids: list[uuid.UUID]
    lines: list[Text]
    refused: list[str]
