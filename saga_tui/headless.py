"""The headless commands: list, show, recover, compensate, start.

Each returns an exit code (0 done, 1 an action failed) and raises UsageError for bad
input before any action runs, so a typo never leaves half of a batch done.
"""

from __future__ import annotations

import dataclasses
import json
import typing
import uuid

from engine.saga.mediator import SagaMediator
from engine.saga.operator import ActionResult
from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import SagaFilter
from engine.saga.storage.reader import SagaReader
from saga_tui import fleet_actions, operations, textout
from saga_tui.examples import example_for
from saga_tui.filters import FilterError, parse_statuses
from saga_tui.ids import id_prefix
from saga_tui.operations import ActionPlan, ContextInputError, Verb
from saga_tui.target import UsageError
from saga_tui.textfmt import clean, one_line, short_id

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


def parse_context(saga_name: str, context_type: type, text: str) -> typing.Any:
    """A context of ``context_type`` from JSON text; errors say where."""
    try:
        return operations.context_from_json(saga_name, context_type, text)
    except ContextInputError as exc:
        raise UsageError(f"--context: {exc}") from None


# ---- read commands ------------------------------------------------------------------


async def list_command(
    reader: SagaReader,
    out: Out,
    *,
    statuses: tuple[SagaStatus, ...] = (),
    name: str | None = None,
    limit: int = 50,
    as_json: bool = False,
) -> int:
    """Print the newest sagas matching the filter."""
    page = await reader.list_sagas(SagaFilter(statuses=statuses, name=name), limit=limit)
    if as_json:
        out(textout.dumps([textout.summary_json(s) for s in page.items]))
        return EXIT_OK
    if not page.items:
        out("no sagas")
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
    if as_json:
        out(textout.dumps(textout.detail_json(detail)))
    else:
        for line in textout.detail_text(detail):
            out(line)
    return EXIT_OK


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


async def _plans(
    mediator: SagaMediator, verb: Verb, idents: typing.Sequence[str]
) -> list[ActionPlan]:
    ids = await resolve_ids(mediator.storage, idents)
    return await operations.read_plans(mediator.storage, mediator, verb, ids)


async def recover_command(
    mediator: SagaMediator,
    out: Out,
    idents: typing.Sequence[str],
    *,
    stale: bool = False,
    as_json: bool = False,
    wait: bool = True,
) -> int:
    """Recover sagas by id, or every stale one (runner gone)."""
    if stale:
        results = await recover_all_stale(mediator)
        if not as_json and not results:
            out("no stale sagas")
            return EXIT_OK
        return _report(results, out, as_json)
    plans = await _plans(mediator, "recover", idents)
    if not wait:
        return await _request_only(mediator, out, plans, as_json)
    return _report(await operations.carry_out(mediator, plans, reason=REASON), out, as_json)


async def recover_all_stale(mediator: SagaMediator, batch: int = 1000) -> list[ActionResult]:
    """Recover stale sagas batch after batch until a batch brings nothing new."""
    seen: set[uuid.UUID] = set()
    results: list[ActionResult] = []
    while True:
        found = await mediator.recover_stale(
            limit=batch, concurrency=operations.CONCURRENCY, reason=REASON + " --stale"
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
    as_json: bool = False,
    wait: bool = True,
) -> int:
    """Compensate sagas by id after confirmation (a rollback for COMPLETED ones).

    The question carries the same plan lines as the dashboard's confirmation.
    """
    plans = await _plans(mediator, "compensate", idents)
    title, lines = operations.confirmation("compensate", plans)
    # Nothing to ask when every saga is skipped: their results say why.
    if any(plan.runnable for plan in plans) and not confirm(
        "\n".join([title, *(f"  {line}" for line in lines)])
    ):
        raise UsageError("compensation cancelled")
    if not wait:
        return await _request_only(mediator, out, plans, as_json)
    return _report(await operations.carry_out(mediator, plans, reason=REASON), out, as_json)


async def _request_only(
    mediator: SagaMediator, out: Out, plans: typing.Sequence[ActionPlan], as_json: bool
) -> int:
    """``--no-wait``: write the request for the runnable plans and print its id."""
    runnable = [plan for plan in plans if plan.runnable]
    if not runnable:
        raise UsageError("nothing to request: " + "; ".join(plan.line() for plan in plans))
    asked = await fleet_actions.ask(
        mediator,
        runnable[0].verb,
        [plan.saga_id for plan in runnable],
        saga_names={plan.name for plan in runnable if plan.name},
        reason=REASON,
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


async def start_command(
    mediator: SagaMediator,
    out: Out,
    plan: StartPlan,
    *,
    count: int = 1,
    as_json: bool = False,
    wait: bool = True,
) -> int:
    """Start ``count`` sagas with the planned context; 1 unless every one completed."""
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
    # A fresh context per saga: the steps write into it.
    contexts = (
        parse_context(plan.saga_name, plan.context_type, plan.context_text) for _ in range(count)
    )
    results = await operations.start_many(mediator, contexts, reason=REASON)
    return _report(results, out, as_json)
