"""Events through the outbox: staged into a step's COMPLETED checkpoint, delivered after.

* ``stage``: a step's domain and notification events become ``EventWrite`` rows of the
  step's COMPLETED checkpoint, so they are durable exactly when the step is;
* ``deliver``: right after that commit the same process hands the very objects to the
  EventMap handlers and the broker, as before there was an outbox, and records it;
* ``deliver_saga`` / ``deliver_pending``: any process claims a saga's PENDING events (as
  runners claim sagas: owner and expiry, a dead owner's claim may be taken), rebuilds
  them from their stored payload and delivers them in order.

A delivery that fails is tried again with backoff (``event_retry_count`` tries) and then
marked FAILED; the saga's later events wait behind it, PENDING, so a saga's events are
always delivered in order. ``retry_failed`` (an operator) makes FAILED events PENDING
again and delivers them.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import typing
import uuid
import weakref

from engine.events.emitter import EventEmitter
from engine.events.models import DomainEvent, Event, NotificationEvent
from engine.message_brokers.protocol import Message
from engine.saga.lease import owner_is_dead, process_owner_id
from engine.saga.secrets import get_logger
from engine.saga.settings import RunSettings
from engine.saga.storage.outbox import EventOutcome, EventState, EventWrite, StoredEvent
from engine.saga.storage.protocol import ISagaStorage

logger = get_logger("engine.events")

_ERROR_CAP = 2000

# Saga ids whose events a task of this process is delivering right now, per storage: a
# process's claims all carry its one owner id, so this set keeps two of its own tasks
# from delivering one saga's events at once.
_DELIVERING: weakref.WeakKeyDictionary[typing.Any, set[uuid.UUID]] = weakref.WeakKeyDictionary()


def _busy_here(storage: ISagaStorage) -> set[uuid.UUID]:
    busy = _DELIVERING.get(storage)
    if busy is None:
        busy = _DELIVERING[storage] = set()
    return busy


class OutboxRun(typing.Protocol):
    """What staging and delivering need of a saga run (``SagaRun`` provides it)."""

    saga_id: uuid.UUID
    owner: str
    events_clear: bool


@dataclasses.dataclass(slots=True)
class DeliveryReport:
    """What one delivery pass did."""

    delivered: int = 0
    failed: int = 0
    busy: int = 0
    """Sagas whose events another live process (or task) was delivering."""
    waiting: int = 0
    """Events left PENDING: behind a FAILED one, or of a type this process does not know."""
    last_delivered: uuid.UUID | None = None
    """The event id of the last event delivered in this pass."""

    def add(self, other: DeliveryReport) -> None:
        """Sum another report into this one."""
        self.delivered += other.delivered
        self.failed += other.failed
        self.busy += other.busy
        self.waiting += other.waiting
        self.last_delivered = other.last_delivered or self.last_delivered


def event_type_name(event_type: type) -> str:
    """How an event's class is stored: ``module.QualName``."""
    return f"{event_type.__module__}.{event_type.__qualname__}"


def _error_text(exc: BaseException) -> str:
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:
        text = type(exc).__name__
    return text[:_ERROR_CAP]


