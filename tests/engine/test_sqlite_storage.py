"""The storage contract, run against memory, SQLite (raw writer) and SQLite via Core."""

from __future__ import annotations

import asyncio
import datetime
import sqlite3
import subprocess
import sys
import textwrap
import time
import typing
import uuid

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from engine.saga.storage.enums import RequestedAction, SagaStatus, SagaStepStatus
from engine.saga.storage.memory import MemorySagaStorage
from engine.saga.storage.models import (
    Checkpoint,
    ErrorInfo,
    LogWrite,
    NewSaga,
    OperatorAction,
    SagaFilter,
)
from engine.saga.storage.protocol import (
    ISagaStorage,
    LeaseLostError,
    ReadOnlyStorageError,
    SagaConcurrencyError,
    SagaNotFoundError,
)
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from engine.saga.storage.sqlalchemy.connect import create_engine_for
from tests.support import POSTGRES_URL, postgres_database, read_line, wait_for

OWNER = "testhost:1:1"
FAR = time.time() + 3600


def sqlite_url(path: typing.Any) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(params=["memory", "sqlite", "sqlite-core", *(["postgres"] if POSTGRES_URL else [])])
async def storage(
    request: pytest.FixtureRequest, tmp_path: typing.Any
) -> typing.AsyncIterator[ISagaStorage]:
    engine = None
    if request.param == "postgres":
        async with postgres_database() as url:
            store: ISagaStorage = SqlAlchemySagaStorage.from_url(url)
            yield store
            await store.close()
        return
    if request.param == "memory":
        store = MemorySagaStorage()
    elif request.param == "sqlite":
        store = SqlAlchemySagaStorage.from_url(sqlite_url(tmp_path / "sagas.db"))
    else:
        engine = create_engine_for(sqlite_url(tmp_path / "sagas.db"))
        store = SqlAlchemySagaStorage(async_sessionmaker(engine), raw_sqlite_writer=False)
    yield store
    await store.close()
    if engine is not None:
        await engine.dispose()


def commits(storage: ISagaStorage) -> int:
    writer = getattr(storage, "_writer", None)
    return writer.commits if writer is not None else 0


async def new_saga(
    storage: ISagaStorage,
    name: str = "OrderSaga",
    *,
    owner: str | None = OWNER,
    status: SagaStatus = SagaStatus.RUNNING,
    context: dict[str, typing.Any] | None = None,
    error: ErrorInfo | None = None,
) -> uuid.UUID:
    saga_id = uuid.uuid4()
    await storage.apply(
        Checkpoint(
            saga_id=saga_id,
            owner=owner,
            lease_expires=FAR if owner else None,
            create=NewSaga(name=name, context=context or {"order": 1}, step_count=3),
            status=status,
            error=error,
        ),
    )
    return saga_id


# ---- apply --------------------------------------------------------------------------------


async def test_create_sets_lease_status_and_defaults(storage: ISagaStorage) -> None:
    saga_id = await new_saga(storage, status=SagaStatus.RUNNING)
    detail = await storage.get_saga(saga_id)
    assert detail is not None
    s = detail.summary
    assert (s.name, s.status, s.version, s.step_count, s.steps_done) == (
        "OrderSaga",
        SagaStatus.RUNNING,
        1,
        3,
        0,
    )
    assert (s.lease_owner, s.lease_expires) == (OWNER, FAR)
    assert s.finished_at is None and s.requested_action is None
    assert detail.context == {"order": 1}
    assert detail.context_error is None
    assert s.created_at.tzinfo is not None


async def test_create_without_status_is_pending_and_duplicate_is_refused(
    storage: ISagaStorage,
) -> None:
    saga_id = uuid.uuid4()
    await storage.apply(Checkpoint(saga_id=saga_id, create=NewSaga("A", {}, 0)))
    lease = await storage.get_lease(saga_id)
    assert lease is not None and lease.status is SagaStatus.PENDING and lease.owner is None
    with pytest.raises(ValueError):
        await storage.apply(Checkpoint(saga_id=saga_id, create=NewSaga("A", {}, 0)))


