"""Operator logic without Textual, shared by the dashboard and the command line.

What recover or compensate will do to a saga (the plan both the confirmation dialog and
``saga-tui compensate`` print), running actions on many sagas with the one bulk runner,
reading a context typed as JSON, and saying in one line how actions went. Whether an
action succeeded is ``ActionResult.ok``, the engine's one success rule.
"""

from __future__ import annotations

import dataclasses
import json
import time
import typing
import uuid

from engine.saga.bulk import run_bounded
from engine.saga.context_codec import dump_context
from engine.saga.errors import SagaError, SagaNotRegisteredError
from engine.saga.lease import lease_lapsed
from engine.saga.operator import ActionResult
from engine.saga.storage.enums import ACTIVE_STATUSES, SagaStatus
from engine.saga.storage.lanes import steps_to_compensate
from engine.saga.storage.models import SagaFilter
from saga_tui import fleet_actions
from saga_tui.filters import format_filter
from saga_tui.outcomes import all_ok as all_ok
from saga_tui.outcomes import outcome as outcome
from saga_tui.outcomes import summarize as summarize
from saga_tui.textfmt import clean, is_stranded, one_line, plural, short_id

if typing.TYPE_CHECKING:
    from engine.saga.mediator import SagaMediator
    from engine.saga.storage.models import SagaDetail
    from engine.saga.storage.reader import SagaReader

Verb = typing.Literal["recover", "compensate"]
Target = typing.Union[typing.Sequence[uuid.UUID], SagaFilter]  # noqa: UP007
"""What an action acts on: these sagas, or every saga matching a filter (read when it runs)."""
Progress = typing.Callable[[int, int], None]
"""Told ``(done, total)`` as a bulk action goes."""
CONCURRENCY = fleet_actions.CONCURRENCY
"""Sagas at once, here as when a request is served here."""
ID_PAGE = 1000
CHUNK = 200
PREVIEW = 20
"""Plan lines a confirmation shows for a filter; the rest are counted."""
NO_APP = "no application is loaded (--app), so sagas cannot be run here"
BY_WORKER = "a worker that has it serves the request"


READ_ONLY_WHY = "the database was opened with --read-only"


def refusal(
    verb: str, *, read_only: bool, mediator: SagaMediator | None, why: str = READ_ONLY_WHY
) -> str | None:
    """Why this dashboard cannot ``verb`` at all (None when it can)."""
    if read_only:
        return f"read-only: {verb} refused ({why})"
    if mediator is None:
        return f"{verb} refused: no application is loaded (--app)"
    return None


def why_not_runnable(mediator: SagaMediator | None, name: str) -> str | None:
    """Why this process cannot run a saga of ``name`` (None when it can)."""
    if mediator is None:
        return NO_APP
    try:
        mediator.saga_for_name(name)
    except SagaNotRegisteredError as exc:
        return f"cannot be recovered here: {one_line(exc)}"
    return None


# ---- plans --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ActionPlan:
    """What one recover or compensate will do to one saga, read before asking."""

    saga_id: uuid.UUID
    verb: Verb
    name: str | None
    status: SagaStatus | None
    what: str = ""
    skip: str | None = None
    # What the action would answer for a skipped saga, without running anything.
    skip_result: ActionResult | None = None
    # Unfinished and nobody runs it: shown as STRANDED, as the list shows it.
    stranded: bool = False

    @property
    def runnable(self) -> bool:
        """The action will run on this saga."""
        return self.skip is None

    def line(self) -> str:
        """``3f2a9c1e  OrderSaga  COMPLETED: will UNDO ShipOrder, ...`` (cleaned)."""
        head = short_id(self.saga_id)
        if self.name is not None:
            head += f"  {clean(self.name)}"
        if self.status is not None:
            head += "  STRANDED" if self.stranded else f"  {self.status.name}"
        body = self.what if self.skip is None else f"skipped, {self.skip}"
        return f"{head}: {clean(body)}"


