"""Context JSON round-trips, refusal of unserializable contexts, class-creation checks."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import socket
import uuid

import pydantic
import pytest

import engine
from engine.saga.bootstrap import bootstrap
from engine.saga.errors import ContextSerializationError
from engine.saga.models import SagaContext
from engine.saga.saga import Saga
from engine.saga.step import SagaStepHandler
from engine.saga.storage.protocol import ISagaStorage


class Tier(enum.Enum):
    GOLD = "gold"
    SILVER = "silver"


@dataclasses.dataclass
class Address:
    street: str
    zip_code: str


class Money(pydantic.BaseModel):
    amount: decimal.Decimal
    currency: str


@dataclasses.dataclass
class RichContext(SagaContext):
    text: str
    count: int
    ratio: float
    flag: bool
    nothing: None
    tags: list[str]
    meta: dict[str, int]
    order_id: uuid.UUID
    at: datetime.datetime
    day: datetime.date
    price: decimal.Decimal
    tier: Tier
    address: Address
    money: Money
    optional_note: str | None = None


def rich() -> RichContext:
    return RichContext(
        text="naïve ☃",
        count=3,
        ratio=0.25,
        flag=True,
        nothing=None,
        tags=["a", "b"],
        meta={"x": 1},
        order_id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        at=datetime.datetime(2026, 11, 27, 12, 30, 5, 123456, tzinfo=datetime.UTC),
        day=datetime.date(2026, 11, 27),
        price=decimal.Decimal("19.99"),
        tier=Tier.GOLD,
        address=Address("Main St 1", "10115"),
        money=Money(amount=decimal.Decimal("5.10"), currency="EUR"),
    )


def test_every_listed_type_round_trips_with_its_own_field_names() -> None:
    context = rich()
    data = context.to_dict()
    assert "order_id" in data and "optional_note" in data  # snake_case, not camelCase
    assert data["price"] == "19.99" and data["tier"] == "gold"
    import json

    assert RichContext.from_dict(json.loads(json.dumps(data))) == context


class Touch(SagaStepHandler[RichContext, engine.Response]):
    async def act(self, context: RichContext) -> engine.SagaStepResult:
        context.count += 1
        return self._generate_step_result(None)

    async def compensate(self, context: RichContext) -> None:
        return None


class RichSaga(Saga[RichContext]):
    steps = [Touch]


@dataclasses.dataclass
class SocketContext(SagaContext):
    order_id: str
    conn: object = None


class SocketSaga(Saga[SocketContext]):
    steps: list = []


async def test_a_rich_context_survives_storage(storage: ISagaStorage) -> None:
    class Plain:
        async def resolve(self, type_: type) -> object:
            return type_()

    mediator = bootstrap(
        Plain(), sagas_mapper=lambda m: m.bind(RichContext, RichSaga), saga_storage=storage
    )
    saga_id = uuid.uuid4()
    await mediator.run(rich(), saga_id=saga_id)
    _, stored, _ = await storage.load_saga_state(saga_id)
    expected = rich()
    expected.count = 4
    assert RichContext.from_dict(stored) == expected


async def test_an_unserializable_context_is_refused_before_anything_is_stored(
    storage: ISagaStorage,
) -> None:
    class Plain:
        async def resolve(self, type_: type) -> object:
            return type_()

    mediator = bootstrap(
        Plain(), sagas_mapper=lambda m: m.bind(SocketContext, SocketSaga), saga_storage=storage
    )
    sock = socket.socket()
    try:
        with pytest.raises(ContextSerializationError, match=r"SocketContext\.conn"):
            await mediator.run(SocketContext(order_id="1", conn=sock))
    finally:
        sock.close()
    assert (await storage.count_by_status()).total == 0


def test_a_step_that_is_not_a_handler_is_refused_naming_saga_and_step() -> None:
    class NotAStep:
        pass

    with pytest.raises(TypeError, match=r"BadSaga.*NotAStep"):

        class BadSaga(Saga[RichContext]):
            steps = [Touch, NotAStep]


def test_a_step_for_another_context_is_refused_naming_saga_and_step() -> None:
    @dataclasses.dataclass
    class OtherContext(SagaContext):
        x: int = 0

    with pytest.raises(TypeError, match=r"WrongSaga.*Touch.*RichContext.*OtherContext"):

        class WrongSaga(Saga[OtherContext]):
            steps = [Touch]


def test_devnull_broker_keeps_nothing_unbounded() -> None:
    import asyncio

    from engine.message_brokers.devnull import DevnullMessageBroker
    from engine.message_brokers.protocol import Message

    broker = DevnullMessageBroker()

    async def send_many() -> None:
        for i in range(10_000):
            await broker.send_message(Message("m", "t", {"i": i}))

    asyncio.run(send_many())
    assert broker.sent == 10_000
    assert len(broker.last) <= 16


async def test_kafka_adapter_says_what_to_install_when_aiokafka_is_missing() -> None:
    import importlib.util

    from engine.adapters.kafka import KafkaProducerAdapter

    if importlib.util.find_spec("aiokafka") is not None:
        pytest.skip("aiokafka is installed here")
    adapter = KafkaProducerAdapter(bootstrap_servers=["localhost:9092"], client_id="x")
    with pytest.raises(RuntimeError, match=r"saga-tui\[kafka\]"):
        await adapter.produce("t", b"v")


def test_the_step_plan_is_worked_out_when_the_saga_class_is_created() -> None:
    from engine.saga.fallback import Fallback

    class Backup(Touch):
        pass

    class Planned(Saga[RichContext]):
        steps = [Fallback(step=Touch, fallback=Backup)]

    class Renamed(Planned):
        pass

    plan = Planned.step_plan
    assert (plan.saga_name, plan.alternatives(), plan.first_step) == (
        "Planned",
        [("Touch", "Backup")],
        "Touch",
    )
    assert dict(plan.handlers) == {"Touch": Touch, "Backup": Backup}
    assert Planned.step_names() == ["Touch"] and Planned().steps_count == 1
    # a subclass is a saga of its own: it is stored and found under its own name
    assert Renamed.step_plan.saga_name == "Renamed"
    assert Renamed.step_plan.steps == plan.steps
    assert Saga.step_plan.steps == () and Saga.step_plan.first_step is None
