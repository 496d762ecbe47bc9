"""Kafka producer adapter over aiokafka, imported only when first used."""

from __future__ import annotations

import asyncio
import typing


class KafkaProducerAdapter:
    """Starts an aiokafka producer on first use and sends values through it."""

    def __init__(
        self,
        bootstrap_servers: list[str] | str,
        client_id: str | None = None,
        **producer_options: typing.Any,
    ) -> None:
        self._servers = bootstrap_servers
        self._client_id = client_id
        self._options = producer_options
        self._producer: typing.Any = None
        self._lock = asyncio.Lock()

    async def _ensure_started(self) -> typing.Any:
        async with self._lock:
            if self._producer is None:
                try:
                    import aiokafka
                except ImportError as exc:
                    raise RuntimeError(
                        "KafkaProducerAdapter needs aiokafka: pip install 'saga-tui[kafka]'",
                    ) from exc
                producer = aiokafka.AIOKafkaProducer(
                    bootstrap_servers=self._servers,
                    client_id=self._client_id,
                    **self._options,
                )
                await producer.start()
                self._producer = producer
        return self._producer

    async def produce(self, topic: str, message: typing.Any, key: typing.Any = None) -> None:
        """Send one value and wait for the broker's acknowledgement."""
        producer = await self._ensure_started()
        await producer.send_and_wait(topic, value=message, key=key)

    async def stop(self) -> None:
        """Flush and stop the producer."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
