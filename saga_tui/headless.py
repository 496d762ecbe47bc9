"""The headless commands: list, show, recover, compensate, start.

Each returns an exit code (0 done, 1 an action failed) and raises UsageError for bad
input before any action runs, so a typo never leaves half of a batch done.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib
import json
import typing
import uuid

import pydantic

from engine.saga.context_codec import load_context
from engine.saga.errors import SagaError, SagaStorageError
from engine.saga.mediator import SagaMediator
from engine.saga.operator import ActionResult
from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.lanes import steps_to_compensate
from engine.saga.storage.models import SagaFilter
from engine.saga.storage.protocol import ISagaStorage
from saga_tui import textout
from saga_tui.target import UsageError, one_line

EXIT_OK, EXIT_FAILED = 0, 1
REASON = "saga-tui command line"

Out = typing.Callable[[str], None]


# ---- input --------------------------------------------------------------------------


def parse_statuses(values: typing.Sequence[str]) -> tuple[SagaStatus, ...]:
    """Statuses from ``--status`` values (repeated or comma-separated, any case)."""
    out: list[SagaStatus] = []
    for value in values:
        for part in value.split(","):
            name = part.strip().upper()
            if not name:
                continue
            try:
                out.append(SagaStatus[name])
            except KeyError:
                known = ", ".join(s.name.lower() for s in SagaStatus)
                raise UsageError(
                    f"--status {part.strip()}: unknown status (one of {known})"
                ) from None
    return tuple(out)


async def resolve_id(storage: ISagaStorage, text: str) -> uuid.UUID:
    """The saga id a full id or a unique prefix names."""
    prefix = text.strip().lower()
    if not prefix or any(ch not in "0123456789abcdef-" for ch in prefix):
        raise UsageError(f"{textout.clean(text)!s}: not a saga id")
    found = await storage.find_ids(prefix, limit=3)
    if not found:
        raise UsageError(f"{prefix}: no saga with this id")
    if len(found) > 1:
        shown = ", ".join(textout.short_id(s) for s in found[:2])
        raise UsageError(
            f"{prefix}: ambiguous id prefix (matches {shown}, ...); give more characters"
        )
    return found[0]


async def resolve_ids(storage: ISagaStorage, texts: typing.Sequence[str]) -> list[uuid.UUID]:
    """Every id resolved (duplicates dropped), or a UsageError for the first bad one."""
    out: list[uuid.UUID] = []
    for text in texts:
        saga_id = await resolve_id(storage, text)
        if saga_id not in out:
            out.append(saga_id)
    return out


def _json_location(text: str, exc: json.JSONDecodeError) -> str:
    return f"line {exc.lineno} column {exc.colno}: {exc.msg}"


def parse_context(saga_name: str, context_type: type, text: str) -> typing.Any:
    """A context of ``context_type`` from JSON text; errors say where."""
    if text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise UsageError(f"--context {text}: cannot read ({one_line(exc)})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--context: invalid JSON at {_json_location(text, exc)}") from None
    if not isinstance(data, dict):
        raise UsageError(f"--context: a JSON object is expected, not {type(data).__name__}")
    try:
        return load_context(context_type, data)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise UsageError(
            f"--context: invalid {saga_name} context at {where}: {first.get('msg', '')}{more}"
        ) from None
    except Exception as exc:
        raise UsageError(f"--context: invalid {saga_name} context: {one_line(exc)}") from exc


def example_for(saga_name: str, context_type: type) -> dict[str, typing.Any] | None:
    """The application's example context for a saga, if it offers one (``examples()``)."""
    package = context_type.__module__.split(".")[0]
    try:
        module = importlib.import_module(package)
        examples = getattr(module, "examples", None)
        found = examples().get(saga_name) if callable(examples) else None
    except Exception:
        return None
    return found if isinstance(found, dict) else None


# ---- read commands ------------------------------------------------------------------


async def list_command(
    storage: ISagaStorage,
    out: Out,
    *,
    statuses: tuple[SagaStatus, ...] = (),
    name: str | None = None,
    limit: int = 50,
    as_json: bool = False,
) -> int:
    """Print the newest sagas matching the filter."""
    page = await storage.list_sagas(SagaFilter(statuses=statuses, name=name), limit=limit)
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


async def show_command(
    storage: ISagaStorage, out: Out, ident: str, *, as_json: bool = False
) -> int:
    """Print one saga in full."""
    saga_id = await resolve_id(storage, ident)
    detail = await storage.get_saga(saga_id)
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
        "ok": _succeeded(result),
    }


