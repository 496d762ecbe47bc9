"""A saga started with a given id is created with one write; an existing id is claimed."""

from __future__ import annotations

import typing
import uuid

from engine.saga.bootstrap import bootstrap
from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.protocol import ISagaStorage
from tests.engine.sagas import Ctx, Script, ScriptContainer, mapper


def counting(storage: ISagaStorage) -> dict[str, int]:
    """Count the storage's writes by kind, on the storage object itself."""
    calls = {"apply": 0, "claim": 0}
    for name in calls:
        original = getattr(storage, name)

        async def counted_kw(
            *args: typing.Any, _o: typing.Any = original, _n: str = name, **kw: typing.Any
        ) -> typing.Any:
            calls[_n] += 1
            return await _o(*args, **kw)

        setattr(storage, name, counted_kw)
    return calls


async def test_a_new_given_id_costs_no_claim_and_an_existing_one_is_claimed(
    storage: ISagaStorage,
) -> None:
    mediator = bootstrap(
        di_container=ScriptContainer(Script()), sagas_mapper=mapper, saga_storage=storage
    )
    calls = counting(storage)
    await mediator.run(Ctx("o0"))
    unnamed = calls["apply"]
    await mediator.run(Ctx("o0"), saga_id=uuid.uuid4())
    assert calls["apply"] == 2 * unnamed  # a given id writes exactly what no id writes
    assert calls["claim"] == 0  # created by its first write, no claim before it
    saga_id = uuid.uuid4()
    stream = mediator.stream(Ctx("o1"), saga_id=saga_id)
    await anext(stream)
    await stream.aclose()  # stopped after one step: RUNNING, lease given back
    assert calls["claim"] == 0
    # The same id again: the create is refused without writing, then the saga is claimed
    # and resumed where it stopped.
    results = [r async for r in mediator.stream(Ctx("o1"), saga_id=saga_id)]
    assert len(results) == 2
    assert calls["claim"] == 1
    assert (await storage.load_saga_state(saga_id))[0] is SagaStatus.COMPLETED
