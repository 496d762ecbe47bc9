"""Dispatches events: domain events to their handlers, notifications to the broker."""

from __future__ import annotations

import asyncio
import logging
import typing

from engine.container import ContainerAdapter
from engine.events.map import EventMap
from engine.events.models import DomainEvent, Event, NotificationEvent
from engine.message_brokers.protocol import MessageBroker, message_from_event

logger = logging.getLogger("engine.events")

# Follow-up events may produce further events; stop a runaway chain.
_MAX_FOLLOW_UP_DEPTH = 8


class EventEmitter:
    """Emits the events a saga step produced."""

    def __init__(
        self,
        event_map: EventMap,
        container: ContainerAdapter,
        message_broker: MessageBroker,
        *,
        max_concurrent_event_handlers: int = 1,
        concurrent_event_handle_enable: bool = True,
    ) -> None:
        self.event_map = event_map
        self._container = container
        self._broker = message_broker
        self._concurrent = concurrent_event_handle_enable and max_concurrent_event_handlers > 1
        self._semaphore = asyncio.Semaphore(max(1, max_concurrent_event_handlers))

    async def emit_all(self, events: typing.Iterable[Event], depth: int = 0) -> None:
        """Emit every event; domain events sequentially or concurrently as configured."""
        batch = list(events)
        if not batch:
            return
        if self._concurrent:
            await asyncio.gather(*(self._emit_limited(e, depth) for e in batch))
        else:
            for event in batch:
                await self.emit(event, depth)

    async def _emit_limited(self, event: Event, depth: int) -> None:
        async with self._semaphore:
            follow_ups = await self._emit_one(event)
        if follow_ups and depth < _MAX_FOLLOW_UP_DEPTH:
            await self.emit_all(follow_ups, depth + 1)

    async def emit(self, event: Event, depth: int = 0) -> None:
        """Emit one event and the follow-ups its handlers produce."""
        follow_ups = await self._emit_one(event)
        if follow_ups and depth < _MAX_FOLLOW_UP_DEPTH:
            await self.emit_all(follow_ups, depth + 1)

    async def _emit_one(self, event: Event) -> list[Event]:
        if isinstance(event, NotificationEvent):
            await self._broker.send_message(message_from_event(event))
            return []
        if not isinstance(event, DomainEvent):
            logger.debug("event %s is neither domain nor notification; skipped", event)
            return []
        follow_ups: list[Event] = []
        for handler_type in self.event_map.handlers_for(event):
            handler = await self._container.resolve(handler_type)
            await handler.handle(event)
            follow_ups.extend(handler.events)
        return follow_ups
