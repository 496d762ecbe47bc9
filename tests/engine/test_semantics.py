"""Engine semantics, each test against memory and SQLite storage (the ``storage`` fixture)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import typing
import uuid

import pytest

import engine
from engine.saga.bootstrap import bootstrap
from engine.saga.circuit_breaker import CircuitBreaker
from engine.saga.errors import CompensationRequestedError, SagaNotRegisteredError
from engine.saga.fallback import Fallback
from engine.saga.saga import Saga
from engine.saga.storage.enums import SagaStatus, SagaStepStatus
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


def make(storage: ISagaStorage, script: Script, **options: typing.Any) -> engine.SagaMediator:
    delays: list[float] = options.pop("delays", [])

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    return bootstrap(
        di_container=ScriptContainer(script),
        sagas_mapper=options.pop("sagas_mapper", mapper),
        saga_storage=storage,
        sleep=sleep,
        **options,
    )


async def history(storage: ISagaStorage, saga_id: uuid.UUID) -> list[tuple[str, str, str]]:
    return [(e.step_name, e.action, e.status.name) for e in await storage.get_step_history(saga_id)]


async def status_of(storage: ISagaStorage, saga_id: uuid.UUID) -> SagaStatus:
    return (await storage.load_saga_state(saga_id))[0]


async def test_steps_run_in_order_and_each_yields_one_result_with_the_saga_id(
    storage: ISagaStorage,
) -> None:
    script = Script()
    mediator = make(storage, script)
    saga_id = uuid.uuid4()
    results = [r async for r in mediator.stream(Ctx("o1"), saga_id=saga_id)]
    assert [r.step_type for r in results] == [StepA, StepB, StepC]
    assert {r.saga_id for r in results} == {saga_id}
    assert script.calls == [("act", "StepA"), ("act", "StepB"), ("act", "StepC")]
    assert await status_of(storage, saga_id) is SagaStatus.COMPLETED
    assert await history(storage, saga_id) == [
        ("StepA", "act", "STARTED"),
        ("StepA", "act", "COMPLETED"),
        ("StepB", "act", "STARTED"),
        ("StepB", "act", "COMPLETED"),
        ("StepC", "act", "STARTED"),
        ("StepC", "act", "COMPLETED"),
    ]
    _, context, _ = await storage.load_saga_state(saga_id)
    assert context["trail"] == ["StepA", "StepB", "StepC"]


async def test_a_result_is_yielded_only_after_its_checkpoint_is_durable(
    storage: ISagaStorage,
) -> None:
    mediator = make(storage, Script())
    saga_id = uuid.uuid4()
    async for result in mediator.stream(Ctx("o1"), saga_id=saga_id):
        entries = await history(storage, saga_id)
        assert (result.step_type.__name__, "act", "COMPLETED") in entries
        _, context, _ = await storage.load_saga_state(saga_id)
        assert result.step_type.__name__ in context["trail"]


async def test_the_started_entry_is_durable_before_act_runs(storage: ISagaStorage) -> None:
    script = Script(gates={"StepB": asyncio.Event()}, entered={"StepB": asyncio.Event()})
    mediator = make(storage, script)
    saga_id = uuid.uuid4()
    task = asyncio.create_task(mediator.run(Ctx("o1"), saga_id=saga_id))
    await asyncio.wait_for(script.entered["StepB"].wait(), 10)
    assert (await history(storage, saga_id))[-1] == ("StepB", "act", "STARTED")
    detail = await storage.get_saga(saga_id)
    assert detail is not None and detail.summary.current_step == "StepB"
    assert [s.name for s in detail.steps if s.act.in_flight] == ["StepB"]
    script.gates["StepB"].set()
    await asyncio.wait_for(task, 10)


async def test_a_failing_step_compensates_completed_steps_in_reverse_and_reraises(
    storage: ISagaStorage,
) -> None:
    boom = ValueError("card declined")
    script = Script(fail_act={"StepC": boom})
    mediator = make(storage, script)
    saga_id = uuid.uuid4()
    seen: list[str] = []
    with pytest.raises(ValueError) as caught:
        async for result in mediator.stream(Ctx("o1"), saga_id=saga_id):
            seen.append(result.step_type.__name__)
    assert caught.value is boom
    assert seen == ["StepA", "StepB"]
    assert script.calls[3:] == [("compensate", "StepB"), ("compensate", "StepA")]
    assert await status_of(storage, saga_id) is SagaStatus.COMPENSATED
    failed = [e for e in await storage.get_step_history(saga_id) if e.status.name == "FAILED"]
    assert [(e.step_name, e.error_type, e.error_message) for e in failed] == [
        ("StepC", "ValueError", "card declined"),
    ]
    assert "card declined" in (failed[0].error_traceback or "")
    detail = await storage.get_saga(saga_id)
    assert detail is not None and detail.summary.error_type == "ValueError"


async def test_ends_failed_when_a_compensation_keeps_failing_after_backoff(
    storage: ISagaStorage,
) -> None:
    script = Script(fail_act={"StepC": RuntimeError("ship")}, fail_compensate={"StepB": -1})
    delays: list[float] = []
    mediator = make(
        storage,
        script,
        delays=delays,
        compensation_retry_count=4,
        compensation_retry_delay=0.5,
        compensation_retry_backoff=3.0,
    )
    saga_id = uuid.uuid4()
    with pytest.raises(RuntimeError, match="ship"):
        await mediator.run(Ctx("o1"), saga_id=saga_id)
    assert delays == [0.5, 1.5, 4.5]
    assert script.calls.count(("compensate", "StepB")) == 4
    # the rest go on after one fails for good
    assert script.calls[-1] == ("compensate", "StepA")
    assert await status_of(storage, saga_id) is SagaStatus.FAILED
    detail = await storage.get_saga(saga_id)
    assert detail is not None
    assert detail.summary.error_type == "ConnectionError"
    lanes = {s.name: s.compensate for s in detail.steps}
    assert lanes["StepB"].status is SagaStepStatus.FAILED and lanes["StepB"].attempts == 4
    assert lanes["StepA"].status is SagaStepStatus.COMPLETED


async def test_default_retry_is_three_attempts_one_second_doubling(storage: ISagaStorage) -> None:
    script = Script(fail_act={"StepB": RuntimeError("x")}, fail_compensate={"StepA": 2})
    delays: list[float] = []
    mediator = make(storage, script, delays=delays)
    saga_id = uuid.uuid4()
    with pytest.raises(RuntimeError):
        await mediator.run(Ctx("o1"), saga_id=saga_id)
    assert delays == [1.0, 2.0]
    assert await status_of(storage, saga_id) is SagaStatus.COMPENSATED


async def test_retrying_a_failed_saga_retries_only_the_failed_compensations(
    storage: ISagaStorage,
) -> None:
    script = Script(fail_act={"StepC": RuntimeError("x")}, fail_compensate={"StepB": 3})
    mediator = make(storage, script)
    saga_id = uuid.uuid4()
    with pytest.raises(RuntimeError):
        await mediator.run(Ctx("o1"), saga_id=saga_id)
    assert await status_of(storage, saga_id) is SagaStatus.FAILED
    script.calls.clear()
    result = await mediator.recover_saga(saga_id, reason="retry")
    assert result.status is SagaStatus.COMPENSATED
    assert script.calls == [("compensate", "StepB")]
    detail = await storage.get_saga(saga_id)
    assert detail is not None and [a.action for a in detail.audit] == ["recover"]
    assert detail.audit[0].reason == "retry" and detail.audit[0].os_user


async def test_a_step_in_flight_is_compensated_too(storage: ISagaStorage) -> None:
    script = Script(gates={"StepB": asyncio.Event()}, entered={"StepB": asyncio.Event()})
    mediator = make(storage, script)
    saga_id = uuid.uuid4()
    task = asyncio.create_task(mediator.run(Ctx("o1"), saga_id=saga_id))
    await asyncio.wait_for(script.entered["StepB"].wait(), 10)
    task.cancel()  # the runner stops mid-act: StepB is STARTED and never finished
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert (await history(storage, saga_id))[-1] == ("StepB", "act", "STARTED")
    script.calls.clear()
    result = await mediator.compensate_saga(saga_id)
    assert result.status is SagaStatus.COMPENSATED
    assert script.calls == [("compensate", "StepB"), ("compensate", "StepA")]


async def test_a_second_stream_skips_completed_steps(storage: ISagaStorage) -> None:
    script = Script()
    mediator = make(storage, script)
    saga_id = uuid.uuid4()
    stream = mediator.stream(Ctx("o1"), saga_id=saga_id)
    first = await anext(stream)
    await stream.aclose()  # the caller stops after one step; the saga stays RUNNING
    assert first.step_type is StepA
    assert await status_of(storage, saga_id) is SagaStatus.RUNNING
    script.calls.clear()
    context = Ctx("o1")
    results = [r async for r in mediator.stream(context, saga_id=saga_id)]
    assert [r.step_type for r in results] == [StepB, StepC]
    assert script.calls == [("act", "StepB"), ("act", "StepC")]
    assert context.trail == ["StepA", "StepB", "StepC"]  # resumed from the stored context
    assert await status_of(storage, saga_id) is SagaStatus.COMPLETED


async def test_a_second_stream_of_a_completed_saga_yields_nothing(storage: ISagaStorage) -> None:
    script = Script()
    mediator = make(storage, script)
    saga_id = uuid.uuid4()
    await mediator.run(Ctx("o1"), saga_id=saga_id)
    script.calls.clear()
    assert [r async for r in mediator.stream(Ctx("o1"), saga_id=saga_id)] == []
    assert script.calls == []


@pytest.mark.parametrize("end", ["COMPENSATING", "FAILED"])
async def test_a_second_stream_of_a_compensating_or_failed_saga_finishes_and_raises(
    storage: ISagaStorage,
    end: str,
) -> None:
    script = Script(fail_act={"StepC": RuntimeError("x")}, fail_compensate={"StepA": 3})
    mediator = make(storage, script)
    saga_id = uuid.uuid4()
    if end == "COMPENSATING":
        # A runner on this host died after StepB failed, before it undid StepA.
        script.fail_compensate.clear()
        from engine.saga.lease import this_host
        from engine.saga.storage.models import Checkpoint, ErrorInfo, LogWrite, NewSaga

        await storage.apply(
            Checkpoint(
                saga_id=saga_id,
                owner=f"{this_host()}:4194999:123",
                create=NewSaga("ThreeSteps", {"order_id": "o1", "trail": ["StepA"]}, 3),
                status=SagaStatus.COMPENSATING,
                logs=(
                    LogWrite("StepA", "act", SagaStepStatus.STARTED),
                    LogWrite("StepA", "act", SagaStepStatus.COMPLETED),
                    LogWrite("StepB", "act", SagaStepStatus.STARTED),
                    LogWrite("StepB", "act", SagaStepStatus.FAILED, error=ErrorInfo("E", "x")),
                ),
                lease_expires=4102444800.0,
            ),
        )
    else:
        with pytest.raises(RuntimeError):
            await mediator.run(Ctx("o1"), saga_id=saga_id)
        assert await status_of(storage, saga_id) is SagaStatus.FAILED
    script.calls.clear()
    with pytest.raises(RuntimeError) as caught:
        async for _ in mediator.stream(Ctx("o1"), saga_id=saga_id):
            pass
    assert str(caught.value) == (
        f"Saga {saga_id} was recovered in {end.lower()} state and compensation was "
        "completed. Forward execution is not allowed."
    )
    assert ("act", "StepC") not in script.calls
    assert script.calls == [("compensate", "StepA")]  # StepB's act failed: nothing to undo
    assert await status_of(storage, saga_id) is SagaStatus.COMPENSATED


async def test_fallback_runs_when_the_primary_fails(storage: ISagaStorage) -> None:
    script = Script(fail_act={"Primary": TimeoutError("hotel down")})
    mediator = make(storage, script)
    saga_id = uuid.uuid4()
    results = [r async for r in mediator.stream(FallbackCtx("o1"), saga_id=saga_id)]
    assert [r.step_type for r in results] == [StepA, Backup, StepC]
    assert await history(storage, saga_id) == [
        ("StepA", "act", "STARTED"),
        ("StepA", "act", "COMPLETED"),
        ("Primary", "act", "STARTED"),
        ("Primary", "act", "FAILED"),
        ("Backup", "act", "STARTED"),
        ("Backup", "act", "COMPLETED"),
        ("StepC", "act", "STARTED"),
        ("StepC", "act", "COMPLETED"),
    ]


async def test_a_failing_fallback_is_logged_under_its_own_name_and_compensates(
    storage: ISagaStorage,
) -> None:
    script = Script(
        fail_act={"Primary": TimeoutError("down"), "Backup": LookupError("no rooms")},
    )
    mediator = make(storage, script)
    saga_id = uuid.uuid4()
    with pytest.raises(LookupError, match="no rooms"):
        await mediator.run(FallbackCtx("o1"), saga_id=saga_id)
    entries = await history(storage, saga_id)
    assert ("Backup", "act", "FAILED") in entries
    assert script.calls[-1] == ("compensate", "StepA")
    assert ("compensate", "Backup") not in script.calls
    assert await status_of(storage, saga_id) is SagaStatus.COMPENSATED


async def test_fallback_only_for_listed_exceptions(storage: ISagaStorage) -> None:
    class Narrow(Saga[FallbackCtx]):
        steps = [
            StepA,
            Fallback(step=Primary, fallback=Backup, failure_exceptions=(TimeoutError,)),
        ]

    script = Script(fail_act={"Primary": KeyError("bad input")})
    mediator = make(storage, script, sagas_mapper=lambda m: m.bind(FallbackCtx, Narrow))
    with pytest.raises(KeyError):
        await mediator.run(FallbackCtx("o1"))
    assert ("act", "Backup") not in script.calls
    assert ("compensate", "StepA") in script.calls


async def test_circuit_breaker_opens_and_goes_straight_to_the_fallback(
    storage: ISagaStorage,
) -> None:
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=60)

    class Guarded(Saga[FallbackCtx]):
        steps = [Fallback(step=Primary, fallback=Backup, circuit_breaker=breaker)]

    script = Script(fail_act={"Primary": ConnectionError("down")})
    mediator = make(storage, script, sagas_mapper=lambda m: m.bind(FallbackCtx, Guarded))
    for _ in range(3):
        await mediator.run(FallbackCtx("o1"))
    assert script.calls.count(("act", "Primary")) == 2  # third run: the circuit is open
    assert script.calls.count(("act", "Backup")) == 3
    assert breaker.is_open(Primary)


async def test_middlewares_run_around_each_act_in_order(storage: ISagaStorage) -> None:
    order: list[str] = []

    class Tag:
        def __init__(self, tag: str) -> None:
            self.tag = tag

        async def __call__(self, request: typing.Any, handle: typing.Any) -> typing.Any:
            order.append(f"{self.tag}>{type(request).__name__}")
            result = await handle(request)
            order.append(f"<{self.tag}")
            return result

    script = Script()
    mediator = make(storage, script, middlewares=[Tag("outer"), Tag("inner")])
    await mediator.run(Ctx("o1"))
    assert order == ["outer>Ctx", "inner>Ctx", "<inner", "<outer"] * 3


@pytest.mark.parametrize("concurrent", [False, True])
async def test_domain_events_reach_their_handlers(storage: ISagaStorage, concurrent: bool) -> None:
    from tests.engine.sagas import ItemReserved

    got: list[tuple[str, str]] = []
    both_running = asyncio.Barrier(2) if concurrent else None

    class First(engine.EventHandler[ItemReserved]):
        async def handle(self, event: ItemReserved) -> None:
            if both_running:
                await asyncio.wait_for(both_running.wait(), 5)
            got.append(("first", event.order_id))

    class Second(First):
        async def handle(self, event: ItemReserved) -> None:
            if both_running:
                await asyncio.wait_for(both_running.wait(), 5)
            got.append(("second", event.order_id))

    class Container:
        async def resolve(self, type_: type) -> typing.Any:
            return type_(script) if issubclass(type_, StepA | StepB | StepC) else type_()

    script = Script(events=[])
    mediator = bootstrap(
        di_container=Container(),
        sagas_mapper=mapper,
        domain_events_mapper=lambda m: (m.bind(ItemReserved, First), m.bind(ItemReserved, Second)),
        saga_storage=storage,
        max_concurrent_event_handlers=4 if concurrent else 1,
        concurrent_event_handle_enable=concurrent,
    )
    script.events.append(ItemReserved(order_id="o1"))
    await mediator.run(Ctx("o1"))
    # one event per step, three steps; in concurrent mode both handlers overlap (barrier)
    assert sorted(got) == sorted([("first", "o1"), ("second", "o1")] * 3)


async def test_notification_events_go_to_the_broker(storage: ISagaStorage) -> None:
    from engine.message_brokers.protocol import Message, MessageBroker
    from tests.engine.sagas import OrderNotice

    class Collect(MessageBroker):
        def __init__(self) -> None:
            self.messages: list[Message] = []

        async def send_message(self, message: Message) -> None:
            self.messages.append(message)

    broker = Collect()
    script = Script(events=[OrderNotice(payload={"id": 1})])
    mediator = make(storage, script, message_broker=broker)
    await mediator.run(Ctx("o1"))
    assert [(m.message_name, m.topic) for m in broker.messages] == [("order_notice", "orders")] * 3


async def test_an_unregistered_context_type_is_named(storage: ISagaStorage) -> None:
    import dataclasses

    @dataclasses.dataclass
    class Stray(engine.SagaContext):
        x: int = 1

    mediator = make(storage, Script())
    with pytest.raises(SagaNotRegisteredError, match="Stray"):
        await mediator.run(Stray())
    assert (await storage.count_by_status()).total == 0


async def test_an_operator_can_roll_back_a_completed_saga(storage: ISagaStorage) -> None:
    script = Script()
    mediator = make(storage, script)
    saga_id = uuid.uuid4()
    await mediator.run(Ctx("o1"), saga_id=saga_id)
    script.calls.clear()
    result = await mediator.compensate_saga(saga_id, reason="customer cancelled")
    assert result.status is SagaStatus.COMPENSATED
    assert mediator.running == 0
    assert script.calls == [
        ("compensate", "StepC"),
        ("compensate", "StepB"),
        ("compensate", "StepA"),
    ]
    detail = await storage.get_saga(saga_id)
    assert detail is not None
    assert [(a.action, a.reason) for a in detail.audit] == [("compensate", "customer cancelled")]


async def test_operator_actions_are_audited_as_the_mediators_operator(
    storage: ISagaStorage,
) -> None:
    from engine.saga.lease import this_host
    from engine.saga.operator import Operator, os_user

    script = Script(fail_act={"StepC": RuntimeError("x")}, fail_compensate={"StepB": 3})
    mediator = make(storage, script)
    saga_id = uuid.uuid4()
    with pytest.raises(RuntimeError):
        await mediator.run(Ctx("o1"), saga_id=saga_id)
    await mediator.recover_saga(saga_id, reason="by default")
    mediator.operator = Operator("web", "192.0.2.7")
    await mediator.compensate_saga(saga_id, reason="from a browser")
    started = await mediator.start(Ctx("o2"), reason="from a browser")
    detail = await storage.get_saga(saga_id)
    assert detail is not None
    assert [(a.reason, a.os_user, a.host) for a in detail.audit] == [
        ("by default", os_user(), this_host()),
        ("from a browser", "web", "192.0.2.7"),
    ]
    other = await storage.get_saga(started.saga_id)
    assert other is not None
    assert [(a.action, str(Operator(a.os_user, a.host))) for a in other.audit] == [
        ("start", "web@192.0.2.7")
    ]


async def test_compensation_requested_while_running_is_done_by_the_owner(
    storage: ISagaStorage,
) -> None:
    script = Script(gates={"StepB": asyncio.Event()}, entered={"StepB": asyncio.Event()})
    mediator = make(storage, script)
    saga_id = uuid.uuid4()
    task = asyncio.create_task(mediator.run(Ctx("o1"), saga_id=saga_id))
    await asyncio.wait_for(script.entered["StepB"].wait(), 10)
    result = await mediator.compensate_saga(saga_id, reason="stop it")
    assert result.requested and result.status is SagaStatus.RUNNING
    script.gates["StepB"].set()
    with pytest.raises(CompensationRequestedError):
        await asyncio.wait_for(task, 10)
    assert ("act", "StepC") not in script.calls
    assert script.calls[-2:] == [("compensate", "StepB"), ("compensate", "StepA")]
    assert await status_of(storage, saga_id) is SagaStatus.COMPENSATED
    detail = await storage.get_saga(saga_id)
    assert detail is not None and detail.summary.requested_action is None


async def test_recover_stale_resumes_a_saga_whose_owner_is_gone(storage: ISagaStorage) -> None:
    from engine.saga.lease import this_host
    from engine.saga.storage.models import Checkpoint, LogWrite, NewSaga

    saga_id = uuid.uuid4()
    # A runner on this host that no longer exists (pid far above pid_max) left it RUNNING.
    dead = f"{this_host()}:4194999:123"
    await storage.apply(
        Checkpoint(
            saga_id=saga_id,
            owner=dead,
            create=NewSaga("ThreeSteps", {"order_id": "o9", "trail": []}, 3),
            status=SagaStatus.RUNNING,
            logs=(LogWrite("StepA", "act", SagaStepStatus.STARTED),),
            lease_expires=4102444800.0,  # far future: only the dead-owner check frees it
        ),
    )
    script = Script()
    mediator = make(storage, script)
    results = await mediator.recover_stale()
    assert [(r.saga_id, r.status) for r in results] == [(saga_id, SagaStatus.COMPLETED)]
    assert script.calls == [("act", "StepA"), ("act", "StepB"), ("act", "StepC")]
    detail = await storage.get_saga(saga_id)
    assert detail is not None and detail.summary.recovery_attempts == 1


async def test_a_live_owner_on_this_host_is_not_robbed(storage: ISagaStorage) -> None:
    import os

    from engine.saga.errors import SagaBusyError
    from engine.saga.lease import _proc_start_time, this_host
    from engine.saga.storage.models import Checkpoint, NewSaga

    parent = os.getppid()
    alive = f"{this_host()}:{parent}:{_proc_start_time(parent)}"
    saga_id = uuid.uuid4()
    await storage.apply(
        Checkpoint(
            saga_id=saga_id,
            owner=alive,
            create=NewSaga("ThreeSteps", {"order_id": "o9", "trail": []}, 3),
            status=SagaStatus.RUNNING,
            lease_expires=4102444800.0,
        ),
    )
    mediator = make(storage, Script())
    assert await mediator.recover_stale() == []
    with pytest.raises(SagaBusyError):
        await mediator.recover_saga(saga_id)
    requested = await mediator.compensate_saga(saga_id)
    assert requested.requested


async def test_a_fallback_in_flight_is_resumed_as_the_fallback(storage: ISagaStorage) -> None:
    script = Script(
        fail_act={"Primary": TimeoutError("down")},
        gates={"Backup": asyncio.Event()},
        entered={"Backup": asyncio.Event()},
    )
    mediator = make(storage, script)
    saga_id = uuid.uuid4()
    task = asyncio.create_task(mediator.run(FallbackCtx("o1"), saga_id=saga_id))
    await asyncio.wait_for(script.entered["Backup"].wait(), 10)
    task.cancel()  # the runner dies while the fallback runs
    with contextlib.suppress(asyncio.CancelledError):
        await task
    script.calls.clear()
    script.fail_act.clear()  # the primary would succeed now: it must not run again
    script.gates.clear()
    result = await mediator.recover_saga(saga_id)
    assert result.status is SagaStatus.COMPLETED
    assert script.calls == [("act", "Backup"), ("act", "StepC")]


async def test_steps_can_read_the_id_of_their_saga(storage: ISagaStorage) -> None:
    from engine.saga.current import current_saga_id

    seen: list[tuple[str, uuid.UUID | None]] = []

    class Spy(StepA):
        async def act(self, context: typing.Any) -> typing.Any:
            seen.append(("act", current_saga_id()))
            return self._generate_step_result(None)

        async def compensate(self, context: typing.Any) -> None:
            seen.append(("compensate", current_saga_id()))

    class Watched(Saga[FallbackCtx]):
        steps = [Spy]

    mediator = make(storage, Script(), sagas_mapper=lambda m: m.bind(FallbackCtx, Watched))
    saga_id = uuid.uuid4()
    await mediator.run(FallbackCtx("o1"), saga_id=saga_id)
    await mediator.compensate_saga(saga_id)
    assert seen == [("act", saga_id), ("compensate", saga_id)]
    assert current_saga_id() is None  # not left behind in the caller's context


async def test_saga_transaction_used_directly(storage: ISagaStorage) -> None:
    from tests.engine.sagas import ThreeSteps

    script = Script()
    saga_id = uuid.uuid4()
    async with ThreeSteps().transaction(
        Ctx("o1"), ScriptContainer(script), storage, saga_id=saga_id
    ) as transaction:
        names = [r.step_type.__name__ async for r in transaction]
    assert names == ["StepA", "StepB", "StepC"]
    assert transaction.saga_id == saga_id and transaction.status is SagaStatus.COMPLETED
    assert await status_of(storage, saga_id) is SagaStatus.COMPLETED


async def test_an_error_in_the_callers_block_compensates_the_completed_steps(
    storage: ISagaStorage,
) -> None:
    from tests.engine.sagas import ThreeSteps

    script = Script()
    saga_id = uuid.uuid4()
    with pytest.raises(KeyError):
        async with ThreeSteps().transaction(
            Ctx("o1"), ScriptContainer(script), storage, saga_id=saga_id, sleep=_no_wait
        ) as transaction:
            async for result in transaction:
                if result.step_type is StepB:
                    raise KeyError("the caller changed its mind")
    assert script.calls[-2:] == [("compensate", "StepB"), ("compensate", "StepA")]
    assert ("act", "StepC") not in script.calls
    assert await status_of(storage, saga_id) is SagaStatus.COMPENSATED
    # nothing is left claimed by this process: an operator can act on it at once
    from engine.saga.lease import keeper_for

    assert saga_id not in keeper_for(storage).running
    lease = await storage.get_lease(saga_id)
    assert lease is not None and lease.owner is None


async def _no_wait(seconds: float) -> None:
    return None


async def test_recover_saga_function_resumes_with_an_explicit_saga(storage: ISagaStorage) -> None:
    from engine.saga.recovery import recover_saga
    from tests.engine.sagas import ThreeSteps

    script = Script()
    mediator = make(storage, script)
    saga_id = uuid.uuid4()
    stream = mediator.stream(Ctx("o1"), saga_id=saga_id)
    await anext(stream)
    await stream.aclose()
    script.calls.clear()
    await recover_saga(ThreeSteps(), saga_id, Ctx, ScriptContainer(script), storage)
    assert script.calls == [("act", "StepB"), ("act", "StepC")]
    assert await status_of(storage, saga_id) is SagaStatus.COMPLETED
    # a compensating saga: finishes compensation and raises python-cqrs's RuntimeError
    failing = Script(fail_act={"StepC": RuntimeError("x")}, fail_compensate={"StepA": 3})
    other = uuid.uuid4()
    with pytest.raises(RuntimeError):
        await make(storage, failing).run(Ctx("o2"), saga_id=other)
    with pytest.raises(RuntimeError, match="Forward execution is not allowed"):
        await recover_saga(ThreeSteps(), other, Ctx.from_dict, ScriptContainer(Script()), storage)
    assert await status_of(storage, other) is SagaStatus.COMPENSATED


class _Records(logging.Handler):
    """Collects records on the logger itself: the dashboard's tests detach "engine"
    from the root logger (propagate=False) in this process, so caplog may see nothing."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_a_failing_checkpoint_listener_is_logged_and_never_fails_the_saga(
    storage: ISagaStorage,
) -> None:
    seen: list[uuid.UUID] = []

    def broken(saga_id: uuid.UUID) -> None:
        raise RuntimeError("dashboard went away")

    script = Script()
    mediator = make(storage, script)
    mediator.add_listener(broken)
    mediator.add_listener(seen.append)  # a listener after the broken one still hears
    saga_id = uuid.uuid4()
    records = _Records()
    engine_log = logging.getLogger("engine.saga")
    engine_log.addHandler(records)
    try:
        results = await mediator.run(Ctx("o1"), saga_id=saga_id)
    finally:
        engine_log.removeHandler(records)
    assert [r.step_type for r in results] == [StepA, StepB, StepC]
    assert await status_of(storage, saga_id) is SagaStatus.COMPLETED
    assert seen and set(seen) == {saga_id}
    failures = [r for r in records.records if "checkpoint listener" in r.getMessage()]
    assert len(failures) == len(seen)
    error = failures[0].exc_info
    assert error is not None and "dashboard went away" in str(error[1])


