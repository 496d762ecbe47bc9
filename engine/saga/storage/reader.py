"""SagaReader: the read-only query API that dashboards and reports depend on.

Every ISagaStorage is a SagaReader; code that only shows sagas asks for this protocol,
so it cannot write by mistake and can be given any object that answers these queries.
"""

from __future__ import annotations

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
    StatusCounts,
)
from engine.saga.storage.oncall import RECENT_LOG_ROWS, FailureGroup, Pulse, StepStats
from engine.saga.storage.outbox import EventCounts, StoredEvent


@typing.runtime_checkable
class SagaReader(typing.Protocol):
    """The query methods of saga storage."""

    read_only: bool

    async def count_by_status(self) -> StatusCounts:
        """How many sagas are in each status."""
        ...

    async def list_sagas(
        self,
        saga_filter: SagaFilter = ...,
        *,
        limit: int = 200,
        after: PageCursor | None = None,
        before: PageCursor | None = None,
        order: SagaOrder = NEWEST_FIRST,
        at: PageCursor | None = None,
    ) -> SagaPage:
        """A page of sagas, newest first, by keyset."""
        ...

    async def get_saga(self, saga_id: uuid.UUID) -> SagaDetail | None:
        """One saga with its steps, log and operator history."""
        ...

    async def count_sagas(self, saga_filter: SagaFilter = ...) -> int:
        """How many sagas match the filter."""
        ...

    async def stranded_count(self) -> int:
        """Unfinished sagas nobody runs."""
        ...

    async def failure_groups(self, limit: int = 500) -> list[FailureGroup]:
        """Sagas grouped by the cause of their failure, the biggest group first."""
        ...

    async def pulse(self) -> Pulse:
        """Sagas that ended per ten seconds over the last ten minutes."""
        ...

    async def step_stats(
        self, saga_name: str | None = None, recent: int = RECENT_LOG_ROWS
    ) -> StepStats:
        """Per-step timings and failure rates from recent log rows."""
        ...

    async def find_ids(self, prefix: str, limit: int = 2) -> list[uuid.UUID]:
        """Saga ids whose text form starts with ``prefix``."""
        ...

    async def logs_after(self, after_id: int, limit: int = 500) -> list[LogRecord]:
        """Log entries above the watermark, oldest first."""
        ...

    async def last_log_id(self) -> int:
        """The highest log id (0 when empty)."""
        ...

    async def change_token(self) -> int:
        """A value that changes whenever any process committed a write."""
        ...

    async def event_counts(self) -> EventCounts:
        """How many stored events are PENDING and how many FAILED."""
        ...

    async def saga_events(self, saga_id: uuid.UUID) -> list[StoredEvent]:
        """Every stored event of one saga, oldest first."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
