"""A run under a lease: its fenced writes, its claim, and what happens when it loses either.

Every write of a run is one ``storage.apply`` conditioned on this process's lease and on
the fence its claim (or the saga's creation) got. The run stops for good, writing
nothing more and compensating nothing, when

* its lease is lost: a write is refused as fenced out, or the heartbeat finds the lease
  taken over or expired (the step in flight is cancelled), or
* the database cannot take writes (full, locked past the timeout, gone): the saga is
  left as it is, for recovery.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import typing
import uuid

from engine.container import ContainerAdapter
from engine.saga.context_codec import load_context
from engine.saga.errors import (
    LeaseLostError,
    SagaBusyError,
    SagaDataError,
    SagaExistsError,
    SagaNotFoundError,
    StorageUnavailableError,
)
from engine.saga.failure import safe_text
from engine.saga.lease import LeaseKeeper, owner_is_dead
from engine.saga.plan import StepPlan
from engine.saga.secrets import get_logger
from engine.saga.settings import RunSettings
from engine.saga.storage.enums import RequestedAction, SagaStatus, SagaStepStatus
from engine.saga.storage.models import Checkpoint, CheckpointResult, LogWrite, SagaState
from engine.saga.storage.protocol import ISagaStorage

logger = get_logger("engine.saga")

# Refusals of one write that leave the run able to record what happened.
_ANSWERED = (SagaDataError, SagaExistsError, SagaNotFoundError)


class LeasedRun:
    """One saga id run by this process under its lease, with fenced writes."""

    def __init__(
        self,
        plan: StepPlan,
        context: typing.Any,
        container: ContainerAdapter,
        storage: ISagaStorage,
        keeper: LeaseKeeper,
        settings: RunSettings,
        saga_id: uuid.UUID | None = None,
    ) -> None:
        self.plan = plan
        self.context = context
        self.container = container
        self.storage = storage
        self.keeper = keeper
        self.settings = settings
        self.saga_id = saga_id or uuid.uuid4()
        self._given_id = saga_id is not None
        self.owner = keeper.owner
        self.fence = 0
        self.lease_expires = 0.0
        self.status: SagaStatus | None = None
        self.holds_lease = False
        self.lost: str | None = None
        """Why the lease was lost; set once, then nothing more is written."""
        self.unavailable: str | None = None
        """Why the database could not take a write; set once, then the run stops."""
        self.step_task: asyncio.Task[typing.Any] | None = None
        """The task running a step body right now (cancelled when the lease is lost)."""
        self._cancelled_step = False
        self._requested: RequestedAction | None = None
        self._registered = False
        self.not_started: str | None = None

    @property
    def stopped(self) -> str | None:
        """Why this run may write nothing more (lease lost, database unavailable), or None."""
        return self.lost or self.unavailable

    def stop_error(self) -> Exception:
        """The error a stopped run ends with."""
        if self.lost is not None:
            return LeaseLostError(self.lost)
        return StorageUnavailableError(self.unavailable or "the database is unavailable")

    # ---- writes ------------------------------------------------------------------------

    async def write(self, checkpoint: Checkpoint) -> CheckpointResult:
        """Apply one checkpoint under this run's lease and fence, then tell the listeners.

        A refusal of the saga's data (SagaDataError) is raised for the caller to record;
        a lost lease or a database that cannot take writes stops the run for good.
        """
        if self.lost is not None or self.unavailable is not None:
            raise self.stop_error()
        try:
            result = await self.storage.apply(checkpoint)
        except LeaseLostError as exc:
            self.lost = safe_text(exc)
            self.holds_lease = False
            raise
        except _ANSWERED:
            raise
        except Exception as exc:
            self.unavailable = (
                f"Saga {self.saga_id}: {safe_text(exc, 1000).strip() or type(exc).__name__};"
                " the saga is left for recovery"
            )
            raise StorageUnavailableError(self.unavailable) from exc
        if result.requested_action is not None:
            self._requested = result.requested_action
        if checkpoint.release_lease:
            self.holds_lease = False
        if self.settings.listeners:
            self.settings.notify(self.saga_id)
        return result

    def _cp(self, **fields: typing.Any) -> Checkpoint:
        return Checkpoint(saga_id=self.saga_id, owner=self.owner, fence=self.fence, **fields)

    def lease_lost(self, why: str) -> None:
        """The heartbeat found the lease lost: cancel the step in flight, write nothing more."""
        if self.lost is not None:
            return
        logger.warning("%s", why)
        self.lost = why
        self.holds_lease = False
        task = self.step_task
        if task is not None and not task.done():
            self._cancelled_step = True
            task.cancel(why)

    def step_stopped(self, task: asyncio.Task[typing.Any] | None) -> LeaseLostError | None:
        """The error a step body cancelled by a lost lease ends with (the cancel undone).

        None when the cancellation came from elsewhere (the caller's): it goes on.
        """
        if not self._cancelled_step:
            return None
        if task is not None and task.cancelling():
            task.uncancel()
        self._cancelled_step = False
        return LeaseLostError(self.lost or f"Saga {self.saga_id}: lease lost")

    def _not_started(self, why: str) -> tuple[LogWrite, ...]:
        """Log entry closing a step whose STARTED was written but whose act never ran."""
        name, self.not_started = self.not_started, None
        if name is None:
            return ()
        return (LogWrite(name, "act", SagaStepStatus.FAILED, f"not started: {why}"),)

    async def release(self) -> None:
        """Give the lease back without changing the saga (a paused run)."""
        if self.holds_lease and self.stopped is None:
            self.holds_lease = False
            logs = self._not_started("the caller stopped before this step")
            try:
                await self.write(self._cp(release_lease=True, logs=logs, current_step=""))
            except Exception:  # the lease expires on its own; nothing is lost
                logger.debug("releasing the lease of %s failed", self.saga_id, exc_info=True)

    def adopt_context(self, stored: dict[str, typing.Any]) -> None:
        """Refresh the caller's context object from the stored one (resume keeps data)."""
        loaded = load_context(type(self.context), stored)
        if dataclasses.is_dataclass(loaded):
            for field in dataclasses.fields(loaded):
                setattr(self.context, field.name, getattr(loaded, field.name))
        else:
            self.context = loaded

    # ---- claiming ----------------------------------------------------------------------

    async def claim(self) -> SagaState | None:
        """Take the lease (stealing it from a dead owner); None when the saga does not exist.

        The claim gets a new fence, which every later write of this run carries. Raises
        SagaBusyError when a live runner, in this process or another, has it.
        """
        if self.saga_id in self.keeper.running and not self._registered:
            raise SagaBusyError(self.saga_id, f"{self.owner} (this process)")
        now = time.time()
        expiry = self.keeper.expiry()
        try:
            state = await self.storage.claim(self.saga_id, self.owner, expiry, now=now)
        except SagaNotFoundError:
            return None
        if state is None:
            lease = await self.storage.get_lease(self.saga_id)
            holder = lease.owner if lease else None
            if holder and owner_is_dead(holder):
                state = await self.storage.claim(
                    self.saga_id, self.owner, expiry, now=now, steal_from=holder
                )
            if state is None:
                raise SagaBusyError(self.saga_id, holder)
        self.fence = state.fence
        self.lease_expires = expiry
        self.lost = None
        self.holds_lease = True
        self._register()
        self.status = state.status
        self._requested = state.requested_action
        return state

    def _register(self) -> None:
        if not self._registered:
            self.keeper.running[self.saga_id] = self
            self._registered = True

    def unregister(self) -> None:
        """Forget that this run executes the saga (when it ends or pauses)."""
        if self._registered:
            if self.keeper.running.get(self.saga_id) is self:
                del self.keeper.running[self.saga_id]
            self._registered = False