async def test_start_is_audited_like_every_operator_action(storage: ISagaStorage) -> None:
    script = Script(fail_act={"StepB": ValueError("card declined")})
    mediator = make(storage, script)
    failed = await mediator.start(Ctx("o1"), reason="try it")
    script.fail_act.clear()
    done = await mediator.start(Ctx("o2"), reason="again")
    assert (failed.status, done.status) == (SagaStatus.COMPENSATED, SagaStatus.COMPLETED)
    outcomes = []
    for result in (failed, done):
        detail = await storage.get_saga(result.saga_id)
        assert detail is not None
        outcomes += [(a.action, a.reason, a.outcome) for a in detail.audit]
    assert outcomes == [
        ("start", "try it", "error: ValueError: card declined"),
        ("start", "again", "COMPLETED"),
    ]


async def test_recover_stale_recovers_in_candidate_order_a_bounded_number_at_once(
    storage: ISagaStorage,
) -> None:
    from engine.saga.lease import this_host
    from engine.saga.storage.models import Checkpoint, LogWrite, NewSaga

    inside = 0
    entered = 0
    most = 0

    class Gate(StepA):
        async def act(self, context: typing.Any) -> typing.Any:
            nonlocal inside, entered, most
            inside += 1
            entered += 1
            most = max(most, inside)
            # Two recoveries meet here (the last one alone): with concurrency 2 they
            # overlap, and a third never joins them.
            await wait_for(lambda: inside >= 2 or entered == 5, what="a second recovery")
            inside -= 1
            return self._generate_step_result(None)

    class Gated(Saga[Ctx]):
        steps = [Gate, StepB, StepC]

    dead = f"{this_host()}:4194999:123"
    for n in range(5):
        await storage.apply(
            Checkpoint(
                saga_id=uuid.uuid4(),
                owner=dead,
                create=NewSaga("Gated", {"order_id": f"o{n}", "trail": []}, 3),
                status=SagaStatus.RUNNING,
                logs=(LogWrite("Gate", "act", SagaStepStatus.STARTED),),
                lease_expires=4102444800.0,
            ),
        )
    candidates = [c.saga_id for c in await storage.lease_candidates(0.0, this_host(), 100)]
    mediator = make(storage, Script(), sagas_mapper=lambda m: m.bind(Ctx, Gated))
    results = await mediator.recover_stale(concurrency=2)
    assert [r.saga_id for r in results] == candidates and len(candidates) == 5
    assert {r.status for r in results} == {SagaStatus.COMPLETED}
    assert most == 2


