"""The headless commands that act: recover, compensate, start (list, show, groups: reads).

Each returns an exit code (0 done, 1 an action failed) and raises UsageError for bad
input before any action runs, so a typo never leaves half of a batch done.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import typing
import uuid

from engine.saga.mediator import SagaMediator
from engine.saga.operator import ActionResult
from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import SagaFilter
from engine.saga.storage.reader import SagaReader
from saga_tui import fleet_actions, operations, textout
from saga_tui.context_input import ContextInputError, context_from_json
from saga_tui.examples import example_for
from saga_tui.filters import FilterError, parse_filter, parse_statuses
from saga_tui.ids import id_prefix
from saga_tui.start_tally import StartTally
from saga_tui.target import UsageError
from saga_tui.textfmt import clean, one_line, operator_reason, short_id

EXIT_OK, EXIT_FAILED = 0, 1
REASON = "saga-tui command line"

Out = typing.Callable[[str], None]


# ---- input --------------------------------------------------------------------------


def status_option(values: typing.Sequence[str]) -> tuple[SagaStatus, ...]:
    """Statuses from ``--status`` values (repeated or comma-separated, any case, prefixes)."""
    try:
        return parse_statuses(values)
    except FilterError as exc:
        raise UsageError(f"--status: {exc}") from None


def filter_option(text: str, option: str = "--filter") -> SagaFilter:
    """A filter in the dashboard's syntax (``status:failed name:Order``); exit 2 if wrong."""
    try:
        saga_filter = parse_filter(text)
    except FilterError as exc:
        raise UsageError(f"{option}: {exc}") from None
    if saga_filter.is_empty:
        raise UsageError(f"{option}: the filter matches every saga; say which, e.g. status:failed")
    return saga_filter


async def resolve_id(reader: SagaReader, text: str) -> uuid.UUID:
    """The saga id a full id or a unique prefix names, in any spelling of a UUID.

    32 hex digits as the database stores them, upper case, ``{braces}`` and
    ``urn:uuid:`` all name the same saga as the dashed lower-case form.
    """
    prefix = id_prefix(text)
    if prefix is None:
        raise UsageError(f"{clean(text)}: not a saga id")
    found = await reader.find_ids(prefix, limit=3)
    if not found:
        raise UsageError(f"{prefix}: no saga with this id")
    if len(found) > 1:
        shown = ", ".join(short_id(s) for s in found[:2])
        raise UsageError(
            f"{prefix}: ambiguous id prefix (matches {shown}, ...); give more characters"
        )
    return found[0]


async def resolve_ids(reader: SagaReader, texts: typing.Sequence[str]) -> list[uuid.UUID]:
    """Every id resolved (duplicates dropped), or a UsageError for the first bad one."""
    out: list[uuid.UUID] = []
    for text in texts:
        saga_id = await resolve_id(reader, text)
        if saga_id not in out:
            out.append(saga_id)
    return out


