"""One saga run: forward execution, checkpoints, compensation with retry.

Durability points: a step's STARTED entry is written before its ``act``; a result is
handed out only after its COMPLETED entry and the new context are written. Every write
is one ``storage.apply`` (one transaction) conditioned on this process's lease.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import typing
import uuid

from engine.container import ContainerAdapter
from engine.middlewares.base import MiddlewareChain
from engine.saga.circuit_breaker import should_use_fallback
from engine.saga.context_codec import dump_context, load_context
from engine.saga.current import _CURRENT
from engine.saga.errors import (
    CompensationRequestedError,
    ContextSerializationError,
    ForwardNotAllowedError,
    LeaseLostError,
    SagaBusyError,
    SagaNotFoundError,
)
from engine.saga.failure import error_info
from engine.saga.fallback import Fallback
from engine.saga.lease import LeaseKeeper, owner_is_dead
from engine.saga.step import SagaStepHandler, SagaStepResult
from engine.saga.storage.enums import RequestedAction, SagaStatus, SagaStepStatus
from engine.saga.storage.lanes import completed_act_steps, steps_to_compensate
from engine.saga.storage.models import (
    Checkpoint,
    CheckpointResult,
    ErrorInfo,
    LogWrite,
    NewSaga,
    SagaState,
)
from engine.saga.storage.protocol import ISagaStorage

if typing.TYPE_CHECKING:
    from engine.saga.saga import Saga

logger = logging.getLogger("engine.saga")

Sleep = typing.Callable[[float], typing.Awaitable[None]]
Listener = typing.Callable[[uuid.UUID], None]
Emit = typing.Callable[[typing.Sequence[typing.Any]], typing.Awaitable[None]]

_STARTED = SagaStepStatus.STARTED
_COMPLETED = SagaStepStatus.COMPLETED
_FAILED = SagaStepStatus.FAILED


@dataclasses.dataclass(slots=True)
class RunSettings:
    """Knobs shared by every run of a mediator (or one standalone transaction)."""

    compensation_retry_count: int = 3
    compensation_retry_delay: float = 1.0
    compensation_retry_backoff: float = 2.0
    middlewares: MiddlewareChain = dataclasses.field(default_factory=MiddlewareChain)
    sleep: Sleep = asyncio.sleep
    listeners: list[Listener] = dataclasses.field(default_factory=list)


def forward_not_allowed(saga_id: uuid.UUID, status: SagaStatus) -> RuntimeError:
    """python-cqrs's error for a saga resumed after it began compensating."""
    return ForwardNotAllowedError(
        f"Saga {saga_id} was recovered in {status} state "
        "and compensation was completed. Forward execution is not allowed.",
    )


def _ms(start: float, _clock: typing.Callable[[], float] = time.perf_counter) -> float:
    return (_clock() - start) * 1000.0


