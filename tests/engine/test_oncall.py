"""The on-call read API on every storage: failure groups, stranded sagas, business keys,
the pulse and per-step figures, from sagas the engine really ran."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
import sys
import time
import typing
import uuid

import pytest

import engine
from engine.saga.bootstrap import bootstrap
from engine.saga.grouping import failure_key, normalise_message
from engine.saga.lease import process_owner_id, this_host
from engine.saga.saga import Saga
from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import Checkpoint, NewSaga, SagaFilter
from engine.saga.storage.oncall import PULSE_BUCKETS, percentile
from engine.saga.storage.protocol import ISagaStorage
from tests.engine.sagas import (
    Backup,
    Ctx,
    FallbackCtx,
    Primary,
    Script,
    ScriptContainer,
    StepA,
    StepB,
    StepC,
    mapper,
)
from tests.support import wait_for


@dataclasses.dataclass
class KeyedCtx(Ctx):
    customer: str = "ada"


class KeyedSaga(Saga[KeyedCtx]):
    steps = [StepA, StepB]
    search_keys = ("order_id",)


def make(storage: ISagaStorage, script: Script, **options: typing.Any) -> engine.SagaMediator:
    """A mediator on ``storage`` whose retries do not wait."""

    async def sleep(seconds: float) -> None:
        return None

    options.setdefault("sagas_mapper", mapper)
    return bootstrap(
        di_container=ScriptContainer(script), saga_storage=storage, sleep=sleep, **options
    )


def keyed_mapper(saga_map: engine.SagaMap) -> None:
    mapper(saga_map)
    saga_map.bind(KeyedCtx, KeyedSaga)


# ---- the grouping key -----------------------------------------------------------------


def test_messages_differing_only_in_numbers_ids_and_quoted_values_are_one_cause() -> None:
    one = "card of 'ada' declined for 99.80 (order ord-9ca8f0e1, 3f2a9c1e-5a9a-4000-8000-00000000)"
    two = "card of 'grace' declined for 12.00 (order ord-1b2c, 00000000-5a9a-4000-8000-0000bbbb)"
    assert normalise_message(one) == normalise_message(two)
    assert normalise_message(one) == "card of <q> declined for <n> (order <id>, <id>)"
    key = failure_key("OrderSaga", "ChargePayment", "PaymentDeclinedError", one)
    assert key == failure_key("OrderSaga", "ChargePayment", "PaymentDeclinedError", two)
    # Another saga type, step, error type or wording is another cause.
    assert key != failure_key("TravelSaga", "ChargePayment", "PaymentDeclinedError", one)
    assert key != failure_key("OrderSaga", "ShipOrder", "PaymentDeclinedError", one)
    assert key != failure_key("OrderSaga", "ChargePayment", "TimeoutError", one)
    assert key != failure_key("OrderSaga", "ChargePayment", "PaymentDeclinedError", "card stolen")
    # Units stay readable; an apostrophe inside a word is not a quote.
    assert normalise_message("gateway 10.0.0.7 timed out after 30s") == (
        "gateway <n> timed out after <n>s"
    )
    assert normalise_message("can't reach 'db-7'") == "can't reach <q>"
    # A date's dashes are not minus signs; a number's own sign is part of it.
    assert normalise_message("no seats 'Lima' on 2026-12-11") == "no seats <q> on <n>-<n>-<n>"
    assert normalise_message("balance -5.20 below 0") == "balance <n> below <n>"


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([float(n) for n in range(1, 101)], 0.95) == 95.0


# ---- failure groups ---------------------------------------------------------------------


async def run(mediator: engine.SagaMediator, context: typing.Any) -> uuid.UUID:
    saga_id = uuid.uuid4()
    with contextlib.suppress(Exception):
        await mediator.run(context, saga_id=saga_id)
    return saga_id


async def test_three_causes_make_three_groups_with_their_counts(storage: ISagaStorage) -> None:
    script = Script()
    mediator = make(storage, script, compensation_retry_count=1)
    await run(mediator, Ctx("fine"))
    limits = []
    for n, amount in enumerate((1500, 20, 7)):
        script.fail_act = {"StepB": ValueError(f"limit {amount} exceeded for order o-{n}a1")}
        limits.append(await run(mediator, Ctx(f"o-{n}")))
    for host in ("10.0.0.7", "10.0.0.9"):
        script.fail_act = {"StepC": TimeoutError(f"gateway {host} timed out after 30s")}
        await run(mediator, Ctx("t"))
    script.fail_act = {"StepB": ValueError("limit 99 exceeded for order o-9b2")}
    script.fail_compensate = {"StepA": -1}
    failed = await run(mediator, Ctx("f"))

    groups = await storage.failure_groups()
    shape = [(g.count, g.saga_name, g.step, g.error_type) for g in groups]
    assert shape == [
        (3, "ThreeSteps", "StepB", "ValueError"),
        (2, "ThreeSteps", "StepC", "TimeoutError"),
        (1, "ThreeSteps", "StepA", "ConnectionError"),
    ]
    limit_group, timeouts, undo = groups
    assert limit_group.by_status == {SagaStatus.COMPENSATED: 3}
    assert limit_group.pattern == "limit <n> exceeded for order <id>"
    assert limit_group.example.startswith("limit ")
    assert undo.by_status == {SagaStatus.FAILED: 1} and undo.example == "StepA undo refused"
    assert sum(limit_group.hour) == 3 and limit_group.hour[-1] == 3
    assert limit_group.first_seen <= limit_group.last_seen

    members = await storage.list_sagas(SagaFilter(failure_key=limit_group.key))
    assert {s.id for s in members.items} == set(limits)
    assert await storage.count_sagas(SagaFilter(failure_key=timeouts.key)) == 2

    # The failed undo works now: the saga ends rolled back, grouped by why it rolled back.
    script.fail_compensate = {}
    assert (await mediator.recover_saga(failed)).status is SagaStatus.COMPENSATED
    counts = {(g.step, g.error_type): g.count for g in await storage.failure_groups()}
    assert counts == {("StepB", "ValueError"): 4, ("StepC", "TimeoutError"): 2}


async def test_a_rollback_asked_for_is_no_failure_even_after_a_retried_undo(
    storage: ISagaStorage,
) -> None:
    script = Script(fail_compensate={"StepC": 1})
    mediator = make(storage, script, compensation_retry_count=2)
    saga_id = await run(mediator, Ctx("o"))
    result = await mediator.compensate_saga(saga_id)
    assert result.status is SagaStatus.COMPENSATED
    detail = await storage.get_saga(saga_id)
    assert detail is not None and detail.summary.failure_key is None
    assert await storage.failure_groups() == []


async def test_a_saga_running_on_through_its_fallback_is_grouped_while_it_runs(
    storage: ISagaStorage,
) -> None:
    script = Script(fail_act={"Primary": ConnectionError("primary 3 is down")})
    script.gates["Backup"] = asyncio.Event()
    script.entered["Backup"] = asyncio.Event()
    mediator = make(storage, script)
    task = asyncio.create_task(mediator.run(FallbackCtx("o"), saga_id=uuid.uuid4()))
    await asyncio.wait_for(script.entered["Backup"].wait(), 10)
    (group,) = await storage.failure_groups()
    assert (group.step, group.error_type, group.retrying) == ("Primary", "ConnectionError", 1)
    assert group.by_status == {SagaStatus.RUNNING: 1}
    script.gates["Backup"].set()
    await task
    assert await storage.failure_groups() == []
    assert Backup and Primary and StepA and StepB and StepC


# ---- stranded sagas -----------------------------------------------------------------------


async def lease(
    storage: ISagaStorage,
    status: SagaStatus,
    owner: str | None,
    expires: float | None,
) -> uuid.UUID:
    saga_id = uuid.uuid4()
    await storage.apply(
        Checkpoint(
            saga_id,
            owner=owner,
            create=NewSaga("ThreeSteps", {"order_id": "o"}, 3),
            status=status,
            lease_expires=expires,
            release_lease=owner is None,
        )
    )
    return saga_id


def dead_owner() -> str:
    """An owner id of this host whose process has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{this_host()}:{proc.pid}:123"


