"""Raw checkpoint throughput of SqlAlchemySagaStorage.apply() on a SQLite file.

    python bench/storage_checkpoints.py [--sagas 2000] [--concurrency 1 16 64]

Each simulated saga does what the engine writes for three steps: a create checkpoint,
then per step a STARTED checkpoint and a COMPLETED checkpoint with the new context, and
a final COMPLETED status that releases the lease (8 checkpoints). Sequential shows the
cost of one durable checkpoint; concurrent shows what group commit shares. Storage only:
no saga engine on top, so this is the ceiling the engine can reach.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid

from sqlalchemy.ext.asyncio import async_sessionmaker

from engine.saga.storage.enums import SagaStatus, SagaStepStatus
from engine.saga.storage.models import Checkpoint, LogWrite, NewSaga
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from engine.saga.storage.sqlalchemy.connect import create_engine_for

OWNER = "bench:1:1"
STEPS = ("Reserve", "Charge", "Ship")


async def one_saga(storage: SqlAlchemySagaStorage) -> int:
    """Write one three-step saga; returns the number of checkpoints."""
    saga_id = uuid.uuid4()
    lease = time.time() + 60
    context = {"order_id": 1, "amount": "10.00", "items": [1, 2, 3]}
    await storage.apply(
        Checkpoint(
            saga_id=saga_id,
            owner=OWNER,
            lease_expires=lease,
            create=NewSaga("OrderSaga", context, len(STEPS)),
            status=SagaStatus.RUNNING,
        ),
    )
    for i, step in enumerate(STEPS):
        await storage.apply(
            Checkpoint(
                saga_id=saga_id,
                owner=OWNER,
                current_step=step,
                logs=(LogWrite(step, "act", SagaStepStatus.STARTED),),
            ),
        )
        context = {**context, step.lower(): True}
        await storage.apply(
            Checkpoint(
                saga_id=saga_id,
                owner=OWNER,
                context=context,
                steps_done=i + 1,
                logs=(LogWrite(step, "act", SagaStepStatus.COMPLETED, duration_ms=1.0),),
            ),
        )
    await storage.apply(
        Checkpoint(saga_id=saga_id, owner=OWNER, status=SagaStatus.COMPLETED, release_lease=True),
    )
    return 2 + 2 * len(STEPS)


async def run(storage: SqlAlchemySagaStorage, sagas: int, concurrency: int) -> tuple[float, int]:
    """Run ``sagas`` sagas with ``concurrency`` at a time; (seconds, checkpoints)."""
    queue = iter(range(sagas))
    written = 0

    async def worker() -> None:
        nonlocal written
        for _ in queue:
            count = await one_saga(storage)
            written += count

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, written


async def main_async(args: argparse.Namespace) -> None:
    """One storage per mode on a fresh file, each concurrency level in turn."""
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for mode in args.modes:
            path = os.path.join(tmp, f"{mode}.db")
            url = f"sqlite+aiosqlite:///{path}"
            engine = None
            if mode == "raw":
                storage = SqlAlchemySagaStorage.from_url(url)
            else:
                engine = create_engine_for(url)
                storage = SqlAlchemySagaStorage(async_sessionmaker(engine), raw_sqlite_writer=False)
            try:
                for concurrency in args.concurrency:
                    n = args.sagas if concurrency > 1 else max(1, args.sagas // 4)
                    seconds, checkpoints = await run(storage, n, concurrency)
                    print(
                        f"{mode:5} writer, {concurrency:3} concurrent: {n:6} sagas"
                        f" in {seconds:6.2f}s = {n / seconds:8.0f} sagas/s,"
                        f" {checkpoints / seconds:8.0f} checkpoints/s,"
                        f" {seconds / checkpoints * 1e6:7.0f} us/checkpoint",
                    )
            finally:
                await storage.close()
                if engine is not None:
                    await engine.dispose()


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--modes", nargs="+", default=["raw", "core"], choices=["raw", "core"])
    parser.add_argument("--dir", default=None, help="folder for the temporary database")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
