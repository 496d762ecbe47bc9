"""Stored events as text and JSON, for the command line and the saga detail (no Rich).

Every value from the database goes through :func:`clean` before it reaches a terminal.
"""

from __future__ import annotations

import typing

from engine.saga.outbox import DeliveryReport
from engine.saga.storage.outbox import EventCounts, EventState, StoredEvent
from saga_tui.textfmt import clean, iso, short_id, timestamp

STATE_MARK = {EventState.PENDING: "…", EventState.DELIVERED: "✓", EventState.FAILED: "✗"}


def event_json(event: StoredEvent) -> dict[str, typing.Any]:
    """One stored event for ``--json``."""
    return {
        "id": event.id,
        "saga_id": str(event.saga_id),
        "saga": event.saga_name,
        "event_id": str(event.event_id),
        "step": event.step_name,
        "kind": event.kind,
        "type": event.event_type,
        "name": event.event_name,
        "state": event.state.name,
        "attempts": event.attempts,
        "last_error": event.last_error,
        "created_at": iso(event.created_at),
        "delivered_at": iso(event.delivered_at),
        "payload": event.payload,
    }


def event_line(event: StoredEvent, *, with_saga: bool = True) -> str:
    """One event on one line: saga, state, step, name, tries and the last error."""
    parts = []
    if with_saga:
        parts.append(f"{short_id(event.saga_id)}  {clean(event.saga_name)}")
    parts.append(f"{STATE_MARK[event.state]} {event.state.name:<9}")
    parts.append(f"{clean(event.step_name)} → {clean(event.event_name)}")
    parts.append("1 try" if event.attempts == 1 else f"{event.attempts} tries")
    parts.append(timestamp(event.delivered_at or event.updated_at, millis=True))
    line = "  ".join(parts)
    if event.last_error and event.state is not EventState.DELIVERED:
        line += f"  {clean(event.last_error)}"
    return line


def counts_text(counts: EventCounts) -> str:
    """The header's event counts (``events: 2 pending, ✗ 1 failed``); empty when none."""
    parts = []
    if counts.pending:
        parts.append(f"{counts.pending:,} pending")
    if counts.failed:
        parts.append(f"✗ {counts.failed:,} failed")
    return "events: " + ", ".join(parts) if parts else ""


def report_text(report: DeliveryReport) -> str:
    """What a delivery pass did, in one line."""
    text = f"{report.delivered} delivered, {report.failed} failed"
    if report.waiting:
        text += f", {report.waiting} waiting"
    if report.busy:
        text += ", busy in another process"
    return text
