"""``worker:NAME``: the sagas a worker runs now (its lease) or served a request of."""

from __future__ import annotations

import time
import uuid

from engine.saga.fleet import RequestBook
from engine.saga.requests import WorkerInfo
from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.memory import MemorySagaStorage
from engine.saga.storage.models import Checkpoint, NewSaga, SagaFilter
from engine.saga.storage.protocol import ISagaStorage
from saga_tui.filters import format_filter, parse_filter

A = "host-a:11:100"
B = "host-b:22:200"


async def _saga(
    storage: ISagaStorage, name: str, status: SagaStatus, owner: str | None = None
) -> uuid.UUID:
    saga_id = uuid.uuid4()
    await storage.apply(
        Checkpoint(
            saga_id=saga_id,
            create=NewSaga(name=name, context={"x": 1}, step_count=2),
            status=status,
            owner=owner,
            lease_expires=time.time() + 600 if owner else None,
        )
    )
    return saga_id


async def _ids(storage: ISagaStorage, text: str) -> set[uuid.UUID]:
    found = parse_filter(text)
    page = await storage.list_sagas(found, limit=50)
    assert await storage.count_sagas(found) == len(page.items)
    return {s.id for s in page.items}


async def _register(book: RequestBook, owner: str, name: str) -> None:
    host, pid, _ = owner.split(":")
    now = time.time()
    await book.register(
        WorkerInfo(owner, name, host, int(pid), "shop:make", ("OrderSaga",), now, now)
    )


async def test_a_worker_filter_keeps_the_sagas_it_runs_and_served(storage: ISagaStorage) -> None:
    run_by_a = await _saga(storage, "OrderSaga", SagaStatus.RUNNING, A)
    run_by_b = await _saga(storage, "OrderSaga", SagaStatus.RUNNING, B)
    served = await _saga(storage, "ServedSaga", SagaStatus.COMPLETED)
    await _saga(storage, "OrderSaga", SagaStatus.COMPLETED)
    if isinstance(storage, MemorySagaStorage):
        # No workers table in memory: a worker is named by its owner id, whole or host:pid.
        assert await _ids(storage, "worker:host-a:11") == {run_by_a}
        assert await _ids(storage, f"worker:{B}") == {run_by_b}
        assert await _ids(storage, "worker:w-a") == set()
        return
    book = RequestBook.of(storage)
    await _register(book, A, "w-a")
    await _register(book, B, "w-b")
    # ``served`` is finished (no lease left): only the pair w-a took names it.
    request_id = await book.submit("recover", [served])
    (pair,) = await book.claim(A, ["ServedSaga"], 10, time.time() + 60)
    assert pair.request_id == request_id
    assert await book.finish(pair, A, "COMPLETED", True, None)

    assert await _ids(storage, "worker:w-a") == {run_by_a, served}
    assert await _ids(storage, "worker:w-b") == {run_by_b}
    assert await _ids(storage, "worker:w-a status:running") == {run_by_a}
    assert await _ids(storage, "worker:w-a name:Served") == {served}
    # By owner id, as request progress shows it (host:pid), or whole.
    assert await _ids(storage, "worker:host-a:11") == {run_by_a, served}
    assert await _ids(storage, f"worker:{B}") == {run_by_b}
    # Not a prefix of a longer pid, not another worker's name, not a host alone.
    assert await _ids(storage, "worker:host-a:1") == set()
    assert await _ids(storage, "worker:w-") == set()
    assert await _ids(storage, "worker:host-a") == set()
    assert await _ids(storage, "worker:nobody") == set()


async def test_a_restarted_worker_keeps_its_name_so_the_filter_spans_both_runs(
    storage: ISagaStorage,
) -> None:
    if isinstance(storage, MemorySagaStorage):
        return
    book = RequestBook.of(storage)
    later = "host-a:99:900"
    await _register(book, A, "w-a")
    await _register(book, later, "w-a")
    first = await _saga(storage, "OrderSaga", SagaStatus.RUNNING, A)
    second = await _saga(storage, "OrderSaga", SagaStatus.COMPENSATING, later)
    assert await _ids(storage, "worker:w-a") == {first, second}


def test_the_worker_word_reads_back_as_written() -> None:
    found = parse_filter('status:running worker:"w 1"')
    assert (found.worker, found.statuses) == ("w 1", (SagaStatus.RUNNING,))
    for name in ("w1", "w 1", A):
        assert parse_filter(format_filter(SagaFilter(worker=name))).worker == name
    assert not SagaFilter(worker=None).worker and SagaFilter(worker="w1").is_empty is False
