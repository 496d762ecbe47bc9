"""Pages in every sort order, by keyset, on every storage; and a saga's most tries."""

from __future__ import annotations

import uuid

import pytest

from engine.saga.storage.enums import SagaStatus, SagaStepStatus
from engine.saga.storage.models import (
    Checkpoint,
    LogWrite,
    NewSaga,
    SagaFilter,
    SagaOrder,
    SagaSummary,
)
from engine.saga.storage.protocol import ISagaStorage

NAMES = ("OrderSaga", "TravelSaga", "SubscriptionSaga")
STATUSES = (SagaStatus.COMPLETED, SagaStatus.FAILED, SagaStatus.RUNNING, SagaStatus.COMPENSATED)
ORDERS = [
    SagaOrder(key, descending)
    for key in ("created", "status", "name")
    for descending in (True, False)
]


async def seed(storage: ISagaStorage, count: int = 23) -> None:
    for index in range(count):
        await storage.apply(
            Checkpoint(
                saga_id=uuid.uuid4(),
                create=NewSaga(NAMES[index % 3], {"n": index}, 3),
                status=STATUSES[index % 4],
            )
        )


def expected(items: list[SagaSummary], order: SagaOrder) -> list[uuid.UUID]:
    """What the order means, computed here from the rows themselves."""
    ranked = sorted(
        items,
        key=lambda s: (order.value(s) or "", s.created_at, str(s.id)),
        reverse=order.descending,
    )
    return [s.id for s in ranked]


@pytest.mark.parametrize(
    "order", ORDERS, ids=lambda o: f"{o.key}-{'desc' if o.descending else 'asc'}"
)
async def test_every_order_pages_through_every_saga_once(
    storage: ISagaStorage, order: SagaOrder
) -> None:
    await seed(storage)
    everything = (await storage.list_sagas(limit=1000)).items
    seen: list[uuid.UUID] = []
    page = await storage.list_sagas(limit=5, order=order)
    while True:
        seen += [s.id for s in page.items]
        if page.next_cursor is None:
            break
        page = await storage.list_sagas(limit=5, order=order, after=page.next_cursor)
    assert seen == expected(everything, order)
    # ``at`` starts at the cursor's row itself; ``after`` just below it.
    third = (await storage.list_sagas(limit=5, order=order)).items[2]
    at = await storage.list_sagas(limit=3, order=order, at=order.cursor(third))
    assert [s.id for s in at.items] == seen[2:5]
    assert at.prev_cursor is not None
    after = await storage.list_sagas(limit=3, order=order, after=order.cursor(third))
    assert [s.id for s in after.items] == seen[3:6]


async def test_a_status_filter_with_the_status_order(storage: ISagaStorage) -> None:
    await seed(storage)
    statuses = (SagaStatus.FAILED, SagaStatus.RUNNING)
    f = SagaFilter(statuses=statuses)
    order = SagaOrder("status")
    page = await storage.list_sagas(f, limit=100, order=order)
    assert [s.status for s in page.items][:1] == [SagaStatus.RUNNING]
    assert {s.status for s in page.items} == set(statuses)
    everything = (await storage.list_sagas(f, limit=100)).items
    assert [s.id for s in page.items] == expected(everything, order)


async def test_tries_is_the_most_starts_of_one_step_action(storage: ISagaStorage) -> None:
    saga_id = uuid.uuid4()
    started, failed = SagaStepStatus.STARTED, SagaStepStatus.FAILED
    logs = [
        LogWrite("Reserve", "act", started),
        LogWrite("Reserve", "act", SagaStepStatus.COMPLETED),
    ]
    for attempt in (1, 2, 3):
        logs += [
            LogWrite("Reserve", "compensate", started, attempt=attempt),
            LogWrite("Reserve", "compensate", failed, attempt=attempt),
        ]
    await storage.apply(
        Checkpoint(
            saga_id=saga_id,
            create=NewSaga("OrderSaga", {}, 1),
            status=SagaStatus.FAILED,
            logs=tuple(logs),
        )
    )
    await storage.apply(Checkpoint(saga_id=uuid.uuid4(), create=NewSaga("OrderSaga", {}, 1)))
    tries = {s.id: s.tries for s in (await storage.list_sagas()).items}
    assert tries[saga_id] == 3 and sorted(tries.values()) == [0, 3]
    detail = await storage.get_saga(saga_id)
    assert detail is not None and detail.summary.tries == 3
    assert max(lane.attempts for s in detail.steps for lane in (s.act, s.compensate)) == 3
