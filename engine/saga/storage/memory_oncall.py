"""The on-call queries over MemorySagaStorage's rows: the same answers as the SQL ones.

Rows are the memory store's dicts (statuses by name, unix times); each function reads
them as the SQL query reads its index.
"""

from __future__ import annotations

import datetime
import time
import typing

from engine.saga.lease import lease_lapsed
from engine.saga.storage.enums import ACTIVE_STATUSES, SagaStatus, SagaStepStatus
from engine.saga.storage.models import SagaFilter
from engine.saga.storage.oncall import (
    GROUP_STATUSES,
    HOUR_BUCKET_SECONDS,
    HOUR_BUCKETS,
    PULSE_BUCKET_SECONDS,
    PULSE_BUCKETS,
    PULSE_STATUSES,
    RECENT_LOG_ROWS,
    FailureGroup,
    FinishedRow,
    Pulse,
    StepStats,
    bucket_index,
    bucket_start,
    step_stats,
)

Row = dict[str, typing.Any]
_ACTIVE = frozenset(s.name for s in ACTIVE_STATUSES)
_GROUPED = frozenset(s.name for s in GROUP_STATUSES)


def _dt(ts: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC)


def is_stranded(row: Row, now: float) -> bool:
    """The row is unfinished and nobody runs it."""
    return row["status"] in _ACTIVE and lease_lapsed(row["lease_owner"], row["lease_expires"], now)


def matches_oncall(row: Row, f: SagaFilter, now: float) -> bool:
    """The parts of a filter the on-call views added: stranded, key, group, key text."""
    key = row.get("search_key") or ""
    if f.key and not key.startswith(f.key):
        return False
    if f.text and f.text_in_keys and not key.startswith(f.text.strip()):
        return False
    if f.failure_key and (row.get("failure_key") != f.failure_key or row["status"] not in _GROUPED):
        return False
    if f.worker and not run_by(row.get("lease_owner"), f.worker.strip()):
        return False
    return not (f.stranded and not is_stranded(row, now))


def run_by(owner: str | None, worker: str) -> bool:
    """The lease is held by ``worker`` as an owner id (``host:pid`` or ``host:pid:start``):
    a memory store keeps no workers table to look names up in."""
    if owner is None or ":" not in worker:
        return False
    return owner == worker or owner.startswith(worker + ":")


def stranded_count(rows: typing.Iterable[Row]) -> int:
    """Unfinished sagas nobody runs."""
    now = time.time()
    return sum(1 for row in rows if is_stranded(row, now))


def has_key(rows: typing.Iterable[Row], prefix: str) -> bool:
    """Whether a business key starts with ``prefix``."""
    return any((row.get("search_key") or "").startswith(prefix) for row in rows)


def failure_groups(rows: typing.Iterable[Row], limit: int) -> list[FailureGroup]:
    """Sagas grouped by cause, biggest first, as the SQL query groups them."""
    start = bucket_start(time.time(), HOUR_BUCKET_SECONDS, HOUR_BUCKETS)
    groups: dict[str, list[Row]] = {}
    for row in rows:
        if row.get("failure_key") and row["status"] in _GROUPED:
            groups.setdefault(row["failure_key"], []).append(row)
    out = []
    for key, members in groups.items():
        newest = max(members, key=lambda r: r["failed_at"])
        hour = [0] * HOUR_BUCKETS
        by_status: dict[SagaStatus, int] = {}
        for row in members:
            status = SagaStatus[row["status"]]
            by_status[status] = by_status.get(status, 0) + 1
            index = bucket_index(row["failed_at"], start, HOUR_BUCKET_SECONDS, HOUR_BUCKETS)
            if index is not None:
                hour[index] += 1
        out.append(
            FailureGroup(
                key,
                newest["name"],
                newest["failure_step"] or "",
                newest["failure_type"] or "",
                example=newest["failure_message"] or "",
                count=len(members),
                first_seen=_dt(min(r["failed_at"] for r in members)),
                last_seen=_dt(newest["failed_at"]),
                by_status=by_status,
                hour=tuple(hour),
            )
        )
    out.sort(key=lambda g: (-g.count, -g.last_seen.timestamp(), g.key))
    return out[:limit]


def pulse(rows: typing.Iterable[Row]) -> Pulse:
    """Sagas that ended per bucket over the last minutes."""
    start = bucket_start(time.time(), PULSE_BUCKET_SECONDS, PULSE_BUCKETS)
    wanted = {s.name: s for s in PULSE_STATUSES}
    series = {status: [0] * PULSE_BUCKETS for status in PULSE_STATUSES}
    for row in rows:
        finished = row["finished_at"]
        status = wanted.get(row["status"])
        if finished is None or status is None:
            continue
        index = bucket_index(finished, start, PULSE_BUCKET_SECONDS, PULSE_BUCKETS)
        if index is not None:
            series[status][index] += 1
    return Pulse(_dt(start), PULSE_BUCKET_SECONDS, {k: tuple(v) for k, v in series.items()})


def recent_step_stats(
    log: typing.Sequence[typing.Sequence[typing.Any]],
    names: typing.Sequence[str],
    recent: int,
    saga_name: str | None,
) -> StepStats:
    """Per-step figures from the newest ``recent`` log rows (``names``: each row's saga)."""
    first = max(0, len(log) - recent)
    rows: list[FinishedRow] = []
    since: float | None = None
    for index in range(first, len(log)):
        step, action, status, _, created, etype, _, _, _, took = log[index]
        name = names[index]
        if saga_name is not None and name != saga_name:
            continue
        if status not in (SagaStepStatus.COMPLETED.name, SagaStepStatus.FAILED.name):
            continue
        failed = status == SagaStepStatus.FAILED.name
        if failed and etype is None:
            continue
        rows.append((name, step, action, failed, took))
        since = created if since is None else min(since, created)
    return step_stats(rows, len(log) - first, _dt(since) if since is not None else None)


class OnCallQueries:
    """The on-call part of MemorySagaStorage's query API (its rows and log live there)."""

    _rows: dict[int, Row]
    _log: list[typing.Any]
    _log_saga: list[int]

    async def _resolve(self, saga_filter: SagaFilter) -> SagaFilter:
        raise NotImplementedError

    def _matches(self, row: Row, f: SagaFilter, now: float = 0.0) -> bool:
        raise NotImplementedError

    async def _has_key(self, prefix: str) -> bool:
        return has_key(self._rows.values(), prefix)

    async def count_sagas(self, saga_filter: SagaFilter = SagaFilter()) -> int:
        """How many sagas match the filter."""
        saga_filter = await self._resolve(saga_filter)
        now = time.time()
        return sum(1 for r in self._rows.values() if self._matches(r, saga_filter, now))

    async def stranded_count(self) -> int:
        """Unfinished sagas nobody runs."""
        return stranded_count(self._rows.values())

    async def failure_groups(self, limit: int = 500) -> list[FailureGroup]:
        """Sagas grouped by the cause of their failure."""
        return failure_groups(self._rows.values(), limit)

    async def pulse(self) -> Pulse:
        """Sagas that ended per ten seconds over the last ten minutes."""
        return pulse(self._rows.values())

    async def step_stats(
        self, saga_name: str | None = None, recent: int = RECENT_LOG_ROWS
    ) -> StepStats:
        """Per-step figures from the newest log rows."""
        rows = self._rows
        names = [rows[key]["name"] for key in self._log_saga]
        return recent_step_stats(self._log, names, recent, saga_name)
