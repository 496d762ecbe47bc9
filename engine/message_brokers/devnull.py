"""A broker that drops messages, keeping only a count and the last few for debugging."""

from __future__ import annotations

import collections

from engine.message_brokers.protocol import Message, MessageBroker
from engine.saga.secrets import get_logger

logger = get_logger("engine.message_brokers")


class DevnullMessageBroker(MessageBroker):
    """Drops every message; memory stays bounded however long the process runs."""

    def __init__(self, keep_last: int = 16) -> None:
        self.sent = 0
        self.last: collections.deque[Message] = collections.deque(maxlen=keep_last)

    async def send_message(self, message: Message) -> None:
        """Count and drop the message."""
        self.sent += 1
        self.last.append(message)
        logger.debug("message %s to %s dropped", message.message_name, message.topic)
