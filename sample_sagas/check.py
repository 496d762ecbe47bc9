"""Does the ledger agree with every saga's status? The demo's end-to-end invariant."""

from __future__ import annotations

import collections
import dataclasses
import typing

from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import PageCursor
from engine.saga.storage.reader import SagaReader
from sample_sagas.app import SAGAS
from sample_sagas.ledger import LedgerRow


@dataclasses.dataclass(frozen=True, slots=True)
class Disagreement:
    """One saga whose side effects do not match its status."""

    saga_id: str
    name: str
    status: str
    reason: str

    def describe(self) -> str:
        """One line for a terminal."""
        return f"{self.saga_id}  {self.name}  {self.status}: {self.reason}"


_PLANS = {saga.__name__: saga.step_plan.alternatives() for _, saga in SAGAS}
"""Per saga name, per declared step, the names that can fulfil it (a Fallback: either)."""


def judge(
    name: str,
    status: SagaStatus,
    done: set[str],
    undone: set[str],
) -> str | None:
    """Why a saga's ledger disagrees with its status, or None when it agrees."""
    if status is SagaStatus.FAILED:
        return None  # a compensation failed: the operator must act; nothing to assert yet
    if status in (SagaStatus.PENDING, SagaStatus.RUNNING, SagaStatus.COMPENSATING):
        return "not terminal"
    if status is SagaStatus.COMPLETED:
        plan = _PLANS.get(name)
        if plan is None:
            return None
        for alternatives in plan:
            took = [n for n in alternatives if n in done]
            if not took:
                return f"no 'do' for {' or '.join(alternatives)}"
            if len(took) > 1:
                return f"'do' for more than one of {', '.join(took)}"
        if undone:
            return f"'undo' recorded for {', '.join(sorted(undone))}"
        return None
    missing = sorted(done - undone)
    if missing:
        return f"'do' without 'undo' for {', '.join(missing)}"
    return None


async def find_disagreements(
    storage: SagaReader,
    ledger: typing.Iterable[LedgerRow] | typing.Callable[[], typing.Awaitable[list[LedgerRow]]],
    *,
    page_size: int = 1000,
) -> tuple[int, list[Disagreement]]:
    """(sagas checked, disagreements) over every saga in storage and the ledger rows.

    Sagas are read before the ledger is iterated: a status read as terminal was
    committed after every side effect it depends on, so the ledger read later has them.
    ``ledger`` may be a coroutine function that fetches the rows (awaited then).
    """
    sagas: list[tuple[str, str, SagaStatus]] = []
    cursor: PageCursor | None = None
    while True:
        page = await storage.list_sagas(limit=page_size, after=cursor)
        sagas.extend((str(s.id), s.name, s.status) for s in page.items)
        if page.next_cursor is None or not page.items:
            break
        cursor = page.next_cursor
    done: dict[str, set[str]] = collections.defaultdict(set)
    undone: dict[str, set[str]] = collections.defaultdict(set)
    # (saga, step) -> when its do and its undo were recorded: order matters, not only
    # the sets: a do recorded after its undo is an effect the rollback did not remove.
    seq: dict[tuple[str, str, str], int] = {}
    rows = await ledger() if callable(ledger) else ledger
    for row in rows:
        (done if row.action == "do" else undone)[row.saga_id].add(row.step)
        seq[(row.saga_id, row.step, row.action)] = row.seq
    bad: list[Disagreement] = []
    for key, name, status in sagas:
        reason = judge(name, status, done.get(key, set()), undone.get(key, set()))
        late = sorted(
            step
            for step in done.get(key, set()) & undone.get(key, set())
            if seq[(key, step, "do")] > seq[(key, step, "undo")]
        )
        if late:
            reason = f"'do' after its 'undo' for {', '.join(late)}"
        if reason is not None:
            bad.append(Disagreement(key, name, status.name, reason))
    seen = {key for key, _, _ in sagas}
    for key in sorted(set(done) - seen):
        bad.append(Disagreement(key, "?", "MISSING", "ledger rows for a saga that is not stored"))
    return len(sagas), bad