async def test_stranded_sagas_are_counted_and_filtered(storage: ISagaStorage) -> None:
    now = time.time()
    live_elsewhere = await lease(storage, SagaStatus.RUNNING, "far:1:1", now + 600)
    expired = await lease(storage, SagaStatus.RUNNING, "far:1:1", now - 5)
    dead = await lease(storage, SagaStatus.COMPENSATING, dead_owner(), now + 600)
    mine = await lease(storage, SagaStatus.RUNNING, process_owner_id(), now + 600)
    released = await lease(storage, SagaStatus.RUNNING, None, None)
    await lease(storage, SagaStatus.COMPLETED, None, None)

    assert await storage.stranded_count() == 3
    page = await storage.list_sagas(SagaFilter(stranded=True))
    assert {s.id for s in page.items} == {expired, dead, released}
    assert await storage.count_sagas(SagaFilter(stranded=True)) == 3
    running = SagaFilter(statuses=(SagaStatus.RUNNING,), stranded=True)
    assert {s.id for s in (await storage.list_sagas(running)).items} == {expired, released}
    assert live_elsewhere and mine


# ---- business keys ------------------------------------------------------------------------


async def test_a_business_key_is_stored_at_creation_and_found_by_key_and_text(
    storage: ISagaStorage,
) -> None:
    mediator = make(storage, Script(), sagas_mapper=keyed_mapper)
    keyed = await run(mediator, KeyedCtx("ord-9ca8f0"))
    other = await run(mediator, KeyedCtx("ord-1b2c3d"))
    plain = await run(mediator, Ctx("ord-9ca8f0"))  # ThreeSteps declares no key
    detail = await storage.get_saga(keyed)
    assert detail is not None and detail.summary.search_key == "ord-9ca8f0"

    async def ids(f: SagaFilter) -> set[uuid.UUID]:
        return {s.id for s in (await storage.list_sagas(f)).items}

    assert await ids(SagaFilter(key="ord-9ca8")) == {keyed}
    assert await ids(SagaFilter(key="ord-")) == {keyed, other}
    assert await ids(SagaFilter(text="ord-9ca8")) == {keyed}
    assert await storage.count_sagas(SagaFilter(key="ord")) == 2
    assert await ids(SagaFilter(key="nope")) == set()
    assert plain not in await ids(SagaFilter(key="ord"))


