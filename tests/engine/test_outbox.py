"""The event outbox: events stored with their step's checkpoint, delivered, retried, in order.

Each test runs against memory, SQLite (and PostgreSQL when given): the ``storage`` fixture.
"""

from __future__ import annotations

import time
import typing
import uuid

import pytest

import engine
from engine.message_brokers.protocol import Message, MessageBroker
from engine.saga.bootstrap import bootstrap
from engine.saga.errors import LeaseLostError
from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.outbox import EventState
from engine.saga.storage.protocol import ISagaStorage
from tests.engine.sagas import Ctx, ItemReserved, OrderNotice, Recording, Script, StepA, mapper


class Numbered(engine.DomainEvent):
    """An event that says which step made it."""

    step: str


class Flaky:
    """A handler's behaviour: fail the first ``failures`` calls (-1: always)."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.seen: list[str] = []
        self.calls = 0


FLAKY = Flaky()


class Record(engine.EventHandler[Numbered]):
    async def handle(self, event: Numbered) -> None:
        FLAKY.calls += 1
        if FLAKY.failures != 0:
            FLAKY.failures -= 1 if FLAKY.failures > 0 else 0
            raise ConnectionError(f"mail server down for {event.step}")
        FLAKY.seen.append(event.step)


class NumberingStep(StepA):
    """Every step emits one Numbered event carrying its own name."""

    async def act(self, context: Ctx) -> typing.Any:
        result = await super().act(context)
        self._events.append(Numbered(step=type(self).__name__))
        return result


class First(NumberingStep):
    pass


class Second(NumberingStep):
    pass


class Third(NumberingStep):
    pass


class Numbering(engine.Saga[Ctx]):
    steps = [First, Second, Third]


class Container:
    def __init__(self, script: Script) -> None:
        self.script = script

    async def resolve(self, type_: type) -> typing.Any:
        if issubclass(type_, Recording):
            return type_(self.script)
        return type_()


def numbering(
    storage: ISagaStorage, failures: int = 0, delays: list[float] | None = None
) -> engine.SagaMediator:
    global FLAKY
    FLAKY = Flaky(failures)
    waits = delays if delays is not None else []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    return bootstrap(
        di_container=Container(Script()),
        sagas_mapper=lambda m: m.bind(Ctx, Numbering),
        domain_events_mapper=lambda m: m.bind(Numbered, Record),
        saga_storage=storage,
        sleep=sleep,
    )


def states(events: list[typing.Any]) -> list[tuple[str, str, int]]:
    return [(e.step_name, e.state.name, e.attempts) for e in events]


async def test_a_steps_events_are_stored_with_it_and_delivered_once(storage: ISagaStorage) -> None:
    mediator = numbering(storage)
    saga_id = uuid.uuid4()
    await mediator.run(Ctx("o1"), saga_id=saga_id)
    assert FLAKY.seen == ["First", "Second", "Third"]
    events = await storage.saga_events(saga_id)
    assert states(events) == [
        ("First", "DELIVERED", 1),
        ("Second", "DELIVERED", 1),
        ("Third", "DELIVERED", 1),
    ]
    first = events[0]
    assert (first.kind, first.event_name, first.payload) == (
        "domain",
        "Numbered",
        {"step": "First"},
    )
    assert first.event_type.endswith("test_outbox.Numbered")
    assert first.delivered_at is not None and first.claim_owner is None
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert await storage.event_counts() == type(await storage.event_counts())(0, 0)


async def test_a_saga_without_events_stores_none(storage: ISagaStorage) -> None:
    mediator = bootstrap(
        di_container=Container(Script()), sagas_mapper=mapper, saga_storage=storage
    )
    saga_id = uuid.uuid4()
    await mediator.run(Ctx("o1"), saga_id=saga_id)
    assert await storage.saga_events(saga_id) == []
    assert await storage.list_events() == []


async def test_notification_events_are_stored_and_published_with_their_id(
    storage: ISagaStorage,
) -> None:
    class Collect(MessageBroker):
        def __init__(self) -> None:
            self.messages: list[Message] = []

        async def send_message(self, message: Message) -> None:
            self.messages.append(message)

    broker = Collect()
    notice = OrderNotice(payload={"id": 1})
    script = Script(events=[notice])
    mediator = bootstrap(
        di_container=Container(script),
        sagas_mapper=mapper,
        saga_storage=storage,
        message_broker=broker,
    )
    saga_id = uuid.uuid4()
    await mediator.run(Ctx("o1"), saga_id=saga_id)
    assert [m.message_id for m in broker.messages] == [notice.event_id] * 3
    events = await storage.saga_events(saga_id)
    assert {(e.kind, e.event_name, e.state) for e in events} == {
        ("notification", "order_notice", EventState.DELIVERED)
    }
    assert events[0].payload is not None and events[0].payload["topic"] == "orders"


async def test_events_of_a_refused_checkpoint_are_not_stored(storage: ISagaStorage) -> None:
    """Events ride in the COMPLETED checkpoint: refused together, nothing half-written."""
    script = Script(events=[ItemReserved(order_id="o1")])
    mediator = bootstrap(di_container=Container(script), sagas_mapper=mapper, saga_storage=storage)
    saga_id = uuid.uuid4()

    class Steal(StepA):
        async def act(self, context: Ctx) -> typing.Any:
            result = await super().act(context)
            # another process takes the saga while this step runs
            await storage.claim(
                saga_id,
                "elsewhere:1:1",
                time.time() + 60,
                now=time.time() + 3600,
            )
            return result

    class Stolen(engine.Saga[Ctx]):
        steps = [Steal]

    mediator.saga_map[Ctx] = Stolen
    with pytest.raises(LeaseLostError):
        await mediator.run(Ctx("o1"), saga_id=saga_id)
    assert await storage.saga_events(saga_id) == []
    history = await storage.get_step_history(saga_id)
    assert [(e.step_name, e.status.name) for e in history] == [("Steal", "STARTED")]


async def test_a_failing_delivery_is_retried_with_backoff_then_delivered(
    storage: ISagaStorage,
) -> None:
    delays: list[float] = []
    mediator = numbering(storage, failures=2, delays=delays)
    saga_id = uuid.uuid4()
    await mediator.run(Ctx("o1"), saga_id=saga_id)
    assert delays == [0.5, 1.0]
    events = await storage.saga_events(saga_id)
    assert states(events) == [
        ("First", "DELIVERED", 3),
        ("Second", "DELIVERED", 1),
        ("Third", "DELIVERED", 1),
    ]
    assert events[0].last_error == "ConnectionError: mail server down for First"


async def test_a_delivery_out_of_tries_is_failed_and_holds_back_the_later_events(
    storage: ISagaStorage,
) -> None:
    mediator = numbering(storage, failures=-1)
    saga_id = uuid.uuid4()
    await mediator.run(Ctx("o1"), saga_id=saga_id)
    assert (await storage.load_saga_state(saga_id))[0] is SagaStatus.COMPLETED
    assert FLAKY.calls == 3  # three tries of the first event, none of the later ones
    events = await storage.saga_events(saga_id)
    assert states(events) == [
        ("First", "FAILED", 3),
        ("Second", "PENDING", 0),
        ("Third", "PENDING", 0),
    ]
    assert events[0].last_error == "ConnectionError: mail server down for First"
    assert {e.claim_owner for e in events} == {None}
    counts = await storage.event_counts()
    assert (counts.pending, counts.failed) == (2, 1)
    assert await storage.sagas_with_events(EventState.FAILED) == [saga_id]
    # the redelivery loop leaves them: the failed one comes first
    report = await mediator.deliver_events()
    assert (report.delivered, report.failed) == (0, 0)
    assert FLAKY.seen == []

    FLAKY.failures = 0  # the mail server is back; the operator redelivers
    report = await mediator.redeliver_events(saga_id, reason="mail server fixed")
    assert (report.delivered, report.failed) == (3, 0)
    assert FLAKY.seen == ["First", "Second", "Third"]
    assert states(await storage.saga_events(saga_id)) == [
        ("First", "DELIVERED", 4),
        ("Second", "DELIVERED", 1),
        ("Third", "DELIVERED", 1),
    ]
    detail = await storage.get_saga(saga_id)
    assert detail is not None
    assert [(a.action, a.reason) for a in detail.audit] == [("redeliver", "mail server fixed")]
    assert "3 delivered" in detail.audit[0].outcome


async def test_pending_events_of_a_dead_owner_are_claimed_and_delivered_in_order(
    storage: ISagaStorage,
) -> None:
    mediator = numbering(storage, failures=-1)
    saga_id = uuid.uuid4()
    await mediator.run(Ctx("o1"), saga_id=saga_id)
    await storage.retry_failed_events(saga_id)
    # a process of this host that no longer exists claims them (pid 0 is never a process)
    dead = f"{mediator.events.owner.split(':')[0]}:999999999:1"
    claim = await storage.claim_events(saga_id, dead, time.time() + 3600, now=time.time())
    assert [e.step_name for e in claim.events] == ["First", "Second", "Third"]
    FLAKY.failures = 0
    report = await mediator.deliver_events()
    assert (report.delivered, report.busy) == (3, 0)
    assert FLAKY.seen == ["First", "Second", "Third"]


async def test_a_live_claim_is_never_shared(storage: ISagaStorage) -> None:
    mediator = numbering(storage, failures=-1)
    saga_id = uuid.uuid4()
    await mediator.run(Ctx("o1"), saga_id=saga_id)
    await storage.retry_failed_events(saga_id)
    now = time.time()
    first = await storage.claim_events(saga_id, "other-host:1:1", now + 60, now=now)
    assert len(first.events) == 3
    second = await storage.claim_events(saga_id, "third-host:2:2", now + 60, now=now)
    assert (second.events, second.holder) == ([], "other-host:1:1")
    FLAKY.failures = 0
    report = await mediator.deliver_events()
    assert (report.delivered, report.busy) == (0, 1)
    assert FLAKY.seen == []
    # the claim expires: anyone may take the events
    late = await storage.claim_events(saga_id, "third-host:2:2", now + 120, now=now + 61)
    assert len(late.events) == 3
    await storage.release_events(saga_id, "third-host:2:2")
    report = await mediator.deliver_events()
    assert report.delivered == 3
    assert FLAKY.seen == ["First", "Second", "Third"]


async def test_events_are_rebuilt_from_storage_by_another_mediator(storage: ISagaStorage) -> None:
    """The redelivery loop of a process that did not run the saga rebuilds the events."""
    mediator = numbering(storage, failures=-1)
    saga_id = uuid.uuid4()
    await mediator.run(Ctx("o1"), saga_id=saga_id)
    await storage.retry_failed_events(saga_id)
    other = numbering(storage)
    report = await other.deliver_events()
    assert report.delivered == 3
    assert FLAKY.seen == ["First", "Second", "Third"]
    listed = await storage.list_events((EventState.DELIVERED,))
    assert [e.step_name for e in listed] == ["Third", "Second", "First"]
    assert {e.saga_name for e in listed} == {"Numbering"}


async def test_a_page_filtered_by_event_state_lists_the_sagas_holding_such_events(
    storage: ISagaStorage,
) -> None:
    from engine.saga.storage.models import SagaFilter

    fine, broken = uuid.uuid4(), uuid.uuid4()
    await numbering(storage).run(Ctx("o1"), saga_id=fine)
    await numbering(storage, failures=-1).run(Ctx("o2"), saga_id=broken)
    failed = await storage.list_sagas(SagaFilter(events="FAILED"))
    assert [s.id for s in failed.items] == [broken]
    pending = await storage.list_sagas(SagaFilter(events="PENDING"))
    assert [s.id for s in pending.items] == [broken]
    assert {s.id for s in (await storage.list_sagas(SagaFilter())).items} == {fine, broken}


async def test_a_database_written_before_the_outbox_table_gets_it_on_open(
    tmp_path: typing.Any,
) -> None:
    import sqlite3

    from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage

    path = tmp_path / "sagas.db"
    url = f"sqlite+aiosqlite:///{path}"
    await SqlAlchemySagaStorage.from_url(url).close()
    with sqlite3.connect(path) as conn:  # a v3 database of the code before the outbox
        conn.execute("DROP TABLE saga_events")
    reader = SqlAlchemySagaStorage.from_url(url, read_only=True)
    try:
        assert await reader.event_counts() == type(await reader.event_counts())(0, 0)
        assert await reader.list_events() == []
    finally:
        await reader.close()
    writer = SqlAlchemySagaStorage.from_url(url)
    try:
        mediator = numbering(writer)
        saga_id = uuid.uuid4()
        await mediator.run(Ctx("o1"), saga_id=saga_id)
        assert len(await writer.saga_events(saga_id)) == 3
    finally:
        await writer.close()
