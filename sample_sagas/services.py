"""Fake remote services with latency and failure knobs; every effect goes to the ledger.

A step handler only receives its context, yet the ledger is keyed by saga id: the
engine's ``current_saga_id()`` says which saga the running step belongs to, and
``current_fence()`` the fence of the run calling; every effect carries it, and the
ledger refuses one whose fence is older than one it has seen for that saga.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import hashlib
import random
import time
import typing
import uuid

from engine.saga.current import current_fence
from engine.saga.current import current_saga_id as engine_current_saga_id
from engine.saga.models import SagaContext
from engine.saga.step import SagaStepHandler
from sample_sagas.ledger import Ledger

_current_saga: contextvars.ContextVar[uuid.UUID | None] = contextvars.ContextVar(
    "sample_sagas_current_saga", default=None
)


def track_saga(saga_id: uuid.UUID) -> None:
    """Name the saga for service calls made outside a running step (tests, tools)."""
    _current_saga.set(saga_id)


def current_saga_id() -> uuid.UUID:
    """The id of the saga whose step runs in this task."""
    saga_id = engine_current_saga_id() or _current_saga.get()
    if saga_id is None:
        raise RuntimeError("sample services called outside a saga step")
    return saga_id


@dataclasses.dataclass(frozen=True, slots=True)
class Knobs:
    """How the fake services behave; defaults keep the dashboard lively."""

    failure_rate: float = 0.1
    """Chance that a step's act fails (decided per saga and step, so a rerun agrees)."""
    step_failure_rates: typing.Mapping[str, float] = dataclasses.field(default_factory=dict)
    """Per step name, a failure rate that replaces ``failure_rate``."""
    compensation_failure_rate: float = 0.05
    """Chance that one compensation call fails (transient; retried by the engine)."""
    latency_ms: tuple[float, float] = (50.0, 400.0)
    """Each service call takes a uniform time in this range."""
    refund_decline_rate: float = 0.3
    """Chance that the card gateway declines a refund for a while (FAILED sagas)."""
    refund_decline_seconds: float = 5.0
    """How long a declined refund keeps being declined, so an operator retry can work."""
    compensation_retry_count: int = 3
    compensation_retry_delay: float = 0.2
    compensation_retry_backoff: float = 2.0
    seed: int | None = None
    lease_seconds: float = 15.0
    """How long a runner's lease lasts without renewal (the engine's default)."""
    block_seconds: float = 0.0
    """Each ``do`` first blocks the event loop this long (chaos: CPU-bound step code)."""


class ServiceError(Exception):
    """A fake service refused the call; nothing was done."""


class CompensationError(ServiceError):
    """A fake service failed to undo (transient)."""


class RefundDeclinedError(CompensationError):
    """The card gateway declines the refund for now; an operator has to retry later."""


def _uniform_hash(*parts: str) -> float:
    digest = hashlib.blake2b(":".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class FakeServices:
    """The remote world of the sample sagas: slow, sometimes failing, always idempotent."""

    def __init__(self, ledger: Ledger, knobs: Knobs = Knobs()) -> None:
        self.ledger = ledger
        self.knobs = knobs
        self.rng = random.Random(knobs.seed)
        self.notifications = 0
        self._declined_until: dict[uuid.UUID, float] = {}

    async def _latency(self) -> None:
        lo, hi = self.knobs.latency_ms
        delay = self.rng.uniform(lo, hi) / 1000.0 if hi > 0 else 0.0
        await asyncio.sleep(delay)

    def fails(self, saga_id: uuid.UUID, step: str) -> bool:
        """Whether ``step`` fails for this saga; the same answer in every process.

        A rerun after a crash must agree with the first run, or a step that failed
        (and whose fallback then ran) could succeed on recovery and book twice.
        """
        rate = self.knobs.step_failure_rates.get(step, self.knobs.failure_rate)
        return _uniform_hash(str(saga_id), step) < rate

    async def perform(self, step: str, error: type[ServiceError], message: str) -> None:
        """Do ``step`` for the current saga: fail without a trace, or record a durable ``do``."""
        saga_id = current_saga_id()
        await self._latency()
        if self.knobs.block_seconds:
            time.sleep(self.knobs.block_seconds)  # on purpose: the loop (and heartbeat) stall
        if self.fails(saga_id, step):
            raise error(message)
        await self.ledger.record(saga_id, step, "do", current_fence())

    async def done(self, step: str) -> bool:
        """True when ``step`` already took effect for the current saga."""
        return await self.ledger.has(current_saga_id(), step, "do")

    async def undo(self, step: str) -> None:
        """Undo ``step`` for the current saga; a no-op twice or when it never happened."""
        saga_id = current_saga_id()
        await self._latency()
        if self.rng.random() < self.knobs.compensation_failure_rate:
            raise CompensationError(f"{step}: undo timed out at the remote service")
        # An undo is recorded even without a do: a tombstone, as an idempotency key would.
        await self.ledger.record(saga_id, step, "undo", current_fence())

    async def refund(self, step: str) -> None:
        """Undo a card charge; the gateway may decline it for a while."""
        saga_id = current_saga_id()
        now = time.monotonic()
        until = self._declined_until.get(saga_id)
        if until is None and self.rng.random() < self.knobs.refund_decline_rate:
            until = now + self.knobs.refund_decline_seconds
            self._prune(now)
            self._declined_until[saga_id] = until
        if until is not None and now < until:
            await self._latency()
            raise RefundDeclinedError(
                f"{step}: the card gateway declined the refund (card closed); retry later"
            )
        await self.undo(step)

    def _prune(self, now: float) -> None:
        if len(self._declined_until) > 10_000:
            self._declined_until = {k: v for k, v in self._declined_until.items() if v > now}

    def notify(self) -> None:
        """Count a customer notification sent by an event handler."""
        self.notifications += 1


C = typing.TypeVar("C", bound=SagaContext)
R = typing.TypeVar("R")


class ServiceStep(SagaStepHandler[C, R]):
    """A step handler that talks to the fake services under its own class name."""

    error: typing.ClassVar[type[ServiceError]] = ServiceError

    def __init__(self, services: FakeServices) -> None:
        self.services = services

    @property
    def name(self) -> str:
        """The step name, as logged by the engine and keyed in the ledger."""
        return type(self).__name__

    async def do(self, message: str) -> None:
        """Perform this step at the fake service."""
        await self.services.perform(self.name, self.error, message)

    async def compensate(self, context: C) -> None:
        """Undo this step at the fake service (idempotent, tolerates a missing act)."""
        await self.services.undo(self.name)


class ServicesContainer:
    """Resolves handlers by passing them the shared fake services."""

    def __init__(self, services: FakeServices) -> None:
        self.services = services

    async def resolve(self, type_: type[typing.Any]) -> typing.Any:
        """A handler instance wired to the services."""
        return type_(self.services)