async def test_apply_updates_every_field(storage: ISagaStorage) -> None:
    saga_id = await new_saga(storage)
    await storage.apply(
        Checkpoint(
            saga_id=saga_id,
            owner=OWNER,
            context={"order": 2},
            steps_done=1,
            current_step="Charge",
            error=ErrorInfo("TimeoutError", "gateway slow", "Traceback..."),
            lease_expires=FAR + 5,
            bump_recovery_attempts=True,
            logs=(
                LogWrite("Reserve", "act", SagaStepStatus.COMPLETED, duration_ms=4.5),
                LogWrite(
                    "Charge",
                    "act",
                    SagaStepStatus.FAILED,
                    details="boom",
                    error=ErrorInfo("TimeoutError", "gateway slow", "tb"),
                    attempt=2,
                ),
            ),
        ),
    )
    detail = await storage.get_saga(saga_id)
    assert detail is not None
    s = detail.summary
    assert detail.context == {"order": 2} and s.version == 2
    assert (s.steps_done, s.current_step, s.recovery_attempts) == (1, "Charge", 1)
    assert (s.error_type, s.error_message, detail.error_traceback) == (
        "TimeoutError",
        "gateway slow",
        "Traceback...",
    )
    assert s.lease_expires == FAR + 5
    assert [(r.step_name, r.status, r.attempt) for r in detail.logs] == [
        ("Reserve", SagaStepStatus.COMPLETED, 1),
        ("Charge", SagaStepStatus.FAILED, 2),
    ]
    assert detail.logs[0].duration_ms == 4.5
    assert detail.logs[1].error_traceback == "tb" and detail.logs[1].details == "boom"
    assert detail.logs[0].id < detail.logs[1].id
    assert [v.name for v in detail.steps] == ["Reserve", "Charge"]
    assert detail.steps[1].act.status is SagaStepStatus.FAILED

    await storage.apply(
        Checkpoint(saga_id=saga_id, owner=OWNER, clear_error=True, status=SagaStatus.COMPLETED)
    )
    s = (await storage.get_saga(saga_id)).summary  # type: ignore[union-attr]
    assert s.error_type is None and s.error_message is None
    assert s.finished_at is not None and s.duration >= datetime.timedelta(0)
    await storage.apply(Checkpoint(saga_id=saga_id, owner=OWNER, status=SagaStatus.COMPENSATING))
    s = (await storage.get_saga(saga_id)).summary  # type: ignore[union-attr]
    assert s.finished_at is None
    await storage.apply(Checkpoint(saga_id=saga_id, owner=OWNER, release_lease=True))
    lease = await storage.get_lease(saga_id)
    assert lease is not None and lease.owner is None and lease.expires is None


async def test_apply_refuses_lost_lease_and_missing_saga_without_writing(
    storage: ISagaStorage,
) -> None:
    saga_id = await new_saga(storage)
    before = await storage.last_log_id()
    with pytest.raises(LeaseLostError):
        await storage.apply(
            Checkpoint(
                saga_id=saga_id,
                owner="otherhost:9:9",
                status=SagaStatus.FAILED,
                logs=(LogWrite("X", "act", SagaStepStatus.STARTED),),
            ),
        )
    assert await storage.last_log_id() == before
    lease = await storage.get_lease(saga_id)
    assert lease is not None and lease.status is SagaStatus.RUNNING
    with pytest.raises(SagaNotFoundError):
        await storage.apply(Checkpoint(saga_id=uuid.uuid4(), status=SagaStatus.FAILED))
    # Without an owner the write is unconditional.
    await storage.apply(Checkpoint(saga_id=saga_id, steps_done=2))


