"""One saga run: claiming or creating the saga, forward execution, its checkpoints.

Durability points: a step's STARTED entry is written before its ``act``; a result is
handed out only after its COMPLETED entry and the new context are written. Every write
is one ``storage.apply`` (one transaction) conditioned on this process's lease.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import typing
import uuid

from engine.container import ContainerAdapter
from engine.saga.acting import FallbackFailed, act, act_with_fallback, ms_since
from engine.saga.compensation import undo_steps
from engine.saga.context_codec import dump_context, load_context
from engine.saga.errors import (
    CompensationRequestedError,
    ContextSerializationError,
    ForwardNotAllowedError,
    LeaseLostError,
    SagaBusyError,
    SagaExistsError,
    SagaNotFoundError,
)
from engine.saga.failure import error_info
from engine.saga.lease import LeaseKeeper, owner_is_dead
from engine.saga.plan import StepPlan
from engine.saga.settings import RunSettings
from engine.saga.step import SagaStepResult
from engine.saga.storage.enums import RequestedAction, SagaStatus, SagaStepStatus
from engine.saga.storage.lanes import completed_act_steps, steps_to_compensate
from engine.saga.storage.models import (
    Checkpoint,
    CheckpointResult,
    LogWrite,
    NewSaga,
    SagaState,
)
from engine.saga.storage.protocol import ISagaStorage

logger = logging.getLogger("engine.saga")

Emit = typing.Callable[[typing.Sequence[typing.Any]], typing.Awaitable[None]]

_STARTED = SagaStepStatus.STARTED
_COMPLETED = SagaStepStatus.COMPLETED
_FAILED = SagaStepStatus.FAILED


def forward_not_allowed(saga_id: uuid.UUID, status: SagaStatus) -> RuntimeError:
    """python-cqrs's error for a saga resumed after it began compensating."""
    return ForwardNotAllowedError(
        f"Saga {saga_id} was recovered in {status} state "
        "and compensation was completed. Forward execution is not allowed.",
    )


