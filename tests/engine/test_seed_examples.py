"""The seed document's examples, run after only the cqrs -> engine rename.

The code blocks are read from a copy of seed-saga-mediator.md. Blocks that reference
names the seed defines elsewhere (OrderContext, OrderSaga, the event and its handler)
get them from PRELUDE; the text of each block is executed as written, with top-level
``await`` allowed as in the seed.
"""

from __future__ import annotations

import ast
import contextlib
import io
import pathlib
import re
import typing

import pytest

SEED = pathlib.Path(__file__).parent.parent / "fixtures" / "seed-saga-mediator.md"

PRELUDE = """
import dataclasses
import engine
from engine.saga.saga import Saga
from engine.saga.step import SagaStepHandler
from engine.saga.models import SagaContext
from engine.response import Response

HANDLED = []

class InventoryReservedEvent(engine.DomainEvent):
    order_id: str

class OrderPlacedNotification(engine.NotificationEvent[dict]):
    event_name: str = "order_placed"
    topic: str = "orders"

class InventoryReservedEventHandler(engine.EventHandler[InventoryReservedEvent]):
    async def handle(self, event):
        HANDLED.append(event.order_id)

@dataclasses.dataclass
class OrderContext(SagaContext):
    order_id: str
    items: list[str]
    total_amount: float
    inventory_reservation_id: str | None = None
    payment_id: str | None = None

class ReserveInventoryStep(SagaStepHandler[OrderContext, Response]):
    def __init__(self):
        self._events = []

    @property
    def events(self):
        return list(self._events)

    async def act(self, context):
        context.inventory_reservation_id = "res-" + context.order_id
        self._events.append(InventoryReservedEvent(order_id=context.order_id))
        self._events.append(OrderPlacedNotification(payload={"order_id": context.order_id}))
        return self._generate_step_result(Response())

    async def compensate(self, context):
        context.inventory_reservation_id = None

class ProcessPaymentStep(SagaStepHandler[OrderContext, Response]):
    async def act(self, context):
        context.payment_id = "pay-" + context.order_id
        return self._generate_step_result(Response())

    async def compensate(self, context):
        context.payment_id = None

class OrderSaga(Saga[OrderContext]):
    steps = [ReserveInventoryStep, ProcessPaymentStep]
"""


def seed_blocks() -> dict[str, str]:
    """Heading -> python code block of the seed, with ``cqrs`` renamed ``engine``."""
    blocks: dict[str, str] = {}
    heading = ""
    code: list[str] | None = None
    for line in SEED.read_text().splitlines(keepends=True):
        if code is not None:
            if line.startswith("```"):
                blocks[heading] = re.sub(r"\bcqrs\b", "engine", "".join(code))
                code = None
            else:
                code.append(line)
        elif line.startswith("### "):
            heading = line[4:].strip()
        elif line.startswith("```python"):
            code = []
    return blocks