async def test_requested_action_is_returned_before_it_is_cleared(storage: ISagaStorage) -> None:
    saga_id = await new_saga(storage)
    result = await storage.apply(Checkpoint(saga_id=saga_id, owner=OWNER))
    assert result.requested_action is None
    await storage.request_action(saga_id, RequestedAction.COMPENSATE)
    listed = await storage.list_sagas()
    assert listed.items[0].requested_action is RequestedAction.COMPENSATE
    result = await storage.apply(Checkpoint(saga_id=saga_id, owner=OWNER))
    assert result.requested_action is RequestedAction.COMPENSATE
    result = await storage.apply(
        Checkpoint(saga_id=saga_id, owner=OWNER, clear_requested_action=True)
    )
    assert result.requested_action is RequestedAction.COMPENSATE
    result = await storage.apply(Checkpoint(saga_id=saga_id, owner=OWNER))
    assert result.requested_action is None
    with pytest.raises(SagaNotFoundError):
        await storage.request_action(uuid.uuid4(), RequestedAction.COMPENSATE)


async def test_concurrent_checkpoints_share_commits_and_fail_alone(storage: ISagaStorage) -> None:
    ids = [await new_saga(storage) for _ in range(64)]
    checkpoints = [
        Checkpoint(
            saga_id=sid,
            owner=OWNER if i != 7 else "thief:1:1",
            steps_done=1,
            logs=(LogWrite("S1", "act", SagaStepStatus.COMPLETED),),
        )
        for i, sid in enumerate(ids)
    ]
    before = commits(storage)
    results = await asyncio.gather(
        *(storage.apply(cp) for cp in checkpoints), return_exceptions=True
    )
    assert isinstance(results[7], LeaseLostError)
    assert all(not isinstance(r, BaseException) for i, r in enumerate(results) if i != 7)
    logs = await storage.logs_after(0, limit=1000)
    assert len(logs) == 63 and ids[7] not in {r.saga_id for r in logs}
    if isinstance(storage, SqlAlchemySagaStorage):
        assert commits(storage) - before <= 8  # 64 checkpoints shared commits


# ---- leases ---------------------------------------------------------------------------------


async def test_claim_rules(storage: ISagaStorage) -> None:
    now = time.time()
    held = await new_saga(storage, owner="otherhost:2:2")
    assert await storage.claim(held, OWNER, now + 30, now=now) is None
    state = await storage.claim(held, OWNER, now + 30, now=now, steal_from="otherhost:2:2")
    assert state is not None and state.saga_id == held and state.name == "OrderSaga"
    assert (await storage.get_lease(held)).owner == OWNER  # type: ignore[union-attr]
    # Already ours: claiming again succeeds and extends.
    assert await storage.claim(held, OWNER, now + 60, now=now) is not None
    assert (await storage.get_lease(held)).expires == now + 60  # type: ignore[union-attr]
    # Expired lease.
    assert await storage.claim(held, "third:3:3", now + 90, now=now + 61) is not None
    # Free lease, with history and context in the state.
    free = await new_saga(storage, owner=None, context={"k": [1, 2]})
    await storage.apply(
        Checkpoint(saga_id=free, logs=(LogWrite("A", "act", SagaStepStatus.STARTED),)),
    )
    await storage.request_action(free, RequestedAction.COMPENSATE)
    state = await storage.claim(free, OWNER, now + 30, now=now)
    assert state is not None
    assert state.context == {"k": [1, 2]} and state.version == 1
    assert [e.step_name for e in state.history] == ["A"]
    assert state.requested_action is RequestedAction.COMPENSATE
    assert state.status is SagaStatus.RUNNING
    with pytest.raises(SagaNotFoundError):
        await storage.claim(uuid.uuid4(), OWNER, now + 30, now=now)