class SagaRun:
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
        self.plan = plan
        self.context = context
        self.container = container
        self.storage = storage
        self.keeper = keeper
        self.settings = settings
        self.saga_id = saga_id or uuid.uuid4()
        self._given_id = saga_id is not None
        self.owner = keeper.owner
        self.completed: list[str] = []
        self.status: SagaStatus | None = None
        self.compensated = False
        self.holds_lease = False
        self._requested: RequestedAction | None = None
        self._registered = False
        self.not_started: str | None = None
        self.emit: Emit | None = None

    # ---- writes ------------------------------------------------------------------------

    async def write(self, checkpoint: Checkpoint) -> CheckpointResult:
        """Apply one checkpoint under this run's lease, then tell the listeners."""
        try:
            result = await self.storage.apply(checkpoint)
        except LeaseLostError:
            self.holds_lease = False
            raise
        if result.requested_action is not None:
            self._requested = result.requested_action
        if checkpoint.release_lease:
            self.holds_lease = False
        if self.settings.listeners:
            self.settings.notify(self.saga_id)
        return result

    def _compensated_on_request(self) -> CompensationRequestedError:
        return CompensationRequestedError(f"Saga {self.saga_id} was compensated on request")

    def _cp(self, **fields: typing.Any) -> Checkpoint:
        return Checkpoint(saga_id=self.saga_id, owner=self.owner, **fields)

    def _not_started(self, why: str) -> tuple[LogWrite, ...]:
        """Log entry closing a step whose STARTED was written but whose act never ran."""
        name, self.not_started = self.not_started, None
        if name is None:
            return ()
        return (LogWrite(name, "act", _FAILED, f"not started: {why}"),)

    async def release(self) -> None:
        """Give the lease back without changing the saga (a paused run)."""
        if self.holds_lease:
            self.holds_lease = False
            logs = self._not_started("the caller stopped before this step")
            try:
                await self.write(self._cp(release_lease=True, logs=logs, current_step=""))
            except Exception:  # the lease expires on its own; nothing is lost
                logger.debug("releasing the lease of %s failed", self.saga_id, exc_info=True)

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
                    await self.write(self._cp(bump_recovery_attempts=True))
                return state
        await self._create()
        return None

    async def claim(self) -> SagaState | None:
        """Take the lease (stealing it from a dead owner); None when the saga does not exist.

        Raises SagaBusyError when a live runner, in this process or another, has it.
        """
        if self.saga_id in self.keeper.running and not self._registered:
            raise SagaBusyError(self.saga_id, f"{self.owner} (this process)")
        now = time.time()
        try:
            state = await self.storage.claim(
                self.saga_id, self.owner, self.keeper.expiry(), now=now
            )
        except SagaNotFoundError:
            return None
        if state is None:
            lease = await self.storage.get_lease(self.saga_id)
            holder = lease.owner if lease else None
            if holder and owner_is_dead(holder):
                state = await self.storage.claim(
                    self.saga_id, self.owner, self.keeper.expiry(), now=now, steal_from=holder
                )
            if state is None:
                raise SagaBusyError(self.saga_id, holder)
        self.holds_lease = True
        self._register()
        self.status = state.status
        self._requested = state.requested_action
        return state

    def _register(self) -> None:
        if not self._registered:
            self.keeper.running.add(self.saga_id)
            self._registered = True

    def unregister(self) -> None:
        """Forget that this run executes the saga (when it ends or pauses)."""
        if self._registered:
            self.keeper.running.discard(self.saga_id)
            self._registered = False

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
        await self.write(
            self._cp(
                create=NewSaga(self.plan.saga_name, context, len(self.plan)),
                status=status,
                logs=logs,
                current_step=first,
                lease_expires=self.keeper.expiry(),
                release_lease=first is None,
            ),
        )
        self.holds_lease = first is not None
        if not self.holds_lease:
            self.unregister()
        self.status = status

    def adopt_context(self, stored: dict[str, typing.Any]) -> None:
        """Refresh the caller's context object from the stored one (resume keeps data)."""
        loaded = load_context(type(self.context), stored)
        if dataclasses.is_dataclass(loaded):
            for field in dataclasses.fields(loaded):
                setattr(self.context, field.name, getattr(loaded, field.name))
        else:
            self.context = loaded

    # ---- forward -----------------------------------------------------------------------

    async def execute(
        self,
        *,
        recovery: bool = False,
    ) -> typing.AsyncGenerator[SagaStepResult[typing.Any, typing.Any], None]:
        """Open or resume the saga and run it, yielding each durable step result.

        With ``emit`` set, the step's events are emitted before its result is handed out.
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
                    await write(
                        Checkpoint(
                            saga_id,
                            owner,
                            logs=(LogWrite(name, "act", _STARTED),),
                            current_step=name,
                        )
                    )
                t0 = time.perf_counter()
                try:
                    if fallback_only:
                        result, step = await act(self, item.fallback)
                    elif is_fallback:
                        result, step, name, t0 = await act_with_fallback(self, item, t0)
                    else:
                        result, step = await act(self, item)
                    context = dump_context(self.context)
                except Exception as exc:
                    await self._fail(name, exc, t0)
                    if isinstance(exc, FallbackFailed):
                        raise exc.original from None
                    raise
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
                        ),
                    )
                else:
                    # The next step's STARTED shares this checkpoint: one transaction less
                    # per step. Should the caller stop here, or an operator ask for a
                    # rollback, it is logged as not started (see _not_started).
                    following = plan[index + 1][1][0]
                    res = await write(
                        Checkpoint(
                            saga_id,
                            owner,
                            logs=(completed, LogWrite(following, "act", _STARTED)),
                            context=context,
                            steps_done=index + 1,
                            current_step=following,
                        ),
                    )
                    self.not_started = following
                self.completed.append(name)
                if last:
                    self.status = SagaStatus.COMPLETED
                result.saga_id = saga_id
                if emit is not None:
                    events = step.events
                    if events:
                        await emit(events)
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

    async def _fail(self, name: str, exc: Exception, t0: float) -> None:
        if isinstance(exc, FallbackFailed):
            name, t0, exc = exc.step_name, exc.started, exc.original
        err = error_info(exc)
        if isinstance(exc, ContextSerializationError):
            # act ran and changed the world; only its context could not be stored.
            self.completed.append(name)
        await self.write(
            self._cp(
                logs=(LogWrite(name, "act", _FAILED, err.message, err, duration_ms=ms_since(t0)),),
                status=SagaStatus.COMPENSATING,
                error=err,
            ),
        )
        self.status = SagaStatus.COMPENSATING
        await self.compensate(list(self.completed), already_compensating=True)

    # ---- compensation ------------------------------------------------------------------

    async def claim_and_compensate(
        self,
        load: typing.Callable[[dict[str, typing.Any]], typing.Any] | None = None,
    ) -> SagaStatus:
        """Claim the saga and compensate every step whose effect may exist.

        ``load`` rebuilds the context from the stored one (kept as is when None).
        Raises SagaBusyError when a live runner has the saga, SagaNotFoundError when
        there is none. The lease and this process's claim are given back in any case.
        """
        self.keeper.acquire()
        try:
            state = await self.claim()
            if state is None:
                raise SagaNotFoundError(f"Saga {self.saga_id} not found")
            if load is not None:
                self.context = load(state.context)
            return await self.compensate(steps_to_compensate(state.history))
        finally:
            if self.holds_lease:
                await self.release()
            self.unregister()
            self.keeper.release()

    async def compensate(
        self, names: list[str], *, already_compensating: bool = False
    ) -> SagaStatus:
        """Compensate ``names`` (in execution order) in reverse; ends COMPENSATED or FAILED."""
        self.compensated = True
        if not already_compensating:
            logs = self._not_started("compensation was requested first")
            await self.write(self._cp(status=SagaStatus.COMPENSATING, logs=logs))
            self.status = SagaStatus.COMPENSATING
        failure = await undo_steps(self, names)
        status = SagaStatus.FAILED if failure else SagaStatus.COMPENSATED
        try:
            context = dump_context(self.context)
        except ContextSerializationError:
            context = None
        await self.write(
            self._cp(
                status=status,
                context=context,
                error=failure,
                release_lease=True,
                clear_requested_action=True,
                current_step="",
            ),
        )
        self.status = status
        return status
