"""App factories for end-to-end tests (``--app tests.e2e.apps:NAME``)."""

from __future__ import annotations

import dataclasses
import typing

import engine
from engine.saga.bootstrap import bootstrap
from engine.saga.mediator import SagaMediator
from engine.saga.models import SagaContext
from engine.saga.saga import Saga
from engine.saga.step import SagaStepHandler, SagaStepResult
from engine.saga.storage.protocol import ISagaStorage
from sample_sagas import Knobs, create_mediator


def _never_failing(storage: ISagaStorage, latency_ms: tuple[float, float]) -> SagaMediator:
    """Sample sagas whose services never fail (nor their refunds), answering in ``latency_ms``."""
    return create_mediator(
        storage,
        knobs=Knobs(
            failure_rate=0.0,
            compensation_failure_rate=0.0,
            refund_decline_rate=0.0,
            latency_ms=latency_ms,
        ),
    )


def reliable(storage: ISagaStorage) -> SagaMediator:
    """Sample sagas whose services never fail and answer at once."""
    return _never_failing(storage, (0.0, 1.0))


def declining(storage: ISagaStorage) -> SagaMediator:
    """Provisioning always fails and every refund is declined: SubscriptionSagas end FAILED."""
    return create_mediator(
        storage,
        knobs=Knobs(
            failure_rate=0.0,
            step_failure_rates={"ProvisionService": 1.0},
            compensation_failure_rate=0.0,
            refund_decline_rate=1.0,
            refund_decline_seconds=3600.0,
            latency_ms=(0.0, 1.0),
            compensation_retry_delay=0.0,
        ),
    )


def broken(storage: ISagaStorage) -> SagaMediator:
    """A factory that fails, as a user's app might."""
    raise RuntimeError("cannot reach the configuration server")


@dataclasses.dataclass
class GreetingContext(SagaContext):
    """A context whose package offers no ``examples()``: its example is its own."""

    name: str
    greeted: bool = False

    @classmethod
    def example(cls) -> GreetingContext:
        """What the start form pre-fills, and ``saga-tui start GreetingSaga`` runs."""
        return cls(name="example-reader")


class Greet(SagaStepHandler[GreetingContext, engine.Response]):
    """The one step."""

    async def act(
        self, context: GreetingContext
    ) -> SagaStepResult[GreetingContext, engine.Response]:
        context.greeted = True
        return self._generate_step_result(engine.Response())

    async def compensate(self, context: GreetingContext) -> None:
        context.greeted = False


class GreetingSaga(Saga[GreetingContext]):
    """A one-step saga of another application than the samples."""

    steps = [Greet]


class _Container:
    async def resolve(self, type_: type) -> typing.Any:
        return type_()


def greeter(storage: ISagaStorage) -> SagaMediator:
    """An application with one saga whose context carries its own example."""
    return bootstrap(
        _Container(),
        sagas_mapper=lambda sagas: sagas.bind(GreetingContext, GreetingSaga),
        saga_storage=storage,
    )


def steady(storage: ISagaStorage) -> SagaMediator:
    """Sample sagas that never fail and take 5-20 ms per service call: a fleet's load."""
    return _never_failing(storage, (5.0, 20.0))


def slow(storage: ISagaStorage) -> SagaMediator:
    """Sample sagas that never fail and take 150-300 ms per service call."""
    return _never_failing(storage, (150.0, 300.0))


def crawling(storage: ISagaStorage) -> SagaMediator:
    """Sample sagas that never fail and take 1-1.5 s per service call: long in flight."""
    return _never_failing(storage, (1000.0, 1500.0))