async def test_renew_and_lease_candidates(storage: ISagaStorage) -> None:
    now = time.time()
    mine = [await new_saga(storage) for _ in range(3)]
    other_live = await new_saga(storage, owner="elsewhere:1:1")
    free = await new_saga(storage, owner=None)
    done = await new_saga(storage, owner=None, status=SagaStatus.COMPLETED)
    assert await storage.renew_leases(OWNER, now + 100) == 3
    assert await storage.renew_leases("nobody", now + 100) == 0
    assert (await storage.get_lease(mine[0])).expires == now + 100  # type: ignore[union-attr]
    assert await storage.get_lease(uuid.uuid4()) is None
    found = await storage.lease_candidates(now, "testhost", 100)
    ids = [c.saga_id for c in found]
    assert set(ids) == {*mine, free}
    assert other_live not in ids and done not in ids
    later = await storage.lease_candidates(FAR + 1, "nohost", 100)
    assert {c.saga_id for c in later} == {*mine, other_live, free}
    assert len(await storage.lease_candidates(now, "testhost", 2)) == 2


# ---- queries ---------------------------------------------------------------------------------


async def test_counts_and_audit(storage: ISagaStorage) -> None:
    a = await new_saga(storage, status=SagaStatus.RUNNING)
    await new_saga(storage, status=SagaStatus.RUNNING)
    await new_saga(storage, status=SagaStatus.FAILED)
    await storage.apply(Checkpoint(saga_id=a, status=SagaStatus.COMPLETED))
    counts = await storage.count_by_status()
    assert counts[SagaStatus.RUNNING] == 1 and counts[SagaStatus.COMPLETED] == 1
    assert counts[SagaStatus.FAILED] == 1 and counts.total == 3
    await storage.record_operator_action(
        OperatorAction(
            saga_id=a, action="compensate", reason="customer asked", os_user="ann", host="h"
        ),
    )
    detail = await storage.get_saga(a)
    assert detail is not None
    assert [(x.action, x.reason, x.os_user) for x in detail.audit] == [
        ("compensate", "customer asked", "ann")
    ]
    assert detail.audit[0].created_at is not None
    assert await storage.get_saga(uuid.uuid4()) is None


async def test_list_filters_and_keyset_pages(storage: ISagaStorage) -> None:
    made = []
    for i in range(23):
        name = ["OrderSaga", "TravelSaga", "RefundSaga"][i % 3]
        status = SagaStatus.FAILED if i % 4 == 0 else SagaStatus.COMPLETED
        error = (
            ErrorInfo("TimeoutError", f"gateway {i} 100% slow")
            if status is SagaStatus.FAILED
            else None
        )
        made.append((await new_saga(storage, name, status=status, error=error), name, status))
    everything = (await storage.list_sagas(limit=1000)).items
    assert len(everything) == 23
    keys = [(s.created_at, str(s.id)) for s in everything]
    assert keys == sorted(keys, reverse=True)

    failed = await storage.list_sagas(SagaFilter(statuses=(SagaStatus.FAILED,)))
    assert {s.id for s in failed.items} == {m[0] for m in made if m[2] is SagaStatus.FAILED}
    travel = await storage.list_sagas(SagaFilter(name="travel"))
    assert {s.id for s in travel.items} == {m[0] for m in made if m[1] == "TravelSaga"}
    both = await storage.list_sagas(SagaFilter(statuses=(SagaStatus.FAILED,), name="order"))
    assert {s.id for s in both.items} == {
        m[0] for m in made if m[1] == "OrderSaga" and m[2] is SagaStatus.FAILED
    }
    text = await storage.list_sagas(SagaFilter(text="100%"))
    assert len(text.items) == len(failed.items)
    assert (await storage.list_sagas(SagaFilter(text="timeouterror"))).items == failed.items
    target = made[5][0]
    by_id = await storage.list_sagas(SagaFilter(text=str(target)[:13].upper()))
    assert target in {s.id for s in by_id.items}
    mid = everything[10].created_at
    assert len((await storage.list_sagas(SagaFilter(since=mid))).items) == 11
    assert len((await storage.list_sagas(SagaFilter(until=mid))).items) == 13

    # Forward through pages of 5, then back again, as memory.py pages.
    pages = [await storage.list_sagas(limit=5)]
    assert pages[0].prev_cursor is None
    while pages[-1].next_cursor is not None:
        pages.append(await storage.list_sagas(limit=5, after=pages[-1].next_cursor))
    assert [s.id for p in pages for s in p.items] == [s.id for s in everything]
    assert [len(p.items) for p in pages] == [5, 5, 5, 5, 3]
    assert all(p.prev_cursor is not None for p in pages[1:])
    back = [pages[-1]]
    while back[-1].prev_cursor is not None:
        back.append(await storage.list_sagas(limit=5, before=back[-1].prev_cursor))
    assert [s.id for s in back[1].items] == [s.id for s in pages[3].items]
    assert [s.id for s in back[-1].items] == [s.id for s in pages[0].items]
    assert back[-1].prev_cursor is None and back[-1].next_cursor is not None
    empty = await storage.list_sagas(SagaFilter(name="nope"))
    assert empty.items == [] and empty.next_cursor is None and empty.prev_cursor is None


