"""In-process storage implementing the whole protocol; state lives as long as the object."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import time
import typing
import uuid

from engine.saga.errors import saga_uuid
from engine.saga.storage import memory_oncall
from engine.saga.storage.enums import (
    ACTIVE_STATUSES,
    RequestedAction,
    SagaStatus,
    SagaStepStatus,
)
from engine.saga.storage.lanes import build_step_views, error_traceback, most_tries
from engine.saga.storage.memory_outbox import MemoryEventOutbox
from engine.saga.storage.models import (
    NEWEST_FIRST,
    Checkpoint,
    CheckpointResult,
    LeaseInfo,
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
from engine.saga.storage.protocol import ISagaStorage
from engine.saga.storage.rows import (
    LogRow,
    already_exists,
    checkpoint_rows,
    lease_lost,
    log_entry,
    not_found,
)

_NOTHING_REQUESTED = CheckpointResult()
_ACTIVE_NAMES = frozenset(s.name for s in ACTIVE_STATUSES)
_time = time.time


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _dt(ts: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC)


# A saga row is a dict keyed by column, holding what the database would (statuses by
# name, unix times), so a checkpoint's column changes apply with one dict.update.
_Row = dict[str, typing.Any]


def _status(row: _Row) -> SagaStatus:
    return SagaStatus[row["status"]]


def _requested(row: _Row) -> RequestedAction | None:
    value = row["requested_action"]
    return None if value is None else RequestedAction(value)


def _summary(row: _Row) -> SagaSummary:
    finished = row["finished_at"]
    return SagaSummary(
        id=row["id"],
        name=row["name"],
        status=_status(row),
        created_at=_dt(row["created_at"]),
        updated_at=_dt(row["updated_at"]),
        step_count=row["step_count"],
        steps_done=row["steps_done"],
        current_step=row["current_step"],
        recovery_attempts=row["recovery_attempts"],
        error_type=row["error_type"],
        error_message=row["error_message"],
        lease_owner=row["lease_owner"],
        lease_expires=row["lease_expires"],
        requested_action=_requested(row),
        finished_at=_dt(finished) if finished else None,
        version=row["version"],
        search_key=row.get("search_key"),
        failure_key=row.get("failure_key"),
    )


class MemorySagaStorage(memory_oncall.OnCallQueries, MemoryEventOutbox, ISagaStorage):
    """Keeps sagas in dictionaries; for tests, examples and short-lived processes."""

    def __init__(self) -> None:
        # Keyed by the id's int: UUID.__hash__ is Python code and this is the hot path.
        self._rows: dict[int, _Row] = {}
        # The log: values in rows.LOG_COLUMNS order (tuples of atomic values, which the
        # garbage collector stops scanning once they survived a collection: a million
        # log rows must not make every collection slower); log id n is index n - 1.
        self._log: list[LogRow] = []
        self._log_saga: list[int] = []  # the saga key of each log row
        self._saga_logs: dict[int, list[int]] = {}  # saga key -> its log ids
        self._audit: list[OperatorAction] = []
        self._changes = 0
        self._init_events()

    # ---- runner protocol --------------------------------------------------------------

    async def apply(self, checkpoint: Checkpoint) -> CheckpointResult:
        """Apply one checkpoint's row changes; dictionaries make it atomic by construction."""
        saga_id = checkpoint.saga_id
        key = saga_id.int
        row = self._rows.get(key)
        insert, update, increment, guard, logs, events = checkpoint_rows(checkpoint, _time())
        requested = None
        if insert is not None:
            if row is not None:
                raise already_exists(saga_id)
            self._rows[key] = insert
            self._saga_logs[key] = []
        elif row is None:
            raise not_found(saga_id)
        else:
            for column, value in guard:
                if row[column] != value:
                    holder = row["lease_owner"]
                    raise lease_lost(saga_id, holder, row["fence"], checkpoint.owner)
            requested = row["requested_action"]
            assert update is not None
            row.update(update)
            for column in increment:
                row[column] += 1
        if logs:
            log = self._log
            log_saga = self._log_saga
            saga_logs = self._saga_logs[key]
            for values in logs:
                log.append(values)
                log_saga.append(key)
                saga_logs.append(len(log))
        if events:
            self._store_events(saga_id, events)
        self._changes += 1
        if requested is None:
            return _NOTHING_REQUESTED
        return CheckpointResult(RequestedAction(requested))

    def _row(self, saga_id: uuid.UUID) -> _Row:
        row = self._rows.get(saga_id.int)
        if row is None:
            raise not_found(saga_id)
        return row

    def _entries(self, row: _Row) -> list[SagaLogEntry]:
        log = self._log
        saga_id, name = row["id"], row["name"]
        return [
            log_entry(log_id, saga_id, name, log[log_id - 1], _dt)
            for log_id in self._saga_logs[saga_id.int]
        ]

    def _state(self, row: _Row) -> SagaState:
        return SagaState(
            saga_id=row["id"],
            name=row["name"],
            status=_status(row),
            context=copy.deepcopy(row["context"]),
            version=row["version"],
            history=self._entries(row),
            requested_action=_requested(row),
            recovery_attempts=row["recovery_attempts"],
            fence=row["fence"],
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
        row = self._row(saga_id)
        holder = row["lease_owner"]
        free = (
            holder is None
            or holder == owner
            or (row["lease_expires"] is not None and row["lease_expires"] < now)
            or (steal_from is not None and holder == steal_from)
        )
        if not free:
            return None
        row["lease_owner"] = owner
        row["lease_expires"] = lease_expires
        row["fence"] += 1
        self._changes += 1
        return self._state(row)

    async def renew_leases(self, owner: str, lease_expires: float) -> int:
        """Extend every lease held by ``owner``."""
        count = 0
        for row in self._rows.values():
            if row["lease_owner"] == owner:
                row["lease_expires"] = lease_expires
                count += 1
        return count

    async def heartbeat(
        self,
        owner: str,
        held: typing.Mapping[uuid.UUID, int],
        lease_expires: float,
        now: float,
    ) -> set[uuid.UUID]:
        """Extend the leases in ``held`` still ``owner``'s with that fence and unexpired."""
        renewed: set[uuid.UUID] = set()
        for saga_id, fence in held.items():
            row = self._rows.get(saga_id.int)
            if row is None or row["lease_owner"] != owner or row["fence"] != fence:
                continue
            if row["lease_expires"] is not None and row["lease_expires"] < now:
                continue
            row["lease_expires"] = lease_expires
            renewed.add(saga_id)
        return renewed

    async def get_lease(self, saga_id: uuid.UUID) -> LeaseInfo | None:
        """Who holds one saga."""
        row = self._rows.get(saga_uuid(saga_id).int)
        if row is None:
            return None
        return LeaseInfo(
            row["id"], _status(row), row["lease_owner"], row["lease_expires"], row["fence"]
        )

    async def lease_candidates(self, now: float, host: str, limit: int) -> list[LeaseInfo]:
        """Unfinished sagas with a free or expired lease, or held on this host."""
        out: list[LeaseInfo] = []
        rows = sorted(self._rows.values(), key=lambda r: r["updated_at"])
        for row in rows:
            if row["status"] not in _ACTIVE_NAMES:
                continue
            owner = row["lease_owner"]
            if (
                owner is None
                or (row["lease_expires"] is not None and row["lease_expires"] < now)
                or owner.startswith(host + ":")
            ):
                out.append(LeaseInfo(row["id"], _status(row), owner, row["lease_expires"]))
                if len(out) >= limit:
                    break
        return out

    async def request_action(self, saga_id: uuid.UUID, action: RequestedAction) -> None:
        """Store a request for the saga's owner."""
        self._row(saga_id)["requested_action"] = action.value
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
            counts[_status(row)] += 1
        return StatusCounts(counts)

    @staticmethod
    def _matches(row: _Row, f: SagaFilter, now: float = 0.0) -> bool:
        if not memory_oncall.matches_oncall(row, f, now or _time()):
            return False
        if f.statuses and _status(row) not in f.statuses:
            return False
        if f.name and f.name.lower() not in row["name"].lower():
            return False
        if f.text and not f.text_in_keys:
            prefix = f.id_prefix
            if prefix is not None:
                if not str(row["id"]).startswith(prefix):
                    return False
            else:
                text = f.text.lower()
                if text not in (row["error_message"] or "").lower() and (
                    text not in (row["error_type"] or "").lower()
                ):
                    return False
        if f.since and _dt(row["created_at"]) < f.since:
            return False
        return not (f.until and _dt(row["created_at"]) > f.until)

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
        saga_filter = await self._resolve(saga_filter)
        now = _time()
        rows = self._rows.values()
        items = [
            _summary(r)
            for r in rows
            if self._matches(r, saga_filter, now)
            and (not saga_filter.events or self._holds_events(r["id"], saga_filter.events))
        ]

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
        chunk = [
            dataclasses.replace(s, tries=most_tries(self._entries(self._row(s.id)))) for s in chunk
        ]
        more = chunk and start + limit < len(keys)
        next_cursor = order.cursor(chunk[-1]) if more else None
        prev_cursor = order.cursor(chunk[0]) if chunk and start > 0 else None
        return SagaPage(chunk, next_cursor, prev_cursor)

    async def _resolve(self, saga_filter: SagaFilter) -> SagaFilter:
        return await resolve_text_filter(saga_filter, self.find_ids, self._has_key)

    async def get_saga(self, saga_id: uuid.UUID) -> SagaDetail | None:
        """One saga in full."""
        row = self._rows.get(saga_uuid(saga_id).int)
        if row is None:
            return None
        logs = self._entries(row)
        head = _summary(row)
        traceback = row["error_traceback"] or error_traceback(
            logs, head.error_type, head.error_message
        )
        return SagaDetail(
            summary=dataclasses.replace(head, tries=most_tries(logs)),
            context=copy.deepcopy(row["context"]),
            context_raw=json.dumps(row["context"], default=str),
            context_error=None,
            steps=build_step_views(logs),
            logs=logs,
            audit=[a for a in self._audit if a.saga_id == saga_id],
            error_traceback=traceback,
        )

    async def find_ids(self, prefix: str, limit: int = 2) -> list[uuid.UUID]:
        """Ids starting with ``prefix``."""
        prefix = prefix.lower()
        out = [r["id"] for r in self._rows.values() if str(r["id"]).startswith(prefix)]
        return sorted(out, key=str)[:limit]

    async def logs_after(self, after_id: int, limit: int = 500) -> list[SagaLogEntry]:
        """Log entries above the watermark."""
        rows, log, log_saga = self._rows, self._log, self._log_saga
        out = []
        for index in range(max(0, after_id), min(after_id + limit, len(log))):
            row = rows[log_saga[index]]
            out.append(log_entry(index + 1, row["id"], row["name"], log[index], _dt))
        return out

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
        row = self._row(saga_id)
        return _status(row), copy.deepcopy(row["context"]), row["version"]

    async def get_step_history(self, saga_id: uuid.UUID) -> list[SagaLogEntry]:
        """The saga's log."""
        row = self._rows.get(saga_id.int)
        return self._entries(row) if row is not None else []

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
        wanted = (SagaStatus.RUNNING.name, SagaStatus.COMPENSATING.name)
        rows = [
            r
            for r in self._rows.values()
            if r["status"] in wanted
            and r["recovery_attempts"] < max_recovery_attempts
            and (cutoff is None or r["updated_at"] < cutoff)
            and (saga_name is None or r["name"] == saga_name)
        ]
        rows.sort(key=lambda r: r["updated_at"])
        return [r["id"] for r in rows[:limit]]

    async def increment_recovery_attempts(
        self,
        saga_id: uuid.UUID,
        new_status: SagaStatus | None = None,
    ) -> None:
        """Count a failed recovery."""
        row = self._row(saga_id)
        row["recovery_attempts"] += 1
        if new_status is not None:
            row["status"] = new_status.name
        row["updated_at"] = time.time()
        self._changes += 1

    async def set_recovery_attempts(self, saga_id: uuid.UUID, attempts: int) -> None:
        """Set the recovery counter."""
        self._row(saga_id)["recovery_attempts"] = attempts
        self._changes += 1


__all__ = ["MemorySagaStorage", "SagaStepStatus"]
