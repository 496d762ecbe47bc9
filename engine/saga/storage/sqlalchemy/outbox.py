"""The event outbox in SQL: claims and outcomes as Core writes, and the readers' queries.

Claims run in the storage's writer (one transaction each; SQLite's BEGIN IMMEDIATE, or
row locks with FOR UPDATE elsewhere), so two processes never claim one event at once.
"""

from __future__ import annotations

import json
import typing
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.saga.storage.memory_outbox import deliverable_prefix, live_holder
from engine.saga.storage.outbox import (
    EventClaim,
    EventCounts,
    EventOutbox,
    EventOutcome,
    EventState,
    StoredEvent,
)
from engine.saga.storage.sqlalchemy import db_values
from engine.saga.storage.sqlalchemy.schema import saga_events, saga_executions

R = typing.TypeVar("R")

_E = saga_events.c
EVENT_SELECT = (
    _E.id,
    _E.saga_id,
    _E.event_id,
    _E.step_name,
    _E.kind,
    _E.event_type,
    _E.event_name,
    sa.type_coerce(_E.payload, sa.Text).label("payload"),
    _E.state,
    _E.attempts,
    _E.last_error,
    _E.created_at,
    _E.updated_at,
    _E.delivered_at,
    _E.claim_owner,
    _E.claim_expires,
)


def _payload(raw: typing.Any) -> dict[str, typing.Any] | None:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_event(row: typing.Any, saga_name: str = "") -> StoredEvent:
    """One selected row (EVENT_SELECT) as a StoredEvent."""
    return StoredEvent(
        id=row.id,
        saga_id=row.saga_id,
        event_id=row.event_id,
        step_name=row.step_name,
        kind=row.kind,
        event_type=row.event_type,
        event_name=row.event_name,
        payload=_payload(row.payload),
        state=EventState(row.state),
        attempts=row.attempts,
        last_error=row.last_error,
        created_at=db_values.time_from_db(row.created_at),
        updated_at=db_values.time_from_db(row.updated_at),
        delivered_at=db_values.maybe_time(row.delivered_at),
        claim_owner=row.claim_owner,
        claim_expires=row.claim_expires,
        saga_name=saga_name,
    )


# ---- writes (sync Connection, inside the writer's transaction) ------------------------


def claim_events(
    conn: sa.Connection,
    saga_id: uuid.UUID,
    owner: str,
    expires: float,
    now: float,
    steal_from: str | None,
) -> EventClaim:
    """Claim the saga's PENDING events before its first FAILED one, unless one is held."""
    query = (
        sa.select(*EVENT_SELECT)
        .where(_E.saga_id == saga_id, _E.state != EventState.DELIVERED.value)
        .order_by(_E.id)
    )
    if conn.dialect.name != "sqlite":
        query = query.with_for_update()
    rows = [row._asdict() for row in conn.execute(query)]
    take = deliverable_prefix(rows)
    holder = live_holder(take, owner, now, steal_from)
    if holder is not None:
        return EventClaim([], holder)
    if not take:
        return EventClaim([])
    conn.execute(
        sa.update(saga_events)
        .where(_E.id.in_([row["id"] for row in take]))
        .values(claim_owner=owner, claim_expires=expires)
    )
    for row in take:
        row["claim_owner"], row["claim_expires"] = owner, expires
    return EventClaim([read_event(_Attrs(row)) for row in take])


class _Attrs:
    """A dict read by attribute, as read_event reads a Row."""

    def __init__(self, values: dict[str, typing.Any]) -> None:
        self.__dict__.update(values)