async def test_find_ids_logs_after_and_last_log_id(storage: ISagaStorage) -> None:
    ids = [await new_saga(storage) for _ in range(5)]
    target = ids[2]
    assert await storage.find_ids(str(target)) == [target]
    assert await storage.find_ids(str(target)[:13].upper()) == [target]
    assert await storage.find_ids("zz") == []
    assert len(await storage.find_ids("", limit=3)) == 3
    assert await storage.last_log_id() == 0
    for sid in ids:
        await storage.apply(
            Checkpoint(
                saga_id=sid,
                logs=(
                    LogWrite("A", "act", SagaStepStatus.STARTED),
                    LogWrite("A", "act", SagaStepStatus.COMPLETED),
                ),
            ),
        )
    last = await storage.last_log_id()
    assert last == 10
    first = await storage.logs_after(0, limit=4)
    assert [r.id for r in first] == [1, 2, 3, 4]
    assert first[0].saga_name == "OrderSaga" and first[0].saga_id == ids[0]
    rest = await storage.logs_after(4)
    assert [r.id for r in rest] == list(range(5, 11))
    assert await storage.logs_after(last) == []


async def test_change_token_moves_on_writes(storage: ISagaStorage) -> None:
    token = await storage.change_token()
    saga_id = await new_saga(storage)
    assert await storage.change_token() != token
    token = await storage.change_token()
    await storage.request_action(saga_id, RequestedAction.COMPENSATE)
    assert await storage.change_token() != token


# ---- python-cqrs primitives ----------------------------------------------------------------


async def test_python_cqrs_primitives(storage: ISagaStorage) -> None:
    saga_id = uuid.uuid4()
    await storage.create_saga(saga_id, "OrderSaga", {"a": 1})
    assert await storage.load_saga_state(saga_id) == (SagaStatus.PENDING, {"a": 1}, 1)
    await storage.update_context(saga_id, {"a": 2}, current_version=1)
    with pytest.raises(SagaConcurrencyError):
        await storage.update_context(saga_id, {"a": 3}, current_version=1)
    await storage.update_status(saga_id, SagaStatus.RUNNING)
    await storage.log_step(saga_id, "S1", "act", SagaStepStatus.STARTED)
    await storage.log_step(saga_id, "S1", "act", SagaStepStatus.COMPLETED, details="ok")
    assert await storage.load_saga_state(saga_id) == (SagaStatus.RUNNING, {"a": 2}, 2)
    history = await storage.get_step_history(saga_id)
    assert [(e.step_name, e.status, e.details) for e in history] == [
        ("S1", SagaStepStatus.STARTED, None),
        ("S1", SagaStepStatus.COMPLETED, "ok"),
    ]
    assert await storage.get_step_history(uuid.uuid4()) == []
    with pytest.raises(SagaNotFoundError):
        await storage.load_saga_state(uuid.uuid4())

    other = uuid.uuid4()
    await storage.create_saga(other, "TravelSaga", {})
    await storage.update_status(other, SagaStatus.COMPENSATING)
    assert await storage.get_sagas_for_recovery(10) == [saga_id, other]
    assert await storage.get_sagas_for_recovery(10, saga_name="TravelSaga") == [other]
    assert await storage.get_sagas_for_recovery(10, stale_after_seconds=3600) == []
    await storage.increment_recovery_attempts(saga_id)
    await storage.increment_recovery_attempts(other, new_status=SagaStatus.FAILED)
    assert await storage.get_sagas_for_recovery(10, max_recovery_attempts=1) == []
    assert (await storage.load_saga_state(other))[0] is SagaStatus.FAILED
    await storage.set_recovery_attempts(saga_id, 0)
    assert await storage.get_sagas_for_recovery(10, max_recovery_attempts=1) == [saga_id]
    with pytest.raises(SagaNotFoundError):
        await storage.increment_recovery_attempts(uuid.uuid4())
    with pytest.raises(SagaNotFoundError):
        await storage.set_recovery_attempts(uuid.uuid4(), 1)


