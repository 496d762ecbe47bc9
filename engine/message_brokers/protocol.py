"""The message broker interface and its message envelope."""

from __future__ import annotations

import abc
import dataclasses
import typing
import uuid

if typing.TYPE_CHECKING:
    from engine.events.models import NotificationEvent


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """What a broker publishes: a name, a topic, a JSON payload and an id."""

    message_name: str
    topic: str
    payload: typing.Any
    message_id: uuid.UUID = dataclasses.field(default_factory=uuid.uuid4)

    def to_dict(self) -> dict[str, typing.Any]:
        """The envelope as a JSON-compatible dict."""
        return {
            "message_name": self.message_name,
            "topic": self.topic,
            "payload": self.payload,
            "message_id": str(self.message_id),
        }


def message_from_event(event: NotificationEvent[typing.Any]) -> Message:
    """Wrap a notification event for the broker."""
    return Message(
        message_name=event.event_name,
        topic=event.topic,
        payload=event.to_dict(),
        message_id=event.event_id,
    )


class MessageBroker(abc.ABC):
    """Publishes messages to a broker."""

    @abc.abstractmethod
    async def send_message(self, message: Message) -> None:
        """Publish one message."""
        raise NotImplementedError
