"""The on-call view under Pilot, on real SQLite files: stranded sagas of a SIGKILLed
process, recovering them all, marking everything a filter matches, failure groups, the
pulse, the step timeline, business keys, and confirmations that default to cancel."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import random
import signal
import subprocess
import sys
import typing
import uuid

import pytest
from textual.command import CommandList, CommandPalette
from textual.widgets import DataTable, Static

from engine.saga.context_codec import dump_context
from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import Checkpoint, ErrorInfo, NewSaga, SagaFilter
from saga_tui.components.confirm import ConfirmScreen
from saga_tui.components.detail import DetailScreen
from saga_tui.components.groups import GroupsScreen
from saga_tui.components.status_bar import PulseBar, StrandedChip
from saga_tui.components.steps import StepsScreen
from saga_tui.operations import submit_action
from sample_sagas import create_mediator
from sample_sagas.app import example_context
from tests.support import read_line
from tests.tui.conftest import (
    FAST,
    Env,
    notifications,
    screen_text,
    select,
    table,
)
from tests.tui.conftest import wait_for as wait_up_to

ROOT = pathlib.Path(__file__).resolve().parents[2]
SIZE = (140, 40)


async def wait_for(
    pilot: typing.Any, condition: typing.Callable[[], object], timeout: float = 30.0, what: str = ""
) -> typing.Any:
    """conftest's wait_for with a longer deadline: these flows read a lot on a busy machine."""
    return await wait_up_to(pilot, condition, timeout, what=what or "condition")


def stranded_chip(app: typing.Any) -> str:
    """The header's STRANDED count as shown."""
    return str(app.main_screen.query_one(StrandedChip).text)


def confirm_text(app: typing.Any) -> str:
    """The open confirmation's title and body."""
    screen = app.screen
    assert isinstance(screen, ConfirmScreen)
    return f"{screen.title_text}\n{screen.body.plain}"


def subtitle(app: typing.Any) -> str:
    """The table's bottom border line."""
    return str(table(app).border_subtitle)


def start_strander(env: Env, count: int) -> subprocess.Popen[str]:
    """A process running ``count`` OrderSagas stalled in their first step."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.tui.strander", str(env.path), str(count)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert read_line(proc, 60, what="strander ready") == "ready"
    return proc


def kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL, as a crash would."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(20)


async def count(env: Env, status: SagaStatus) -> int:
    """Sagas in ``status`` in the database."""
    return await env.storage.count_sagas(SagaFilter(statuses=(status,)))


# ---- stranded sagas ---------------------------------------------------------------------


@pytest.mark.slow
async def test_killed_process_sagas_are_stranded_and_recovered_in_four_keys(env: Env) -> None:
    proc = start_strander(env, 12)
    try:
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: len(table(app).order) == 12, what="12 rows")
            # Alive: running, not stranded; compensating asks its live owner and says so.
            assert stranded_chip(app) == "⚠ STRANDED 0"
            await pilot.press("c")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="ask")
            body = confirm_text(app)
            assert "live process" in body and "the request goes to it" in body
            assert "ReserveInventory (in flight)" in body
            await pilot.press("n")
            await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="n")

            kill(proc)
            # No write tells the dashboard: the rolling reload finds them stranded.
            await wait_for(
                pilot, lambda: stranded_chip(app) == "⚠ STRANDED 12", timeout=30, what="count"
            )
            # Every row says so (the rows check a dead owner again within two seconds);
            # RUNNING is left only on its count in the header.
            shown = await wait_for(
                pilot,
                lambda: (text := screen_text(app)).count("⚠ STRANDED") == 13 and text,
                what="every row stranded",
            )
            assert shown.count("● RUNNING") == 1, shown
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")

            def header() -> str:
                return str(app.screen.query_one("#detail-header", Static).render())

            await wait_for(pilot, lambda: "nobody runs it" in header(), what="nobody runs it")
            assert "owner" in header() and "gone" in header()
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen is app.main_screen, what="list")

            # S (stranded only), * (mark all), r, y: four keys recover all of them.
            await pilot.press("S")
            await wait_for(pilot, lambda: app.browse.saga_filter.stranded, what="filter")
            await pilot.press("asterisk")
            await wait_for(pilot, lambda: "all 12 matching marked" in subtitle(app), what="*")
            await pilot.press("r")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="ask")
            assert confirm_text(app).startswith("Recover 12 sagas matching status:stranded?")
            await pilot.press("y")
            await wait_for(
                pilot,
                lambda: any("recover 12: 12 COMPLETED" in n for n in notifications(app)),
                timeout=60,
                what="the summary",
            )
        assert await count(env, SagaStatus.COMPLETED) == 12
        assert await env.storage.stranded_count() == 0
    finally:
        if proc.poll() is None:
            kill(proc)


def _palette_found(app: typing.Any) -> bool:
    """The command palette is open with a command highlighted for what was typed."""
    screen = app.screen
    if not isinstance(screen, CommandPalette):
        return False
    return screen.query_one(CommandList).highlighted is not None


@pytest.mark.slow
async def test_palette_recovers_all_stranded_after_asking_and_enter_cancels(env: Env) -> None:
    kill(start_strander(env, 3))
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot, lambda: stranded_chip(app) == "⚠ STRANDED 3", timeout=30, what="count"
        )
        for answer in ("enter", "y"):
            await pilot.press("ctrl+p")
            await pilot.press(*"Recover all stranded")
            await wait_for(pilot, lambda: _palette_found(app), what="the palette's match")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="ask")
            body = confirm_text(app)
            assert body.startswith("Recover 3 sagas matching status:stranded?")
            assert body.count("STRANDED: will resume forward from ReserveInventory") == 3
            await pilot.press(answer)
            await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="shut")
            if answer == "enter":
                # A stray enter cancels: nothing ran.
                assert await env.storage.stranded_count() == 3
        await wait_for(
            pilot,
            lambda: any("recover 3: 3 COMPLETED" in n for n in notifications(app)),
            timeout=30,
            what="summary",
        )
    assert await count(env, SagaStatus.COMPLETED) == 3


# ---- marking everything that matches -----------------------------------------------------


async def seed_failed(env: Env, n: int) -> None:
    """``n`` FAILED OrderSagas written through the storage's write path."""
    for i in range(n):
        await env.storage.apply(
            Checkpoint(
                saga_id=uuid.uuid4(),
                create=NewSaga("OrderSaga", {"order_id": f"ord-{i}"}, 3),
                status=SagaStatus.FAILED,
                error=ErrorInfo("RefundDeclinedError", f"refund {i} declined"),
            )
        )