async def run_block(code: str, namespace: dict[str, typing.Any]) -> str:
    """Execute seed code (top-level await allowed) and return what it printed."""
    compiled = compile(code, "<seed>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = eval(compiled, namespace)
        if result is not None:
            await result
    return out.getvalue()


def fresh_namespace() -> dict[str, typing.Any]:
    namespace: dict[str, typing.Any] = {"__name__": __name__}
    exec(PRELUDE, namespace)
    return namespace


def test_the_seed_has_every_example() -> None:
    assert set(seed_blocks()) >= {
        "Basic Configuration",
        "With Domain Events",
        "With Message Broker",
        "With Middlewares and On Startup",
        "Executing a Saga",
        "Complete Example",
    }


async def test_basic_configuration_then_executing_a_saga() -> None:
    blocks = seed_blocks()
    ns = fresh_namespace()
    assert await run_block(blocks["Basic Configuration"], ns) == ""
    printed = await run_block(blocks["Executing a Saga"], ns)
    assert printed.splitlines() == [
        "Step completed: ReserveInventoryStep",
        "Step completed: ProcessPaymentStep",
    ]
    status, context, _ = await ns["storage"].load_saga_state(ns["saga_id"])
    assert status.name == "COMPLETED"
    assert context["payment_id"] == "pay-123"


async def test_with_domain_events() -> None:
    blocks = seed_blocks()
    ns = fresh_namespace()
    await run_block(blocks["Basic Configuration"], ns)
    assert await run_block(blocks["With Domain Events"], ns) == ""
    await run_block(blocks["Executing a Saga"], ns)
    assert ns["HANDLED"] == ["123"]


async def test_with_message_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import engine.adapters.kafka

    sent: list[tuple[str, bytes, bytes]] = []

    class FakeKafkaProducer:
        """Stands in for KafkaProducerAdapter: records what would go to Kafka."""

        def __init__(self, bootstrap_servers: list[str], client_id: str) -> None:
            self.bootstrap_servers = bootstrap_servers
            self.client_id = client_id

        async def produce(self, topic: str, message: bytes, key: bytes | None = None) -> None:
            sent.append((topic, message, key or b""))

    monkeypatch.setattr(engine.adapters.kafka, "KafkaProducerAdapter", FakeKafkaProducer)
    blocks = seed_blocks()
    ns = fresh_namespace()
    await run_block(blocks["Basic Configuration"], ns)
    await run_block(blocks["With Domain Events"], ns)
    assert await run_block(blocks["With Message Broker"], ns) == ""
    await run_block(blocks["Executing a Saga"], ns)
    assert ns["HANDLED"] == ["123"]
    assert len(sent) == 1
    topic, value, _ = sent[0]
    assert topic == "orders"
    body = json.loads(value)
    assert body["message_name"] == "order_placed"
    assert body["payload"]["payload"] == {"order_id": "123"}


async def test_with_middlewares_and_on_startup() -> None:
    blocks = seed_blocks()
    ns = fresh_namespace()
    await run_block(blocks["Basic Configuration"], ns)
    code = blocks["With Middlewares and On Startup"]
    code = code.replace("    pass\n", "    STARTED_UP.append(True)\n", 1)
    ns["STARTED_UP"] = []
    assert await run_block(code, ns) == ""
    assert ns["STARTED_UP"] == [True]
    printed = await run_block(blocks["Executing a Saga"], ns)
    assert printed.splitlines() == [
        "Before saga step: OrderContext",
        "After saga step: OrderContext",
        "Step completed: ReserveInventoryStep",
        "Before saga step: OrderContext",
        "After saga step: OrderContext",
        "Step completed: ProcessPaymentStep",
    ]


async def test_complete_example() -> None:
    code = seed_blocks()["Complete Example"]
    # The seed leaves the service binding to the reader ("# di_container.bind(...)");
    # the test fills that one line in: a di bind hook for the unannotated parameter.
    binding = (
        "di_container.bind(lambda param, dep: "
        "di.dependent.Dependent(FakeInventory, scope='request')"
        " if param is not None and param.name == 'inventory_service' else None)"
    )
    assert "# di_container.bind(...)" in code
    code = code.replace("# di_container.bind(...)", binding)
    ns: dict[str, typing.Any] = {"__name__": __name__}
    exec(
        "import di.dependent\n"
        "class FakeInventory:\n"
        "    released = []\n"
        "    async def reserve_items(self, order_id, items):\n"
        "        return 'res-' + order_id\n"
        "    async def release_items(self, reservation_id):\n"
        "        FakeInventory.released.append(reservation_id)\n",
        ns,
    )
    printed = await run_block(code, ns)
    assert printed.splitlines() == ["Step: ReserveInventoryStep"]
    status, context, _ = await ns["storage"].load_saga_state(ns["saga_id"])
    assert status.name == "COMPLETED"
    assert context["inventory_reservation_id"] == "res-123"


async def test_the_readme_example_runs(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (pathlib.Path(__file__).parents[2] / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)  # the example writes sagas.db in the current folder
    namespace: dict[str, typing.Any] = {"__name__": __name__}
    printed = await run_block(code, namespace)
    assert printed.splitlines() == ["ReserveInventory"]
    await namespace["mediator"].storage.close()
    assert (tmp_path / "sagas.db").exists()
