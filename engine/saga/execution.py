"""One saga run: creating or resuming the saga, forward execution, its checkpoints.

Durability points: a step's STARTED entry is written before its ``act``; a result is
handed out only after its COMPLETED entry and the new context are written. Every write
is one ``storage.apply`` (one transaction) conditioned on this process's lease and the
fence of its claim (``leased_run``); failing and compensating live in ``ending``.
"""

from __future__ import annotations

import time
import typing
import uuid

from engine.container import ContainerAdapter
from engine.saga.acting import FallbackFailed, act, act_with_fallback, ms_since
from engine.saga.context_codec import dump_context
from engine.saga.ending import EndingRun
from engine.saga.errors import (
    CompensationRequestedError,
    ForwardNotAllowedError,
    SagaBusyError,
    SagaDataError,
    SagaExistsError,
)
from engine.saga.lease import LeaseKeeper
from engine.saga.plan import StepPlan, search_key_of
from engine.saga.secrets import get_logger
from engine.saga.settings import RunSettings
from engine.saga.step import SagaStepResult
from engine.saga.storage.enums import (
    ACTIVE_STATUSES,
    RequestedAction,
    SagaStatus,
    SagaStepStatus,
)
from engine.saga.storage.lanes import completed_act_steps, steps_to_compensate
from engine.saga.storage.models import Checkpoint, FailureMark, LogWrite, NewSaga, SagaState
from engine.saga.storage.protocol import ISagaStorage
from engine.saga.storage.rows import FIRST_FENCE

logger = get_logger("engine.saga")


class EventOutlet(typing.Protocol):
    """Where a run's step events go: staged into the checkpoint, delivered after it."""

    def stage(self, run: typing.Any, step_name: str, events: typing.Sequence[typing.Any]) -> tuple:
        """The outbox rows to write with the step's COMPLETED checkpoint."""
        ...

    async def deliver(
        self, run: typing.Any, events: typing.Sequence[typing.Any], staged: tuple
    ) -> None:
        """Deliver the step's events once that checkpoint is durable."""
        ...


_STARTED = SagaStepStatus.STARTED
_COMPLETED = SagaStepStatus.COMPLETED


def forward_not_allowed(saga_id: uuid.UUID, status: SagaStatus) -> RuntimeError:
    """python-cqrs's error for a saga resumed after it began compensating."""
    return ForwardNotAllowedError(
        f"Saga {saga_id} was recovered in {status} state "
        "and compensation was completed. Forward execution is not allowed.",
    )


