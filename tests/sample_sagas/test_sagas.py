"""The sample sagas on a real SQLite file: outcomes, the ledger, idempotency, the check."""

from __future__ import annotations

import pathlib
import typing
import uuid

import pytest

from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from sample_sagas import Knobs, create_mediator, example_context, examples
from sample_sagas.app import SAGAS, close_ledger, ledger_for
from sample_sagas.check import find_disagreements, judge
from sample_sagas.contexts import OrderContext, TravelContext
from sample_sagas.ledger import read_ledger
from sample_sagas.load import run_load
from sample_sagas.services import FakeServices, ServicesContainer, track_saga
from sample_sagas.travel import BookHotel, HotelFullError, PartnerHotel
from tests.support import wait_for

QUIET = dict(compensation_failure_rate=0.0, refund_decline_rate=0.0, latency_ms=(0.0, 0.0))


@pytest.fixture
async def store(tmp_path: pathlib.Path) -> typing.AsyncIterator[SqlAlchemySagaStorage]:
    """A database of this test's own, with its ledger closed afterwards."""
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{tmp_path / 'sagas.db'}")
    try:
        yield storage
    finally:
        close_ledger(storage)
        await storage.close()


def _path(storage: SqlAlchemySagaStorage) -> str:
    path = storage.session_factory.kw["bind"].url.database
    assert path
    return str(path)


def _ledger(storage: SqlAlchemySagaStorage, saga_id: uuid.UUID) -> set[tuple[str, str]]:
    return {(r.step, r.action) for r in read_ledger(_path(storage)) if r.saga_id == str(saga_id)}


async def _run(mediator: typing.Any, context: typing.Any) -> tuple[uuid.UUID, Exception | None]:
    saga_id = uuid.uuid4()
    try:
        await mediator.run(context, saga_id=saga_id)
    except Exception as exc:
        return saga_id, exc
    return saga_id, None


@pytest.mark.parametrize("saga_name", [saga.__name__ for _, saga in SAGAS])
async def test_each_saga_completes_with_a_do_per_step(
    store: SqlAlchemySagaStorage, saga_name: str
) -> None:
    mediator = create_mediator(store, knobs=Knobs(failure_rate=0.0, **QUIET))
    saga_id, error = await _run(mediator, example_context(saga_name))
    assert error is None
    lease = await store.get_lease(saga_id)
    assert lease is not None and lease.status is SagaStatus.COMPLETED
    saga_type = mediator.saga_for_name(saga_name)[1]
    primaries = saga_type.step_names()
    assert _ledger(store, saga_id) == {(name, "do") for name in primaries}


async def test_each_order_step_notifies_the_customer_through_its_event(
    store: SqlAlchemySagaStorage,
) -> None:
    mediator = create_mediator(store, knobs=Knobs(failure_rate=0.0, **QUIET))
    services = mediator.container.container.services  # the fake world behind the steps
    _, error = await _run(mediator, example_context("OrderSaga"))
    assert error is None
    assert services.notifications == 3  # reserved, charged, shipped


async def test_a_failing_step_is_undone_and_leaves_nothing(store: SqlAlchemySagaStorage) -> None:
    knobs = Knobs(failure_rate=0.0, step_failure_rates={"ShipOrder": 1.0}, **QUIET)
    mediator = create_mediator(store, knobs=knobs)
    saga_id, error = await _run(mediator, example_context("OrderSaga"))
    assert error is not None and type(error).__name__ == "CarrierUnavailableError"
    lease = await store.get_lease(saga_id)
    assert lease is not None and lease.status is SagaStatus.COMPENSATED
    assert _ledger(store, saga_id) == {
        ("ReserveInventory", "do"),
        ("ReserveInventory", "undo"),
        ("ChargePayment", "do"),
        ("ChargePayment", "undo"),
    }


async def test_the_partner_hotel_stands_in_for_a_full_hotel(store: SqlAlchemySagaStorage) -> None:
    knobs = Knobs(failure_rate=0.0, step_failure_rates={"BookHotel": 1.0}, **QUIET)
    mediator = create_mediator(store, knobs=knobs)
    context = example_context("TravelSaga")
    saga_id, error = await _run(mediator, context)
    assert error is None
    assert isinstance(context, TravelContext) and context.hotel_provider == "Partner Inn"
    assert _ledger(store, saga_id) == {
        ("BookFlight", "do"),
        ("PartnerHotel", "do"),
        ("RentCar", "do"),
    }
    checked, bad = await find_disagreements(store, read_ledger(_path(store)))
    assert (checked, bad) == (1, [])


