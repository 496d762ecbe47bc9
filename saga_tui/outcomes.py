"""How operator actions ended, in words: one result, many results, all ok."""

from __future__ import annotations

import typing

from engine.saga.operator import ActionResult
from saga_tui.textfmt import clean, short_id


def outcome(result: ActionResult) -> str:
    """How one action ended: a status, ``requested from the running owner``, or the error."""
    if result.error:
        return f"error: {clean(result.error)}"
    if result.requested:
        return "requested from the running owner"
    return result.status.name if result.status else "done"


def summarize(verb: str, results: typing.Sequence[ActionResult]) -> str:
    """One line for many results: ``recover 3: 2 COMPENSATED, 1 error · 51c2e0f7: ...``."""
    if len(results) == 1:
        result = results[0]
        return f"{result.action} {short_id(result.saga_id)}: {outcome(result)}"
    tally: dict[str, int] = {}
    for result in results:
        key = outcome(result).split(":")[0].split(" ")[0]
        tally[key] = tally.get(key, 0) + 1
    text = f"{verb} {len(results)}: " + ", ".join(f"{n} {k}" for k, n in tally.items())
    failed = next((r for r in results if not r.ok), None)
    if failed is not None:
        text += f" · {short_id(failed.saga_id)}: {outcome(failed)}"
    return text


def all_ok(results: typing.Iterable[ActionResult]) -> bool:
    """Every action succeeded by ``ActionResult.ok``."""
    return all(result.ok for result in results)
