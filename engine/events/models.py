"""Event models: domain events stay in the process, notification events go to a broker."""

from __future__ import annotations

import datetime
import os
import typing
import uuid

import pydantic

DEFAULT_OUTPUT_TOPIC = os.environ.get("DEFAULT_OUTPUT_TOPIC", "output_topic")

PayloadT = typing.TypeVar("PayloadT")


class Event(pydantic.BaseModel):
    """Base class of every event (immutable)."""

    model_config = pydantic.ConfigDict(frozen=True, arbitrary_types_allowed=True)

    def to_dict(self) -> dict[str, typing.Any]:
        """The event as a JSON-compatible dict."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, **kwargs: typing.Any) -> Event:
        """Rebuild an event from ``to_dict`` output."""
        return cls.model_validate(kwargs)


class DomainEvent(Event):
    """Something that happened, handled by EventMap handlers in this process."""


class NotificationEvent(Event, typing.Generic[PayloadT]):
    """An event published to the message broker for other services."""

    event_id: uuid.UUID = pydantic.Field(default_factory=uuid.uuid4)
    event_timestamp: datetime.datetime = pydantic.Field(
        default_factory=lambda: datetime.datetime.now(datetime.UTC),
    )
    event_name: str
    topic: str = DEFAULT_OUTPUT_TOPIC
    payload: PayloadT | None = None
