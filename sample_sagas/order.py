"""OrderSaga: reserve inventory -> charge payment -> ship, announcing each with an event."""

from __future__ import annotations

import typing
import uuid

from engine.events import DomainEvent, EventHandler, EventMap
from engine.events.models import Event
from engine.response import Response
from engine.saga.saga import Saga
from engine.saga.step import SagaStepResult
from sample_sagas.contexts import OrderContext
from sample_sagas.services import FakeServices, ServiceError, ServiceStep


class OutOfStockError(ServiceError):
    """The warehouse cannot reserve the items."""


class PaymentDeclinedError(ServiceError):
    """The card was declined."""


class CarrierUnavailableError(ServiceError):
    """No carrier accepted the parcel."""


class StepDone(Response):
    """The reference a service returned."""

    reference: str


class InventoryReserved(DomainEvent):
    """Items of an order are held in the warehouse."""

    order_id: str
    reservation_id: str


class PaymentCharged(DomainEvent):
    """The customer's card was charged."""

    order_id: str
    payment_id: str
    amount: str


class OrderShipped(DomainEvent):
    """The parcel left the warehouse."""

    order_id: str
    tracking_number: str


def _ref(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class _OrderStep(ServiceStep[OrderContext, StepDone]):
    def __init__(self, services: FakeServices) -> None:
        super().__init__(services)
        self._events: list[Event] = []

    @property
    def events(self) -> typing.Sequence[Event]:
        """The event announcing what ``act`` did."""
        return self._events


class ReserveInventory(_OrderStep):
    """Hold the ordered items in the warehouse."""

    error = OutOfStockError

    async def act(self, context: OrderContext) -> SagaStepResult[OrderContext, StepDone]:
        """Reserve every line of the order."""
        sku = context.lines[0].sku if context.lines else "empty order"
        await self.do(f"out of stock: '{sku}'")
        context.reservation_id = context.reservation_id or _ref("res")
        self._events.append(
            InventoryReserved(order_id=context.order_id, reservation_id=context.reservation_id)
        )
        return self._generate_step_result(StepDone(reference=context.reservation_id))


class ChargePayment(_OrderStep):
    """Charge the customer's card for the order total."""

    error = PaymentDeclinedError

    async def act(self, context: OrderContext) -> SagaStepResult[OrderContext, StepDone]:
        """Charge the total."""
        await self.do(f"card of '{context.customer}' declined for {context.total}")
        context.payment_id = context.payment_id or _ref("pay")
        self._events.append(
            PaymentCharged(
                order_id=context.order_id, payment_id=context.payment_id, amount=str(context.total)
            )
        )
        return self._generate_step_result(StepDone(reference=context.payment_id))


class ShipOrder(_OrderStep):
    """Hand the parcel to a carrier."""

    error = CarrierUnavailableError

    async def act(self, context: OrderContext) -> SagaStepResult[OrderContext, StepDone]:
        """Book the shipment."""
        await self.do(f"no carrier delivers to '{context.address}'")
        context.tracking_number = context.tracking_number or _ref("trk")
        self._events.append(
            OrderShipped(order_id=context.order_id, tracking_number=context.tracking_number)
        )
        return self._generate_step_result(StepDone(reference=context.tracking_number))


class OrderSaga(Saga[OrderContext]):
    """Reserve, charge, ship; undone in reverse when a step fails."""

    steps = [ReserveInventory, ChargePayment, ShipOrder]
    search_keys = ("order_id",)


class NotifyCustomer(EventHandler[DomainEvent]):
    """Tells the customer what happened to the order (counted by the fake services)."""

    def __init__(self, services: FakeServices) -> None:
        self.services = services

    async def handle(self, event: DomainEvent) -> None:
        """Send the notification."""
        self.services.notify()


def map_order_events(events: EventMap) -> None:
    """Bind the order events to their handlers."""
    for event_type in (InventoryReserved, PaymentCharged, OrderShipped):
        events.bind(event_type, NotifyCustomer)
