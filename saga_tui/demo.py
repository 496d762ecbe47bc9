"""``--demo``: keep a few sample sagas running in this process so the screen moves."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import typing

from engine.saga.context_codec import load_context
from engine.saga.secrets import get_logger
from saga_tui import examples

if typing.TYPE_CHECKING:
    from engine.saga.mediator import SagaMediator

CONCURRENCY = 3
PAUSE = (0.3, 1.5)
"""Seconds a demo worker waits between two sagas."""
EVENTS_EVERY = 2.0
"""Seconds between two passes of the event redelivery loop."""
logger = get_logger("saga_tui.demo")


class DemoTraffic:
    """Starts sagas a few at a time until stopped; stopping lets running ones finish."""

    def __init__(self, mediator: SagaMediator, concurrency: int = CONCURRENCY) -> None:
        self.mediator = mediator
        self.concurrency = concurrency
        self.stopping = False
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin in the background."""
        self._task = asyncio.create_task(self._run())

    async def stop(self, grace: float = 2.0) -> None:
        """Start nothing new, give running sagas ``grace`` seconds, then cancel them.

        A cancelled saga keeps its durable state and gives its lease back, so the next
        ``--demo`` (or ``r``) resumes it.
        """
        self.stopping = True
        self._stop.set()
        task = self._task
        if task is None or task.done():
            return
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(task), grace)
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def _run(self) -> None:
        mediator = self.mediator
        # Sagas an earlier demo left behind (killed, or quit mid-step) are finished first.
        try:
            await mediator.recover_stale(reason="demo start")
        except Exception as exc:
            logger.warning("demo: recovering stale sagas failed: %s", exc)
        rng = random.Random()
        makers = _context_makers(mediator, rng)
        weights = [weight for weight, _ in makers]

        async def deliver() -> None:
            # The redelivery loop: events a dead process left PENDING, in order per saga.
            while not self.stopping:
                try:
                    await mediator.deliver_events()
                except Exception as exc:
                    logger.warning("demo: delivering events failed: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), EVENTS_EVERY)

        async def worker() -> None:
            while not self.stopping:
                _, make = rng.choices(makers, weights)[0]
                with contextlib.suppress(Exception):
                    await mediator.run(make())
                # A pause between sagas: a few new ones a second keep the screen alive;
                # more would only scroll past unread (and cost CPU for nothing).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), rng.uniform(*PAUSE))

        workers = [worker() for _ in range(self.concurrency)] if makers else []
        await asyncio.gather(deliver(), *workers)


def _context_makers(
    mediator: SagaMediator, rng: random.Random
) -> list[tuple[float, typing.Callable[[], typing.Any]]]:
    """(weight, make a context) per saga the demo starts: the sample mix, else the examples."""
    registered = {name for name, _, _ in mediator.registered()}
    with contextlib.suppress(ImportError):
        from sample_sagas.app import example_context
        from sample_sagas.load import MIX

        if {name for name, _ in MIX} <= registered:
            return [(weight, functools.partial(example_context, name, rng)) for name, weight in MIX]
    # Another application: start its sagas from their examples.
    return [
        (1.0, functools.partial(load_context, context_type, example))
        for _, context_type, example in examples.choices(mediator)
        if example is not None
    ]
