"""Calling one step's ``act``: its middlewares, the saga id it can read, a Fallback.

A Fallback's primary runs first (through its circuit breaker, if any); when it fails
with an exception the Fallback accepts, its failure and the fallback's STARTED entry
are written in one checkpoint and the fallback runs under its own name, on the context
as it was before the primary (python-cqrs's FallbackStepExecutor restores it too).
"""

from __future__ import annotations

import asyncio
import time
import typing
import uuid

from engine.container import ContainerAdapter
from engine.saga.circuit_breaker import should_use_fallback
from engine.saga.context_codec import dump_context
from engine.saga.current import _CURRENT
from engine.saga.failure import error_info
from engine.saga.fallback import Fallback
from engine.saga.grouping import failure_mark
from engine.saga.plan import StepPlan
from engine.saga.settings import RunSettings
from engine.saga.step import SagaStepHandler, SagaStepResult
from engine.saga.storage.enums import SagaStepStatus
from engine.saga.storage.models import Checkpoint, CheckpointResult, LogWrite

Acted = tuple[SagaStepResult[typing.Any, typing.Any], SagaStepHandler[typing.Any, typing.Any]]


class ActingRun(typing.Protocol):
    """What calling a step needs of a run (``SagaRun`` provides it)."""

    saga_id: uuid.UUID
    owner: str
    fence: int
    context: typing.Any
    container: ContainerAdapter
    settings: RunSettings
    plan: StepPlan
    step_task: asyncio.Task[typing.Any] | None

    def step_stopped(self, task: asyncio.Task[typing.Any] | None) -> Exception | None:
        """The error a step body cancelled by a lost lease ends with; None if not that."""
        ...

    async def write(self, checkpoint: Checkpoint) -> CheckpointResult:
        """Apply one checkpoint under the run's lease."""
        ...

    def adopt_context(self, stored: dict[str, typing.Any]) -> None:
        """Set the run's context to ``stored`` (a dumped context), in place."""
        ...


def ms_since(start: float, _clock: typing.Callable[[], float] = time.perf_counter) -> float:
    """Milliseconds since ``start`` (a ``time.perf_counter`` reading)."""
    return (_clock() - start) * 1000.0


class FallbackFailed(Exception):
    """Carries the fallback step's own failure so it is logged under its name."""

    def __init__(self, step_name: str, started: float, original: Exception) -> None:
        super().__init__(str(original))
        self.step_name = step_name
        self.started = started
        self.original = original


async def act(
    run: ActingRun,
    step_type: type[SagaStepHandler[typing.Any, typing.Any]],
) -> Acted:
    """Resolve the step, run its ``act`` inside the middlewares; (result, handler)."""
    step = await run.container.resolve(step_type)
    chain = run.settings.middlewares
    # Set and reset around the call only: the run is an async generator executing in
    # its caller's context, which must not keep a stale id afterwards.
    token = _CURRENT.set(run)
    # The heartbeat cancels this task when the lease is lost while the body runs.
    task = run.step_task = asyncio.current_task()
    try:
        if chain._chain:  # the list itself: MiddlewareChain.__bool__ is a call per step
            result = await chain.wrap(step.act)(run.context)
        else:
            result = await step.act(run.context)
    except asyncio.CancelledError:
        stopped = run.step_stopped(task)
        if stopped is None:
            raise
        raise stopped from None
    finally:
        run.step_task = None
        _CURRENT.reset(token)
    if not isinstance(result, SagaStepResult):
        result = step._generate_step_result(result)
    return result, step


async def act_with_fallback(
    run: ActingRun,
    item: Fallback,
    started: float,
) -> tuple[SagaStepResult[typing.Any, typing.Any], SagaStepHandler, str, float]:
    """Run the primary, or the fallback when the primary fails as the Fallback allows.

    Returns (result, handler, the name that ran, when it started); a failing fallback
    raises FallbackFailed.
    """
    breaker = item.circuit_breaker
    # A primary that changed the context and then failed leaves nothing for its fallback.
    before = dump_context(run.context)
    try:
        if breaker is not None:
            result, step = await breaker.call(item.step, act, run, item.step)
        else:
            result, step = await act(run, item.step)
        return result, step, item.step.__name__, started
    except Exception as exc:
        if not should_use_fallback(exc, breaker, item.failure_exceptions):
            raise
        primary, name = item.step.__name__, item.fallback.__name__
        err = error_info(exc)
        failed = LogWrite(
            primary, "act", SagaStepStatus.FAILED, err.message, err, duration_ms=ms_since(started)
        )
        # The saga runs on through its fallback: grouped under this failure meanwhile.
        await run.write(
            Checkpoint(
                run.saga_id,
                run.owner,
                logs=(failed, LogWrite(name, "act", SagaStepStatus.STARTED)),
                current_step=name,
                fence=run.fence,
                failure=failure_mark(run.plan.saga_name, primary, err),
            ),
        )
        fallback_started = time.perf_counter()
        try:
            run.adopt_context(before)
            result, step = await act(run, item.fallback)
        except Exception as fallback_exc:
            raise FallbackFailed(name, fallback_started, fallback_exc) from fallback_exc
        return result, step, name, fallback_started
