"""Saga contexts of the sample sagas: what each saga carries and stores between steps."""

from __future__ import annotations

import dataclasses
import datetime
import decimal

from engine.saga.models import SagaContext


@dataclasses.dataclass
class OrderLine:
    """One line of an order."""

    sku: str
    quantity: int
    unit_price: decimal.Decimal


@dataclasses.dataclass
class OrderContext(SagaContext):
    """An order to reserve, charge and ship."""

    order_id: str
    customer: str
    lines: list[OrderLine]
    address: str
    reservation_id: str | None = None
    payment_id: str | None = None
    tracking_number: str | None = None

    @property
    def total(self) -> decimal.Decimal:
        """The amount to charge."""
        return sum((line.unit_price * line.quantity for line in self.lines), decimal.Decimal(0))


@dataclasses.dataclass
class TravelContext(SagaContext):
    """A trip to book: flight, hotel (or a partner hotel), car."""

    trip_id: str
    traveller: str
    origin: str
    destination: str
    depart_on: datetime.date
    nights: int
    flight_booking: str | None = None
    hotel_booking: str | None = None
    hotel_provider: str | None = None
    car_booking: str | None = None


@dataclasses.dataclass
class SubscriptionContext(SagaContext):
    """A subscription sign-up: account, card charge, provisioning."""

    subscription_id: str
    customer: str
    plan: str
    amount: decimal.Decimal
    account_id: str | None = None
    charge_id: str | None = None
    provisioned: bool = False