def read_context_option(text: str) -> str:
    """``--context`` as JSON text: itself, or the contents of ``@file``."""
    if not text.startswith("@"):
        return text
    try:
        with open(text[1:], encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise UsageError(f"--context {text}: cannot read ({one_line(exc)})") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"--context {text}: not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from None


def parse_context(saga_name: str, context_type: type, text: str) -> typing.Any:
    """A context of ``context_type`` from JSON text; errors say where."""
    try:
        return context_from_json(saga_name, context_type, text)
    except ContextInputError as exc:
        raise UsageError(f"--context: {exc}") from None


# ---- actions ------------------------------------------------------------------------


def _result_json(result: ActionResult) -> dict[str, typing.Any]:
    return {
        "id": str(result.saga_id),
        "action": result.action,
        "status": result.status.name if result.status else None,
        "requested": result.requested,
        "error": result.error,
        "ok": result.ok,
    }


def _report(results: typing.Sequence[ActionResult], out: Out, as_json: bool) -> int:
    if as_json:
        out(textout.dumps([_result_json(r) for r in results]))
    else:
        for result in results:
            out(f"{result.saga_id}  {result.action}  {operations.outcome(result)}")
    return EXIT_OK if operations.all_ok(results) else EXIT_FAILED


async def _target(
    mediator: SagaMediator, idents: typing.Sequence[str], saga_filter: SagaFilter | None
) -> operations.Target:
    if saga_filter is not None:
        return saga_filter
    return await resolve_ids(mediator.storage, idents)


async def recover_command(
    mediator: SagaMediator,
    out: Out,
    idents: typing.Sequence[str],
    *,
    stale: bool = False,
    saga_filter: SagaFilter | None = None,
    as_json: bool = False,
    wait: bool = True,
    why: str = "",
    on_request: fleet_actions.Progress | None = None,
) -> int:
    """Recover sagas by id, every stale one (runner gone), or every one matching a filter.

    ``why`` (``--reason``) is stored with the action, after where it came from;
    ``on_request`` hears how each request goes (the command line's progress on stderr).
    """
    if stale:
        results = await recover_all_stale(mediator, why=why)
        if not as_json and not results:
            out("no stale sagas")
            return EXIT_OK
        return _report(results, out, as_json)
    target = await _target(mediator, idents, saga_filter)
    if not wait:
        return await _request_only(mediator, out, "recover", target, as_json, why)
    reason = operator_reason(REASON, why)
    results = await operations.submit_action(
        mediator, "recover", target, reason=reason, on_request=on_request
    )
    if not as_json and not results:
        out("no saga matches the filter")
        return EXIT_OK
    return _report(results, out, as_json)


async def recover_all_stale(
    mediator: SagaMediator, batch: int = 1000, why: str = ""
) -> list[ActionResult]:
    """Recover stale sagas batch after batch until a batch brings nothing new."""
    seen: set[uuid.UUID] = set()
    results: list[ActionResult] = []
    while True:
        found = await mediator.recover_stale(
            limit=batch,
            concurrency=fleet_actions.CONCURRENCY,
            reason=operator_reason(REASON + " --stale", why),
            skip=seen,
        )
        new = [r for r in found if r.saga_id not in seen]
        if not new:
            return results
        seen.update(r.saga_id for r in new)
        results.extend(new)


async def compensate_command(
    mediator: SagaMediator,
    out: Out,
    idents: typing.Sequence[str],
    *,
    confirm: typing.Callable[[str], bool],
    saga_filter: SagaFilter | None = None,
    as_json: bool = False,
    wait: bool = True,
    why: str = "",
    on_request: fleet_actions.Progress | None = None,
) -> int:
    """Compensate sagas by id, or every one matching a filter, after confirmation.

    The question carries the same plan lines as the dashboard's confirmation.
    """
    target = await _target(mediator, idents, saga_filter)
    preview = await operations.preview_action(mediator.storage, mediator, "compensate", target)
    title, lines = preview.question()
    # Nothing to ask when every saga is skipped: their results say why.
    if preview.runnable and not confirm("\n".join([title, *(f"  {line}" for line in lines)])):
        raise UsageError("compensation cancelled")
    if not wait:
        return await _request_only(mediator, out, "compensate", target, as_json, why)
    reason = operator_reason(REASON, why)
    results = await operations.submit_action(
        mediator, "compensate", target, reason=reason, on_request=on_request
    )
    if not as_json and not results:
        out("no saga matches the filter")
        return EXIT_OK
    return _report(results, out, as_json)


async def _request_only(
    mediator: SagaMediator,
    out: Out,
    verb: operations.Verb,
    target: operations.Target,
    as_json: bool,
    why: str,
) -> int:
    """``--no-wait``: write the request for the runnable sagas of ``target``; print its id."""
    ids = await operations.target_ids(mediator.storage, target)
    plans = await operations.read_plans(mediator.storage, mediator, verb, ids)
    runnable = [plan for plan in plans if plan.runnable]
    if not runnable:
        raise UsageError("nothing to request: " + "; ".join(plan.line() for plan in plans))
    asked = await fleet_actions.ask(
        mediator,
        runnable[0].verb,
        [plan.saga_id for plan in runnable],
        saga_names={plan.name for plan in runnable if plan.name},
        reason=operator_reason(REASON, why),
    )
    return _print_request(out, asked.request_id, as_json)


def _print_request(out: Out, request_id: uuid.UUID, as_json: bool) -> int:
    out(textout.dumps({"request": str(request_id)}) if as_json else str(request_id))
    return EXIT_OK


@dataclasses.dataclass(frozen=True, slots=True)
class StartPlan:
    """What ``start`` will run: the saga, its context type and the context JSON."""

    saga_name: str
    context_type: type
    context_text: str


def plan_start(mediator: SagaMediator, saga_name: str, context_text: str | None) -> StartPlan:
    """Check the saga name and the context before anything starts."""
    registered = {name: ctx for name, ctx, _ in mediator.registered()}
    if saga_name not in registered:
        known = ", ".join(registered) or "none"
        raise UsageError(f"{clean(saga_name)}: unknown saga (registered: {known})")
    context_type = registered[saga_name]
    if context_text is None:
        # The example the dashboard's start form pre-fills.
        example = example_for(saga_name, context_type)
        if example is None:
            raise UsageError(f"{saga_name}: give its context with --context JSON")
        context_text = json.dumps(example, default=str)
    else:
        context_text = read_context_option(context_text)
    parse_context(saga_name, context_type, context_text)
    return StartPlan(saga_name, context_type, context_text)


START_CHUNK = 1000
"""Sagas per start request of the command line: results print a request at a time."""


async def _start_by_requests(
    mediator: SagaMediator,
    plan: StartPlan,
    tally: StartTally,
    shown: typing.Callable[[typing.Any, ActionResult], None],
    on_request: fleet_actions.Progress | None = None,
    concurrency: int = fleet_actions.CONCURRENCY,
) -> None:
    """Durable start requests of at most START_CHUNK sagas, one after another.

    A live worker with the saga type serves them, else this process does; memory holds
    one request's ids and results, whatever the count.
    """
    while tally.started < tally.total:
        n = min(START_CHUNK, tally.total - tally.started)
        context = parse_context(plan.saga_name, plan.context_type, plan.context_text)
        asked = await fleet_actions.ask(
            mediator, "start", saga_name=plan.saga_name, context=context, count=n, reason=REASON
        )
        tally.started += n
        for result in await fleet_actions.follow(
            mediator, asked, on_progress=on_request, concurrency=concurrency
        ):
            shown(None, result)


async def start_command(
    mediator: SagaMediator,
    out: Out,
    plan: StartPlan,
    *,
    count: int = 1,
    as_json: bool = False,
    status: typing.TextIO | None = None,
    wait: bool = True,
    on_request: fleet_actions.Progress | None = None,
    concurrency: int = fleet_actions.CONCURRENCY,
) -> int:
    """Start ``count`` sagas with the planned context; 1 unless every one completed.

    On a SQL database the sagas are durable start requests (of START_CHUNK sagas each,
    served by a live worker with the saga type, else here). Results are printed as they
    come (``--json``: one array, item by item) and only counted, so memory does not grow
    with ``count``; on a terminal ``status`` shows a progress line. Ctrl+C stops starting
    and says how many started. ``concurrency``: sagas at once when served here.
    ``--no-wait`` writes one request for ``count`` sagas and
    prints its id.
    """
    if not wait:
        context = parse_context(plan.saga_name, plan.context_type, plan.context_text)
        asked = await fleet_actions.ask(
            mediator,
            "start",
            saga_name=plan.saga_name,
            context=context,
            count=count,
            reason=REASON,
        )
        return _print_request(out, asked.request_id, as_json)
    tally = StartTally(count, status)
    # A fresh context per saga: the steps write into it.
    contexts = tally.pulled(
        parse_context(plan.saga_name, plan.context_type, plan.context_text) for _ in range(count)
    )

    def shown(_context: typing.Any, result: ActionResult) -> None:
        if as_json:
            out(("[" if tally.finished == 0 else ",") + textout.dumps(_result_json(result)))
        else:
            out(f"{result.saga_id}  {result.action}  {operations.outcome(result)}")
        tally.add(result)

    try:
        if fleet_actions.is_durable(mediator):
            await _start_by_requests(mediator, plan, tally, shown, on_request, concurrency)
        else:
            await operations.start_many(
                mediator,
                contexts,
                reason=REASON,
                on_result=shown,
                collect=False,
                concurrency=concurrency,
            )
    except (asyncio.CancelledError, KeyboardInterrupt):
        tally.clear()
        if as_json:
            out("]" if tally.finished else "[]")  # what was printed stays valid JSON
        running = tally.started - tally.finished
        print(
            f"started {tally.started} of {count} sagas, {tally.finished} finished;"
            f" {running} left running for `recover --stale`",
            file=sys.stderr,
        )
        raise
    tally.clear()
    if as_json:
        out("]" if tally.finished else "[]")
    return EXIT_OK if tally.failed == 0 else EXIT_FAILED