class SagaRun:
    """Executes one saga id under this process's lease."""

    def __init__(
        self,
        saga: Saga[typing.Any],
        context: typing.Any,
        container: ContainerAdapter,
        storage: ISagaStorage,
        keeper: LeaseKeeper,
        settings: RunSettings,
        saga_id: uuid.UUID | None = None,
    ) -> None:
        self.saga = saga
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
        self._types = _step_types(type(saga))

    # ---- writes ------------------------------------------------------------------------

    async def _write(self, checkpoint: Checkpoint) -> CheckpointResult:
        try:
            result = await self.storage.apply(checkpoint)
        except LeaseLostError:
            self.holds_lease = False
            raise
        if result.requested_action is not None:
            self._requested = result.requested_action
        if checkpoint.release_lease:
            self.holds_lease = False
        listeners = self.settings.listeners
        if listeners:
            for listener in listeners:
                listener(self.saga_id)
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
                await self._write(self._cp(release_lease=True, logs=logs, current_step=""))
            except Exception:  # the lease expires on its own; nothing is lost
                logger.debug("releasing the lease of %s failed", self.saga_id, exc_info=True)

    # ---- start or resume ---------------------------------------------------------------

    async def open(self, *, recovery: bool = False) -> SagaState | None:
        """Create the saga, or claim an existing one; returns the claimed state if any."""
        self.keeper.acquire()
        if self._given_id:
            state = await self.claim()
            if state is not None:
                if recovery:
                    await self._write(self._cp(bump_recovery_attempts=True))
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
        plan = _plan(type(self.saga))
        first = plan[0][1][0] if plan else None
        logs = (LogWrite(first, "act", _STARTED),) if first else ()
        status = SagaStatus.RUNNING if first else SagaStatus.COMPLETED
        await self._write(
            self._cp(
                create=NewSaga(type(self.saga).__name__, context, len(plan)),
                status=status,
                logs=logs,
                current_step=first,
                lease_expires=self.keeper.expiry(),
                release_lease=first is None,
            ),
        )
        self.holds_lease = first is not None
        if self.holds_lease:
            self._register()
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
            plan = _plan(type(self.saga))
            total = len(plan)
            if state is not None:
                if self._requested is RequestedAction.COMPENSATE:
                    await self.compensate(steps_to_compensate(state.history))
                    raise self._compensated_on_request()
                await self._write(self._cp(status=SagaStatus.RUNNING))
                self.status = SagaStatus.RUNNING
            saga_id = self.saga_id
            owner = self.owner
            write = self._write
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
                        result, step = await self._act(item.fallback)
                    elif is_fallback:
                        result, step, name, t0 = await self._act_with_fallback(item, t0)
                    else:
                        result, step = await self._act(item)
                    context = dump_context(self.context)
                except Exception as exc:
                    await self._fail(name, exc, t0)
                    if isinstance(exc, _FallbackFailed):
                        raise exc.original from None
                    raise
                completed = LogWrite(name, "act", _COMPLETED, duration_ms=_ms(t0))
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
                    await self.rollback_on_request()
                    raise self._compensated_on_request()
            if (total == 0 or (state is not None and len(self.completed) == total)) and (
                self.status is not SagaStatus.COMPLETED and self.holds_lease
            ):
                await self._write(self._cp(status=SagaStatus.COMPLETED, release_lease=True))
                self.status = SagaStatus.COMPLETED
        finally:
            if self.holds_lease:
                await self.release()
            self.unregister()
            self.keeper.release()

    async def _act(
        self,
        step_type: type[SagaStepHandler[typing.Any, typing.Any]],
    ) -> tuple[SagaStepResult[typing.Any, typing.Any], SagaStepHandler]:
        step = await self.container.resolve(step_type)
        chain = self.settings.middlewares
        # Set and reset around the call only: the run is an async generator executing in
        # its caller's context, which must not keep a stale id afterwards.
        token = _CURRENT.set(self.saga_id)
        try:
            if chain._chain:
                result = await chain.wrap(step.act)(self.context)
            else:
                result = await step.act(self.context)
        finally:
            _CURRENT.reset(token)
        if not isinstance(result, SagaStepResult):
            result = step._generate_step_result(result)
        return result, step

    async def _act_with_fallback(
        self,
        item: Fallback,
        t0: float,
    ) -> tuple[SagaStepResult[typing.Any, typing.Any], SagaStepHandler, str, float]:
        breaker = item.circuit_breaker
        try:
            if breaker is not None:
                result, step = await breaker.call(item.step, self._act, item.step)
            else:
                result, step = await self._act(item.step)
            return result, step, item.step.__name__, t0
        except Exception as exc:
            if not should_use_fallback(exc, breaker, item.failure_exceptions):
                raise
            primary, name = item.step.__name__, item.fallback.__name__
            err = error_info(exc)
            await self._write(
                self._cp(
                    logs=(
                        LogWrite(primary, "act", _FAILED, err.message, err, duration_ms=_ms(t0)),
                        LogWrite(name, "act", _STARTED),
                    ),
                    current_step=name,
                ),
            )
            t1 = time.perf_counter()
            try:
                result, step = await self._act(item.fallback)
            except Exception as fallback_exc:
                raise _FallbackFailed(name, t1, fallback_exc) from fallback_exc
            return result, step, name, t1

    async def _fail(self, name: str, exc: Exception, t0: float) -> None:
        if isinstance(exc, _FallbackFailed):
            name, t0, exc = exc.step_name, exc.started, exc.original
        err = error_info(exc)
        if isinstance(exc, ContextSerializationError):
            # act ran and changed the world; only its context could not be stored.
            self.completed.append(name)
        await self._write(
            self._cp(
                logs=(LogWrite(name, "act", _FAILED, err.message, err, duration_ms=_ms(t0)),),
                status=SagaStatus.COMPENSATING,
                error=err,
            ),
        )
        self.status = SagaStatus.COMPENSATING
        await self.compensate(list(self.completed), already_compensating=True)

    # ---- compensation ------------------------------------------------------------------

    async def rollback_on_request(self) -> None:
        """Compensate a completed saga after an operator asked for it mid-run."""
        await self.claim_and_compensate()

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
            await self._write(self._cp(status=SagaStatus.COMPENSATING, logs=logs))
            self.status = SagaStatus.COMPENSATING
        failure: ErrorInfo | None = None
        for name in reversed(names):
            step_type = self._types.get(name)
            if step_type is None:
                failure = ErrorInfo(
                    "UnknownStep", f"step {name} is not a step of {type(self.saga).__name__}"
                )
                continue
            err = await self._compensate_step(name, step_type)
            if err is not None:
                failure = err
        status = SagaStatus.FAILED if failure else SagaStatus.COMPENSATED
        try:
            context = dump_context(self.context)
        except ContextSerializationError:
            context = None
        await self._write(
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

    async def _call_compensate(
        self,
        step_type: type[SagaStepHandler[typing.Any, typing.Any]],
    ) -> None:
        token = _CURRENT.set(self.saga_id)
        try:
            step = await self.container.resolve(step_type)
            await step.compensate(self.context)
        finally:
            _CURRENT.reset(token)

    async def _compensate_step(
        self,
        name: str,
        step_type: type[SagaStepHandler[typing.Any, typing.Any]],
    ) -> ErrorInfo | None:
        settings = self.settings
        attempts = max(1, settings.compensation_retry_count)
        err: ErrorInfo | None = None
        for attempt in range(1, attempts + 1):
            await self._write(
                self._cp(
                    logs=(LogWrite(name, "compensate", _STARTED, attempt=attempt),),
                    current_step=name,
                ),
            )
            t0 = time.perf_counter()
            try:
                await self._call_compensate(step_type)
            except Exception as exc:
                err = error_info(exc)
                await self._write(
                    self._cp(
                        logs=(
                            LogWrite(
                                name,
                                "compensate",
                                _FAILED,
                                err.message,
                                err,
                                attempt=attempt,
                                duration_ms=_ms(t0),
                            ),
                        ),
                    ),
                )
                if attempt < attempts:
                    delay = settings.compensation_retry_delay * (
                        settings.compensation_retry_backoff ** (attempt - 1)
                    )
                    await settings.sleep(delay)
                continue
            await self._write(
                self._cp(
                    logs=(
                        LogWrite(
                            name, "compensate", _COMPLETED, attempt=attempt, duration_ms=_ms(t0)
                        ),
                    ),
                ),
            )
            return None
        logger.error("compensation of %s in saga %s failed: %s", name, self.saga_id, err)
        return err


_PLANS: dict[type, list[tuple[typing.Any, tuple[str, ...], bool]]] = {}
_TYPES: dict[type, dict[str, typing.Any]] = {}


def _step_types(saga_type: type) -> dict[str, typing.Any]:
    """Step name -> handler class (fallbacks included), computed once per class."""
    types = _TYPES.get(saga_type)
    if types is None:
        types = {}
        for item, names, is_fallback in _plan(saga_type):
            if is_fallback:
                types[names[0]] = item.step
                types[names[1]] = item.fallback
            else:
                types[names[0]] = item
        _TYPES[saga_type] = types
    return types


def _plan(saga_type: type) -> list[tuple[typing.Any, tuple[str, ...], bool]]:
    """(item, step names, is a Fallback) per declared step, computed once per class."""
    plan = _PLANS.get(saga_type)
    if plan is None:
        plan = []
        for item in saga_type.steps:  # type: ignore[attr-defined]
            if isinstance(item, Fallback):
                plan.append((item, (item.step.__name__, item.fallback.__name__), True))
            else:
                plan.append((item, (item.__name__,), False))
        _PLANS[saga_type] = plan
    return plan


class _FallbackFailed(Exception):
    """Carries the fallback step's own failure so it is logged under its name."""

    def __init__(self, step_name: str, started: float, original: Exception) -> None:
        super().__init__(str(original))
        self.step_name = step_name
        self.started = started
        self.original = original
