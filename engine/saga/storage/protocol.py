"""The storage protocol: what the engine writes, what a runner claims, what readers query.

Three groups of methods:

* python-cqrs compatible primitives (``create_saga`` ... ``set_recovery_attempts``),
  so code written against python-cqrs storages keeps working;
* the runner's protocol: one atomic ``apply`` per checkpoint, leases (``claim``,
  ``renew_leases``, ``lease_candidates``), requested actions and the operator audit;
* the query API for readers (``count_by_status``, ``list_sagas``, ``get_saga``,
  ``find_ids``, ``logs_after``, ``change_token``, and for the operator on call
  ``count_sagas``, ``stranded_count``, ``failure_groups``, ``pulse``, ``step_stats``),
  returning plain dataclasses.
"""

from __future__ import annotations

import abc
import contextlib
import typing
import uuid

from engine.saga.errors import (  # noqa: F401  (re-exported for storage users)
    LeaseLostError,
    ReadOnlyStorageError,
    SagaConcurrencyError,
    SagaNotFoundError,
    SagaStorageError,
)
from engine.saga.storage.enums import RequestedAction, SagaStatus, SagaStepStatus
from engine.saga.storage.models import (
    NEWEST_FIRST,
    Checkpoint,
    CheckpointResult,
    LeaseInfo,
    LogRecord,
    LogWrite,
    NewSaga,
    OperatorAction,
    PageCursor,
    SagaDetail,
    SagaFilter,
    SagaLogEntry,
    SagaOrder,
    SagaPage,
    SagaState,
    StatusCounts,
)
from engine.saga.storage.oncall import RECENT_LOG_ROWS, FailureGroup, Pulse, StepStats
from engine.saga.storage.outbox import EventOutbox


