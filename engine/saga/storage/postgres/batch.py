"""A batch of checkpoints applied on one asyncpg connection inside the caller's transaction.

``rows.checkpoint_rows`` describes each checkpoint; this module only groups the
descriptions into set-wise statements (``statements``): one INSERT for the sagas the
batch creates, one UPDATE per kind of change, one INSERT for all log rows. Refusals
(the saga exists, is missing, or its lease is lost) are found from what the statements
matched, before that checkpoint's log rows are written, so they fail one checkpoint
and never abort the transaction.
"""

from __future__ import annotations

import dataclasses
import typing
import uuid

from engine.saga.storage.models import Checkpoint, CheckpointResult
from engine.saga.storage.postgres import statements
from engine.saga.storage.rows import (
    SAGA_COLUMNS,
    EventRow,
    Guard,
    LogRow,
    already_exists,
    checkpoint_rows,
    lease_lost,
    not_found,
)
from engine.saga.storage.sqlalchemy import db_values

if typing.TYPE_CHECKING:
    import asyncpg


@dataclasses.dataclass(slots=True)
class _Plan:
    index: int
    cp: Checkpoint
    insert: dict[str, typing.Any] | None
    update: dict[str, typing.Any] | None
    increment: tuple[str, ...]
    guard: Guard
    logs: list[LogRow]
    events: typing.Sequence[EventRow]
    prior: str | None = None


def _bind(value: typing.Any) -> typing.Any:
    """A column value as asyncpg takes it (the context as the JSON text SQLAlchemy writes)."""
    if isinstance(value, dict):
        return db_values.context_to_db(value)
    return value


def _columns(rows: list[list[typing.Any]], width: int) -> list[list[typing.Any]]:
    return [[row[i] for row in rows] for i in range(width)]


def _plan(
    items: typing.Sequence[Checkpoint], now: typing.Any
) -> tuple[list[_Plan], list[typing.Any]]:
    results: list[typing.Any] = [None] * len(items)
    plans: list[_Plan] = []
    for i, cp in enumerate(items):
        try:
            insert, update, increment, guard, logs, events = checkpoint_rows(cp, now)
            if insert is not None:
                insert = {k: _bind(v) for k, v in insert.items()}
            if update is not None:
                update = {k: _bind(v) for k, v in update.items()}
        except Exception as exc:  # a value that cannot be stored fails its checkpoint alone
            results[i] = exc
            continue
        plans.append(_Plan(i, cp, insert, update, increment, guard, logs, events))
    return plans, results


async def apply_batch(
    conn: asyncpg.Connection,
    items: typing.Sequence[Checkpoint],
    now: typing.Any,
) -> list[typing.Any]:
    """Apply ``items`` in order inside the caller's transaction; a result or error each."""
    plans, results = _plan(items, now)
    for round_ in _rounds(plans):
        await _apply_round(conn, round_, results)
    return results


async def apply_whole(
    conn: asyncpg.Connection,
    items: typing.Sequence[Checkpoint],
    now: typing.Any,
) -> list[typing.Any] | None:
    """Apply ``items`` as one statement outside a transaction: one round trip, one commit.

    Returns None, having done nothing, for a batch that needs several statements (a
    saga twice in it, or a pending request to read before clearing it).
    """
    plans, results = _plan(items, now)
    ids = {p.cp.saga_id for p in plans}
    if len(ids) < len(plans) or any(p.cp.clear_requested_action for p in plans):
        return None
    creates = [p for p in plans if p.insert is not None]
    shapes = _shapes(plans)
    args: list[typing.Any] = []
    if creates:
        rows = [[p.insert[c] for c in SAGA_COLUMNS] for p in creates]  # type: ignore[index]
        args += _columns(rows, len(SAGA_COLUMNS))
    for (columns, _), group in shapes.items():
        args += _update_args(columns, group)
    logs = [[p.cp.saga_id, *row] for p in plans for row in p.logs]
    if logs:
        args += _columns(logs, len(logs[0]))
    events = [[p.cp.saga_id, *map(_bind, row)] for p in plans for row in p.events]
    if events:
        args += _columns(events, len(events[0]))
    sql = statements.whole_batch(bool(creates), tuple(shapes), bool(logs), bool(events))
    matched: dict[uuid.UUID, str | None] = {}
    for kind, saga_id, requested in await conn.fetch(sql, *args):
        if kind != "n":
            matched[saga_id] = requested
    missing: list[_Plan] = []
    for p in plans:
        if p.cp.saga_id in matched:
            results[p.index] = CheckpointResult(db_values.action_from_db(matched[p.cp.saga_id]))
        elif p.insert is not None:
            results[p.index] = already_exists(p.cp.saga_id)
        else:
            missing.append(p)
    await _refuse_missing(conn, missing, results)
    return results