# ---- SQLite only ----------------------------------------------------------------------------


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_change_token_sees_another_process(tmp_path: typing.Any) -> None:
    path = tmp_path / "sagas.db"
    storage = SqlAlchemySagaStorage.from_url(sqlite_url(path))
    try:
        saga_id = await new_saga(storage)
        token = await storage.change_token()
        assert await storage.change_token() == token
        done = run_python(
            """
            import asyncio, sys, uuid
            from engine.saga.storage.enums import SagaStatus
            from engine.saga.storage.models import Checkpoint
            from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage

            async def main():
                s = SqlAlchemySagaStorage.from_url("sqlite+aiosqlite:///" + sys.argv[1])
                saga_id = uuid.UUID(sys.argv[2])
                await s.apply(Checkpoint(saga_id=saga_id, status=SagaStatus.COMPLETED))
                await s.close()

            asyncio.run(main())
            """,
            str(path),
            str(saga_id),
        )
        assert done.returncode == 0, done.stderr

        async def moved() -> bool:
            return await storage.change_token() != token

        await wait_for(moved, what="the other process's write to change the token")
        assert (await storage.count_by_status())[SagaStatus.COMPLETED] == 1
    finally:
        await storage.close()


async def test_write_lock_held_by_another_process_makes_apply_wait(tmp_path: typing.Any) -> None:
    path = tmp_path / "sagas.db"
    storage = SqlAlchemySagaStorage.from_url(sqlite_url(path))
    try:
        saga_id = await new_saga(storage)
        # Another process takes the write lock and keeps it until told to commit.
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(
                    """
                    import sqlite3, sys
                    c = sqlite3.connect(sys.argv[1], isolation_level=None)
                    c.execute("BEGIN IMMEDIATE")
                    print("locked", flush=True)
                    sys.stdin.readline()
                    c.execute("COMMIT")
                    print("committed", flush=True)
                    """,
                ),
                str(path),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdin is not None
            line = await asyncio.to_thread(read_line, holder, 30.0, what="(the lock holder)")
            assert line == "locked"
            write = asyncio.ensure_future(
                storage.apply(
                    Checkpoint(
                        saga_id=saga_id,
                        owner=OWNER,
                        status=SagaStatus.COMPLETED,
                        logs=(LogWrite("S", "act", SagaStepStatus.COMPLETED),),
                    ),
                ),
            )
            # While the other process holds the lock the checkpoint cannot be durable:
            # apply waits (it neither returns nor fails with "database is locked").
            finished, _ = await asyncio.wait({write}, timeout=1.0)
            assert not finished, "apply returned while another process held the write lock"
            holder.stdin.write("commit\n")
            holder.stdin.flush()
            await asyncio.wait_for(write, timeout=60)
            claimed = await storage.claim(saga_id, OWNER, FAR, now=time.time())
        finally:
            if holder.stdin is not None and not holder.stdin.closed:
                holder.stdin.close()
            holder.wait(timeout=30)
        assert claimed is not None and claimed.status is SagaStatus.COMPLETED
        assert len(claimed.history) == 1
    finally:
        await storage.close()


