"""The headless event commands: ``events`` (the outbox) and ``redeliver`` (FAILED events).

Exit codes as the other commands: 0 done, 1 an action failed (an event failed again).
"""

from __future__ import annotations

import typing

from engine.saga.mediator import SagaMediator
from engine.saga.outbox import DeliveryReport
from engine.saga.storage.outbox import EventState
from engine.saga.storage.protocol import ISagaStorage
from saga_tui import textout
from saga_tui.events_text import event_json, event_line, report_text
from saga_tui.headless import REASON, resolve_ids

EXIT_OK, EXIT_FAILED = 0, 1

Out = typing.Callable[[str], None]


async def events_command(
    storage: ISagaStorage,
    out: Out,
    *,
    failed: bool = False,
    limit: int = 50,
    as_json: bool = False,
) -> int:
    """Print the newest stored events (only FAILED ones with ``failed``)."""
    states = (EventState.FAILED,) if failed else ()
    events = await storage.list_events(states, limit)
    if as_json:
        out(textout.dumps([event_json(e) for e in events]))
        return EXIT_OK
    if not events:
        out("no failed events" if failed else "no events")
        return EXIT_OK
    for event in events:
        out(event_line(event))
    if len(events) == limit:
        out(f"(newest {limit} shown; --limit shows more)")
    return EXIT_OK


def _report_json(saga_id: typing.Any, report: DeliveryReport) -> dict[str, typing.Any]:
    return {
        "id": str(saga_id),
        "delivered": report.delivered,
        "failed": report.failed,
        "waiting": report.waiting,
        "busy": bool(report.busy),
        "ok": _ok(report),
    }


def _ok(report: DeliveryReport) -> bool:
    return not (report.failed or report.waiting or report.busy)


async def redeliver_command(
    mediator: SagaMediator,
    out: Out,
    idents: typing.Sequence[str],
    *,
    as_json: bool = False,
) -> int:
    """Redeliver the FAILED events of sagas (and the events held back behind them)."""
    ids = await resolve_ids(mediator.storage, idents)
    reports = []
    for saga_id in ids:
        reports.append((saga_id, await mediator.redeliver_events(saga_id, reason=REASON)))
    if as_json:
        out(textout.dumps([_report_json(saga_id, report) for saga_id, report in reports]))
    else:
        for saga_id, report in reports:
            out(f"{saga_id}  redeliver  {report_text(report)}")
    return EXIT_OK if all(_ok(report) for _, report in reports) else EXIT_FAILED


async def deliver_pending_command(mediator: SagaMediator, out: Out, *, as_json: bool) -> None:
    """Deliver what dead processes left PENDING (after ``recover --stale``); one line."""
    total = DeliveryReport()
    while True:
        report = await mediator.deliver_events()
        total.add(report)
        if not report.delivered:
            break
    if not as_json and (total.delivered or total.failed):
        out(f"events  {report_text(total)}")
