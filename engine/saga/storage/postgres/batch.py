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
    logs: list[LogRow]
    prior: str | None = None


def _bind(value: typing.Any) -> typing.Any:
    """A column value as asyncpg takes it (the context as the JSON text SQLAlchemy writes)."""
    if isinstance(value, dict):
        return db_values.context_to_db(value)
    return value


def _columns(rows: list[list[typing.Any]], width: int) -> list[list[typing.Any]]:
    return [[row[i] for row in rows] for i in range(width)]


async def apply_batch(
    conn: asyncpg.Connection,
    items: typing.Sequence[Checkpoint],
    now: typing.Any,
) -> list[typing.Any]:
    """Apply ``items`` in order; one CheckpointResult or exception per checkpoint."""
    results: list[typing.Any] = [None] * len(items)
    plans: list[_Plan] = []
    for i, cp in enumerate(items):
        try:
            insert, update, increment, logs = checkpoint_rows(cp, now)
            if insert is not None:
                insert = {k: _bind(v) for k, v in insert.items()}
            if update is not None:
                update = {k: _bind(v) for k, v in update.items()}
        except Exception as exc:  # a value that cannot be stored fails its checkpoint alone
            results[i] = exc
            continue
        plans.append(_Plan(i, cp, insert, update, increment, logs))
    for round_ in _rounds(plans):
        await _apply_round(conn, round_, results)
    return results


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
    shapes: dict[tuple[tuple[str, ...], tuple[str, ...]], list[_Plan]] = {}
    for p in plans:
        if p.update is not None:
            shapes.setdefault((tuple(p.update), p.increment), []).append(p)
            if p.cp.clear_requested_action:
                # RETURNING shows the new row; the request must be read before it is cleared.
                p.prior = await conn.fetchval(statements.PRIOR_REQUEST, p.cp.saga_id, p.cp.owner)
    missing: list[_Plan] = []
    for (columns, increment), group in shapes.items():
        args = [[p.cp.saga_id for p in group], [p.cp.owner for p in group]]
        args += [[p.update[c] for p in group] for c in columns]  # type: ignore[index]
        matched = {
            r[0]: r[1] for r in await conn.fetch(statements.update_sagas(columns, increment), *args)
        }
        for p in group:
            if p.cp.saga_id not in matched:
                missing.append(p)
                continue
            requested = p.prior if p.cp.clear_requested_action else matched[p.cp.saga_id]
            results[p.index] = CheckpointResult(db_values.action_from_db(requested))
            done.append(p)
    if missing:
        holders = dict(
            await conn.fetch(statements.HOLDERS, [p.cp.saga_id for p in missing])  # type: ignore[arg-type]
        )
        for p in missing:
            saga_id = p.cp.saga_id
            results[p.index] = (
                lease_lost(saga_id, holders[saga_id]) if saga_id in holders else not_found(saga_id)
            )
    logs = [[p.cp.saga_id, *row] for p in sorted(done, key=lambda d: d.index) for row in p.logs]
    if logs:
        await conn.execute(statements.INSERT_LOGS, *_columns(logs, len(logs[0])))