def test_search_keys_must_name_context_fields() -> None:
    with pytest.raises(TypeError, match=r"BadSaga\.search_keys: KeyedCtx has no field 'order'"):

        class BadSaga(Saga[KeyedCtx]):
            steps = [StepA]
            search_keys = ("order",)

    with pytest.raises(TypeError, match="tuple of field names"):

        class StringSaga(Saga[KeyedCtx]):
            steps = [StepA]
            search_keys = "order_id"  # type: ignore[assignment]


# ---- pulse and steps ----------------------------------------------------------------------


async def test_the_pulse_counts_sagas_that_just_ended_in_the_last_bucket(
    storage: ISagaStorage,
) -> None:
    script = Script()
    mediator = make(storage, script, compensation_retry_count=1)
    for _ in range(3):
        await run(mediator, Ctx("ok"))
    script.fail_act = {"StepB": ValueError("no")}
    await run(mediator, Ctx("back"))
    script.fail_compensate = {"StepA": -1}
    await run(mediator, Ctx("failed"))

    async def counted() -> bool:
        pulse = await storage.pulse()
        return sum(pulse.total(s) for s in pulse.series) == 5

    # Sagas that ended a moment before a ten-second boundary land in the bucket before.
    await wait_for(counted, what="five sagas in the pulse")
    pulse = await storage.pulse()
    assert pulse.total(SagaStatus.COMPLETED) == 3
    assert pulse.total(SagaStatus.COMPENSATED) == 1
    assert pulse.total(SagaStatus.FAILED) == 1
    assert all(len(series) == PULSE_BUCKETS for series in pulse.series.values())
    assert sum(pulse.series[SagaStatus.COMPLETED][-2:]) == 3


async def test_step_stats_give_timings_and_failure_rates_per_step(storage: ISagaStorage) -> None:
    script = Script()
    mediator = make(storage, script)
    for _ in range(3):
        await run(mediator, Ctx("ok"))
    script.fail_act = {"StepB": ValueError("no")}
    await run(mediator, Ctx("bad"))
    stats = await storage.step_stats("ThreeSteps")
    by_step = {(s.step, s.action): s for s in stats.steps}
    assert by_step["StepB", "act"].runs == 4 and by_step["StepB", "act"].failures == 1
    assert by_step["StepB", "act"].failure_rate == 0.25
    assert by_step["StepA", "act"].runs == 4 and by_step["StepA", "act"].failures == 0
    assert by_step["StepC", "act"].runs == 3
    assert by_step["StepA", "compensate"].runs == 1
    assert by_step["StepA", "act"].p50_ms is not None
    assert stats.since is not None and stats.log_rows > 0
    assert (await storage.step_stats("NoSuchSaga")).steps == []
