"""``--demo``: keep a few sample sagas running in this process so the screen moves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import typing

from engine.saga.context_codec import load_context
from saga_tui import examples

if typing.TYPE_CHECKING:
    from engine.saga.mediator import SagaMediator

CONCURRENCY = 3
logger = logging.getLogger("saga_tui.demo")


class DemoTraffic:
    """Starts sagas a few at a time until stopped; stopping lets running ones finish."""

    def __init__(self, mediator: SagaMediator, concurrency: int = CONCURRENCY) -> None:
        self.mediator = mediator
        self.concurrency = concurrency
        self.stopping = False
        self._progress: typing.Any = None
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
        if self._progress is not None:
            self._progress.stopping = True
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
        registered = {name for name, _, _ in mediator.registered()}
        with contextlib.suppress(ImportError):
            from sample_sagas.load import MIX, Progress, run_load

            if {name for name, _ in MIX} <= registered:
                self._progress = Progress(total=10**9, stopping=self.stopping)
                await run_load(mediator, 10**9, self.concurrency, progress=self._progress)
                return
        # Another application: start its sagas from their examples.
        choices = [(c, e) for _, c, e in examples.choices(mediator) if e is not None]
        if not choices:
            return
        rng = random.Random()

        async def worker() -> None:
            while not self.stopping:
                context_type, example = rng.choice(choices)
                with contextlib.suppress(Exception):
                    await mediator.run(load_context(context_type, example))
                await asyncio.sleep(rng.uniform(0.2, 1.0))

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
