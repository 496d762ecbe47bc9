"""Sagas started with an id (the seed's ``saga_id=uuid4()``): create-or-claim in one write."""

from __future__ import annotations

import asyncio
import functools
import os
import typing
import uuid

import pytest

from engine.saga.bootstrap import bootstrap
from engine.saga.errors import SagaBusyError
from engine.saga.lease import _proc_start_time, this_host
from engine.saga.storage.enums import SagaStatus, SagaStepStatus
from engine.saga.storage.models import Checkpoint, LogWrite, NewSaga
from engine.saga.storage.protocol import ISagaStorage
from tests.engine.sagas import Ctx, Script, ScriptContainer, StepA, StepB, StepC, mapper

READS_AND_CLAIMS = ("claim", "get_lease", "get_saga", "load_saga_state", "get_step_history")


def spy(storage: ISagaStorage) -> list[tuple[str, typing.Any]]:
    """Record (method, first argument) of every write, claim and read the run makes."""
    calls: list[tuple[str, typing.Any]] = []
    for name in ("apply", *READS_AND_CLAIMS):
        method = getattr(storage, name)

        @functools.wraps(method)
        async def recorded(
            *args: typing.Any, _m: typing.Any = method, _n: str = name, **kw: typing.Any
        ) -> typing.Any:
            calls.append((_n, args[0] if args else None))
            return await _m(*args, **kw)

        setattr(storage, name, recorded)
    return calls


def make(storage: ISagaStorage, script: Script) -> typing.Any:
    return bootstrap(
        di_container=ScriptContainer(script), sagas_mapper=mapper, saga_storage=storage
    )


async def test_a_new_given_id_is_created_by_its_first_write_as_without_an_id(
    storage: ISagaStorage,
) -> None:
    script = Script()
    mediator = make(storage, script)
    calls = spy(storage)
    saga_id = uuid.uuid4()
    results = [r async for r in mediator.stream(Ctx("o1"), saga_id=saga_id)]
    assert [r.step_type for r in results] == [StepA, StepB, StepC]
    given = list(calls)
    calls.clear()
    [r async for r in mediator.stream(Ctx("o2"))]
    without = list(calls)
    # No claim, no read: the creating checkpoint (saga row + StepA STARTED) comes first.
    assert [name for name, _ in given] == ["apply"] * 4
    assert [name for name, _ in given] == [name for name, _ in without]
    first = given[0][1]
    assert isinstance(first, Checkpoint) and first.saga_id == saga_id
    assert first.create is not None
    assert [(w.step_name, w.status.name) for w in first.logs] == [("StepA", "STARTED")]
    assert (await storage.load_saga_state(saga_id))[0] is SagaStatus.COMPLETED


async def test_a_given_id_that_exists_is_claimed_and_resumed(storage: ISagaStorage) -> None:
    script = Script()
    mediator = make(storage, script)
    saga_id = uuid.uuid4()
    stream = mediator.stream(Ctx("o1"), saga_id=saga_id)
    await anext(stream)
    await stream.aclose()  # paused after StepA
    calls = spy(storage)
    script.calls.clear()
    context = Ctx("other")
    results = [r async for r in mediator.stream(context, saga_id=saga_id)]
    assert [r.step_type for r in results] == [StepB, StepC]
    assert script.calls == [("act", "StepB"), ("act", "StepC")]
    assert context.order_id == "o1"  # the stored context, not the one passed in
    names = [name for name, _ in calls]
    # The create was refused and wrote nothing; then the claim took over.
    assert names[:2] == ["apply", "claim"]
    history = await storage.get_step_history(saga_id)
    assert [(e.step_name, e.status.name) for e in history].count(("StepA", "STARTED")) == 1


async def test_two_runs_of_one_new_id_in_one_process_run_it_once(storage: ISagaStorage) -> None:
    gate = asyncio.Event()
    script = Script(gates={"StepA": gate})
    mediator = make(storage, script)
    saga_id = uuid.uuid4()
    # Both start in the same turn of the loop: neither row exists when they begin.
    first = asyncio.create_task(mediator.run(Ctx("o1"), saga_id=saga_id))
    second = asyncio.create_task(mediator.run(Ctx("o1"), saga_id=saga_id))
    with pytest.raises(SagaBusyError):
        await second
    gate.set()
    assert len(await first) == 3
    assert script.calls == [("act", "StepA"), ("act", "StepB"), ("act", "StepC")]
    assert (await storage.load_saga_state(saga_id))[0] is SagaStatus.COMPLETED


async def test_a_given_id_held_by_a_live_process_is_refused_and_left_alone(
    storage: ISagaStorage,
) -> None:
    parent = os.getppid()
    alive = f"{this_host()}:{parent}:{_proc_start_time(parent)}"
    saga_id = uuid.uuid4()
    await storage.apply(
        Checkpoint(
            saga_id=saga_id,
            owner=alive,
            create=NewSaga("ThreeSteps", {"order_id": "o9", "trail": []}, 3),
            status=SagaStatus.RUNNING,
            logs=(LogWrite("StepA", "act", SagaStepStatus.STARTED),),
            current_step="StepA",
            lease_expires=4102444800.0,
        ),
    )
    script = Script()
    with pytest.raises(SagaBusyError):
        await make(storage, script).run(Ctx("o9"), saga_id=saga_id)
    assert script.calls == []
    history = await storage.get_step_history(saga_id)
    assert [(e.step_name, e.status.name) for e in history] == [("StepA", "STARTED")]
    lease = await storage.get_lease(saga_id)
    assert lease is not None and lease.owner == alive