async def test_mark_all_counts_2000_in_the_database_and_asks_for_all(env: Env) -> None:
    await seed_failed(env, 2000)
    await env.run_saga()  # one COMPLETED saga the filter leaves out
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 50, what="a page")
        await pilot.press("slash", *"status:failed", "enter")
        await wait_for(pilot, lambda: app.browse.saga_filter.statuses, what="filter")
        await pilot.press("asterisk")
        await wait_for(pilot, lambda: "all 2,000 matching marked" in subtitle(app), what="*")
        assert table(app).all_marked and len(table(app).order) == 50
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="ask")
        body = confirm_text(app)
        assert body.startswith("Compensate 2,000 sagas matching status:failed?")
        assert "… and 1,980 more" in body
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="cancel")
        assert await count(env, SagaStatus.FAILED) == 2000
        await pilot.press("escape")  # clears the marks
        await wait_for(pilot, lambda: "matching marked" not in subtitle(app), what="cleared")
        assert app.browse.marked_filter is None and not table(app).all_marked


async def test_ctrl_a_then_compensate_acts_on_every_match_beyond_the_page(env: Env) -> None:
    for _ in range(60):
        await env.run_saga()
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 50, what="a page of 50")
        await pilot.press("ctrl+a")
        await wait_for(pilot, lambda: "all 60 matching marked" in subtitle(app), what="marked")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="ask")
        assert confirm_text(app).startswith("Compensate 60 sagas matching (all)?")
        await pilot.press("y")
        await wait_for(
            pilot,
            lambda: any("compensate 60: 60 COMPENSATED" in n for n in notifications(app)),
            timeout=60,
            what="summary",
        )
        await wait_for(pilot, lambda: "matching marked" not in subtitle(app), what="unmarked")
    assert await count(env, SagaStatus.COMPENSATED) == 60


# ---- failure groups ------------------------------------------------------------------------


async def fail_in(env: Env, saga: str, step: str, n: int, rng: random.Random) -> list[uuid.UUID]:
    """Run ``n`` sagas whose ``step`` fails (they are rolled back: COMPENSATED)."""
    knobs = dataclasses.replace(FAST, step_failure_rates={step: 1.0})
    mediator = create_mediator(env.storage, knobs=knobs)
    ids = []
    for _ in range(n):
        saga_id = uuid.uuid4()
        with contextlib.suppress(Exception):
            await mediator.run(example_context(saga, rng), saga_id=saga_id)
        ids.append(saga_id)
    return ids


