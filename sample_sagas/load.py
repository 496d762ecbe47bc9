"""The load generator: run N sample sagas at concurrency C and report what became of them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import sys
import time
import typing
import uuid

from engine.saga.failure import describe
from engine.saga.mediator import SagaMediator
from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.protocol import ISagaStorage
from sample_sagas.app import create_mediator, example_context
from sample_sagas.contexts import OrderContext, SubscriptionContext, TravelContext
from sample_sagas.order import OrderSaga
from sample_sagas.refund import SubscriptionSaga
from sample_sagas.services import Knobs
from sample_sagas.travel import TravelSaga

MIX: tuple[tuple[str, float], ...] = (
    (OrderSaga.__name__, 0.5),
    (TravelSaga.__name__, 0.3),
    (SubscriptionSaga.__name__, 0.2),
)
"""Which sagas the generator starts, and how often."""

_CONTEXT_TYPES = (OrderContext, TravelContext, SubscriptionContext)

GIVE_UP_AFTER = 20
"""Errors in a row (not saga outcomes: storage or engine failures) that stop the load."""


@dataclasses.dataclass(slots=True)
class Progress:
    """Live counters of one load run."""

    total: int
    started: int = 0
    finished: int = 0
    completed: int = 0
    compensated: int = 0
    failed: int = 0
    errors: int = 0
    first_error: str | None = None
    started_at: float = dataclasses.field(default_factory=time.monotonic)
    ended_at: float | None = None
    stopping: bool = False
    """Set to start no further sagas; the ones running finish."""
    errors_in_a_row: int = 0
    gave_up: str | None = None
    """Why the run stopped early: storage errors kept coming (a full disk, a lost server)."""

    @property
    def elapsed(self) -> float:
        """Seconds since the run began (until it ended)."""
        return (self.ended_at or time.monotonic()) - self.started_at

    @property
    def rate(self) -> float:
        """Finished sagas per second."""
        return self.finished / self.elapsed if self.elapsed > 0 else 0.0

    def line(self) -> str:
        """The live progress line."""
        return (
            f"{self.finished}/{self.total} sagas  {self.rate:7.1f}/s  "
            f"completed {self.completed}  compensated {self.compensated}  "
            f"failed {self.failed}  errors {self.errors}  running {self.started - self.finished}"
        )

    def summary(self) -> str:
        """The closing summary."""
        return (
            f"{self.finished} sagas in {self.elapsed:.1f} s ({self.rate:.1f} sagas/s): "
            f"{self.completed} completed, {self.compensated} compensated, "
            f"{self.failed} failed, {self.errors} errors"
        )

    def as_dict(self) -> dict[str, typing.Any]:
        """The summary as JSON data."""
        return {
            "total": self.total,
            "finished": self.finished,
            "completed": self.completed,
            "compensated": self.compensated,
            "failed": self.failed,
            "errors": self.errors,
            "first_error": self.first_error,
            "gave_up": self.gave_up,
            "seconds": round(self.elapsed, 3),
            "sagas_per_second": round(self.rate, 1),
        }


async def _outcome(
    storage: ISagaStorage,
    progress: Progress,
    saga_id: uuid.UUID,
    error: Exception | None,
) -> None:
    if error is None:
        progress.completed += 1
        progress.errors_in_a_row = 0
        return
    try:
        lease = await storage.get_lease(saga_id)
    except Exception:
        lease = None
    status = lease.status if lease is not None else None
    if status is SagaStatus.COMPENSATED:
        progress.compensated += 1
        progress.errors_in_a_row = 0
    elif status is SagaStatus.FAILED:
        progress.failed += 1
        progress.errors_in_a_row = 0
    else:
        # Not a saga outcome: the storage or the engine itself failed.
        progress.errors += 1
        progress.errors_in_a_row += 1
        if progress.first_error is None:
            progress.first_error = describe(error)
        if progress.errors_in_a_row >= GIVE_UP_AFTER and progress.gave_up is None:
            # Starting more sagas would only add errors (and half-started sagas).
            progress.gave_up = (
                f"stopped after {progress.errors_in_a_row} errors in a row: {describe(error)}"
            )
            progress.stopping = True


async def run_load(
    mediator: SagaMediator,
    count: int,
    concurrency: int,
    *,
    seed: int | None = None,
    progress: Progress | None = None,
) -> Progress:
    """Run ``count`` sample sagas, ``concurrency`` at a time; returns the counters."""
    progress = progress or Progress(total=count)
    rng = random.Random(seed)
    names = [name for name, _ in MIX]
    weights = [weight for _, weight in MIX]
    storage = mediator.storage

    async def worker() -> None:
        while progress.started < count and not progress.stopping:
            progress.started += 1
            context = example_context(rng.choices(names, weights)[0], rng)
            error: Exception | None = None
            saga_id = uuid.uuid4()
            try:
                await mediator.run(context, saga_id=saga_id)
            except Exception as exc:
                error = exc
            await _outcome(storage, progress, saga_id, error)
            progress.finished += 1

    try:
        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, count)))))
    finally:
        progress.ended_at = time.monotonic()
    return progress


async def report_progress(progress: Progress, stream: typing.TextIO, interval: float) -> None:
    """Rewrite the progress line on a terminal; print a line now and then otherwise."""
    tty = stream.isatty()
    if not tty:
        interval = max(interval, 2.0)
    while True:
        await asyncio.sleep(interval)
        if tty:
            stream.write("\r\x1b[2K" + progress.line())
        else:
            stream.write(progress.line() + "\n")
        stream.flush()


async def main_async(
    url: str,
    *,
    count: int,
    concurrency: int,
    knobs: Knobs,
    seed: int | None,
    stream: typing.TextIO = sys.stderr,
    interval: float = 0.25,
) -> Progress:
    """Open the database, run the load with a live progress line, close everything."""
    from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage

    storage = SqlAlchemySagaStorage.from_url(url)
    try:
        # An unreachable or foreign database is one clear error, not N failed sagas.
        await storage.count_by_status()
    except BaseException:
        await storage.close()
        raise
    mediator = create_mediator(storage, knobs=knobs)
    progress = Progress(total=count)
    reporter = asyncio.create_task(report_progress(progress, stream, interval))
    try:
        await run_load(mediator, count, concurrency, seed=seed, progress=progress)
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        if stream.isatty():
            stream.write("\r\x1b[2K")
        stream.write(progress.line() + "\n")
        stream.flush()
        await storage.close()
    return progress
