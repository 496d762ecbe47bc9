"""``--demo``: keep a few sample sagas running in this process so the screen moves."""

from __future__ import annotations

import asyncio
import contextlib
import random
import typing

from engine.saga.codec import load_context
from saga_tui import examples

if typing.TYPE_CHECKING:
    from engine.saga.mediator import SagaMediator

CONCURRENCY = 3


async def demo_traffic(mediator: SagaMediator, concurrency: int = CONCURRENCY) -> None:
    """Run sagas forever, a few at a time (the sample sagas fail now and then)."""
    registered = {name for name, _, _ in mediator.registered()}
    with contextlib.suppress(ImportError):
        from sample_sagas.load import MIX, run_load

        if {name for name, _ in MIX} <= registered:
            await run_load(mediator, 10**9, concurrency)
            return
    # Another application: start its sagas from their examples.
    choices = [(c, e) for _, c, e in examples.choices(mediator)]
    if not choices:
        return
    rng = random.Random()

    async def worker() -> None:
        while True:
            context_type, example = rng.choice(choices)
            with contextlib.suppress(Exception):
                await mediator.run(load_context(context_type, example))
            await asyncio.sleep(rng.uniform(0.2, 1.0))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