async def test_read_only_refuses_writes_and_reads(tmp_path: typing.Any) -> None:
    path = tmp_path / "sagas.db"
    writer = SqlAlchemySagaStorage.from_url(sqlite_url(path))
    saga_id = await new_saga(writer)
    reader = SqlAlchemySagaStorage.from_url(sqlite_url(path), read_only=True)
    try:
        assert reader.read_only
        assert (await reader.get_saga(saga_id)) is not None
        assert (await reader.count_by_status())[SagaStatus.RUNNING] == 1
        token = await reader.change_token()
        with pytest.raises(ReadOnlyStorageError):
            await reader.apply(Checkpoint(saga_id=saga_id, status=SagaStatus.FAILED))
        with pytest.raises(ReadOnlyStorageError):
            await reader.claim(saga_id, OWNER, FAR, now=time.time())
        with pytest.raises(ReadOnlyStorageError):
            await reader.record_operator_action(OperatorAction(saga_id=saga_id, action="recover"))
        await writer.apply(Checkpoint(saga_id=saga_id, status=SagaStatus.FAILED))

        async def moved() -> bool:
            return await reader.change_token() != token

        await wait_for(moved, what="the writer's commit to change the reader's token")
        assert (await reader.count_by_status())[SagaStatus.FAILED] == 1
    finally:
        await reader.close()
        await writer.close()


async def test_unparsable_context_is_reported_not_raised(tmp_path: typing.Any) -> None:
    path = tmp_path / "sagas.db"
    storage = SqlAlchemySagaStorage.from_url(sqlite_url(path))
    try:
        saga_id = await new_saga(storage)
        with sqlite3.connect(path) as raw:
            raw.execute(
                "UPDATE saga_executions SET context = ? WHERE id = ?", ('{"order": 1,', saga_id.hex)
            )
        detail = await storage.get_saga(saga_id)
        assert detail is not None
        assert detail.context is None
        assert detail.context_raw == '{"order": 1,'
        assert detail.context_error is not None and "\n" not in detail.context_error
        assert (await storage.list_sagas()).items[0].id == saga_id
    finally:
        await storage.close()


@pytest.mark.parametrize("raw_writer", [True, False])
async def test_checkpoint_failing_halfway_fails_alone(
    tmp_path: typing.Any, raw_writer: bool
) -> None:
    engine = create_engine_for(sqlite_url(tmp_path / "sagas.db"))
    storage = SqlAlchemySagaStorage(async_sessionmaker(engine), raw_sqlite_writer=raw_writer)
    try:
        ids = [await new_saga(storage) for _ in range(5)]
        # A NULL step name passes the saga UPDATE, then breaks the log INSERT.
        bad = LogWrite(typing.cast(str, None), "act", SagaStepStatus.STARTED)
        good = LogWrite("S1", "act", SagaStepStatus.STARTED)
        checkpoints = [
            Checkpoint(saga_id=sid, owner=OWNER, steps_done=1, logs=(bad if i == 2 else good,))
            for i, sid in enumerate(ids)
        ]
        results = await asyncio.gather(
            *(storage.apply(cp) for cp in checkpoints), return_exceptions=True
        )
        assert isinstance(results[2], Exception)
        assert all(not isinstance(r, BaseException) for i, r in enumerate(results) if i != 2)
        assert {r.saga_id for r in await storage.logs_after(0)} == set(ids) - {ids[2]}
        bad_row = await storage.get_saga(ids[2])
        assert bad_row is not None and bad_row.summary.steps_done == 0  # its UPDATE rolled back
    finally:
        await storage.close()
        await engine.dispose()