_FINISH = (
    sa.update(saga_events)
    .where(
        _E.saga_id == sa.bindparam("s"),
        _E.claim_owner == sa.bindparam("o"),
        _E.event_id == sa.bindparam("e"),
        _E.state == EventState.PENDING.value,
    )
    .values(
        state=sa.bindparam("st"),
        attempts=_E.attempts + sa.bindparam("n"),
        last_error=sa.bindparam("err"),
        updated_at=sa.bindparam("now"),
        delivered_at=sa.bindparam("at"),
        claim_owner=None,
        claim_expires=None,
    )
)
_RELEASE = (
    sa.update(saga_events)
    .where(_E.saga_id == sa.bindparam("s"), _E.claim_owner == sa.bindparam("o"))
    .values(claim_owner=None, claim_expires=None)
)
# The same two statements in SQLite's words, run on the writer's driver connection: this
# is the one write a step with events adds, so it is as cheap as a checkpoint's.
_FINISH_SQLITE = (
    "UPDATE saga_events SET state = ?, attempts = attempts + ?, last_error = ?,"
    " updated_at = ?, delivered_at = ?, claim_owner = NULL, claim_expires = NULL"
    " WHERE saga_id = ? AND claim_owner = ? AND event_id = ? AND state = 'PENDING'"
)
_RELEASE_SQLITE = (
    "UPDATE saga_events SET claim_owner = NULL, claim_expires = NULL"
    " WHERE saga_id = ? AND claim_owner = ?"
)


def finish_events(
    conn: sa.Connection,
    saga_id: uuid.UUID,
    owner: str,
    outcomes: typing.Sequence[EventOutcome],
) -> None:
    """Record outcomes on events ``owner`` still claims, then release its other claims."""
    now = db_values.utcnow()

    def state(outcome: EventOutcome) -> str:
        return (EventState.DELIVERED if outcome.delivered else EventState.FAILED).value

    if conn.dialect.name == "sqlite":
        raw = conn.connection.driver_connection
        assert raw is not None
        text, hex_id = db_values.time_to_db(now), db_values.uuid_to_db(saga_id)
        if outcomes:
            raw.executemany(
                _FINISH_SQLITE,
                [
                    (
                        state(o),
                        o.attempts,
                        o.error,
                        text,
                        text if o.delivered else None,
                        hex_id,
                        owner,
                        db_values.uuid_to_db(o.event_id),
                    )
                    for o in outcomes
                ],
            )
        raw.execute(_RELEASE_SQLITE, (hex_id, owner))
        return
    if outcomes:
        conn.execute(
            _FINISH,
            [
                {
                    "s": saga_id,
                    "o": owner,
                    "e": o.event_id,
                    "st": state(o),
                    "n": o.attempts,
                    "err": o.error,
                    "now": now,
                    "at": now if o.delivered else None,
                }
                for o in outcomes
            ],
        )
    conn.execute(_RELEASE, {"s": saga_id, "o": owner})


def retry_failed_events(conn: sa.Connection, saga_id: uuid.UUID) -> int:
    """FAILED -> PENDING for one saga (an operator's redelivery)."""
    result = conn.execute(
        sa.update(saga_events)
        .where(_E.saga_id == saga_id, _E.state == EventState.FAILED.value)
        .values(
            state=EventState.PENDING.value,
            claim_owner=None,
            claim_expires=None,
            updated_at=db_values.utcnow(),
        )
    )
    return int(result.rowcount)


# ---- reads (AsyncConnection) ----------------------------------------------------------


def holds_events(state: str) -> sa.ColumnElement[bool]:
    """Sagas holding events in ``state``: a range of the (state, saga_id) index."""
    held = sa.select(_E.saga_id).where(_E.state == state)
    return saga_executions.c.id.in_(held)


async def saga_events_of(conn: AsyncConnection, saga_id: uuid.UUID) -> list[StoredEvent]:
    """One saga's events, oldest first."""
    result = await conn.execute(
        sa.select(*EVENT_SELECT, saga_executions.c.name)
        .join(saga_executions, saga_executions.c.id == _E.saga_id)
        .where(_E.saga_id == saga_id)
        .order_by(_E.id)
    )
    return [read_event(row, row.name) for row in result]


async def event_counts(conn: AsyncConnection) -> EventCounts:
    """PENDING and FAILED counts (an index range on state each)."""
    result = await conn.execute(
        sa.select(_E.state, sa.func.count())
        .where(_E.state.in_((EventState.PENDING.value, EventState.FAILED.value)))
        .group_by(_E.state)
    )
    counts: dict[str, int] = {state: n for state, n in result.all()}
    return EventCounts(pending=counts.get("PENDING", 0), failed=counts.get("FAILED", 0))


