"""Fallback: an alternative step to run when the primary one fails."""

from __future__ import annotations

import dataclasses

from engine.saga.circuit_breaker import ICircuitBreaker
from engine.saga.step import SagaStepHandler


@dataclasses.dataclass(frozen=True)
class Fallback:
    """Run ``fallback`` when ``step`` raises one of ``failure_exceptions`` (any, if empty).

    With a ``circuit_breaker`` the primary runs through it, and an open circuit goes
    straight to the fallback. Each step is logged under its own name.
    """

    step: type[SagaStepHandler]
    fallback: type[SagaStepHandler]
    failure_exceptions: tuple[type[Exception], ...] = ()
    circuit_breaker: ICircuitBreaker | None = None
