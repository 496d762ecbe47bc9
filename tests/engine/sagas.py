"""Test sagas whose steps record every call and fail on demand."""

from __future__ import annotations

import asyncio
import dataclasses
import typing

import engine
from engine.saga.fallback import Fallback
from engine.saga.models import SagaContext
from engine.saga.saga import Saga
from engine.saga.step import SagaStepHandler


@dataclasses.dataclass
class Script:
    """What the steps do in one test: records calls, raises when told to."""

    calls: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    fail_act: dict[str, Exception] = dataclasses.field(default_factory=dict)
    # step -> how many compensate attempts fail before one succeeds (-1: always)
    fail_compensate: dict[str, int] = dataclasses.field(default_factory=dict)
    gates: dict[str, asyncio.Event] = dataclasses.field(default_factory=dict)
    entered: dict[str, asyncio.Event] = dataclasses.field(default_factory=dict)
    events: list[typing.Any] = dataclasses.field(default_factory=list)


class ScriptContainer:
    """A container with ``async resolve(type)`` handing the script to every step."""

    def __init__(self, script: Script) -> None:
        self.script = script

    async def resolve(self, type_: type) -> typing.Any:
        return type_(self.script)


@dataclasses.dataclass
class Ctx(SagaContext):
    order_id: str
    trail: list[str] = dataclasses.field(default_factory=list)


class ItemReserved(engine.DomainEvent):
    order_id: str


class OrderNotice(engine.NotificationEvent[dict]):
    event_name: str = "order_notice"
    topic: str = "orders"


class Recording(SagaStepHandler[Ctx, engine.Response]):
    def __init__(self, script: Script) -> None:
        self.script = script
        self._events: list[typing.Any] = []

    @property
    def events(self) -> list[typing.Any]:
        return self._events

    async def act(self, context: Ctx) -> typing.Any:
        name = type(self).__name__
        self.script.calls.append(("act", name))
        if name in self.script.entered:
            self.script.entered[name].set()
        if name in self.script.gates:
            await self.script.gates[name].wait()
        if name in self.script.fail_act:
            raise self.script.fail_act[name]
        context.trail.append(name)
        self._events.extend(self.script.events)
        return self._generate_step_result(engine.Response())

    async def compensate(self, context: Ctx) -> None:
        name = type(self).__name__
        self.script.calls.append(("compensate", name))
        left = self.script.fail_compensate.get(name, 0)
        if left != 0:
            self.script.fail_compensate[name] = left - 1 if left > 0 else left
            raise ConnectionError(f"{name} undo refused")


class StepA(Recording):
    pass


class StepB(Recording):
    pass


class StepC(Recording):
    pass


class Primary(Recording):
    pass


class Backup(Recording):
    pass


class ThreeSteps(Saga[Ctx]):
    steps = [StepA, StepB, StepC]


@dataclasses.dataclass
class FallbackCtx(Ctx):
    pass


class FallbackSaga(Saga[FallbackCtx]):
    steps = [StepA, Fallback(step=Primary, fallback=Backup), StepC]


def mapper(saga_map: engine.SagaMap) -> None:
    saga_map.bind(Ctx, ThreeSteps)
    saga_map.bind(FallbackCtx, FallbackSaga)
