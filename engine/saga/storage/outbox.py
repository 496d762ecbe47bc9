"""The event outbox of a storage: the events a step produced, stored with its checkpoint.

A step's events are written in the same transaction as its COMPLETED checkpoint (see
``Checkpoint.events``), then delivered; each stored event is PENDING until a delivery
succeeded (DELIVERED) or ran out of tries (FAILED). A deliverer claims a saga's events
the way a runner claims a saga (owner, expiry; a dead owner's claim may be taken), so
two processes never deliver them at once.

``EventOutbox`` is the storage side; a storage that does not implement it (a
python-cqrs style one) keeps ``supports_events`` False and events are handed to their
handlers directly, as before there was an outbox.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import typing
import uuid


class EventState(enum.Enum):
    """Where a stored event is: waiting, handed over, or out of tries."""

    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


EventKind = typing.Literal["domain", "notification"]


@dataclasses.dataclass(frozen=True, slots=True)
class EventWrite:
    """An event to store as part of a checkpoint.

    ``claim_expires`` set: the event is stored claimed by the checkpoint's owner until
    then, since that process delivers it right after the commit.
    """

    event_id: uuid.UUID
    step_name: str
    kind: EventKind
    event_type: str
    event_name: str
    payload: dict[str, typing.Any]
    claim_expires: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class StoredEvent:
    """One stored event, as readers and deliverers see it."""

    id: int
    saga_id: uuid.UUID
    event_id: uuid.UUID
    step_name: str
    kind: str
    event_type: str
    event_name: str
    payload: dict[str, typing.Any] | None
    state: EventState
    attempts: int
    last_error: str | None
    created_at: datetime.datetime
    updated_at: datetime.datetime
    delivered_at: datetime.datetime | None = None
    claim_owner: str | None = None
    claim_expires: float | None = None
    saga_name: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class EventOutcome:
    """What one delivery did to one claimed event."""

    event_id: uuid.UUID
    delivered: bool
    attempts: int
    error: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class EventCounts:
    """How many stored events wait and how many ran out of tries."""

    pending: int = 0
    failed: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class EventClaim:
    """The result of claiming a saga's deliverable events.

    ``events`` are claimed, oldest first, up to (not past) the saga's first FAILED event;
    ``holder`` names the live owner that has them when the claim was refused.
    """

    events: list[StoredEvent]
    holder: str | None = None


class EventOutbox:
    """The outbox part of a storage; every method is overridden where it is supported."""

    supports_events: bool = False

    async def claim_events(
        self,
        saga_id: uuid.UUID,
        owner: str,
        expires: float,
        *,
        now: float,
        steal_from: str | None = None,
    ) -> EventClaim:
        """Claim the saga's PENDING events that come before its first FAILED one.

        Refused (no events, ``holder`` set) while another owner's claim on any of them is
        live at ``now``, unless that owner is ``steal_from`` (verified dead by the caller).
        """
        raise NotImplementedError("this storage keeps no events")

    async def finish_events(
        self, saga_id: uuid.UUID, owner: str, outcomes: typing.Sequence[EventOutcome]
    ) -> None:
        """Record deliveries and give the claims back (only events ``owner`` still claims)."""
        raise NotImplementedError("this storage keeps no events")

    async def release_events(self, saga_id: uuid.UUID, owner: str) -> None:
        """Give back ``owner``'s claims on the saga's events without delivering them."""
        raise NotImplementedError("this storage keeps no events")

    async def retry_failed_events(self, saga_id: uuid.UUID) -> int:
        """Make the saga's FAILED events PENDING again (an operator's redelivery); how many."""
        raise NotImplementedError("this storage keeps no events")

    async def saga_events(self, saga_id: uuid.UUID) -> list[StoredEvent]:
        """Every stored event of one saga, oldest first."""
        return []

    async def event_counts(self) -> EventCounts:
        """How many events are PENDING and how many FAILED."""
        return EventCounts()

    async def sagas_with_events(self, state: EventState, limit: int = 1000) -> list[uuid.UUID]:
        """Sagas holding events in ``state``, the one with the oldest such event first."""
        return []

    async def list_events(
        self, states: typing.Sequence[EventState] = (), limit: int = 1000
    ) -> list[StoredEvent]:
        """Stored events (of the given states, or all), newest first, with saga names."""
        return []