def _succeeded(result: ActionResult) -> bool:
    if not result.ok:
        return False
    if result.requested:
        return True
    if result.action == "start":
        return result.status is SagaStatus.COMPLETED
    # A recovery or compensation that leaves failed compensations behind did not work.
    return result.status is not SagaStatus.FAILED


def _report(results: typing.Sequence[ActionResult], out: Out, as_json: bool) -> int:
    if as_json:
        out(textout.dumps([_result_json(r) for r in results]))
    else:
        for result in results:
            line = f"{result.saga_id}  {result.action}  "
            if result.error:
                line += f"error: {result.error}"
            elif result.requested:
                line += "requested from the running owner"
            else:
                line += result.status.name if result.status else "done"
            out(textout.clean(line))
    return EXIT_OK if all(_succeeded(r) for r in results) else EXIT_FAILED


async def _act(
    saga_id: uuid.UUID,
    action: typing.Literal["recover", "compensate"],
    call: typing.Callable[[], typing.Awaitable[ActionResult]],
) -> ActionResult:
    try:
        return await call()
    except (SagaError, SagaStorageError) as exc:
        return ActionResult(saga_id, action, error=one_line(exc))


async def recover_command(
    mediator: SagaMediator,
    out: Out,
    idents: typing.Sequence[str],
    *,
    stale: bool = False,
    as_json: bool = False,
) -> int:
    """Recover sagas by id, or every stale one (runner gone)."""
    if stale:
        results = await recover_all_stale(mediator)
        if not as_json and not results:
            out("no stale sagas")
            return EXIT_OK
        return _report(results, out, as_json)
    ids = await resolve_ids(mediator.storage, idents)
    results = [
        await _act(s, "recover", functools.partial(mediator.recover_saga, s, reason=REASON))
        for s in ids
    ]
    return _report(results, out, as_json)


async def recover_all_stale(mediator: SagaMediator, batch: int = 1000) -> list[ActionResult]:
    """Recover stale sagas batch after batch until a batch brings nothing new."""
    seen: set[uuid.UUID] = set()
    results: list[ActionResult] = []
    while True:
        found = await mediator.recover_stale(
            limit=batch, concurrency=16, reason=REASON + " --stale"
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
) -> int:
    """Compensate sagas by id after confirmation (a rollback for COMPLETED ones)."""
    ids = await resolve_ids(mediator.storage, idents)
    plans = [await undo_plan(mediator.storage, saga_id) for saga_id in ids]
    question = f"Compensate {len(ids)} saga(s)? " + "; ".join(plans)
    if not confirm(question):
        raise UsageError("compensation cancelled")
    results = [
        await _act(s, "compensate", functools.partial(mediator.compensate_saga, s, reason=REASON))
        for s in ids
    ]
    return _report(results, out, as_json)


async def undo_plan(storage: ISagaStorage, saga_id: uuid.UUID) -> str:
    """What compensating one saga will undo, in one phrase."""
    detail = await storage.get_saga(saga_id)
    if detail is None:
        return f"{textout.short_id(saga_id)} (gone)"
    head = f"{textout.short_id(saga_id)} {detail.summary.name} ({detail.summary.status.name})"
    steps = list(reversed(steps_to_compensate(detail.logs)))
    undo = ", ".join(steps) if steps else "nothing left to undo"
    return textout.clean(f"{head}: undo {undo}" if steps else f"{head}: {undo}")


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
        raise UsageError(f"{textout.clean(saga_name)}: unknown saga (registered: {known})")
    context_type = registered[saga_name]
    if context_text is None:
        example = example_for(saga_name, context_type)
        if example is None:
            raise UsageError(f"{saga_name}: give its context with --context JSON")
        context_text = json.dumps(example)
    parse_context(saga_name, context_type, context_text)
    return StartPlan(saga_name, context_type, context_text)


async def start_command(
    mediator: SagaMediator,
    out: Out,
    plan: StartPlan,
    *,
    count: int = 1,
    concurrency: int = 16,
    as_json: bool = False,
) -> int:
    """Start ``count`` sagas with the planned context; 1 unless every one completed."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one() -> ActionResult:
        # A fresh context per saga: the steps write into it.
        context = parse_context(plan.saga_name, plan.context_type, plan.context_text)
        async with semaphore:
            return await mediator.start(context, reason=REASON)

    results = await asyncio.gather(*(one() for _ in range(count)))
    return _report(results, out, as_json)
