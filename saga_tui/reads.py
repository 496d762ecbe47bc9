"""The headless read commands: list, show, groups (they never write).

Each returns an exit code and raises UsageError for an id that matches no saga.
"""

from __future__ import annotations

import dataclasses

from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import SagaFilter
from engine.saga.storage.reader import SagaReader
from saga_tui import textout
from saga_tui.events_text import event_json, event_line
from saga_tui.filters import status_hint
from saga_tui.headless import EXIT_OK, Out, resolve_id
from saga_tui.target import UsageError


async def list_command(
    reader: SagaReader,
    out: Out,
    *,
    statuses: tuple[SagaStatus, ...] = (),
    name: str | None = None,
    limit: int = 50,
    as_json: bool = False,
    stranded: bool = False,
    saga_filter: SagaFilter | None = None,
) -> int:
    """Print the newest sagas matching the filter (``stranded``: only those nobody runs)."""
    f = saga_filter or SagaFilter()
    f = dataclasses.replace(
        f,
        statuses=tuple(dict.fromkeys((*f.statuses, *statuses))),
        name=" ".join(n for n in (f.name, name) if n) or None,
        stranded=f.stranded or stranded,
    )
    page = await reader.list_sagas(f, limit=limit)
    if as_json:
        out(textout.dumps([textout.summary_json(s) for s in page.items]))
        return EXIT_OK
    if not page.items:
        meant = status_hint(f)
        out(f"no sagas (the status is --filter {meant})" if meant else "no sagas")
        return EXIT_OK
    for line in textout.table(page.items):
        out(line)
    if page.next_cursor is not None:
        out(f"(newest {len(page.items)} shown; --limit shows more)")
    return EXIT_OK


async def show_command(reader: SagaReader, out: Out, ident: str, *, as_json: bool = False) -> int:
    """Print one saga in full."""
    saga_id = await resolve_id(reader, ident)
    detail = await reader.get_saga(saga_id)
    if detail is None:
        raise UsageError(f"{ident}: no saga with this id")
    # The step's events (the outbox): what was delivered, what waits, what failed.
    events = await reader.saga_events(saga_id)
    if as_json:
        data = textout.detail_json(detail)
        data["events"] = [event_json(e) for e in events]
        out(textout.dumps(data))
    else:
        for line in textout.detail_text(detail):
            out(line)
        if events:
            out("")
            out("Events:")
            for event in events:
                out("  " + event_line(event, with_saga=False))
    return EXIT_OK


async def groups_command(
    reader: SagaReader, out: Out, *, limit: int = 50, as_json: bool = False
) -> int:
    """Print the failure groups: failed, rolled-back and retrying sagas by cause."""
    groups = await reader.failure_groups(limit=limit)
    if as_json:
        out(textout.dumps([textout.group_json(g) for g in groups]))
        return EXIT_OK
    if not groups:
        out("no failure groups: nothing failed, rolled back or retries")
        return EXIT_OK
    for line in textout.groups_table(groups):
        out(line)
    return EXIT_OK