class SagaRun(EndingRun):
    """Executes one saga id under this process's lease."""

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
        super().__init__(plan, context, container, storage, keeper, settings, saga_id)
        self.completed: list[str] = []
        self.compensated = False
        self.emit: EventOutlet | None = None
        # The failure that made the saga roll back (its failure group once it ends).
        self.cause: FailureMark | None = None
        # True while every event this saga produced so far was delivered: the next ones
        # may then be claimed at once by this run (see engine.saga.outbox).
        self.events_clear = False

    def _compensated_on_request(self) -> CompensationRequestedError:
        return CompensationRequestedError(f"Saga {self.saga_id} was compensated on request")

    # ---- start or resume ---------------------------------------------------------------

    async def open(self, *, recovery: bool = False) -> SagaState | None:
        """Create the saga, or claim an existing one; returns the claimed state if any.

        A given id is usually new (the seed passes ``uuid4()``), so a run creates first:
        one write, the same as without an id. Only an id that exists is claimed, which
        costs its reads; a recovery, which expects the saga, claims first.
        """
        self.keeper.acquire()
        if self._given_id:
            if not recovery:
                try:
                    await self._create()
                except SagaExistsError:
                    pass  # stored already: resume it, as a claim does
                else:
                    return None
            state = await self.claim()
            if state is not None:
                if recovery:
                    await self._count_recovery(state)
                return state
        await self._create()
        return None

    async def _count_recovery(self, state: SagaState) -> None:
        """Count this recovery; a saga that used up its recoveries without an end fails."""
        limit = self.settings.max_recovery_attempts
        if state.status in ACTIVE_STATUSES and state.recovery_attempts >= limit:
            raise await self.give_up(state, state.recovery_attempts)
        await self.write(self._cp(bump_recovery_attempts=True))

    async def _create(self) -> None:
        context = dump_context(self.context)
        if not self._registered:
            # Busy here before the row exists: a second run of this id in this process,
            # finding the row, must not claim it as this process's own lease.
            if self.saga_id in self.keeper.running:
                raise SagaBusyError(self.saga_id, f"{self.owner} (this process)")
            self._register()
        first = self.plan.first_step
        logs = (LogWrite(first, "act", _STARTED),) if first else ()
        status = SagaStatus.RUNNING if first else SagaStatus.COMPLETED
        self.fence = FIRST_FENCE
        self.lease_expires = self.keeper.expiry()
        await self.write(
            self._cp(
                create=NewSaga(
                    self.plan.saga_name, context, len(self.plan), search_key_of(self.plan, context)
                ),
                status=status,
                logs=logs,
                current_step=first,
                lease_expires=self.lease_expires,
                release_lease=first is None,
            ),
        )
        self.holds_lease = first is not None
        if not self.holds_lease:
            self.unregister()
        self.status = status
        self.events_clear = True

    # ---- forward -----------------------------------------------------------------------

    async def execute(
        self,
        *,
        recovery: bool = False,
    ) -> typing.AsyncGenerator[SagaStepResult[typing.Any, typing.Any], None]:
        """Open or resume the saga and run it, yielding each durable step result.

        With ``emit`` set, the step's events are stored with its COMPLETED checkpoint and
        delivered before its result is handed out.
        """
        try:
            state = await self.open(recovery=recovery)
            if state is not None:
                status = state.status
                if status is SagaStatus.COMPLETED:
                    if state.requested_action is RequestedAction.COMPENSATE:
                        await self.compensate(steps_to_compensate(state.history))
                    else:
                        await self.release()
                    return
                self.adopt_context(state.context)
                if status in (SagaStatus.COMPENSATING, SagaStatus.FAILED, SagaStatus.COMPENSATED):
                    if status is not SagaStatus.COMPENSATED:
                        await self.compensate(steps_to_compensate(state.history))
                    else:
                        await self.release()
                    raise forward_not_allowed(self.saga_id, status)
            done = completed_act_steps(state.history) if state else None
            # Steps with any act entry: a fallback that already started is resumed as the
            # fallback; running the primary again could leave the fallback's effect behind.
            seen = {e.step_name for e in state.history if e.action == "act"} if state else None
            started_first = state is None
            plan = self.plan.steps
            total = len(plan)
            if state is not None:
                if self._requested is RequestedAction.COMPENSATE:
                    await self.compensate(steps_to_compensate(state.history))
                    raise self._compensated_on_request()
                await self.write(self._cp(status=SagaStatus.RUNNING))
                self.status = SagaStatus.RUNNING
            saga_id = self.saga_id
            owner = self.owner
            fence = self.fence
            write = self.write
            emit = self.emit
            for index, (item, names, is_fallback) in enumerate(plan):
                if done:
                    finished = next((n for n in names if n in done), None)
                    if finished is not None:
                        self.completed.append(finished)
                        continue
                name = names[0]
                fallback_only = is_fallback and seen is not None and names[1] in seen
                if fallback_only:
                    name = names[1]
                if self._requested is RequestedAction.COMPENSATE:
                    await self.compensate(list(self.completed))
                    raise self._compensated_on_request()
                last = index == total - 1
                if started_first:
                    started_first = False
                elif self.not_started == name:
                    self.not_started = None  # its STARTED rode on the previous checkpoint
                else:
                    try:
                        await write(
                            Checkpoint(
                                saga_id,
                                owner,
                                logs=(LogWrite(name, "act", _STARTED),),
                                current_step=name,
                                fence=fence,
                            )
                        )
                    except SagaDataError as exc:
                        await self.fail_step(name, exc, time.perf_counter(), acted=False)
                        raise
                t0 = time.perf_counter()
                acted = False
                try:
                    if fallback_only:
                        result, step = await act(self, item.fallback)
                    elif is_fallback:
                        result, step, name, t0 = await act_with_fallback(self, item, t0)
                    else:
                        result, step = await act(self, item)
                    acted = True
                    context = dump_context(self.context)
                    events = step.events if emit is not None else None
                    staged = emit.stage(self, name, events) if emit is not None and events else ()
                    completed = LogWrite(name, "act", _COMPLETED, duration_ms=ms_since(t0))
                    if last:
                        res = await write(
                            Checkpoint(
                                saga_id,
                                owner,
                                logs=(completed,),
                                context=context,
                                steps_done=index + 1,
                                status=SagaStatus.COMPLETED,
                                release_lease=True,
                                current_step="",
                                fence=fence,
                                events=staged,
                            ),
                        )
                    else:
                        # The next step's STARTED shares this checkpoint: one transaction
                        # less per step. Should the caller stop here, or an operator ask
                        # for a rollback, it is logged as not started (see _not_started).
                        following = plan[index + 1][1][0]
                        res = await write(
                            Checkpoint(
                                saga_id,
                                owner,
                                logs=(completed, LogWrite(following, "act", _STARTED)),
                                context=context,
                                steps_done=index + 1,
                                current_step=following,
                                fence=fence,
                                events=staged,
                            ),
                        )
                except Exception as exc:
                    await self.fail_step(name, exc, t0, acted=acted)
                    if isinstance(exc, FallbackFailed):
                        raise exc.original from None
                    raise
                if not last:
                    self.not_started = following
                self.completed.append(name)
                if last:
                    self.status = SagaStatus.COMPLETED
                result.saga_id = saga_id
                if emit is not None and events:
                    await emit.deliver(self, events, staged)
                yield result
                if last and res.requested_action is RequestedAction.COMPENSATE:
                    # The operator asked while the last step ran: roll the saga back.
                    await self.claim_and_compensate()
                    raise self._compensated_on_request()
            if (total == 0 or (state is not None and len(self.completed) == total)) and (
                self.status is not SagaStatus.COMPLETED and self.holds_lease
            ):
                await self.write(self._cp(status=SagaStatus.COMPLETED, release_lease=True))
                self.status = SagaStatus.COMPLETED
        finally:
            if self.holds_lease:
                await self.release()
            self.unregister()
            self.keeper.release()
