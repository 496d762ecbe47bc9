"""The sample application: ``create_mediator(storage)`` registers every sample saga."""

from __future__ import annotations

import datetime
import decimal
import random
import threading
import typing
import uuid

from engine.events import EventMap
from engine.saga.bootstrap import bootstrap
from engine.saga.map import SagaMap
from engine.saga.mediator import SagaMediator
from engine.saga.models import SagaContext
from engine.saga.saga import Saga
from engine.saga.storage.protocol import ISagaStorage
from sample_sagas.contexts import OrderContext, OrderLine, SubscriptionContext, TravelContext
from sample_sagas.ledger import Ledger, MemoryLedger, SqliteLedger
from sample_sagas.order import OrderSaga, map_order_events
from sample_sagas.refund import SubscriptionSaga
from sample_sagas.services import FakeServices, Knobs, ServicesContainer
from sample_sagas.travel import TravelSaga

SAGAS: tuple[tuple[type[SagaContext], type[Saga[typing.Any]]], ...] = (
    (OrderContext, OrderSaga),
    (TravelContext, TravelSaga),
    (SubscriptionContext, SubscriptionSaga),
)

_LEDGERS: dict[str, Ledger] = {}
_LEDGERS_LOCK = threading.Lock()


def database_url(storage: ISagaStorage) -> typing.Any:
    """The SQLAlchemy URL behind a storage, None for memory."""
    factory = getattr(storage, "session_factory", None)
    bind = getattr(factory, "kw", {}).get("bind") if factory is not None else None
    return getattr(bind, "url", None)


def database_path(storage: ISagaStorage) -> str | None:
    """The SQLite file behind a storage, None for memory or a server database."""
    url = database_url(storage)
    if url is None or url.get_backend_name() != "sqlite":
        return None
    from engine.saga.storage.sqlalchemy.connect import sqlite_path

    return sqlite_path(url)


def _ledger_key(storage: ISagaStorage) -> str | None:
    path = database_path(storage)
    if path is not None:
        return path
    url = database_url(storage)
    if url is not None and url.get_backend_name() == "postgresql":
        return str(url.render_as_string(hide_password=False))
    return None


def ledger_for(storage: ISagaStorage) -> Ledger:
    """The demo ledger in the storage's own database (SQLite file or PostgreSQL).

    In memory for a memory storage.
    """
    key = _ledger_key(storage)
    if key is None:
        return MemoryLedger()
    with _LEDGERS_LOCK:
        # One writer per database per process, however many mediators are built.
        ledger = _LEDGERS.get(key)
        if ledger is None:
            if database_path(storage) is not None:
                ledger = _LEDGERS[key] = SqliteLedger(key)
            else:
                from sample_sagas.ledger_pg import PostgresLedger

                ledger = _LEDGERS[key] = PostgresLedger(key)
        return ledger


def close_ledger(storage: ISagaStorage) -> None:
    """Close the ledger of the storage's database file, if one is open; the next use reopens.

    For code that opens many databases in one process (tests, tools): the ledger keeps
    a thread and a connection per file until closed.
    """
    key = _ledger_key(storage)
    if key is None:
        return
    with _LEDGERS_LOCK:
        ledger = _LEDGERS.pop(key, None)
    if ledger is not None:
        ledger.close()


def create_mediator(storage: ISagaStorage, *, knobs: Knobs | None = None) -> SagaMediator:
    """A mediator running the sample sagas against fake services that write the ledger."""
    knobs = knobs or Knobs()
    services = FakeServices(ledger_for(storage), knobs)

    def map_sagas(sagas: SagaMap) -> None:
        for context_type, saga_type in SAGAS:
            sagas.bind(context_type, saga_type)

    def map_events(events: EventMap) -> None:
        map_order_events(events)

    mediator = bootstrap(
        ServicesContainer(services),
        sagas_mapper=map_sagas,
        domain_events_mapper=map_events,
        saga_storage=storage,
        compensation_retry_count=knobs.compensation_retry_count,
        compensation_retry_delay=knobs.compensation_retry_delay,
        compensation_retry_backoff=knobs.compensation_retry_backoff,
        lease_seconds=knobs.lease_seconds,
    )
    return mediator


def create_instant_mediator(storage: ISagaStorage) -> SagaMediator:
    """The sample sagas with services that answer at once: for load runs of the engine.

    ``saga-tui start OrderSaga --count 1000000 --app sample_sagas:create_instant_mediator``
    measures the engine and the CLI, not the fake services' 50-400 ms latency.
    """
    return create_mediator(storage, knobs=Knobs(latency_ms=(0.0, 0.0)))


_CUSTOMERS = ("ada", "grace", "linus", "margaret", "dennis", "barbara", "ken", "frances")
_CITIES = ("Lisbon", "Oslo", "Kyoto", "Lima", "Nairobi", "Quebec", "Hanoi", "Porto")
_SKUS = ("SKU-KEYBOARD", "SKU-MOUSE", "SKU-MONITOR", "SKU-CABLE", "SKU-DOCK")
_PLANS = (("basic", "9.90"), ("pro", "29.00"), ("team", "99.00"))


def example_context(saga: str | type, rng: random.Random | None = None) -> SagaContext:
    """A valid context for a sample saga, by saga name or context type (varied with ``rng``)."""
    saga_name = saga if isinstance(saga, str) else _name_of(saga)
    pick = rng.choice if rng is not None else (lambda seq: seq[0])
    key = uuid.uuid4().hex[:8] if rng is not None else "0001"
    customer = pick(_CUSTOMERS)
    if saga_name == OrderSaga.__name__:
        return OrderContext(
            order_id=f"ord-{key}",
            customer=customer,
            lines=[
                OrderLine(
                    sku=pick(_SKUS),
                    quantity=1 + (rng.randrange(3) if rng else 1),
                    unit_price=decimal.Decimal("49.90"),
                )
            ],
            address=f"1 Main Street, {pick(_CITIES)}",
        )
    if saga_name == TravelSaga.__name__:
        origin = pick(_CITIES)
        return TravelContext(
            trip_id=f"trip-{key}",
            traveller=customer,
            origin=origin,
            destination=pick([c for c in _CITIES if c != origin]),
            depart_on=datetime.date.today() + datetime.timedelta(days=14),
            nights=3,
        )
    if saga_name == SubscriptionSaga.__name__:
        plan, price = pick(_PLANS)
        return SubscriptionContext(
            subscription_id=f"sub-{key}",
            customer=customer,
            plan=plan,
            amount=decimal.Decimal(price),
        )
    raise KeyError(saga_name)


def _name_of(cls: type) -> str:
    for context_type, saga_type in SAGAS:
        if cls is context_type or cls is saga_type:
            return saga_type.__name__
    raise KeyError(cls.__name__)


def examples() -> dict[str, dict[str, typing.Any]]:
    """Saga name -> an example context as JSON data, for start forms."""
    out: dict[str, dict[str, typing.Any]] = {}
    for _, saga in SAGAS:
        data = example_context(saga.__name__).to_dict()
        # Fields the steps fill in are left out: the form shows only what a caller gives.
        out[saga.__name__] = {k: v for k, v in data.items() if v is not None}
    return out