async def sagas_with_events(
    conn: AsyncConnection, state: EventState, limit: int
) -> list[uuid.UUID]:
    """Sagas with events in ``state``, the one with the oldest such event first."""
    first = sa.func.min(_E.id).label("first")
    result = await conn.execute(
        sa.select(_E.saga_id, first)
        .where(_E.state == state.value)
        .group_by(_E.saga_id)
        .order_by(first)
        .limit(limit)
    )
    return [row.saga_id for row in result]


async def list_events(
    conn: AsyncConnection, states: typing.Sequence[EventState], limit: int
) -> list[StoredEvent]:
    """Events of ``states`` (all when empty), newest first."""
    query = sa.select(*EVENT_SELECT, saga_executions.c.name).join(
        saga_executions, saga_executions.c.id == _E.saga_id
    )
    if states:
        query = query.where(_E.state.in_([s.value for s in states]))
    result = await conn.execute(query.order_by(_E.id.desc()).limit(limit))
    return [read_event(row, row.name) for row in result]


# ---- the storage side -------------------------------------------------------------------


class _Storage(typing.Protocol):
    async def _write(self, job: typing.Callable[[sa.Connection], R]) -> R: ...

    async def _read(
        self, fn: typing.Callable[..., typing.Awaitable[R]], *args: typing.Any
    ) -> R: ...


class SqlEventOutbox(EventOutbox):
    """EventOutbox for SqlAlchemySagaStorage: writes through its writer, reads pooled."""

    supports_events = True

    async def claim_events(
        self,
        saga_id: uuid.UUID,
        owner: str,
        expires: float,
        *,
        now: float,
        steal_from: str | None = None,
    ) -> EventClaim:
        """Claim the saga's deliverable events in one write transaction."""
        store = typing.cast(_Storage, self)
        return await store._write(
            lambda c: claim_events(c, saga_id, owner, expires, now, steal_from)
        )

    async def finish_events(
        self, saga_id: uuid.UUID, owner: str, outcomes: typing.Sequence[EventOutcome]
    ) -> None:
        """Record outcomes and release the claims in one write transaction."""
        store = typing.cast(_Storage, self)
        await store._write(lambda c: finish_events(c, saga_id, owner, outcomes))

    async def release_events(self, saga_id: uuid.UUID, owner: str) -> None:
        """Give back ``owner``'s claims on the saga's events."""
        await self.finish_events(saga_id, owner, ())

    async def retry_failed_events(self, saga_id: uuid.UUID) -> int:
        """FAILED -> PENDING for one saga."""
        store = typing.cast(_Storage, self)
        return await store._write(lambda c: retry_failed_events(c, saga_id))

    async def saga_events(self, saga_id: uuid.UUID) -> list[StoredEvent]:
        """One saga's events, oldest first."""
        return await _tolerant(self, saga_events_of, [], saga_id)

    async def event_counts(self) -> EventCounts:
        """PENDING and FAILED counts."""
        return await _tolerant(self, event_counts, EventCounts())

    async def sagas_with_events(self, state: EventState, limit: int = 1000) -> list[uuid.UUID]:
        """Sagas with events in ``state``."""
        return await _tolerant(self, sagas_with_events, [], state, limit)

    async def list_events(
        self, states: typing.Sequence[EventState] = (), limit: int = 1000
    ) -> list[StoredEvent]:
        """Events of ``states``, newest first."""
        return await _tolerant(self, list_events, [], tuple(states), limit)


async def _tolerant(
    storage: typing.Any,
    fn: typing.Callable[..., typing.Awaitable[R]],
    empty: R,
    *args: typing.Any,
) -> R:
    """Read; a database opened read-only that predates the outbox table has no events."""
    try:
        return typing.cast(R, await typing.cast(_Storage, storage)._read(fn, *args))
    except sa.exc.DBAPIError as exc:
        missing = "no such table" in str(exc) or "does not exist" in str(exc)
        if missing and getattr(storage, "read_only", False):
            return empty
        raise
