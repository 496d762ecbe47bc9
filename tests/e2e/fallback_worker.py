"""A subprocess for the fallback crash test: a primary that changes the context and fails.

    python -m tests.e2e.fallback_worker DB run GATE_FILE   # prints the saga id, then
                                                          # "fallback-saw JSON"; blocks
    python -m tests.e2e.fallback_worker DB recover        # "fallback-saw JSON", "recovered N"

The fallback prints the context it was handed as JSON; in ``run`` it then waits for
GATE_FILE, so the test can kill the process after the primary failed and before the
fallback finished.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import pathlib
import sys
import typing
import uuid

import engine
from engine.saga.bootstrap import bootstrap
from engine.saga.fallback import Fallback
from engine.saga.models import SagaContext
from engine.saga.saga import Saga
from engine.saga.step import SagaStepHandler
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage

GATE: pathlib.Path | None = None


@dataclasses.dataclass
class TripContext(SagaContext):
    trip: str
    note: str = "original"
    seats: list[str] = dataclasses.field(default_factory=lambda: ["1A"])
    carrier: str | None = None


class Plan(SagaStepHandler[TripContext, engine.Response]):
    async def act(self, context: TripContext) -> typing.Any:
        context.seats.append("planned")
        return self._generate_step_result(None)

    async def compensate(self, context: TripContext) -> None:
        pass


class Airline(Plan):
    async def act(self, context: TripContext) -> typing.Any:
        context.note = "primary was here"
        context.seats.append("primary")
        context.carrier = "airline"
        raise TimeoutError("airline down")


class Train(Plan):
    async def act(self, context: TripContext) -> typing.Any:
        print("fallback-saw", json.dumps(dataclasses.asdict(context)), flush=True)
        while GATE is not None and not GATE.exists():
            await asyncio.sleep(0.01)
        context.carrier = "train"
        return self._generate_step_result(None)


class TripSaga(Saga[TripContext]):
    steps = [Plan, Fallback(step=Airline, fallback=Train)]


class Plain:
    async def resolve(self, type_: type) -> typing.Any:
        return type_()


async def main(db: str, mode: str, args: list[str]) -> None:
    global GATE
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{db}")
    mediator = bootstrap(
        Plain(), sagas_mapper=lambda m: m.bind(TripContext, TripSaga), saga_storage=storage
    )
    try:
        if mode == "run":
            GATE = pathlib.Path(args[0])
            saga_id = uuid.uuid4()
            print(saga_id, flush=True)
            await mediator.run(TripContext(trip="t1"), saga_id=saga_id)
            print("ended ok", flush=True)
        else:
            results = await mediator.recover_stale()
            print(f"recovered {len(results)}", flush=True)
    finally:
        await storage.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
