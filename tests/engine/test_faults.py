"""Faults: poison failures, unstorable context, the recovery cap, honest recovery, fences.

Each test runs against memory, a SQLite file and PostgreSQL when one is given.
"""

from __future__ import annotations

import asyncio
import dataclasses
import typing
import uuid

import pytest

import engine
from engine.saga.bootstrap import bootstrap
from engine.saga.context_codec import dump_context
from engine.saga.errors import ContextSerializationError, LeaseLostError
from engine.saga.failure import MESSAGE_LIMIT
from engine.saga.saga import Saga
from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.memory import MemorySagaStorage
from engine.saga.storage.models import Checkpoint
from engine.saga.storage.protocol import ISagaStorage
from tests.engine.sagas import Ctx, Script, ScriptContainer, StepA, StepB, StepC, mapper
from tests.support import wait_for


def mediator_for(
    storage: ISagaStorage, script: Script, **options: typing.Any
) -> engine.SagaMediator:
    async def no_sleep(seconds: float) -> None:
        return None

    return bootstrap(
        di_container=ScriptContainer(script),
        sagas_mapper=options.pop("sagas_mapper", mapper),
        saga_storage=storage,
        sleep=no_sleep,
        **options,
    )


class BrokenStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class NotAString(Exception):
    def __str__(self) -> typing.Any:
        return 42


POISON: dict[str, Exception] = {
    "str-raises": BrokenStr(),
    "str-not-a-str": NotAString(),
    "lone-surrogate": ValueError("bad \udcff byte"),
    "nul": ValueError("nul \x00 inside"),
    "huge": ValueError("x" * 2_000_000),
}


@pytest.mark.parametrize("trigger", list(POISON))
async def test_a_failure_whose_text_cannot_be_stored_still_compensates(
    storage: ISagaStorage, trigger: str
) -> None:
    boom = POISON[trigger]
    script = Script(fail_act={"StepB": boom})
    mediator = mediator_for(storage, script)
    saga_id = uuid.uuid4()
    with pytest.raises(type(boom)) as raised:
        await mediator.run(Ctx("o1"), saga_id=saga_id)
    assert raised.value is boom  # the caller gets its own exception
    detail = await storage.get_saga(saga_id)
    assert detail is not None
    assert detail.summary.status is SagaStatus.COMPENSATED
    assert ("compensate", "StepA") in script.calls
    assert detail.summary.error_type == type(boom).__name__
    message = detail.summary.error_message or ""
    assert "\x00" not in message and not any("\ud800" <= c <= "\udfff" for c in message)
    assert len(message) <= MESSAGE_LIMIT + 100
    if trigger == "huge":
        assert message.endswith(f"... {2_000_000 - MESSAGE_LIMIT} more characters")
    if trigger == "str-raises":
        assert "__str__ failed" in message
    failed = [e for e in detail.logs if e.step_name == "StepB" and e.status.name == "FAILED"]
    assert len(failed) == 1 and failed[0].error_traceback
    assert "Traceback" in failed[0].error_traceback
    # Stored once: with the log entry; the saga's detail finds it there.
    assert detail.error_traceback == failed[0].error_traceback


@dataclasses.dataclass
class NumCtx(Ctx):
    amount: float = 1.0
    note: str = ""


class PutsNaN(StepB):
    async def act(self, context: typing.Any) -> typing.Any:
        self.script.calls.append(("act", "PutsNaN"))
        context.amount = float("nan")
        return self._generate_step_result(engine.Response())

    async def compensate(self, context: typing.Any) -> None:
        self.script.calls.append(("compensate", type(self).__name__))


class PutsNul(PutsNaN):
    async def act(self, context: typing.Any) -> typing.Any:
        self.script.calls.append(("act", "PutsNul"))
        context.note = "a\x00b"
        return self._generate_step_result(engine.Response())


class NaNSaga(Saga[NumCtx]):
    steps = [StepA, PutsNaN, StepC]


@dataclasses.dataclass
class NulCtx(NumCtx):
    pass


class NulSaga(Saga[NulCtx]):
    steps = [StepA, PutsNul, StepC]


def _num_mapper(saga_map: engine.SagaMap) -> None:
    saga_map.bind(NumCtx, NaNSaga)
    saga_map.bind(NulCtx, NulSaga)


