"""Operator requests and workers as plain data: what was asked, who serves it, how far.

A request (start, recover or compensate) names its sagas when it is made; each
(request, saga) pair is claimed by one live process with the saga type registered,
which records the pair's one outcome. A request is done when every pair has one.
"""

from __future__ import annotations

import dataclasses
import typing
import uuid

RequestKind = typing.Literal["start", "recover", "compensate"]
KINDS: tuple[RequestKind, ...] = ("start", "recover", "compensate")

HEARTBEAT_SECONDS = 3.0
"""How often a worker beats; one not heard from for GONE_AFTER is shown gone."""
GONE_AFTER = 3 * HEARTBEAT_SECONDS


@dataclasses.dataclass(frozen=True, slots=True)
class NewRequest:
    """A request about to be written, its saga ids already resolved."""

    request_id: uuid.UUID
    kind: RequestKind
    saga_ids: tuple[uuid.UUID, ...]
    saga_name: str | None
    context: dict[str, typing.Any] | None
    requester: str
    reason: str
    created_at: float


@dataclasses.dataclass(frozen=True, slots=True)
class ClaimedItem:
    """One (request, saga) pair this process now holds."""

    item_id: int
    request_id: uuid.UUID
    kind: RequestKind
    saga_id: uuid.UUID
    saga_name: str
    context: dict[str, typing.Any] | None
    reason: str
    requester: str
    fresh: bool = False
    """Never taken before: a start pair's saga cannot exist yet."""


@dataclasses.dataclass(frozen=True, slots=True)
class RequestItemView:
    """One pair as a reader sees it."""

    saga_id: uuid.UUID
    saga_name: str
    claimed_by: str | None
    taken_by: str | None
    outcome: str | None
    ok: bool | None
    error: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class RequestProgress:
    """How far one request is: pairs done, failed, taken by a live process, waiting."""

    request_id: uuid.UUID
    kind: str
    saga_name: str | None
    requester: str
    reason: str
    created_at: float
    state: str
    finished_at: float | None
    total: int
    done: int
    failed: int
    taken: int
    taker: str | None
    waiting_for: str | None = None
    """Set by a follower while pairs wait and no live process can serve them: why."""
    trouble: str | None = None
    """Set by ``RequestBook.wait`` while the progress cannot be read (the database went
    away): why, and that it tries again. This is the last progress it could read."""

    @property
    def finished(self) -> bool:
        """Every pair has its outcome."""
        return self.done >= self.total

    @property
    def waiting(self) -> int:
        """Pairs nobody holds yet."""
        return self.total - self.done - self.taken

    def describe(self) -> str:
        """One line: ``compensate 30 sagas: 12 of 30 done, 1 failed, taken by w1``."""
        what = f"{self.kind} {self.total} saga{'s' if self.total != 1 else ''}"
        if self.kind == "start" and self.saga_name:
            what = f"start {self.total} {self.saga_name}"
        if self.finished:
            bad = f", {self.failed} failed" if self.failed else ""
            return f"{what}: done{bad}"
        parts = [f"{self.done} of {self.total} done"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.taken:
            parts.append(f"taken by {owner_label(self.taker)}")
        elif self.waiting_for:
            parts.append(f"pending: {self.waiting_for}")
        else:
            parts.append("pending")
        return f"{what}: " + ", ".join(parts)


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One row of the workers table."""

    id: str
    name: str
    host: str
    pid: int
    app: str
    saga_types: tuple[str, ...]
    started_at: float
    heartbeat: float
    running: int = 0
    served: int = 0
    dedicated: bool = True
    stopped_at: float | None = None

    def alive(self, now: float) -> bool:
        """Still beating and not deregistered."""
        return self.stopped_at is None and now - self.heartbeat < GONE_AFTER

    def can_run(self, saga_name: str) -> bool:
        """The worker has this saga type registered."""
        return saga_name in self.saga_types


def owner_label(owner: str | None) -> str:
    """``host:pid`` of an owner id (``host:pid:start``), for one line of text."""
    if not owner:
        return "nobody"
    parts = owner.split(":")
    return ":".join(parts[:2]) if len(parts) >= 2 else owner
