"""An application whose saga steps emit events, for the outbox's cross-process tests.

As ``--app tests.e2e.outbox_app:create``, or as a process of its own:

    python -m tests.e2e.outbox_app DB run       # one ParcelSaga; prints its id, then "ended"
    python -m tests.e2e.outbox_app DB deliver   # one redelivery pass; prints its report

``OUTBOX_LEDGER`` names a SQLite file where the handler records every delivery (saga,
step, pid) before it returns; ``OUTBOX_HANDLER`` says what the handler does: ``ok``
(record), ``fail`` (raise) or ``block`` (print "in-handler" and wait forever, so a test
can kill the process after the step's checkpoint and before the delivery).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
import sys
import typing
import uuid

import engine
from engine.saga.bootstrap import bootstrap
from engine.saga.mediator import SagaMediator
from engine.saga.models import SagaContext
from engine.saga.saga import Saga
from engine.saga.step import SagaStepHandler
from engine.saga.storage.protocol import ISagaStorage

LEDGER_SQL = (
    "CREATE TABLE IF NOT EXISTS deliveries"
    " (id INTEGER PRIMARY KEY, saga TEXT, step TEXT, pid INTEGER)"
)


def deliveries(ledger: str) -> list[tuple[str, str, int]]:
    """(saga id, step, pid) of every delivery the handler recorded, in order."""
    conn = sqlite3.connect(ledger)
    try:
        conn.execute(LEDGER_SQL)
        return list(conn.execute("SELECT saga, step, pid FROM deliveries ORDER BY id"))
    finally:
        conn.close()


@dataclasses.dataclass
class ParcelContext(SagaContext):
    parcel: str
    saga_id: str = ""

    @classmethod
    def example(cls) -> ParcelContext:
        """What ``saga-tui start ParcelSaga`` runs."""
        return cls(parcel="p-1")


class ParcelMoved(engine.DomainEvent):
    saga_id: str
    step: str


class _Step(SagaStepHandler[ParcelContext, engine.Response]):
    def __init__(self) -> None:
        self._events: list[typing.Any] = []

    @property
    def events(self) -> list[typing.Any]:
        return self._events

    async def act(self, context: ParcelContext) -> typing.Any:
        from engine.saga.current import current_saga_id

        self._events.append(ParcelMoved(saga_id=str(current_saga_id()), step=type(self).__name__))
        return self._generate_step_result(engine.Response())

    async def compensate(self, context: ParcelContext) -> None:
        pass


class Pack(_Step):
    pass


class Ship(_Step):
    pass


class ParcelSaga(Saga[ParcelContext]):
    steps = [Pack, Ship]


class RecordDelivery(engine.EventHandler[ParcelMoved]):
    async def handle(self, event: ParcelMoved) -> None:
        mode = os.environ.get("OUTBOX_HANDLER", "ok")
        if mode == "block":
            print("in-handler", flush=True)
            await asyncio.Event().wait()
        if mode == "fail":
            raise ConnectionError(f"courier API down ({event.step})")
        conn = sqlite3.connect(os.environ["OUTBOX_LEDGER"], isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute(LEDGER_SQL)
            conn.execute(
                "INSERT INTO deliveries (saga, step, pid) VALUES (?, ?, ?)",
                (event.saga_id, event.step, os.getpid()),
            )
        finally:
            conn.close()


class _Container:
    async def resolve(self, type_: type) -> typing.Any:
        return type_()


def create(storage: ISagaStorage) -> SagaMediator:
    """The app factory: ParcelSaga, its event handler, quick retries."""
    return bootstrap(
        _Container(),
        sagas_mapper=lambda m: m.bind(ParcelContext, ParcelSaga),
        domain_events_mapper=lambda m: m.bind(ParcelMoved, RecordDelivery),
        saga_storage=storage,
        event_retry_delay=0.01,
    )


async def main(db: str, mode: str) -> None:
    from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage

    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{db}")
    mediator = create(storage)
    try:
        if mode == "run":
            saga_id = uuid.uuid4()
            print(saga_id, flush=True)
            await mediator.run(ParcelContext(parcel="p-1"), saga_id=saga_id)
            print("ended", flush=True)
        elif mode == "deliver":
            report = await mediator.deliver_events()
            print(
                f"delivered {report.delivered} failed {report.failed} busy {report.busy}",
                flush=True,
            )
    finally:
        await storage.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
