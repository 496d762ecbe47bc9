"""A Fallback's fallback runs on the context as it was before the primary (python-cqrs)."""

from __future__ import annotations

import dataclasses
import typing
import uuid

import pytest

import engine
from engine.saga.bootstrap import bootstrap
from engine.saga.circuit_breaker import CircuitBreaker
from engine.saga.fallback import Fallback
from engine.saga.models import SagaContext
from engine.saga.saga import Saga
from engine.saga.step import SagaStepHandler
from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.protocol import ISagaStorage


@dataclasses.dataclass
class Nested:
    level: int = 1


@dataclasses.dataclass
class BookingContext(SagaContext):
    order_id: str
    note: str = "original"
    amount: float = 10.0
    tags: list[str] = dataclasses.field(default_factory=lambda: ["start"])
    nested: Nested = dataclasses.field(default_factory=Nested)
    hotel: str | None = None
    seen_by_fallback: dict[str, typing.Any] | None = None


class Seen:
    """What each step saw, shared by the handlers of one test."""

    def __init__(self) -> None:
        self.fallback: list[dict[str, typing.Any]] = []


class Container:
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    async def resolve(self, type_: type) -> typing.Any:
        return type_(self.seen)


class Prepare(SagaStepHandler[BookingContext, engine.Response]):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    async def act(self, context: BookingContext) -> typing.Any:
        context.tags.append("prepared")
        return self._generate_step_result(engine.Response())

    async def compensate(self, context: BookingContext) -> None:
        pass


class GrandHotel(Prepare):
    """The primary: changes every kind of field, then fails."""

    async def act(self, context: BookingContext) -> typing.Any:
        context.note = "primary was here"
        context.amount = 999.0
        context.tags.append("primary")
        context.nested.level = 99
        context.hotel = "grand"
        raise TimeoutError("grand hotel down")


class Hostel(Prepare):
    """The fallback: records what it sees, then makes its own change."""

    async def act(self, context: BookingContext) -> typing.Any:
        seen = dataclasses.asdict(context)
        self.seen.fallback.append(seen)
        context.seen_by_fallback = seen
        context.hotel = "hostel"
        return self._generate_step_result(engine.Response())


class BookingSaga(Saga[BookingContext]):
    steps = [Prepare, Fallback(step=GrandHotel, fallback=Hostel)]


BEFORE_PRIMARY = {
    "order_id": "o1",
    "note": "original",
    "amount": 10.0,
    "tags": ["start", "prepared"],
    "nested": {"level": 1},
    "hotel": None,
    "seen_by_fallback": None,
}


def mediator_for(storage: ISagaStorage, seen: Seen, saga: type = BookingSaga) -> typing.Any:
    return bootstrap(
        di_container=Container(seen),
        sagas_mapper=lambda m: m.bind(BookingContext, saga),
        saga_storage=storage,
    )


async def test_the_fallback_sees_the_context_as_it_was_before_the_primary(
    storage: ISagaStorage,
) -> None:
    seen = Seen()
    context = BookingContext("o1")
    saga_id = uuid.uuid4()
    results = await mediator_for(storage, seen).run(context, saga_id=saga_id)
    assert [r.step_type for r in results] == [Prepare, Hostel]
    assert seen.fallback == [BEFORE_PRIMARY]
    # Stored: the state before the primary plus the fallback's own change, nothing else.
    status, stored, _ = await storage.load_saga_state(saga_id)
    assert status is SagaStatus.COMPLETED
    assert stored == {**BEFORE_PRIMARY, "hotel": "hostel", "seen_by_fallback": BEFORE_PRIMARY}
    # The caller's context object was restored in place, as python-cqrs does.
    assert context.note == "original" and context.tags == ["start", "prepared"]
    assert context.nested.level == 1 and context.hotel == "hostel"


async def test_an_open_circuit_still_hands_the_fallback_the_context_untouched(
    storage: ISagaStorage,
) -> None:
    class Broken(Saga[BookingContext]):
        steps = [
            Prepare,
            Fallback(
                step=GrandHotel,
                fallback=Hostel,
                circuit_breaker=CircuitBreaker(failure_threshold=1, reset_timeout=60),
            ),
        ]

    seen = Seen()
    mediator = mediator_for(storage, seen, Broken)
    for _ in range(2):  # the first call opens the circuit, the second never runs the primary
        await mediator.run(BookingContext("o1"), saga_id=uuid.uuid4())
    assert seen.fallback == [BEFORE_PRIMARY, BEFORE_PRIMARY]


async def test_a_primary_failure_the_fallback_does_not_accept_compensates_as_before(
    storage: ISagaStorage,
) -> None:
    class Narrow(Saga[BookingContext]):
        steps = [
            Prepare,
            Fallback(step=GrandHotel, fallback=Hostel, failure_exceptions=(KeyError,)),
        ]

    seen = Seen()
    saga_id = uuid.uuid4()
    with pytest.raises(TimeoutError):
        await mediator_for(storage, seen, Narrow).run(BookingContext("o1"), saga_id=saga_id)
    assert seen.fallback == []
    assert (await storage.load_saga_state(saga_id))[0] is SagaStatus.COMPENSATED