class EventDelivery:
    """Stages a run's events into its checkpoints and delivers stored events."""

    def __init__(
        self,
        emitter: EventEmitter,
        storage: ISagaStorage,
        settings: RunSettings,
        *,
        lease_seconds: float,
        retry_count: int = 3,
        retry_delay: float = 0.5,
        retry_backoff: float = 2.0,
    ) -> None:
        self.emitter = emitter
        self.storage = storage
        self.settings = settings
        self.retry_count = max(1, retry_count)
        self.retry_delay = retry_delay
        self.retry_backoff = retry_backoff
        waits = sum(retry_delay * retry_backoff**i for i in range(self.retry_count - 1))
        # A claim outlives every retry of one event, with a lease's slack on top.
        self.claim_seconds = lease_seconds + waits

    @property
    def owner(self) -> str:
        """Who this process's claims are held by (its lease owner id)."""
        return process_owner_id()

    # ---- the run's side: stage with the checkpoint, deliver after its commit -------------

    def stage(
        self, run: OutboxRun, step_name: str, events: typing.Sequence[Event]
    ) -> tuple[EventWrite, ...]:
        """The outbox rows of a step's events (none when the storage keeps no events).

        Claimed by the run's owner when every earlier event of the saga is delivered, so
        the run delivers them at once; else left for ``deliver_saga`` to take in order.
        """
        if not self.storage.supports_events:
            return ()
        expires = time.time() + self.claim_seconds if run.events_clear else None
        writes = []
        for event in events:
            if isinstance(event, NotificationEvent):
                kind: typing.Literal["domain", "notification"] = "notification"
                name, event_id = event.event_name, event.event_id
            elif isinstance(event, DomainEvent):
                kind, name, event_id = "domain", type(event).__name__, uuid.uuid4()
            else:
                continue  # neither kind has anywhere to go (as the emitter skips it)
            writes.append(
                EventWrite(
                    event_id,
                    step_name,
                    kind,
                    event_type_name(type(event)),
                    name,
                    event.to_dict(),
                    expires,
                )
            )
        return tuple(writes)

    async def deliver(
        self,
        run: OutboxRun,
        events: typing.Sequence[Event],
        staged: tuple[EventWrite, ...],
    ) -> None:
        """Deliver a step's events right after their checkpoint committed."""
        if not self.storage.supports_events:
            await self.emitter.emit_all(events)  # no outbox: handed over directly
            return
        if not staged:
            return
        if staged[0].claim_expires is None:
            try:
                report = await self.deliver_saga(run.saga_id, owner=run.owner)
            except Exception:
                # The step is done and its events are stored: they wait for a redelivery.
                logger.warning("delivering the events of %s failed", run.saga_id, exc_info=True)
                run.events_clear = False
                return
            # Delivered up to this step's last event: nothing of the saga is left behind.
            run.events_clear = report.last_delivered == staged[-1].event_id
            return
        # The staged objects themselves, in order; the same pairing stage() made.
        objects = [e for e in events if isinstance(e, NotificationEvent | DomainEvent)]
        outcomes: list[EventOutcome] = []
        for event, write in zip(objects, staged, strict=True):
            outcome = await self._try(write.event_id, functools.partial(self._hand_over, event))
            outcomes.append(outcome)
            if not outcome.delivered:
                run.events_clear = False
                break
        try:
            await self.storage.finish_events(run.saga_id, run.owner, outcomes)
        except Exception:
            # Unrecorded, the events stay claimed until the claim expires and are then
            # delivered again: at least once.
            logger.warning("recording the events of %s failed", run.saga_id, exc_info=True)
            run.events_clear = False

    async def _hand_over(self, event: Event) -> None:
        if isinstance(event, NotificationEvent):
            await self.emitter.publish(_message(event.to_dict()))
        else:
            await self.emitter.deliver(event)

    async def _try(
        self, event_id: uuid.UUID, attempt: typing.Callable[[], typing.Awaitable[None]]
    ) -> EventOutcome:
        """Up to ``retry_count`` tries with backoff; the outcome to record."""
        delay = self.retry_delay
        error: str | None = None
        for tried in range(1, self.retry_count + 1):
            try:
                await attempt()
            except Exception as exc:
                error = _error_text(exc)
                logger.warning("event %s: delivery %d failed: %s", event_id, tried, error)
            else:
                return EventOutcome(event_id, True, tried, error)
            if tried < self.retry_count:
                await self.settings.sleep(delay)
                delay *= self.retry_backoff
        return EventOutcome(event_id, False, self.retry_count, error)

    # ---- any process: claim a saga's stored events and deliver them -----------------------

    async def deliver_saga(self, saga_id: uuid.UUID, *, owner: str | None = None) -> DeliveryReport:
        """Claim the saga's PENDING events (up to its first FAILED one) and deliver them."""
        report = DeliveryReport()
        busy = _busy_here(self.storage)
        if saga_id in busy:
            report.busy = 1
            return report
        owner = owner or self.owner
        busy.add(saga_id)
        try:
            now = time.time()
            claim = await self.storage.claim_events(
                saga_id, owner, now + self.claim_seconds, now=now
            )
            if claim.holder is not None and owner_is_dead(claim.holder):
                claim = await self.storage.claim_events(
                    saga_id, owner, now + self.claim_seconds, now=now, steal_from=claim.holder
                )
            if claim.holder is not None:
                report.busy = 1
                return report
            outcomes: list[EventOutcome] = []
            for index, stored in enumerate(claim.events):
                attempt = self._redelivery(stored)
                if attempt is None:
                    report.waiting += len(claim.events) - index
                    break
                outcome = await self._try(stored.event_id, attempt)
                outcomes.append(outcome)
                if not outcome.delivered:
                    report.failed += 1
                    report.waiting += len(claim.events) - index - 1
                    break
                report.delivered += 1
                report.last_delivered = stored.event_id
            if claim.events:
                await self.storage.finish_events(saga_id, owner, outcomes)
            return report
        finally:
            busy.discard(saga_id)

    def _redelivery(
        self, stored: StoredEvent
    ) -> typing.Callable[[], typing.Awaitable[None]] | None:
        """How to hand a stored event over again; None when this process cannot."""
        payload = stored.payload
        if payload is None:
            return None
        if stored.kind == "notification":
            message = _message(payload)
            return lambda: self.emitter.publish(message)
        event_type = self._domain_type(stored.event_type)
        if event_type is None:
            return None
        event = event_type.model_validate(payload)
        return lambda: self.emitter.deliver(event)

    def _domain_type(self, name: str) -> type[DomainEvent] | None:
        """The registered class a stored domain event names; None when this process has none.

        Only classes of this process's EventMap are considered (a database row never makes
        it import anything). A class of a module run as a script was stored as
        ``__main__.Name``: a registered class of that name, when only one has it, is taken.
        """
        registered = [t for t in self.emitter.event_map if issubclass(t, DomainEvent)]
        for event_type in registered:
            if event_type_name(event_type) == name:
                return event_type
        short = name.rpartition(".")[2]
        same = [t for t in registered if t.__qualname__.rpartition(".")[2] == short]
        return same[0] if len(same) == 1 else None

    async def deliver_pending(
        self, *, limit: int = 1000, skip: typing.Collection[uuid.UUID] = ()
    ) -> DeliveryReport:
        """Deliver the PENDING events of up to ``limit`` sagas, each saga's in order.

        The redelivery loop's one pass: events left by a process that died after its
        checkpoint, or held back behind a FAILED event that became PENDING again.
        ``skip`` names sagas a run of this process is executing (it delivers them).
        """
        report = DeliveryReport()
        if not self.storage.supports_events:
            return report
        for saga_id in await self.storage.sagas_with_events(EventState.PENDING, limit):
            if saga_id in skip:
                continue
            report.add(await self.deliver_saga(saga_id))
        return report

    async def retry_failed(self, saga_id: uuid.UUID) -> DeliveryReport:
        """An operator's redelivery: the saga's FAILED events PENDING again, then delivered."""
        if not self.storage.supports_events:
            return DeliveryReport()
        await self.storage.retry_failed_events(saga_id)
        return await self.deliver_saga(saga_id)


def _message(payload: dict[str, typing.Any]) -> Message:
    """The broker message of a notification event, from its ``to_dict`` form."""
    raw_id = payload.get("event_id")
    message_id = uuid.UUID(str(raw_id)) if raw_id else uuid.uuid4()
    return Message(
        message_name=str(payload.get("event_name", "")),
        topic=str(payload.get("topic", "")),
        payload=payload,
        message_id=message_id,
    )