async def test_a_declined_refund_fails_the_saga_until_an_operator_retries(
    store: SqlAlchemySagaStorage,
) -> None:
    declining = Knobs(
        failure_rate=0.0,
        step_failure_rates={"ProvisionService": 1.0},
        compensation_failure_rate=0.0,
        refund_decline_rate=1.0,
        refund_decline_seconds=0.3,
        latency_ms=(0.0, 0.0),
        compensation_retry_delay=0.0,
    )
    mediator = create_mediator(store, knobs=declining)
    saga_id, error = await _run(mediator, example_context("SubscriptionSaga"))
    assert error is not None
    lease = await store.get_lease(saga_id)
    assert lease is not None and lease.status is SagaStatus.FAILED
    assert ("ChargeFirstMonth", "undo") not in _ledger(store, saga_id)
    # FAILED is excused by the check: an operator has to act.
    assert (await find_disagreements(store, read_ledger(_path(store))))[1] == []

    async def retried() -> bool:
        result = await mediator.recover_saga(saga_id, reason="test")
        assert result.status in (SagaStatus.FAILED, SagaStatus.COMPENSATED)
        return result.status is SagaStatus.COMPENSATED

    # The gateway declines for refund_decline_seconds; the operator retries until it works.
    await wait_for(retried, interval=0.05, what="the declined refund to go through")
    assert {("ChargeFirstMonth", "undo"), ("CreateAccount", "undo")} <= _ledger(store, saga_id)


async def test_calls_are_idempotent_and_undo_tolerates_a_missing_do(
    store: SqlAlchemySagaStorage,
) -> None:
    services = FakeServices(ledger_for(store), Knobs(failure_rate=0.0, **QUIET))
    saga_id = uuid.uuid4()
    track_saga(saga_id)
    step = await ServicesContainer(services).resolve(PartnerHotel)
    # Compensating a step whose act never ran records a tombstone and does not fail.
    await step.compensate(example_context("TravelSaga"))
    await step.compensate(example_context("TravelSaga"))
    await services.perform("BookFlight", HotelFullError, "x")
    await services.perform("BookFlight", HotelFullError, "x")
    assert _ledger(store, saga_id) == {("PartnerHotel", "undo"), ("BookFlight", "do")}


async def test_a_closed_ledger_is_opened_again_on_next_use(store: SqlAlchemySagaStorage) -> None:
    ledger = ledger_for(store)
    assert ledger_for(store) is ledger  # one writer thread per file
    saga_id = uuid.uuid4()
    await ledger.record(saga_id, "BookFlight", "do")
    close_ledger(store)
    again = ledger_for(store)
    assert again is not ledger
    await again.record(saga_id, "RentCar", "do")
    assert _ledger(store, saga_id) == {("BookFlight", "do"), ("RentCar", "do")}


async def test_primary_hotel_yields_to_a_partner_booking_left_by_a_crash(
    store: SqlAlchemySagaStorage,
) -> None:
    services = FakeServices(ledger_for(store), Knobs(failure_rate=0.0, **QUIET))
    track_saga(uuid.uuid4())
    await services.perform("PartnerHotel", HotelFullError, "x")
    step = await ServicesContainer(services).resolve(BookHotel)
    with pytest.raises(HotelFullError):
        await step.act(example_context("TravelSaga"))


async def test_failure_decisions_agree_across_runs() -> None:
    one = FakeServices(ledger_for(None), Knobs(failure_rate=0.5))  # type: ignore[arg-type]
    two = FakeServices(ledger_for(None), Knobs(failure_rate=0.5, seed=7))  # type: ignore[arg-type]
    ids = [uuid.uuid4() for _ in range(200)]
    decisions = [one.fails(i, "RentCar") for i in ids]
    assert decisions == [two.fails(i, "RentCar") for i in ids]
    assert 40 < sum(decisions) < 160


def test_examples_parse_into_their_contexts() -> None:
    found = examples()
    assert set(found) == {saga.__name__ for _, saga in SAGAS}
    for context_type, saga in SAGAS:
        assert isinstance(context_type.from_dict(found[saga.__name__]), context_type)
    assert isinstance(example_context(OrderContext), OrderContext)