def plan_action(
    verb: Verb, saga_id: uuid.UUID, detail: SagaDetail | None, why_not: str | None
) -> ActionPlan:
    """The one rule for what recover and compensate do to a saga in its state."""
    if detail is None:
        gone = "no longer exists"
        return ActionPlan(
            saga_id, verb, None, None, skip=gone, skip_result=_failed(saga_id, verb, gone)
        )
    summary = detail.summary
    name, status = summary.name, summary.status

    def skipped(reason: str, result: ActionResult) -> ActionPlan:
        return ActionPlan(saga_id, verb, name, status, skip=reason, skip_result=result)

    if why_not is not None:
        return skipped(why_not, _failed(saga_id, verb, why_not))
    undo = [clean(s) for s in reversed(steps_to_compensate(detail.logs))]
    owner = live_owner(summary)
    if owner is not None and summary.current_step and summary.status is SagaStatus.RUNNING:
        # The owner undoes the step it is running too, before the ones already done.
        step = clean(summary.current_step)
        undo = [u for u in undo if u != step]
        undo.insert(0, f"{step} (in flight)")
    undo_text = ", ".join(undo) if undo else "nothing (no step left an effect)"
    stranded = is_stranded(summary, time.time())  # the list's rule, the list's word
    if verb == "compensate":
        if status is SagaStatus.COMPENSATED:
            return skipped("already compensated", ActionResult(saga_id, verb, status))
        what = f"will UNDO {undo_text}"
        if owner is not None:
            what = f"live process {clean(owner)} runs it: the request goes to it; it {what}"
        return ActionPlan(saga_id, verb, name, status, what, stranded=stranded)
    if status in (SagaStatus.COMPLETED, SagaStatus.COMPENSATED):
        return skipped(
            f"already {status.name}, nothing to recover", ActionResult(saga_id, verb, status)
        )
    if status is SagaStatus.FAILED:
        what = f"will retry the failed compensations: undo {undo_text}"
    elif status is SagaStatus.COMPENSATING:
        what = f"will finish compensation: undo {undo_text}"
    else:
        step = clean(summary.current_step) if summary.current_step else "the first step"
        what = f"will resume forward from {step} (a step in flight runs again)"
    if owner is not None:
        what = f"live process {clean(owner)} runs it: the request goes to it ({what})"
    return ActionPlan(saga_id, verb, name, status, what, stranded=stranded)


def live_owner(summary: typing.Any, now: float | None = None) -> str | None:
    """The process that runs an unfinished saga now (None when nobody does: stranded)."""
    if summary.status not in ACTIVE_STATUSES:
        return None
    moment = time.time() if now is None else now
    if lease_lapsed(summary.lease_owner, summary.lease_expires, moment):
        return None
    return typing.cast(str, summary.lease_owner)


def _failed(saga_id: uuid.UUID, verb: Verb, reason: str) -> ActionResult:
    return ActionResult(saga_id, verb, error=reason)


async def read_plans(
    reader: SagaReader, mediator: SagaMediator | None, verb: Verb, ids: typing.Sequence[uuid.UUID]
) -> list[ActionPlan]:
    """Read each saga and plan the action on it."""
    plans = []
    for saga_id in ids:
        detail = await reader.get_saga(saga_id)
        why = why_not_runnable(mediator, detail.summary.name) if detail else None
        # Not registered here: on a SQL database the request waits for a worker that is.
        elsewhere = why is not None and mediator is not None and fleet_actions.is_durable(mediator)
        plan = plan_action(verb, saga_id, detail, None if elsewhere else why)
        if elsewhere and plan.runnable:
            plan = dataclasses.replace(plan, what=f"{plan.what}; not registered here: {BY_WORKER}")
        plans.append(plan)
    return plans


def confirmation(verb: Verb, plans: typing.Sequence[ActionPlan]) -> tuple[str, list[str]]:
    """The question and one line per saga: what the dialog and the command line ask."""
    count = sum(1 for plan in plans if plan.runnable)
    title = f"{verb.capitalize()} {plural(count, 'saga')}?"
    if verb == "compensate":
        title += "  This undoes completed steps."
    return title, [plan.line() for plan in plans]