class ISagaStorage(EventOutbox, abc.ABC):
    """Persistence for sagas: durable checkpoints, leases and a query API."""

    read_only: bool = False

    # ---- runner protocol --------------------------------------------------------------

    @abc.abstractmethod
    async def apply(self, checkpoint: Checkpoint) -> CheckpointResult:
        """Write one checkpoint atomically; it is durable when this returns.

        Raises SagaNotFoundError when the saga does not exist and the checkpoint does
        not create it, SagaExistsError (writing nothing) when it creates a saga that
        exists, LeaseLostError when ``checkpoint.owner`` no longer holds it.
        """

    @abc.abstractmethod
    async def claim(
        self,
        saga_id: uuid.UUID,
        owner: str,
        lease_expires: float,
        *,
        now: float,
        steal_from: str | None = None,
    ) -> SagaState | None:
        """Take the lease with one atomic conditional update and load the saga.

        The lease is taken when it is free, expired at ``now``, already ``owner``'s,
        or held by ``steal_from`` (an owner the caller verified dead); the same update
        adds one to the saga's fence, which the returned state carries. Returns None
        when someone else holds it; raises SagaNotFoundError for an unknown id.
        """

    @abc.abstractmethod
    async def renew_leases(self, owner: str, lease_expires: float) -> int:
        """Extend every lease ``owner`` holds; returns how many."""

    @abc.abstractmethod
    async def heartbeat(
        self,
        owner: str,
        held: typing.Mapping[uuid.UUID, int],
        lease_expires: float,
        now: float,
    ) -> set[uuid.UUID]:
        """Extend the lease of each saga in ``held`` (id -> fence) in one atomic update.

        A lease is extended only while ``owner`` holds it with that fence and it has not
        expired at ``now``; the ids returned are those extended. A saga missing from the
        answer is lost to its run: taken over by another runner, or expired.
        """

    @abc.abstractmethod
    async def get_lease(self, saga_id: uuid.UUID) -> LeaseInfo | None:
        """Who holds one saga, or None when it does not exist."""

    @abc.abstractmethod
    async def lease_candidates(self, now: float, host: str, limit: int) -> list[LeaseInfo]:
        """Unfinished sagas a recoverer may take: lease free or expired, or held on ``host``.

        Sagas held on this host are returned whatever their expiry so the caller can
        check whether their owner process is still alive.
        """

    @abc.abstractmethod
    async def request_action(self, saga_id: uuid.UUID, action: RequestedAction) -> None:
        """Store a request for the saga's owner to act on at its next step boundary."""

    @abc.abstractmethod
    async def record_operator_action(self, action: OperatorAction) -> None:
        """Append an operator action to the audit table."""

    # ---- query API --------------------------------------------------------------------

    @abc.abstractmethod
    async def count_by_status(self) -> StatusCounts:
        """How many sagas are in each status."""

    @abc.abstractmethod
    async def list_sagas(
        self,
        saga_filter: SagaFilter = SagaFilter(),
        *,
        limit: int = 200,
        after: PageCursor | None = None,
        before: PageCursor | None = None,
        order: SagaOrder = NEWEST_FIRST,
        at: PageCursor | None = None,
    ) -> SagaPage:
        """A page of sagas in ``order`` (newest first: created_at desc, id desc), by keyset.

        ``after`` continues below the cursor's row, ``at`` starts at that row itself,
        ``before`` goes back towards the start of the order.
        """

    @abc.abstractmethod
    async def get_saga(self, saga_id: uuid.UUID) -> SagaDetail | None:
        """One saga with its steps, log and operator history."""

    @abc.abstractmethod
    async def count_sagas(self, saga_filter: SagaFilter = SagaFilter()) -> int:
        """How many sagas match the filter (a selection's size, from the database)."""

    @abc.abstractmethod
    async def stranded_count(self) -> int:
        """Unfinished sagas nobody runs: lease free or expired, or a dead owner here."""

    @abc.abstractmethod
    async def failure_groups(self, limit: int = 500) -> list[FailureGroup]:
        """Failed, rolled-back and retrying sagas grouped by cause, the biggest first."""

    @abc.abstractmethod
    async def pulse(self) -> Pulse:
        """Sagas that ended per ten seconds over the last ten minutes, by status."""

    @abc.abstractmethod
    async def step_stats(
        self, saga_name: str | None = None, recent: int = RECENT_LOG_ROWS
    ) -> StepStats:
        """Per-step p50/p95 and failure rate from the newest ``recent`` log rows."""

    @abc.abstractmethod
    async def find_ids(self, prefix: str, limit: int = 2) -> list[uuid.UUID]:
        """Saga ids whose text form starts with ``prefix`` (for short ids)."""

    @abc.abstractmethod
    async def logs_after(self, after_id: int, limit: int = 500) -> list[LogRecord]:
        """Log entries with an id above the watermark, oldest first."""

    @abc.abstractmethod
    async def last_log_id(self) -> int:
        """The highest log id (0 when empty)."""

    @abc.abstractmethod
    async def change_token(self) -> int:
        """A value that changes whenever any process committed a write; cheap to call."""

    async def watch_changes(self, callback: typing.Callable[[], None]) -> bool:
        """Call ``callback`` soon after any process commits; False if this storage cannot.

        A hint for readers that poll: it may come late or not at all, never instead of
        polling.
        """
        return False

    def unwatch_changes(self, callback: typing.Callable[[], None]) -> None:
        """Stop calling ``callback`` (see watch_changes)."""

    async def close(self) -> None:
        """Release connections and background tasks."""

    # ---- python-cqrs compatible primitives ---------------------------------------------

    async def create_saga(
        self,
        saga_id: uuid.UUID,
        name: str,
        context: dict[str, typing.Any],
    ) -> None:
        """Create a saga record in PENDING status with version 1."""
        await self.apply(
            Checkpoint(
                saga_id=saga_id,
                create=NewSaga(name=name, context=context, step_count=0),
                status=SagaStatus.PENDING,
            ),
        )

    async def update_context(
        self,
        saga_id: uuid.UUID,
        context: dict[str, typing.Any],
        current_version: int | None = None,
    ) -> None:
        """Save a context snapshot (optimistic locking when ``current_version`` is set)."""
        if current_version is not None:
            state = await self.load_saga_state(saga_id)
            if state[2] != current_version:
                raise SagaConcurrencyError(
                    f"Saga {saga_id}: version {current_version} expected, {state[2]} stored",
                )
        await self.apply(Checkpoint(saga_id=saga_id, context=context))

    async def update_status(self, saga_id: uuid.UUID, status: SagaStatus) -> None:
        """Set the saga's status."""
        await self.apply(Checkpoint(saga_id=saga_id, status=status))

    async def log_step(
        self,
        saga_id: uuid.UUID,
        step_name: str,
        action: typing.Literal["act", "compensate"],
        status: SagaStepStatus,
        details: str | None = None,
    ) -> None:
        """Append a step transition to the log."""
        await self.apply(
            Checkpoint(
                saga_id=saga_id,
                logs=(
                    LogWrite(step_name=step_name, action=action, status=status, details=details),
                ),
            ),
        )

    @abc.abstractmethod
    async def load_saga_state(
        self,
        saga_id: uuid.UUID,
        *,
        read_for_update: bool = False,
    ) -> tuple[SagaStatus, dict[str, typing.Any], int]:
        """Status, context and version of one saga; SagaNotFoundError if missing.

        ``read_for_update`` is python-cqrs's signature, accepted and unused: a runner's
        writes are fenced by its lease, not by a row lock.
        """

    @abc.abstractmethod
    async def get_step_history(self, saga_id: uuid.UUID) -> list[SagaLogEntry]:
        """The saga's log, oldest first (by log id)."""

    @abc.abstractmethod
    async def get_sagas_for_recovery(
        self,
        limit: int,
        max_recovery_attempts: int = 5,
        stale_after_seconds: int | None = None,
        saga_name: str | None = None,
    ) -> list[uuid.UUID]:
        """Ids of RUNNING/COMPENSATING sagas to retry, oldest update first."""

    @abc.abstractmethod
    async def increment_recovery_attempts(
        self,
        saga_id: uuid.UUID,
        new_status: SagaStatus | None = None,
    ) -> None:
        """Count a failed recovery, optionally setting a status in the same update."""

    @abc.abstractmethod
    async def set_recovery_attempts(self, saga_id: uuid.UUID, attempts: int) -> None:
        """Set the recovery counter."""

    def create_run(self) -> contextlib.AbstractAsyncContextManager[typing.Any]:
        """python-cqrs's scoped run; this engine commits per checkpoint instead."""
        raise NotImplementedError("This storage commits per checkpoint; use apply()")