async def _stored_saga_nobody_runs(
    storage: ISagaStorage, context: dict[str, typing.Any]
) -> uuid.UUID:
    from engine.saga.storage.models import Checkpoint, LogWrite, NewSaga

    saga_id = uuid.uuid4()
    await storage.apply(
        Checkpoint(
            saga_id=saga_id,
            create=NewSaga("ThreeSteps", context, 3),
            status=SagaStatus.RUNNING,
            logs=(
                LogWrite("StepA", "act", SagaStepStatus.STARTED),
                LogWrite("StepA", "act", SagaStepStatus.COMPLETED),
            ),
        ),
    )
    return saga_id


async def _refusals(mediator: engine.SagaMediator, saga_id: uuid.UUID) -> list[str]:
    from engine.saga.errors import ContextLoadError

    messages = []
    for action in (mediator.recover_saga, mediator.compensate_saga):
        with pytest.raises(ContextLoadError) as caught:
            await action(saga_id)
        messages.append(str(caught.value))
    return messages


async def test_a_context_that_no_longer_fits_is_refused_alike_and_nothing_is_touched(
    storage: ISagaStorage,
) -> None:
    saga_id = await _stored_saga_nobody_runs(storage, {"trail": ["StepA"]})  # no order_id
    before = await storage.get_saga(saga_id)
    script = Script()
    messages = await _refusals(make(storage, script), saga_id)
    assert messages[0] == messages[1]
    assert messages[0].startswith(f"Saga {saga_id}: stored context is not a valid Ctx: ")
    assert "\n" not in messages[0]
    after = await storage.get_saga(saga_id)
    assert before is not None and after is not None
    assert after.summary == before.summary and len(after.logs) == len(before.logs)
    assert script.calls == []


async def test_a_context_that_does_not_parse_is_refused_alike(tmp_path: typing.Any) -> None:
    import sqlite3

    from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage

    path = tmp_path / "sagas.db"
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{path}")
    try:
        saga_id = await _stored_saga_nobody_runs(storage, {"order_id": "o1", "trail": []})
        with sqlite3.connect(path) as raw:
            raw.execute(
                "UPDATE saga_executions SET context = ? WHERE id = ?", ('{"order_id":', saga_id.hex)
            )
        messages = await _refusals(make(storage, Script()), saga_id)
        assert messages[0] == messages[1]
        assert messages[0].startswith(f"Saga {saga_id}: stored context does not parse: ")
    finally:
        await storage.close()
