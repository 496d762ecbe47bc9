"""The event outbox of MemorySagaStorage: event rows in a list, applied with checkpoints."""

from __future__ import annotations

import datetime
import time
import typing
import uuid

from engine.saga.storage.outbox import (
    EventClaim,
    EventCounts,
    EventOutbox,
    EventOutcome,
    EventState,
    StoredEvent,
)
from engine.saga.storage.rows import EVENT_COLUMNS, EventRow

_Row = dict[str, typing.Any]


def _dt(ts: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC)


def deliverable_prefix(rows: typing.Iterable[_Row]) -> list[_Row]:
    """A saga's undelivered rows (in order) up to, not including, its first FAILED one."""
    out = []
    for row in rows:
        if row["state"] == "DELIVERED":
            continue
        if row["state"] == "FAILED":
            break
        out.append(row)
    return out


def live_holder(
    rows: typing.Iterable[_Row], owner: str, now: float, steal_from: str | None
) -> str | None:
    """Another owner whose claim on one of ``rows`` is still live at ``now``, if any."""
    for row in rows:
        holder = row["claim_owner"]
        if holder is None or holder in (owner, steal_from):
            continue
        if row["claim_expires"] is not None and row["claim_expires"] >= now:
            return typing.cast(str, holder)
    return None


class MemoryEventOutbox(EventOutbox):
    """Stored events of a MemorySagaStorage; ``_store_events`` is called by its ``apply``."""

    supports_events = True
    _event_list: list[_Row]
    _events_of: dict[int, list[_Row]]

    def _init_events(self) -> None:
        self._event_list = []
        self._events_of = {}

    def _saga_name(self, saga_id: uuid.UUID) -> str:
        rows = typing.cast(dict[int, _Row], getattr(self, "_rows", {}))
        row = rows.get(saga_id.int)
        return str(row["name"]) if row else ""

    def _store_events(self, saga_id: uuid.UUID, rows: typing.Sequence[EventRow]) -> None:
        mine = self._events_of.setdefault(saga_id.int, [])
        for values in rows:
            row = dict(zip(EVENT_COLUMNS, values, strict=True))
            row["id"] = len(self._event_list) + 1
            row["saga_id"] = saga_id
            self._event_list.append(row)
            mine.append(row)

    def _holds_events(self, saga_id: uuid.UUID, state: str) -> bool:
        return any(row["state"] == state for row in self._events_of.get(saga_id.int, ()))

    def _stored(self, row: _Row) -> StoredEvent:
        delivered = row["delivered_at"]
        return StoredEvent(
            id=row["id"],
            saga_id=row["saga_id"],
            event_id=row["event_id"],
            step_name=row["step_name"],
            kind=row["kind"],
            event_type=row["event_type"],
            event_name=row["event_name"],
            payload=dict(row["payload"]),
            state=EventState(row["state"]),
            attempts=row["attempts"],
            last_error=row["last_error"],
            created_at=_dt(row["created_at"]),
            updated_at=_dt(row["updated_at"]),
            delivered_at=_dt(delivered) if delivered is not None else None,
            claim_owner=row["claim_owner"],
            claim_expires=row["claim_expires"],
            saga_name=self._saga_name(row["saga_id"]),
        )

    def _touch(self) -> None:
        self._changes: int = getattr(self, "_changes", 0) + 1

    async def claim_events(
        self,
        saga_id: uuid.UUID,
        owner: str,
        expires: float,
        *,
        now: float,
        steal_from: str | None = None,
    ) -> EventClaim:
        """Claim the saga's deliverable events unless another live owner has one."""
        take = deliverable_prefix(self._events_of.get(saga_id.int, ()))
        holder = live_holder(take, owner, now, steal_from)
        if holder is not None:
            return EventClaim([], holder)
        for row in take:
            row["claim_owner"], row["claim_expires"] = owner, expires
        if take:
            self._touch()
        return EventClaim([self._stored(row) for row in take])

    async def finish_events(
        self, saga_id: uuid.UUID, owner: str, outcomes: typing.Sequence[EventOutcome]
    ) -> None:
        """Record each outcome on the events ``owner`` still claims; release the rest."""
        now = time.time()
        by_id = {o.event_id: o for o in outcomes}
        for row in self._events_of.get(saga_id.int, ()):
            if row["claim_owner"] != owner:
                continue
            outcome = by_id.get(row["event_id"])
            if outcome is not None and row["state"] == "PENDING":
                row["attempts"] += outcome.attempts
                row["last_error"] = outcome.error
                row["updated_at"] = now
                row["state"] = "DELIVERED" if outcome.delivered else "FAILED"
                if outcome.delivered:
                    row["delivered_at"] = now
            row["claim_owner"] = row["claim_expires"] = None
        self._touch()

    async def release_events(self, saga_id: uuid.UUID, owner: str) -> None:
        """Give back ``owner``'s claims on the saga's events."""
        await self.finish_events(saga_id, owner, ())

    async def retry_failed_events(self, saga_id: uuid.UUID) -> int:
        """FAILED -> PENDING for one saga."""
        count = 0
        for row in self._events_of.get(saga_id.int, ()):
            if row["state"] == "FAILED":
                row["state"] = "PENDING"
                row["claim_owner"] = row["claim_expires"] = None
                row["updated_at"] = time.time()
                count += 1
        self._touch()
        return count

    async def saga_events(self, saga_id: uuid.UUID) -> list[StoredEvent]:
        """One saga's events, oldest first."""
        return [self._stored(row) for row in self._events_of.get(saga_id.int, ())]

    async def event_counts(self) -> EventCounts:
        """PENDING and FAILED counts."""
        states = [row["state"] for row in self._event_list]
        return EventCounts(pending=states.count("PENDING"), failed=states.count("FAILED"))

    async def sagas_with_events(self, state: EventState, limit: int = 1000) -> list[uuid.UUID]:
        """Sagas with events in ``state``, by their oldest such event."""
        out: dict[uuid.UUID, None] = {}
        for row in self._event_list:
            if row["state"] == state.value:
                out.setdefault(row["saga_id"], None)
                if len(out) >= limit:
                    break
        return list(out)

    async def list_events(
        self, states: typing.Sequence[EventState] = (), limit: int = 1000
    ) -> list[StoredEvent]:
        """Events of ``states`` (all when empty), newest first."""
        wanted = {s.value for s in states}
        rows = [r for r in reversed(self._event_list) if not wanted or r["state"] in wanted]
        return [self._stored(row) for row in rows[:limit]]
