"""A process that starts sagas at once and stalls in their first step, to be SIGKILLed.

    python -m tests.tui.strander DB COUNT

Starts ``COUNT`` OrderSagas concurrently (every service call takes an hour), prints
``ready`` (flushed) once each has its first step under way, then waits to be killed.
"""

from __future__ import annotations

import asyncio
import random
import sys

from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import SagaFilter
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from sample_sagas import Knobs, create_mediator
from sample_sagas.app import example_context


async def main(db: str, count: int) -> None:
    """Start the sagas, say ready, wait forever."""
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{db}")
    knobs = Knobs(failure_rate=0.0, latency_ms=(3_600_000.0, 3_600_000.0))
    mediator = create_mediator(storage, knobs=knobs)
    rng = random.Random(7)
    runs = [
        asyncio.create_task(mediator.run(example_context("OrderSaga", rng))) for _ in range(count)
    ]
    running = SagaFilter(statuses=(SagaStatus.RUNNING,))
    while await storage.count_sagas(running) < count:
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    await asyncio.gather(*runs)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