@pytest.mark.parametrize(("ctx_type", "field"), [(NumCtx, "amount"), (NulCtx, "note")])
async def test_a_context_value_json_cannot_carry_fails_its_step_and_compensates(
    storage: ISagaStorage, ctx_type: type, field: str
) -> None:
    script = Script()
    mediator = mediator_for(storage, script, sagas_mapper=_num_mapper)
    saga_id = uuid.uuid4()
    with pytest.raises(ContextSerializationError, match=rf"{ctx_type.__name__}\.{field}"):
        await mediator.run(ctx_type("o1"), saga_id=saga_id)
    detail = await storage.get_saga(saga_id)
    assert detail is not None and detail.summary.status is SagaStatus.COMPENSATED
    step = "PutsNaN" if ctx_type is NumCtx else "PutsNul"
    # The step ran (its effect exists): it is compensated too, then the one before.
    assert script.calls[-2:] == [("compensate", step), ("compensate", "StepA")]
    assert ("act", "StepC") not in script.calls
    assert detail.context is not None and detail.context["amount"] == 1.0


async def _leave_running(mediator: engine.SagaMediator, script: Script, saga_id: uuid.UUID) -> None:
    """Run (or recover) until StepB is entered, then stop the runner: the saga stays RUNNING."""
    script.entered["StepB"] = asyncio.Event()
    script.gates["StepB"] = asyncio.Event()
    if await mediator.storage.get_lease(saga_id) is None:
        task = asyncio.create_task(mediator.run(Ctx("o1"), saga_id=saga_id))
    else:
        task = asyncio.create_task(mediator.recover_saga(saga_id))
    await asyncio.wait_for(script.entered["StepB"].wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_recovery_gives_up_after_max_recovery_attempts(storage: ISagaStorage) -> None:
    script = Script()
    mediator = mediator_for(storage, script, max_recovery_attempts=2)
    saga_id = uuid.uuid4()
    await _leave_running(mediator, script, saga_id)
    await _leave_running(mediator, script, saga_id)  # recovery 1
    await _leave_running(mediator, script, saga_id)  # recovery 2
    script.calls.clear()
    result = await mediator.recover_saga(saga_id)
    assert script.calls == []  # the in-flight act is not run a third time
    assert result.status is SagaStatus.FAILED and not result.ok
    assert result.error and "recovery gave up after 2 attempts" in result.error
    detail = await storage.get_saga(saga_id)
    assert detail is not None and detail.summary.status is SagaStatus.FAILED
    assert (detail.summary.error_message or "").startswith("recovery gave up after 2 attempts")
    assert detail.summary.lease_owner is None


class FullDisk(MemorySagaStorage):
    """Memory storage whose writes fail as a full disk fails them, once ``full`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.full = False
        self.claims: dict[uuid.UUID, int] = {}

    async def apply(self, checkpoint: Checkpoint) -> typing.Any:
        if self.full:
            raise OSError(28, "No space left on device")
        return await super().apply(checkpoint)

    async def claim(self, saga_id: uuid.UUID, *args: typing.Any, **kw: typing.Any) -> typing.Any:
        self.claims[saga_id] = self.claims.get(saga_id, 0) + 1
        return await super().claim(saga_id, *args, **kw)

    async def lease_candidates(self, now: float, host: str, limit: int) -> list[typing.Any]:
        # As a saga whose failure could not be written looked: free again at once.
        found = await super().lease_candidates(now, host, limit)
        return [dataclasses.replace(c, owner=None, expires=None) for c in found]


async def test_recover_reports_a_storage_failure_and_sweeps_each_saga_once() -> None:
    from saga_tui.headless import recover_all_stale

    storage = FullDisk()
    script = Script()
    mediator = mediator_for(storage, script)
    ids = [uuid.uuid4() for _ in range(3)]
    for saga_id in ids:
        await _leave_running(mediator, script, saga_id)
    storage.full = True
    storage.claims.clear()
    script.gates.clear()
    results = await recover_all_stale(mediator, batch=2)
    assert sorted(r.saga_id for r in results) == sorted(ids)
    assert all(not r.ok and r.error and "No space left" in r.error for r in results)
    assert [storage.claims[saga_id] for saga_id in ids] == [1, 1, 1]
    one = await mediator.recover_saga(ids[0])
    assert not one.ok and one.error and "StorageUnavailableError" in one.error
    storage.full = False
    for saga_id in ids:
        detail = await storage.get_saga(saga_id)
        assert detail is not None and detail.summary.status is SagaStatus.RUNNING


async def test_a_run_whose_lease_is_taken_over_cancels_its_step_and_writes_nothing(
    storage: ISagaStorage,
) -> None:
    from engine.saga.current import current_fence
    from engine.saga.lease import keeper_for

    fences: list[int | None] = []

    class Fenced(StepB):
        async def act(self, context: typing.Any) -> typing.Any:
            fences.append(current_fence())
            return await super().act(context)

    class FencedSaga(Saga[Ctx]):
        steps = [StepA, Fenced, StepC]

    script = Script(entered={"Fenced": asyncio.Event()}, gates={"Fenced": asyncio.Event()})
    mediator = mediator_for(
        storage, script, sagas_mapper=lambda m: m.bind(Ctx, FencedSaga), lease_seconds=30
    )
    saga_id = uuid.uuid4()
    task = asyncio.create_task(mediator.run(Ctx("o1"), saga_id=saga_id))
    await asyncio.wait_for(script.entered["Fenced"].wait(), 10)
    # Another runner takes the saga over (as after a pause past the lease): it claims it.
    state = await storage.claim(saga_id, "other@host:1:t", 10**10, now=10**10)
    assert state is not None and state.fence == 2
    await keeper_for(storage, 30).renew()  # the heartbeat finds the lease lost
    with pytest.raises(LeaseLostError, match="other@host:1:t"):
        await task
    assert fences == [1]
    assert script.calls.count(("act", "Fenced")) == 1
    history = [(e.step_name, e.status.name) for e in await storage.get_step_history(saga_id)]
    assert history[-1] == ("Fenced", "STARTED")  # nothing written after the takeover
    lease = await storage.get_lease(saga_id)
    assert lease is not None and lease.owner == "other@host:1:t"
    await wait_for(lambda: mediator.running == 0, what="the run unregistered")


@pytest.mark.parametrize("bad", ["nope", "3f2a9c1e", 42])
async def test_a_saga_id_that_is_not_a_uuid_is_refused_in_words(
    storage: ISagaStorage, bad: typing.Any
) -> None:
    from engine.saga.errors import InvalidSagaIdError

    mediator = mediator_for(storage, Script())
    for call in (
        lambda: storage.get_saga(bad),
        lambda: storage.get_lease(bad),
        lambda: mediator.recover_saga(bad),
        lambda: mediator.compensate_saga(bad),
        lambda: mediator.run(Ctx("o1"), saga_id=bad),
    ):
        with pytest.raises(InvalidSagaIdError, match=r"not a saga id: .* \(a UUID is expected\)"):
            await call()


@pytest.mark.parametrize(
    "value",
    [
        "a\x00b",
        "caf\udcff",
        {"nested": [1, {"deep": "x\x00"}]},
        ["ok", "x\ud800"],
        {"k\x00ey": 1},
        {"caf\udcffé": 1},
    ],
)
def test_every_unstorable_context_value_is_named_with_its_field(value: object) -> None:
    """The checkpoint path screens contexts quickly; nothing the full check refuses slips by."""

    @dataclasses.dataclass
    class Holder:
        ok: str = "fine é ✓"
        field: object = None

    with pytest.raises(ContextSerializationError, match=r"Holder\.'?field"):
        dump_context(Holder(field=value))


@pytest.mark.parametrize("number", [float("nan"), float("inf"), -float("inf")])
def test_a_float_field_json_cannot_carry_is_named(number: float) -> None:
    """NaN and the infinities in a float field are refused with the field named."""

    @dataclasses.dataclass
    class Holder:
        ok: float = 1.0
        amount: float = 0.0

    with pytest.raises(ContextSerializationError, match=r"Holder\.amount"):
        dump_context(Holder(amount=number))


def test_storable_context_values_pass_the_screen() -> None:
    """Unicode text, nested lists and dicts, big numbers: stored as they are."""

    @dataclasses.dataclass
    class Holder:
        text: str = "fine é ✓ 🚀 \\u0000 literal"
        items: object = dataclasses.field(default_factory=lambda: [1, 2.5, None, True, {"a": "b"}])
        big: int = 10**30

    assert dump_context(Holder())["items"][4] == {"a": "b"}
