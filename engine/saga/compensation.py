"""Compensation: undo steps in reverse order, each with retry and exponential backoff.

Every attempt is logged (STARTED, then COMPLETED or FAILED with the error) through the
run's lease-conditioned writes; a step that still fails after the last attempt is
logged and the remaining steps are compensated anyway.
"""

from __future__ import annotations

import asyncio
import time
import typing

from engine.saga.acting import ActingRun, ms_since
from engine.saga.current import _CURRENT
from engine.saga.errors import LeaseLostError
from engine.saga.failure import error_info
from engine.saga.grouping import failure_mark
from engine.saga.plan import Handler
from engine.saga.secrets import get_logger
from engine.saga.settings import RunSettings
from engine.saga.storage.enums import SagaStepStatus
from engine.saga.storage.models import Checkpoint, ErrorInfo, FailureMark, LogWrite

logger = get_logger("engine.saga")

_STARTED = SagaStepStatus.STARTED
_COMPLETED = SagaStepStatus.COMPLETED
_FAILED = SagaStepStatus.FAILED


class CompensatingRun(ActingRun, typing.Protocol):
    """What compensation needs of a run (``SagaRun`` provides it).

    What a step's act needs, and the failure the saga rolls back for (None when it was
    asked to): an undo that is retried groups the saga under its error only without one.
    """

    cause: FailureMark | None


def backoff_delay(settings: RunSettings, attempt: int) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): delay x backoff^(n-1)."""
    return settings.compensation_retry_delay * (
        settings.compensation_retry_backoff ** (attempt - 1)
    )


async def undo_steps(run: CompensatingRun, names: list[str]) -> tuple[str, ErrorInfo] | None:
    """Compensate ``names`` (given in execution order) in reverse.

    Returns the last failure that remained (the step and its error), or None.
    """
    failure: tuple[str, ErrorInfo] | None = None
    for name in reversed(names):
        handler = run.plan.handlers.get(name)
        if handler is None:
            missing = f"step {name} is not a step of {run.plan.saga_name}"
            failure = (name, ErrorInfo("UnknownStep", missing))
            continue
        error = await _undo_with_retry(run, name, handler)
        if error is not None:
            failure = (name, error)
    return failure


async def _undo_with_retry(run: CompensatingRun, name: str, handler: Handler) -> ErrorInfo | None:
    settings = run.settings
    attempts = max(1, settings.compensation_retry_count)
    error: ErrorInfo | None = None
    for attempt in range(1, attempts + 1):
        await run.write(
            Checkpoint(
                run.saga_id,
                run.owner,
                logs=(LogWrite(name, "compensate", _STARTED, attempt=attempt),),
                current_step=name,
                fence=run.fence,
            ),
        )
        started = time.perf_counter()
        try:
            await _call_compensate(run, handler)
        except LeaseLostError:
            raise  # the run stopped: nothing more is written
        except Exception as exc:
            error = error_info(exc)
            took = ms_since(started)
            failed = LogWrite(
                name, "compensate", _FAILED, error.message, error, attempt=attempt, duration_ms=took
            )
            # Retrying: a rollback nobody asked for a reason is grouped under this error.
            retrying = attempt < attempts and run.cause is None
            mark = failure_mark(run.plan.saga_name, name, error) if retrying else None
            await run.write(
                Checkpoint(run.saga_id, run.owner, logs=(failed,), fence=run.fence, failure=mark)
            )
            if attempt < attempts:
                await settings.sleep(backoff_delay(settings, attempt))
            continue
        done = LogWrite(
            name, "compensate", _COMPLETED, attempt=attempt, duration_ms=ms_since(started)
        )
        await run.write(Checkpoint(run.saga_id, run.owner, logs=(done,), fence=run.fence))
        return None
    if error is not None:
        # The message is capped (failure.MESSAGE_LIMIT); the traceback stays in the log.
        logger.error(
            "compensation of %s in saga %s failed: %s: %s",
            name,
            run.saga_id,
            error.type,
            error.message,
        )
    return error


async def _call_compensate(run: CompensatingRun, handler: Handler) -> None:
    # The step reads its saga's id (current_saga_id) while it runs, and only then.
    token = _CURRENT.set(run)
    task = run.step_task = asyncio.current_task()
    try:
        step = await run.container.resolve(handler)
        await step.compensate(run.context)
    except asyncio.CancelledError:
        stopped = run.step_stopped(task)
        if stopped is None:
            raise
        raise stopped from None
    finally:
        run.step_task = None
        _CURRENT.reset(token)