def target_text(target: Target) -> str:
    """``3 sagas`` or ``every saga matching status:failed`` (for questions and summaries)."""
    if isinstance(target, SagaFilter):
        return f"every saga matching {format_filter(target) or '(all)'}"
    return plural(len(target), "saga")


async def target_ids(reader: SagaReader, target: Target) -> list[uuid.UUID]:
    """The sagas a target names: its ids, or every saga matching its filter now.

    A filter is read to the end before anything runs: acting changes what matches
    (a recovered FAILED saga is no longer failed), so paging while acting would skip.
    """
    if not isinstance(target, SagaFilter):
        return list(dict.fromkeys(target))
    ids: list[uuid.UUID] = []
    after = None
    while True:
        page = await reader.list_sagas(target, limit=ID_PAGE, after=after)
        ids.extend(s.id for s in page.items)
        if page.next_cursor is None or not page.items:
            return ids
        after = page.next_cursor


@dataclasses.dataclass(frozen=True, slots=True)
class Preview:
    """What a confirmation shows: the plans of the first sagas and how many in all."""

    verb: Verb
    target: Target
    plans: list[ActionPlan]
    total: int

    @property
    def runnable(self) -> bool:
        """Something will run (a filter counts as runnable while it matches anything)."""
        if isinstance(self.target, SagaFilter):
            return self.total > 0
        return any(plan.runnable for plan in self.plans)

    def question(self) -> tuple[str, list[str]]:
        """The title and the plan lines; for a filter, its size and the first sagas."""
        title, lines = confirmation(self.verb, self.plans)
        if isinstance(self.target, SagaFilter):
            matching = format_filter(self.target) or "(all)"
            noun = "saga" if self.total == 1 else "sagas"
            title = f"{self.verb.capitalize()} {self.total:,} {noun} matching {matching}?"
            if self.verb == "compensate":
                title += "  This undoes completed steps."
            more = self.total - len(self.plans)
            if more > 0:
                lines.append(f"… and {more:,} more, each planned the same way when it runs")
        return title, lines


async def preview_action(
    reader: SagaReader, mediator: SagaMediator | None, verb: Verb, target: Target
) -> Preview:
    """Plan the action on (the first sagas of) its target, for the confirmation."""
    if isinstance(target, SagaFilter):
        page = await reader.list_sagas(target, limit=PREVIEW)
        total = await reader.count_sagas(target)
        plans = await read_plans(reader, mediator, verb, [s.id for s in page.items])
        return Preview(verb, target, plans, total)
    plans = await read_plans(reader, mediator, verb, list(target))
    return Preview(verb, target, plans, len(plans))


async def submit_action(
    mediator: SagaMediator,
    verb: Verb,
    target: Target,
    *,
    reason: str,
    progress: Progress | None = None,
    concurrency: int = CONCURRENCY,
    on_request: fleet_actions.Progress | None = None,
) -> list[ActionResult]:
    """THE entry point of every operator action (dashboard, palette, groups, command line).

    Recover or compensate the sagas of ``target`` (ids, or everything matching a filter,
    read when this runs): each saga is planned by the one rule of ``plan_action`` just
    before it is acted on, a chunk at a time; ``progress`` hears ``(done, total)``. On a
    SQL database each chunk is one durable request (``on_request`` hears how it goes).
    One saga's failure is its result; the others still run.
    """
    reader = mediator.storage
    ids = await target_ids(reader, target)
    results: list[ActionResult] = []
    if progress is not None:
        progress(0, len(ids))
    for start in range(0, len(ids), CHUNK):
        plans = await read_plans(reader, mediator, verb, ids[start : start + CHUNK])
        results += await carry_out(
            mediator, plans, reason=reason, concurrency=concurrency, on_progress=on_request
        )
        if progress is not None:
            progress(len(results), len(ids))
    return results


# ---- running ------------------------------------------------------------------------


