"""A saga's step plan: worked out once, when the Saga subclass is created, read by every run."""

from __future__ import annotations

import dataclasses
import typing

from engine.saga.fallback import Fallback
from engine.saga.step import SagaStepHandler

Handler = type[SagaStepHandler[typing.Any, typing.Any]]


class PlannedStep(typing.NamedTuple):
    """One declared step: the handler class or the Fallback, and the names it logs under."""

    item: typing.Any
    names: tuple[str, ...]
    """``(step,)``, or ``(primary, fallback)`` for a Fallback."""
    is_fallback: bool


@dataclasses.dataclass(frozen=True, slots=True)
class StepPlan:
    """The declared steps of one saga class, in order, with every handler by name."""

    saga_name: str
    steps: tuple[PlannedStep, ...]
    handlers: typing.Mapping[str, Handler]
    """Step name -> handler class, fallbacks included (compensation looks steps up here)."""
    search_keys: tuple[str, ...] = ()
    """Context fields whose values identify a saga (its business key), stored at creation."""

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def first_step(self) -> str | None:
        """The name the first step logs under, None for a saga without steps."""
        return self.steps[0].names[0] if self.steps else None

    def primary_names(self) -> list[str]:
        """The declared step names in order (a Fallback counts by its primary)."""
        return [step.names[0] for step in self.steps]

    def alternatives(self) -> list[tuple[str, ...]]:
        """Per declared step, the names that can fulfil it (a Fallback: either one)."""
        return [step.names for step in self.steps]


def plan_steps(
    saga_name: str, steps: typing.Iterable[typing.Any], search_keys: tuple[str, ...] = ()
) -> StepPlan:
    """The plan of a saga's (already validated) ``steps`` and ``search_keys``."""
    planned: list[PlannedStep] = []
    handlers: dict[str, Handler] = {}
    for item in steps:
        if isinstance(item, Fallback):
            planned.append(PlannedStep(item, (item.step.__name__, item.fallback.__name__), True))
            handlers[item.step.__name__] = item.step
            handlers[item.fallback.__name__] = item.fallback
        else:
            planned.append(PlannedStep(item, (item.__name__,), False))
            handlers[item.__name__] = item
    return StepPlan(saga_name, tuple(planned), handlers, search_keys)


def search_key_of(plan: StepPlan, context: typing.Mapping[str, typing.Any]) -> str | None:
    """The business key of a stored context: its ``search_keys`` values, space-separated."""
    if not plan.search_keys:
        return None
    values = [context.get(key) for key in plan.search_keys]
    text = " ".join(str(v) for v in values if v is not None and str(v) != "")
    return text[:255] or None