def _shapes(plans: list[_Plan]) -> dict[statements.Shape, list[_Plan]]:
    shapes: dict[statements.Shape, list[_Plan]] = {}
    for p in plans:
        if p.update is not None:
            shapes.setdefault((tuple(p.update), p.increment), []).append(p)
    return shapes


def _update_args(columns: tuple[str, ...], group: list[_Plan]) -> list[list[typing.Any]]:
    guards = [dict(p.guard) for p in group]
    args: list[list[typing.Any]] = [
        [p.cp.saga_id for p in group],
        [g.get("lease_owner") for g in guards],
        [g.get("fence") for g in guards],
    ]
    args += [[p.update[c] for p in group] for c in columns]  # type: ignore[index]
    return args


async def _refuse_missing(
    conn: asyncpg.Connection, missing: list[_Plan], results: list[typing.Any]
) -> None:
    """Why checkpoints whose UPDATE matched nothing were refused: missing saga or lost lease."""
    if not missing:
        return
    rows = await conn.fetch(statements.HOLDERS, [p.cp.saga_id for p in missing])
    holders = {r[0]: (r[1], r[2]) for r in rows}
    for p in missing:
        saga_id = p.cp.saga_id
        held = holders.get(saga_id)
        results[p.index] = (
            lease_lost(saga_id, held[0], held[1], p.cp.owner) if held else not_found(saga_id)
        )


def _rounds(plans: list[_Plan]) -> list[list[_Plan]]:
    """Split so no saga appears twice in one round: set-wise statements match a row once."""
    rounds: list[list[_Plan]] = []
    seen: list[set[uuid.UUID]] = []
    for plan in plans:
        depth = 0
        for n, ids in enumerate(seen):
            if plan.cp.saga_id in ids:
                depth = n + 1
        if depth == len(rounds):
            rounds.append([])
            seen.append(set())
        rounds[depth].append(plan)
        seen[depth].add(plan.cp.saga_id)
    return rounds


async def _apply_round(
    conn: asyncpg.Connection, plans: list[_Plan], results: list[typing.Any]
) -> None:
    done: list[_Plan] = []
    creates = [p for p in plans if p.insert is not None]
    if creates:
        rows = [[p.insert[c] for c in SAGA_COLUMNS] for p in creates]  # type: ignore[index]
        created = await conn.fetch(statements.INSERT_SAGAS, *_columns(rows, len(SAGA_COLUMNS)))
        made = {r[0] for r in created}
        for p in creates:
            if p.cp.saga_id in made:
                results[p.index] = CheckpointResult()
                done.append(p)
            else:
                results[p.index] = already_exists(p.cp.saga_id)
    for p in plans:
        if p.update is not None and p.cp.clear_requested_action:
            # RETURNING shows the new row; the request must be read before it is cleared.
            p.prior = await conn.fetchval(statements.PRIOR_REQUEST, p.cp.saga_id, p.cp.owner)
    missing: list[_Plan] = []
    for (columns, increment), group in _shapes(plans).items():
        sql = statements.update_sagas(columns, increment)
        matched = {r[0]: r[1] for r in await conn.fetch(sql, *_update_args(columns, group))}
        for p in group:
            if p.cp.saga_id not in matched:
                missing.append(p)
                continue
            requested = p.prior if p.cp.clear_requested_action else matched[p.cp.saga_id]
            results[p.index] = CheckpointResult(db_values.action_from_db(requested))
            done.append(p)
    await _refuse_missing(conn, missing, results)
    ordered = sorted(done, key=lambda d: d.index)
    logs = [[p.cp.saga_id, *row] for p in ordered for row in p.logs]
    if logs:
        await conn.execute(statements.INSERT_LOGS, *_columns(logs, len(logs[0])))
    events = [[p.cp.saga_id, *map(_bind, row)] for p in ordered for row in p.events]
    if events:
        await conn.execute(statements.INSERT_EVENTS, *_columns(events, len(events[0])))