def test_judge_knows_the_fallback_means_either_hotel() -> None:
    c = SagaStatus.COMPLETED
    assert judge("TravelSaga", c, {"BookFlight", "BookHotel", "RentCar"}, set()) is None
    assert judge("TravelSaga", c, {"BookFlight", "PartnerHotel", "RentCar"}, set()) is None
    assert "BookHotel or PartnerHotel" in (
        judge("TravelSaga", c, {"BookFlight", "RentCar"}, set()) or ""
    )
    both = {"BookFlight", "BookHotel", "PartnerHotel", "RentCar"}
    assert "more than one" in (judge("TravelSaga", c, both, set()) or "")
    assert "undo" in (
        judge("OrderSaga", c, {"ReserveInventory", "ChargePayment", "ShipOrder"}, {"ShipOrder"})
        or ""
    )
    assert (
        judge("OrderSaga", SagaStatus.COMPENSATED, {"ReserveInventory"}, {"ReserveInventory", "X"})
        is None
    )
    assert "ChargePayment" in (
        judge("OrderSaga", SagaStatus.COMPENSATED, {"ChargePayment"}, set()) or ""
    )
    assert judge("OrderSaga", SagaStatus.FAILED, {"ChargePayment"}, set()) is None
    for status in (SagaStatus.RUNNING, SagaStatus.PENDING, SagaStatus.COMPENSATING):
        assert judge("OrderSaga", status, set(), set()) == "not terminal"


@pytest.mark.slow
async def test_a_small_load_agrees_with_the_ledger(store: SqlAlchemySagaStorage) -> None:
    knobs = Knobs(
        failure_rate=0.2,
        compensation_failure_rate=0.1,
        latency_ms=(0.0, 1.0),
        compensation_retry_delay=0.0,
    )
    mediator = create_mediator(store, knobs=knobs)
    progress = await run_load(mediator, 200, 20, seed=3)
    assert progress.finished == 200 and progress.errors == 0
    assert progress.completed + progress.compensated + progress.failed == 200
    assert progress.compensated > 0
    counts = await store.count_by_status()
    assert counts[SagaStatus.COMPLETED] == progress.completed
    assert counts[SagaStatus.COMPENSATED] == progress.compensated
    assert counts[SagaStatus.FAILED] == progress.failed
    checked, bad = await find_disagreements(store, read_ledger(_path(store)))
    assert checked == 200 and bad == []


async def test_the_ledger_refuses_a_stale_fence_and_a_do_after_its_undo(
    store: SqlAlchemySagaStorage,
) -> None:
    from sample_sagas.ledger import StaleEffectError, read_refused

    ledger = ledger_for(store)
    saga_id = uuid.uuid4()
    await ledger.record(saga_id, "BookFlight", "do", 1)
    await ledger.record(saga_id, "BookFlight", "undo", 2)  # another runner rolled it back
    with pytest.raises(StaleEffectError, match="fence 1, older than fence 2"):
        await ledger.record(saga_id, "RentCar", "do", 1)  # the old runner wakes up
    with pytest.raises(StaleEffectError, match="do after its undo"):
        await ledger.record(saga_id, "BookFlight", "do", 2)
    await ledger.record(saga_id, "RentCar", "undo", 3)
    assert _ledger(store, saga_id) == {
        ("BookFlight", "do"),
        ("BookFlight", "undo"),
        ("RentCar", "undo"),
    }
    refused = read_refused(_path(store))
    assert [(r[1], r[2], r[3]) for r in refused] == [("RentCar", "do", 1), ("BookFlight", "do", 2)]


async def test_the_memory_ledger_refuses_the_same() -> None:
    from sample_sagas.ledger import MemoryLedger, StaleEffectError

    ledger = MemoryLedger()
    saga_id = uuid.uuid4()
    await ledger.record(saga_id, "A", "undo", 2)
    with pytest.raises(StaleEffectError):
        await ledger.record(saga_id, "B", "do", 1)
    with pytest.raises(StaleEffectError):
        await ledger.record(saga_id, "A", "do", 3)
    assert len(ledger.refused) == 2


async def test_check_finds_a_do_recorded_after_its_undo(store: SqlAlchemySagaStorage) -> None:
    from sample_sagas.ledger import LedgerRow

    mediator = create_mediator(store, knobs=Knobs(failure_rate=0.0, **QUIET))
    saga_id, error = await _run(mediator, example_context("TravelSaga"))
    assert error is None
    await mediator.compensate_saga(saga_id)
    rows = read_ledger(_path(store))
    assert (await find_disagreements(store, rows))[1] == []
    # The same effects, but one 'do' recorded after its 'undo' (as an unfenced service
    # would let a runner that lost its lease do): the sets agree, the order does not.
    last = max(r.seq for r in rows)
    moved = [
        LedgerRow(r.saga_id, r.step, r.action, r.time, last + 1)
        if (r.step, r.action) == ("BookFlight", "do")
        else r
        for r in rows
    ]
    _, bad = await find_disagreements(store, moved)
    assert [b.reason for b in bad] == ["'do' after its 'undo' for BookFlight"]
