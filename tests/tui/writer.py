"""A separate process that writes sagas into the dashboard's database.

    python -m tests.tui.writer DB SAGA LATENCY_MS FAILURE_RATE COUNT

``DB`` is a SQLite file, or a database URL (PostgreSQL).

Prints each saga id (flushed) before it starts, then runs it; ``COUNT`` sagas in a row.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid

from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from sample_sagas import Knobs, create_mediator
from sample_sagas.app import example_context


async def main(db: str, saga: str, latency_ms: float, failure_rate: float, count: int) -> None:
    """Run ``count`` sagas one after another."""
    url = db if "://" in db else f"sqlite+aiosqlite:///{db}"
    storage = SqlAlchemySagaStorage.from_url(url)
    knobs = Knobs(
        failure_rate=failure_rate,
        compensation_failure_rate=0.0,
        latency_ms=(latency_ms, latency_ms),
        refund_decline_rate=0.0,
    )
    mediator = create_mediator(storage, knobs=knobs)
    try:
        for _ in range(count):
            saga_id = uuid.uuid4()
            print(saga_id, flush=True)
            # A failed saga is compensated; the dashboard shows it.
            with contextlib.suppress(Exception):
                await mediator.run(example_context(saga), saga_id=saga_id)
    finally:
        await storage.close()


if __name__ == "__main__":
    db, saga, latency, rate, count = sys.argv[1:6]
    asyncio.run(main(db, saga, float(latency), float(rate), int(count)))