def group_rows(app: typing.Any) -> list[tuple[str, str, str]]:
    """(COUNT, SAGA, STEP) of each row of the groups view."""
    grid = app.screen.query_one(DataTable)
    rows = [[str(c) for c in grid.get_row_at(i)] for i in range(grid.row_count)]
    return [(row[0], row[2], row[3]) for row in rows]


async def test_groups_three_causes_counts_filter_and_recover_a_group(env: Env) -> None:
    rng = random.Random(3)
    stock = await fail_in(env, "OrderSaga", "ReserveInventory", 3, rng)
    await fail_in(env, "OrderSaga", "ChargePayment", 2, rng)
    await fail_in(env, "TravelSaga", "BookFlight", 4, rng)
    messages = set()
    for saga_id in stock:
        detail = await env.storage.get_saga(saga_id)
        assert detail is not None and detail.summary.status is SagaStatus.COMPENSATED
        messages.add(detail.summary.error_message)
    assert len(messages) > 1  # differing quoted values, one group
    declined = [await env.failed_saga(), await env.failed_saga()]
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 11, what="rows")
        await pilot.press("g")
        await wait_for(pilot, lambda: isinstance(app.screen, GroupsScreen), what="groups")
        await wait_for(pilot, lambda: len(group_rows(app)) == 4, what="four groups")
        rows = group_rows(app)
        # Biggest first; of equal counts the newest first.
        assert rows[:2] == [
            ("4", "TravelSaga", "BookFlight"),
            ("3", "OrderSaga", "ReserveInventory"),
        ]
        assert rows[2:] == [
            ("2", "SubscriptionSaga", "ChargeFirstMonth"),
            ("2", "OrderSaga", "ChargePayment"),
        ]
        shown = screen_text(app)
        assert "out of stock: <q>" in shown  # the pattern, values taken out
        assert "Failure groups · 4 causes, 11 sagas · enter shows" in shown
        grid = app.screen.query_one(DataTable)
        hour = str(grid.get_row_at(0)[1])
        # Drawn in the newest bucket (or the one before, when five minutes just turned).
        assert len(hour) == 12 and hour[-2:].strip("·")

        # enter: the list shows the group's sagas only.
        grid.move_cursor(row=1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is app.main_screen, what="list")
        await wait_for(pilot, lambda: set(table(app).order) == {str(i) for i in stock}, what="3")
        assert app.browse.saga_filter.failure_key

        # r on the declined refunds' group recovers both, after asking.
        await pilot.press("g")
        await wait_for(pilot, lambda: len(group_rows(app)) == 4, what="groups again")
        app.screen.query_one(DataTable).move_cursor(row=2)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="ask")
        assert confirm_text(app).startswith("Recover 2 sagas matching group:")
        await pilot.press("y")
        await wait_for(
            pilot,
            lambda: any("recover 2: 2 COMPENSATED" in n for n in notifications(app)),
            timeout=30,
            what="summary",
        )
    for saga_id in declined:
        detail = await env.storage.get_saga(saga_id)
        assert detail is not None and detail.summary.status is SagaStatus.COMPENSATED


# ---- pictures --------------------------------------------------------------------------------


async def test_header_pulse_counts_the_sagas_that_just_ended(env: Env) -> None:
    for _ in range(3):
        await env.run_saga()
    await fail_in(env, "OrderSaga", "ShipOrder", 2, random.Random(1))
    pulse = await env.storage.pulse()
    assert pulse.total(SagaStatus.COMPLETED) == 3 and pulse.total(SagaStatus.COMPENSATED) == 2
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        bar = app.main_screen.query_one(PulseBar)
        text = await wait_for(pilot, lambda: bar._shown and bar._shown.plain, what="pulse")
        assert text.startswith("last 10m")
        completed = text.split("✓ ")[1].split(" ↺")[0]
        assert completed.endswith(" 3") and completed.strip("· ▁3")  # a bar above the floor
        assert text.split("↺ ")[1].split(" ✗")[0].endswith(" 2")
        assert text.rstrip().endswith(" 0")  # none FAILED