def _error_text(exc: Exception) -> str:
    # Engine errors are worded for users; anything else needs its type to make sense.
    return one_line(exc, with_type=not isinstance(exc, SagaError))


async def carry_out(
    mediator: SagaMediator,
    plans: typing.Sequence[ActionPlan],
    *,
    reason: str,
    concurrency: int = CONCURRENCY,
    on_progress: fleet_actions.Progress | None = None,
) -> list[ActionResult]:
    """Run every runnable plan (skipped ones answer their skip result), in plan order.

    One saga's failure is its result; the others still run. On a SQL database the
    runnable plans become one durable request, served by a live worker or else here.
    """
    if fleet_actions.is_durable(mediator):
        return await _by_request(mediator, plans, reason=reason, on_progress=on_progress)

    async def one(plan: ActionPlan) -> ActionResult:
        if plan.skip_result is not None:
            return plan.skip_result
        try:
            if plan.verb == "recover":
                return await mediator.recover_saga(plan.saga_id, reason=reason)
            return await mediator.compensate_saga(plan.saga_id, reason=reason)
        except Exception as exc:
            return ActionResult(plan.saga_id, plan.verb, error=_error_text(exc))

    return await run_bounded(plans, one, concurrency=concurrency)


async def start_many(
    mediator: SagaMediator,
    contexts: typing.Iterable[typing.Any],
    *,
    reason: str,
    concurrency: int = CONCURRENCY,
    on_result: typing.Callable[[typing.Any, ActionResult], None] | None = None,
    collect: bool = True,
    on_progress: fleet_actions.Progress | None = None,
) -> list[ActionResult]:
    """Start one saga per context (pulled lazily), at most ``concurrency`` at a time.

    On a SQL database, collected starts become durable requests (equal contexts of one
    saga type share one request of ``count`` sagas), served by a live worker or else
    here. ``on_result`` sees each result as it comes; without ``collect`` none is kept
    and the sagas run in this process (a count of a million streams its results in
    constant memory).
    """
    if collect and fleet_actions.is_durable(mediator):
        # Equal contexts of one saga type share one request (``count`` sagas).
        groups: dict[tuple[str, str], tuple[typing.Any, int]] = {}
        for context in contexts:
            name = mediator.saga_for_context(context).__name__
            key = (name, json.dumps(dump_context(context), sort_keys=True))
            first, n = groups.get(key, (context, 0))
            groups[key] = (first, n + 1)
        results: list[ActionResult] = []
        for (name, _), (context, count) in groups.items():
            asked = await fleet_actions.ask(
                mediator, "start", saga_name=name, context=context, count=count, reason=reason
            )
            results += await fleet_actions.follow(mediator, asked, on_progress=on_progress)
        if on_result is not None:
            for result in results:
                on_result(None, result)
        return results

    async def one(context: typing.Any) -> ActionResult:
        saga_id = uuid.uuid4()
        try:
            return await mediator.start(context, reason=reason, saga_id=saga_id)
        except Exception as exc:
            return ActionResult(saga_id, "start", error=_error_text(exc))

    return await run_bounded(
        contexts, one, concurrency=concurrency, on_result=on_result, collect=collect
    )


async def _by_request(
    mediator: SagaMediator,
    plans: typing.Sequence[ActionPlan],
    *,
    reason: str,
    on_progress: fleet_actions.Progress | None,
) -> list[ActionResult]:
    runnable = [plan for plan in plans if plan.skip_result is None]
    done: dict[uuid.UUID, ActionResult] = {}
    if runnable:
        verb = runnable[0].verb
        asked = await fleet_actions.ask(
            mediator,
            verb,
            [plan.saga_id for plan in runnable],
            saga_names={plan.name for plan in runnable if plan.name},
            reason=reason,
        )
        results = await fleet_actions.follow(mediator, asked, on_progress=on_progress)
        done = {result.saga_id: result for result in results}
    return [
        plan.skip_result if plan.skip_result is not None else done[plan.saga_id] for plan in plans
    ]
