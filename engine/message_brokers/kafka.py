"""Kafka broker: publishes notification events through a producer adapter."""

from __future__ import annotations

import json
import logging
import typing

from engine.message_brokers.protocol import Message, MessageBroker


class KafkaProducer(typing.Protocol):
    """What the broker needs of a producer (``KafkaProducerAdapter`` or a test fake)."""

    async def produce(self, topic: str, message: typing.Any, key: typing.Any = None) -> None:
        """Send one value to a topic."""
        ...


class KafkaMessageBroker(MessageBroker):
    """Sends each message as JSON to its topic, keyed by message id."""

    def __init__(self, producer: KafkaProducer, aiokafka_log_level: str = "ERROR") -> None:
        self._producer = producer
        logging.getLogger("aiokafka").setLevel(aiokafka_log_level)

    async def send_message(self, message: Message) -> None:
        """Publish one message."""
        value = json.dumps(message.to_dict(), default=str).encode()
        await self._producer.produce(
            topic=message.topic,
            message=value,
            key=str(message.message_id).encode(),
        )