async def test_detail_timeline_shows_retries_of_a_failed_refund(env: Env) -> None:
    saga_id = await env.failed_saga()
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, saga_id)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
        widget = app.screen.query_one("#detail-timeline", Static)
        text = await wait_for(
            pilot,
            lambda: "CreateAccount" in str(widget.render()) and str(widget.render()),
            what="timeline",
        )
        lines = text.splitlines()
        assert lines[0].startswith("Timeline")
        charge = next(line for line in lines if line.startswith("ChargeFirstMonth"))
        # Acted (█), then its refund failed, try after try (✗).
        assert "█" in charge and charge.count("✗") >= 2


# ---- business keys ------------------------------------------------------------------------------


async def test_business_key_is_filtered_by_key_and_by_plain_text(env: Env) -> None:
    context = example_context("OrderSaga")
    context.order_id = "ord-9ca8f0"
    wanted = uuid.uuid4()
    await env.mediator.run(context, saga_id=wanted)
    for _ in range(3):
        await env.run_saga()
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 4, what="rows")
        for typed in ("key:ord-9ca8", "ord-9ca8"):
            await pilot.press("slash")
            app.main_screen.query_one("#filter").value = typed  # type: ignore[attr-defined]
            await pilot.press("enter")
            await wait_for(pilot, lambda: table(app).order == [str(wanted)], what=typed)
            if typed.startswith("key:"):
                # The detail names the business key.
                await pilot.press("enter")
                await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
                await wait_for(
                    pilot,
                    lambda: (
                        "key ord-9ca8f0"
                        in str(app.screen.query_one("#detail-header", Static).render())
                    ),
                    what="the key in the header",
                )
                await pilot.press("escape")
                await wait_for(pilot, lambda: app.screen is app.main_screen, what="list")
            await pilot.press("escape")
            await wait_for(pilot, lambda: len(table(app).order) == 4, what="all again")


async def test_progress_is_told_as_a_bulk_action_goes(env: Env) -> None:
    ids = [await env.run_saga() for _ in range(5)]
    seen: list[tuple[int, int]] = []
    results = await submit_action(
        env.mediator,
        "compensate",
        SagaFilter(),
        reason="test",
        progress=lambda done, total: seen.append((done, total)),
    )
    assert {r.saga_id for r in results} == set(ids)
    assert seen[0] == (0, 5) and seen[-1] == (5, 5)


# ---- quitting with an action in flight -------------------------------------------------------


async def test_quitting_while_an_action_runs_asks_first(env: Env) -> None:
    saga_id = uuid.uuid4()
    await env.storage.apply(
        Checkpoint(
            saga_id,
            create=NewSaga("OrderSaga", dump_context(example_context("OrderSaga")), 3),
            status=SagaStatus.RUNNING,
            current_step="ReserveInventory",
        )
    )
    slow = dataclasses.replace(FAST, latency_ms=(700.0, 700.0))
    app = env.app(slow)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, saga_id)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="ask")
        await pilot.press("y")
        await wait_for(pilot, lambda: app._in_flight == 1, what="the action running")
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="quit?")
        assert "1 action still running: quit anyway?" in confirm_text(app)
        await pilot.press("n")
        await wait_for(
            pilot,
            lambda: any(f"recover {str(saga_id)[:8]}: COMPLETED" in n for n in notifications(app)),
            timeout=30,
            what="the recovery done",
        )
        assert app.is_running
        await pilot.press("q")  # nothing in flight: quits at once
        await wait_for(pilot, lambda: not app.is_running, what="quit")


async def test_steps_view_has_each_steps_runs_percentiles_and_failure_rate(env: Env) -> None:
    for _ in range(3):
        await env.run_saga()
    await fail_in(env, "OrderSaga", "ChargePayment", 2, random.Random(5))
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(table(app).order) == 5, what="rows")
        await pilot.press("i")
        await wait_for(pilot, lambda: isinstance(app.screen, StepsScreen), what="steps")
        grid = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: grid.row_count >= 3, what="figures")
        rows = {
            tuple(str(c) for c in grid.get_row_at(i)[:3]): [str(c) for c in grid.get_row_at(i)]
            for i in range(grid.row_count)
        }
        charge = rows[("OrderSaga", "ChargePayment", "act")]
        assert charge[3] == "5" and charge[6] == "2 (40%)" and charge[4] and charge[5]
        assert rows[("OrderSaga", "ReserveInventory", "compensate")][3] == "2"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.browse.saga_filter.name == "OrderSaga", what="filter")
