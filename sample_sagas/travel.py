"""TravelSaga: book a flight -> a hotel, or a partner hotel when it is full -> a car."""

from __future__ import annotations

import uuid

from engine.response import Response
from engine.saga.fallback import Fallback
from engine.saga.saga import Saga
from engine.saga.step import SagaStepResult
from sample_sagas.contexts import TravelContext
from sample_sagas.services import ServiceError, ServiceStep


class NoSeatsError(ServiceError):
    """The flight is full."""


class HotelFullError(ServiceError):
    """The hotel has no room for those nights."""


class NoCarsError(ServiceError):
    """No car is available at the destination."""


class Booking(Response):
    """A confirmed booking."""

    reference: str
    provider: str


def _ref(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class BookFlight(ServiceStep[TravelContext, Booking]):
    """Book a seat from origin to destination."""

    error = NoSeatsError

    async def act(self, context: TravelContext) -> SagaStepResult[TravelContext, Booking]:
        """Book the flight."""
        await self.do(
            f"no seats '{context.origin}' -> '{context.destination}' on {context.depart_on}"
        )
        context.flight_booking = context.flight_booking or _ref("flt")
        return self._generate_step_result(
            Booking(reference=context.flight_booking, provider="SkyAir")
        )


class BookHotel(ServiceStep[TravelContext, Booking]):
    """Book the preferred hotel."""

    error = HotelFullError

    async def act(self, context: TravelContext) -> SagaStepResult[TravelContext, Booking]:
        """Book the hotel, unless the partner hotel already holds this trip."""
        # The engine resumes a fallback found in flight as the fallback; this is the
        # service's own guard as well, as a real booking API would refuse a second stay.
        if await self.services.done(PartnerHotel.__name__):
            raise HotelFullError("the partner hotel already holds this trip")
        await self.do(f"hotel in '{context.destination}' full for {context.nights} nights")
        context.hotel_booking = context.hotel_booking or _ref("htl")
        context.hotel_provider = "Grand Hotel"
        return self._generate_step_result(
            Booking(reference=context.hotel_booking, provider="Grand Hotel")
        )


class PartnerHotel(ServiceStep[TravelContext, Booking]):
    """Book a partner hotel when the preferred one is full."""

    error = HotelFullError

    async def act(self, context: TravelContext) -> SagaStepResult[TravelContext, Booking]:
        """Book the partner hotel."""
        await self.do(f"partner hotels in '{context.destination}' full too")
        context.hotel_booking = context.hotel_booking or _ref("ptn")
        context.hotel_provider = "Partner Inn"
        return self._generate_step_result(
            Booking(reference=context.hotel_booking, provider="Partner Inn")
        )


class RentCar(ServiceStep[TravelContext, Booking]):
    """Rent a car at the destination."""

    error = NoCarsError

    async def act(self, context: TravelContext) -> SagaStepResult[TravelContext, Booking]:
        """Rent the car."""
        await self.do(f"no cars left in '{context.destination}'")
        context.car_booking = context.car_booking or _ref("car")
        return self._generate_step_result(
            Booking(reference=context.car_booking, provider="DriveNow")
        )


class TravelSaga(Saga[TravelContext]):
    """Flight, hotel (with a partner fallback), car."""

    steps = [
        BookFlight,
        Fallback(BookHotel, PartnerHotel, failure_exceptions=(HotelFullError,)),
        RentCar,
    ]
    search_keys = ("trip_id",)
