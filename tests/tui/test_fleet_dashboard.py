"""The dashboard in the fleet: its actions are requests, it serves them locally, ``w``."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import typing
import uuid

import sqlalchemy as sa

from engine.saga.fleet import RequestBook
from engine.saga.lease import process_owner_id
from engine.saga.requests import WorkerInfo
from engine.saga.storage.sqlalchemy.schema import saga_request_items
from saga_tui.components.confirm import ConfirmScreen
from saga_tui.workers_view import WorkersScreen
from tests.tui.conftest import (
    SIZE,
    Env,
    notifications,
    screen_showing,
    screen_text,
    select,
    wait_for,
)


async def _pairs(env: Env) -> list[sa.Row[typing.Any]]:
    async with env.storage._engine.connect() as conn:
        return list(await conn.execute(sa.select(saga_request_items)))


async def test_a_compensation_is_a_request_the_dashboard_serves_itself(env: Env) -> None:
    saga_id = await env.run_saga()
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        book = RequestBook.of(env.storage)
        me = process_owner_id()
        # Local-first: with no worker alive, the dashboard registers as a (non-dedicated)
        # server of its app's saga types.
        served = await wait_for(pilot, lambda: book.live_workers(), what="the dashboard serving")
        assert [(w.id, w.dedicated) for w in served] == [(me, False)]
        await select(pilot, app, saga_id)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("y")
        await wait_for(
            pilot, lambda: any("COMPENSATED" in n for n in notifications(app)), what="toast"
        )
        (pair,) = await _pairs(env)
        assert (pair.saga_id, pair.outcome, pair.ok, pair.taken_by) == (
            saga_id,
            "COMPENSATED",
            True,
            me,
        )
        (request,) = await book.recent()
        assert (request.kind, request.state, request.requester.split("@")[0] != "") == (
            "compensate",
            "DONE",
            True,
        )
    # Quitting deregisters: the row stays, shown stopped.
    (row,) = await RequestBook.of(env.storage).workers()
    assert row.stopped_at is not None


async def test_the_workers_view_shows_live_and_gone_workers(env: Env) -> None:
    book = RequestBook.of(env.storage)
    now = time.time()
    for name, beat, pid in (("alive-one", now + 600, 11), ("dead-one", now - 120, 12)):
        await book.register(
            WorkerInfo(
                id=f"elsewhere:{pid}:1",
                name=name,
                host="elsewhere",
                pid=pid,
                app="shop.app:make",
                saga_types=("OrderSaga",),
                started_at=now - 300,
                heartbeat=beat,
                running=3,
                served=42,
            )
        )
    app = env.app(read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("w")
        await wait_for(pilot, lambda: isinstance(app.screen, WorkersScreen), what="the view")
        text = await screen_showing(pilot, app, "dead-one")
        alive = next(line for line in text.splitlines() if "alive-one" in line)
        dead = next(line for line in text.splitlines() if "dead-one" in line)
        assert "live" in alive and "shop.app:make" in alive and "42" in alive
        assert "gone" in dead and "2m ago" in dead
        assert "1 live, 1 gone or stopped" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, WorkersScreen), what="closed")


async def test_quitting_mid_request_strands_nothing(env: Env) -> None:
    # A bulk start whose sagas are slow: quit while they run; every one is left either
    # finished or free (no lease) with its request pair open for any worker.
    from sample_sagas import Knobs

    slow = Knobs(failure_rate=0.0, compensation_failure_rate=0.0, latency_ms=(200.0, 300.0))
    app = env.app(knobs=slow)
    book = RequestBook.of(env.storage)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: book.live_workers(), what="the dashboard serving")
        from engine.saga.context_codec import dump_context
        from sample_sagas.app import example_context

        request_id = await book.submit(
            "start",
            saga_name="TravelSaga",
            context=dump_context(example_context("TravelSaga")),
            count=6,
        )
        await wait_for(pilot, lambda: _taken(book, request_id), what="the request taken")
    (progress,) = await book.progress([request_id])
    pairs = await _pairs(env)
    assert all(p.claimed_by is None for p in pairs)
    async with env.storage._engine.connect() as conn:
        leases = list(
            await conn.execute(sa.text("SELECT status, lease_owner FROM saga_executions"))
        )
    assert all(owner is None for _, owner in leases)
    assert progress.done < 6 or all(s == "COMPLETED" for s, _ in leases)
    uuid.UUID(str(request_id))


async def _taken(book: RequestBook, request_id: uuid.UUID) -> bool:
    (progress,) = await book.progress([request_id])
    return progress.taken > 0


async def test_enter_on_a_worker_shows_its_sagas(env: Env) -> None:
    from engine.saga.storage.enums import SagaStatus
    from engine.saga.storage.models import Checkpoint, NewSaga

    book = RequestBook.of(env.storage)
    now = time.time()
    owners = {"w-a": "elsewhere:11:1", "w-b": "elsewhere:12:1"}
    for name, started in (("w-a", now - 100), ("w-b", now - 300)):
        owner = owners[name]
        await book.register(
            WorkerInfo(owner, name, "elsewhere", int(owner.split(":")[1]), "shop:make",
                       ("OrderSaga",), started, now)
        )  # fmt: skip
    leased: dict[str, uuid.UUID] = {}
    for name, owner in owners.items():
        leased[name] = uuid.uuid4()
        await env.storage.apply(
            Checkpoint(
                saga_id=leased[name],
                create=NewSaga(name="OrderSaga", context={"x": 1}, step_count=3),
                status=SagaStatus.RUNNING,
                owner=owner,
                lease_expires=now + 600,
            )
        )
    other = await env.run_saga()
    app = env.app(read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        t = app.main_screen.table
        await wait_for(pilot, lambda: len(t.order) == 3, what="every saga listed")
        await pilot.press("w")
        await wait_for(pilot, lambda: isinstance(app.screen, WorkersScreen), what="the view")
        await screen_showing(pilot, app, "w-b")
        await pilot.press("down")

        def age_of_w_b() -> str:
            line = next(x for x in screen_text(app).splitlines() if "w-b" in x)
            return line.split(" ago")[0].split()[-1]

        before = age_of_w_b()
        # The view re-reads the table every second: the cursor must stay on w-b.
        await wait_for(pilot, lambda: age_of_w_b() != before, what="the view refreshed")
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, WorkersScreen), what="closed")
        await wait_for(pilot, lambda: t.order == [str(leased["w-b"])], what="w-b's saga only")
        assert app.browse.saga_filter.worker == "w-b"
        assert str(other) not in t.order
        await screen_showing(pilot, app, "worker:w-b")


async def test_a_saga_type_nobody_here_runs_is_requested_and_said_to_wait(env: Env) -> None:
    # GhostSaga is registered neither in the dashboard's app nor by any worker (none runs):
    # recovering it writes a request that waits for one, and the dashboard says so.
    from engine.saga.storage.enums import SagaStatus
    from engine.saga.storage.models import Checkpoint, NewSaga
    from saga_tui.components.detail import DetailScreen

    ghost = uuid.uuid4()
    await env.storage.apply(
        Checkpoint(
            saga_id=ghost,
            create=NewSaga(name="GhostSaga", context={"x": 1}, step_count=2),
            status=SagaStatus.RUNNING,
            current_step="Haunt",
        )
    )
    app = env.app()
    book = RequestBook.of(env.storage)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, ghost)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
        await screen_showing(
            pilot, app, "GhostSaga is not registered here: r and c ask a worker that has it"
        )
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await screen_showing(pilot, app, "a worker that has it serves the request")
        await pilot.press("y")
        waiting = (
            "recover 1 saga: 0 of 1 done, pending: no worker is running; "
            "it will be served when `saga-tui worker` starts"
        )
        await wait_for(pilot, lambda: waiting in notifications(app), what="the waiting toast")
        (request,) = await book.recent()
        assert (request.kind, request.total, request.done, request.taken) == ("recover", 1, 0, 0)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main_screen, what="the list")
        await screen_showing(pilot, app, "requests wait for a worker: GhostSaga")
        await pilot.press("w")
        await wait_for(pilot, lambda: isinstance(app.screen, WorkersScreen), what="the view")
        await screen_showing(pilot, app, "requests for GhostSaga wait: no worker is running")
    # Quitting leaves it pending for any worker.
    (after,) = await book.progress([request.request_id])
    assert (after.state, after.done) == ("PENDING", 0)


async def test_a_follower_serves_its_request_itself_once_the_live_worker_is_gone(
    env: Env,
) -> None:
    # A worker row beating now but whose process is gone (its beats stop): the request is
    # left to it at first, and served here once it is gone (local-first).
    from engine.saga.requests import GONE_AFTER, RequestProgress
    from saga_tui import fleet_actions

    saga_id = await env.run_saga()
    book = RequestBook.of(env.storage)
    now = time.time()
    await book.register(
        WorkerInfo("elsewhere:13:1", "w-gone", "elsewhere", 13, "shop:make",
                   ("OrderSaga",), now, now - GONE_AFTER + 3)
    )  # fmt: skip
    assert await fleet_actions.served_elsewhere(env.mediator, ["OrderSaga"])
    seen: list[RequestProgress] = []
    asked = await fleet_actions.ask(env.mediator, "compensate", [saga_id], saga_names=["OrderSaga"])
    results = await asyncio.wait_for(
        fleet_actions.follow(env.mediator, asked, on_progress=seen.append), 120
    )
    assert [(r.saga_id, r.ok) for r in results] == [(saga_id, True)]
    assert seen[0].taken == 0 and seen[0].waiting_for is None  # left to the live worker
    (pair,) = await _pairs(env)
    assert pair.taken_by == process_owner_id()


async def test_a_database_lost_while_an_action_is_followed_is_toasted_once(env: Env) -> None:
    from engine.saga.requests import RequestProgress
    from tests.support import assert_harmless

    progress = RequestProgress(
        uuid.uuid4(), "compensate", None, "ada@host", "", 0.0, "PENDING", None, 3, 1, 0, 0, None
    )
    trouble = "reading the request's progress failed: gone\x1b]0;pwned\x07; trying again"
    app = env.app()
    async with app.run_test(size=SIZE):
        for _ in range(3):
            app._request_progress(dataclasses.replace(progress, trouble=trouble))
        app._request_progress(dataclasses.replace(progress, done=2))
        # notify() is recorded as it is called: nothing to wait for.
        said = [n for n in notifications(app, "warning") if "progress failed" in n]
        assert len(said) == 1, notifications(app)
        assert_harmless(said[0], "the toast")
