"""In-process storage implementing the whole protocol; state lives as long as the object."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import time
import typing
import uuid

from engine.saga.storage.enums import (
    ACTIVE_STATUSES,
    RequestedAction,
    SagaStatus,
    SagaStepStatus,
)
from engine.saga.storage.lanes import build_step_views, most_tries
from engine.saga.storage.models import (
    NEWEST_FIRST,
    Checkpoint,
    CheckpointResult,
    LeaseInfo,
    LogRecord,
    OperatorAction,
    PageCursor,
    SagaDetail,
    SagaFilter,
    SagaLogEntry,
    SagaOrder,
    SagaPage,
    SagaState,
    SagaSummary,
    StatusCounts,
    resolve_text_filter,
)
from engine.saga.storage.protocol import (
    ISagaStorage,
    LeaseLostError,
    SagaNotFoundError,
)

_UTC = datetime.UTC
_NOTHING_REQUESTED = CheckpointResult()
_COMPLETED = SagaStatus.COMPLETED
_COMPENSATED = SagaStatus.COMPENSATED
_FAILED = SagaStatus.FAILED
_time = time.time


def _now() -> datetime.datetime:
    return datetime.datetime.now(_UTC)


def _dt(ts: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts, _UTC)


# A log row: (id, row key, step, action, status value, details, (error type, message,
# traceback) or None, attempt, duration ms, unix time). Only atomic values, so the
# garbage collector stops scanning these tuples once they survive a collection: a
# memory store holding a million log rows must not make every collection slower.
_Log = tuple[
    int,
    int,
    str,
    str,
    str,
    str | None,
    tuple[str, str, str | None] | None,
    int,
    float | None,
    float,
]


def _entry(row: _Row, log: _Log) -> SagaLogEntry:
    log_id, _, step, action, status, details, error, attempt, duration, ts = log
    return SagaLogEntry(
        row.id,
        step,
        typing.cast(typing.Any, action),
        SagaStepStatus(status),
        _dt(ts),
        details,
        id=log_id,
        error_type=error[0] if error else None,
        error_message=error[1] if error else None,
        error_traceback=error[2] if error else None,
        attempt=attempt,
        duration_ms=duration,
    )


def _record(row: _Row, log: _Log) -> LogRecord:
    log_id, _, step, action, status, details, error, attempt, duration, ts = log
    return LogRecord(
        id=log_id,
        saga_id=row.id,
        saga_name=row.name,
        step_name=step,
        action=typing.cast(typing.Any, action),
        status=SagaStepStatus(status),
        created_at=_dt(ts),
        details=details,
        error_type=error[0] if error else None,
        error_message=error[1] if error else None,
        error_traceback=error[2] if error else None,
        attempt=attempt,
        duration_ms=duration,
    )


class _Row:
    __slots__ = (
        "context",
        "created_at",
        "current_step",
        "error_message",
        "error_traceback",
        "error_type",
        "finished_at",
        "id",
        "lease_expires",
        "lease_owner",
        "logs",
        "name",
        "recovery_attempts",
        "requested_action",
        "status",
        "step_count",
        "steps_done",
        "updated_at",
        "version",
    )

    def __init__(self, saga_id: uuid.UUID, name: str, context: dict[str, typing.Any]) -> None:
        now = time.time()
        self.id = saga_id
        self.name = name
        self.status = SagaStatus.PENDING
        self.context = context
        self.version = 1
        self.created_at = now
        self.updated_at = now
        self.finished_at: float | None = None
        self.recovery_attempts = 0
        self.step_count = 0
        self.steps_done = 0
        self.current_step: str | None = None
        self.error_type: str | None = None
        self.error_message: str | None = None
        self.error_traceback: str | None = None
        self.lease_owner: str | None = None
        self.lease_expires: float | None = None
        self.requested_action: RequestedAction | None = None
        self.logs: list[_Log] = []

    def summary(self) -> SagaSummary:
        return SagaSummary(
            id=self.id,
            name=self.name,
            status=self.status,
            created_at=_dt(self.created_at),
            updated_at=_dt(self.updated_at),
            step_count=self.step_count,
            steps_done=self.steps_done,
            current_step=self.current_step,
            recovery_attempts=self.recovery_attempts,
            error_type=self.error_type,
            error_message=self.error_message,
            lease_owner=self.lease_owner,
            lease_expires=self.lease_expires,
            requested_action=self.requested_action,
            finished_at=_dt(self.finished_at) if self.finished_at else None,
            version=self.version,
        )


class MemorySagaStorage(ISagaStorage):
    """Keeps sagas in dictionaries; for tests, examples and short-lived processes."""

    def __init__(self) -> None:
        # Keyed by the id's int: UUID.__hash__ is Python code and this is the hot path.
        self._rows: dict[int, _Row] = {}
        self._log: list[_Log] = []
        self._audit: list[OperatorAction] = []
        self._changes = 0

    # ---- runner protocol --------------------------------------------------------------

    async def apply(self, checkpoint: Checkpoint) -> CheckpointResult:
        """Apply one checkpoint; dictionaries make it atomic by construction."""
        saga_id = checkpoint.saga_id
        row = self._rows.get(saga_id.int)
        create = checkpoint.create
        if create is not None:
            if row is not None:
                raise ValueError(f"Saga {saga_id} already exists")
            row = _Row(saga_id, create.name, create.context)
            row.step_count = create.step_count
            if checkpoint.owner is not None:
                row.lease_owner = checkpoint.owner
                row.lease_expires = checkpoint.lease_expires
            self._rows[saga_id.int] = row
        elif row is None:
            raise SagaNotFoundError(f"Saga {saga_id} not found")
        else:
            owner = checkpoint.owner
            if owner is not None and row.lease_owner != owner:
                raise LeaseLostError(f"Saga {saga_id} is now held by {row.lease_owner}")
            if checkpoint.context is not None:
                row.context = checkpoint.context
                row.version += 1
            if checkpoint.lease_expires is not None:
                row.lease_expires = checkpoint.lease_expires
        now = _time()
        status = checkpoint.status
        if status is not None:
            row.status = status
            # identity checks: Enum.__hash__ is Python code, a set lookup would call it
            terminal = status is _COMPLETED or status is _COMPENSATED or status is _FAILED
            row.finished_at = now if terminal else None
        if checkpoint.current_step is not None:
            row.current_step = checkpoint.current_step or None
        if checkpoint.steps_done is not None:
            row.steps_done = checkpoint.steps_done
        if checkpoint.clear_error:
            row.error_type = row.error_message = row.error_traceback = None
        error = checkpoint.error
        if error is not None:
            row.error_type = error.type
            row.error_message = error.message
            row.error_traceback = error.traceback
        if checkpoint.release_lease:
            row.lease_owner = None
            row.lease_expires = None
        if checkpoint.bump_recovery_attempts:
            row.recovery_attempts += 1
        requested = row.requested_action
        if requested is not None and checkpoint.clear_requested_action:
            row.requested_action = None
        logs = checkpoint.logs
        if logs:
            log = self._log
            row_logs = row.logs
            key = saga_id.int
            for write in logs:
                error = write.error
                entry = (
                    len(log) + 1,
                    key,
                    write.step_name,
                    write.action,
                    write.status.value,
                    write.details,
                    (error.type, error.message, error.traceback) if error else None,
                    write.attempt,
                    write.duration_ms,
                    now,
                )
                row_logs.append(entry)
                log.append(entry)
        row.updated_at = now
        self._changes += 1
        return _NOTHING_REQUESTED if requested is None else CheckpointResult(requested)

    def _state(self, row: _Row) -> SagaState:
        return SagaState(
            saga_id=row.id,
            name=row.name,
            status=row.status,
            context=copy.deepcopy(row.context),
            version=row.version,
            history=[_entry(row, e) for e in row.logs],
            requested_action=row.requested_action,
            recovery_attempts=row.recovery_attempts,
        )

    async def claim(
        self,
        saga_id: uuid.UUID,
        owner: str,
        lease_expires: float,
        *,
        now: float,
        steal_from: str | None = None,
    ) -> SagaState | None:
        """Take the lease when it is free, expired, ours or held by a dead owner."""
        row = self._rows.get(saga_id.int)
        if row is None:
            raise SagaNotFoundError(f"Saga {saga_id} not found")
        holder = row.lease_owner
        free = (
            holder is None
            or holder == owner
            or (row.lease_expires is not None and row.lease_expires < now)
            or (steal_from is not None and holder == steal_from)
        )
        if not free:
            return None
        row.lease_owner = owner
        row.lease_expires = lease_expires
        self._changes += 1
        return self._state(row)

    async def renew_leases(self, owner: str, lease_expires: float) -> int:
        """Extend every lease held by ``owner``."""
        count = 0
        for row in self._rows.values():
            if row.lease_owner == owner:
                row.lease_expires = lease_expires
                count += 1
        return count

    async def get_lease(self, saga_id: uuid.UUID) -> LeaseInfo | None:
        """Who holds one saga."""
        row = self._rows.get(saga_id.int)
        if row is None:
            return None
        return LeaseInfo(row.id, row.status, row.lease_owner, row.lease_expires)

    async def lease_candidates(self, now: float, host: str, limit: int) -> list[LeaseInfo]:
        """Unfinished sagas with a free or expired lease, or held on this host."""
        out: list[LeaseInfo] = []
        rows = sorted(self._rows.values(), key=lambda r: r.updated_at)
        for row in rows:
            if row.status not in ACTIVE_STATUSES:
                continue
            owner = row.lease_owner
            if (
                owner is None
                or (row.lease_expires is not None and row.lease_expires < now)
                or owner.startswith(host + ":")
            ):
                out.append(LeaseInfo(row.id, row.status, owner, row.lease_expires))
                if len(out) >= limit:
                    break
        return out

    async def request_action(self, saga_id: uuid.UUID, action: RequestedAction) -> None:
        """Store a request for the saga's owner."""
        row = self._rows.get(saga_id.int)
        if row is None:
            raise SagaNotFoundError(f"Saga {saga_id} not found")
        row.requested_action = action
        self._changes += 1

    async def record_operator_action(self, action: OperatorAction) -> None:
        """Append to the audit list."""
        self._audit.append(
            dataclasses.replace(action, id=len(self._audit) + 1, created_at=_now()),
        )
        self._changes += 1

    # ---- query API --------------------------------------------------------------------

    async def count_by_status(self) -> StatusCounts:
        """Count every status."""
        counts = dict.fromkeys(SagaStatus, 0)
        for row in self._rows.values():
            counts[row.status] += 1
        return StatusCounts(counts)

    @staticmethod
    def _matches(row: _Row, f: SagaFilter) -> bool:
        if f.statuses and row.status not in f.statuses:
            return False
        if f.name and f.name.lower() not in row.name.lower():
            return False
        if f.text:
            prefix = f.id_prefix
            if prefix is not None:
                if not str(row.id).startswith(prefix):
                    return False
            else:
                text = f.text.lower()
                if text not in (row.error_message or "").lower() and (
                    text not in (row.error_type or "").lower()
                ):
                    return False
        if f.since and _dt(row.created_at) < f.since:
            return False
        return not (f.until and _dt(row.created_at) > f.until)

    async def list_sagas(
        self,
        saga_filter: SagaFilter = SagaFilter(),
        *,
        limit: int = 200,
        after: PageCursor | None = None,
        before: PageCursor | None = None,
        order: SagaOrder = NEWEST_FIRST,
        at: PageCursor | None = None,
    ) -> SagaPage:
        """A keyset page in ``order`` (newest first by default)."""
        saga_filter = await resolve_text_filter(saga_filter, self.find_ids)
        items = [r.summary() for r in self._rows.values() if self._matches(r, saga_filter)]

        def key(value: str | None, created: datetime.datetime, saga_id: uuid.UUID) -> tuple:
            return (value or "", created, str(saga_id))

        keyed = [(key(order.value(s), s.created_at, s.id), s) for s in items]
        keyed.sort(key=lambda pair: pair[0], reverse=order.descending)
        keys = [k for k, _ in keyed]

        def beyond(k: tuple, c: PageCursor, inclusive: bool) -> bool:
            mark = key(c.value, c.created_at, c.saga_id)
            if inclusive and k == mark:
                return True
            return k < mark if order.descending else k > mark

        start = 0
        if at is not None or after is not None:
            cursor, inclusive = (at, True) if at is not None else (after, False)
            assert cursor is not None
            start = next((i for i, k in enumerate(keys) if beyond(k, cursor, inclusive)), len(keys))
        elif before is not None:
            end = next((i for i, k in enumerate(keys) if beyond(k, before, True)), len(keys))
            start = max(0, end - limit)
        chunk = [s for _, s in keyed[start : start + limit]]
        tries = {
            s.id: most_tries(_record(self._rows[s.id.int], e) for e in self._rows[s.id.int].logs)
            for s in chunk
        }
        chunk = [dataclasses.replace(s, tries=tries[s.id]) for s in chunk]
        more = chunk and start + limit < len(keys)
        next_cursor = order.cursor(chunk[-1]) if more else None
        prev_cursor = order.cursor(chunk[0]) if chunk and start > 0 else None
        return SagaPage(chunk, next_cursor, prev_cursor)

    def _tries(self, saga_id: uuid.UUID) -> int:
        row = self._rows[saga_id.int]
        return most_tries(_record(row, e) for e in row.logs)

    async def get_saga(self, saga_id: uuid.UUID) -> SagaDetail | None:
        """One saga in full."""
        row = self._rows.get(saga_id.int)
        if row is None:
            return None
        logs = [_record(row, e) for e in row.logs]
        return SagaDetail(
            summary=dataclasses.replace(row.summary(), tries=most_tries(logs)),
            context=copy.deepcopy(row.context),
            context_raw=json.dumps(row.context, default=str),
            context_error=None,
            steps=build_step_views(logs),
            logs=logs,
            audit=[a for a in self._audit if a.saga_id == saga_id],
            error_traceback=row.error_traceback,
        )

    async def find_ids(self, prefix: str, limit: int = 2) -> list[uuid.UUID]:
        """Ids starting with ``prefix``."""
        prefix = prefix.lower()
        out = [r.id for r in self._rows.values() if str(r.id).startswith(prefix)]
        return sorted(out, key=str)[:limit]

    async def logs_after(self, after_id: int, limit: int = 500) -> list[LogRecord]:
        """Log entries above the watermark."""
        rows = self._rows
        return [_record(rows[e[1]], e) for e in self._log[after_id : after_id + limit]]

    async def last_log_id(self) -> int:
        """Highest log id."""
        return len(self._log)

    async def change_token(self) -> int:
        """Counts writes."""
        return self._changes

    # ---- python-cqrs compatible primitives ---------------------------------------------

    async def load_saga_state(
        self,
        saga_id: uuid.UUID,
        *,
        read_for_update: bool = False,
    ) -> tuple[SagaStatus, dict[str, typing.Any], int]:
        """Status, context and version."""
        row = self._rows.get(saga_id.int)
        if row is None:
            raise SagaNotFoundError(f"Saga {saga_id} not found")
        return row.status, copy.deepcopy(row.context), row.version

    async def get_step_history(self, saga_id: uuid.UUID) -> list[SagaLogEntry]:
        """The saga's log."""
        row = self._rows.get(saga_id.int)
        return [_entry(row, e) for e in row.logs] if row is not None else []

    async def get_sagas_for_recovery(
        self,
        limit: int,
        max_recovery_attempts: int = 5,
        stale_after_seconds: int | None = None,
        saga_name: str | None = None,
    ) -> list[uuid.UUID]:
        """RUNNING/COMPENSATING sagas, oldest update first."""
        cutoff = None
        if stale_after_seconds is not None:
            cutoff = time.time() - stale_after_seconds
        rows = [
            r
            for r in self._rows.values()
            if r.status in (SagaStatus.RUNNING, SagaStatus.COMPENSATING)
            and r.recovery_attempts < max_recovery_attempts
            and (cutoff is None or r.updated_at < cutoff)
            and (saga_name is None or r.name == saga_name)
        ]
        rows.sort(key=lambda r: r.updated_at)
        return [r.id for r in rows[:limit]]

    async def increment_recovery_attempts(
        self,
        saga_id: uuid.UUID,
        new_status: SagaStatus | None = None,
    ) -> None:
        """Count a failed recovery."""
        row = self._rows.get(saga_id.int)
        if row is None:
            raise SagaNotFoundError(f"Saga {saga_id} not found")
        row.recovery_attempts += 1
        if new_status is not None:
            row.status = new_status
        row.updated_at = time.time()
        self._changes += 1

    async def set_recovery_attempts(self, saga_id: uuid.UUID, attempts: int) -> None:
        """Set the recovery counter."""
        row = self._rows.get(saga_id.int)
        if row is None:
            raise SagaNotFoundError(f"Saga {saga_id} not found")
        row.recovery_attempts = attempts
        self._changes += 1


__all__ = ["MemorySagaStorage", "SagaStepStatus"]
