"""Dispatches events: domain events to their handlers, notifications to the broker."""

from __future__ import annotations

import asyncio
import typing

from engine.container import ContainerAdapter
from engine.events.map import EventMap
from engine.events.models import DomainEvent, Event, NotificationEvent
from engine.message_brokers.protocol import Message, MessageBroker, message_from_event
from engine.saga.secrets import get_logger

logger = get_logger("engine.events")

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
        """Emit every event: handlers one by one, or concurrently up to the limit."""
        batch = list(events)
        if not batch:
            return
        if self._concurrent:
            jobs = [(event, h) for event in batch for h in self._targets(event)]
            results = await asyncio.gather(*(self._run_limited(e, h) for e, h in jobs))
            follow_ups = [f for result in results for f in result]
        else:
            follow_ups = []
            for event in batch:
                for handler_type in self._targets(event):
                    follow_ups.extend(await self._run(event, handler_type))
        if follow_ups and depth < _MAX_FOLLOW_UP_DEPTH:
            await self.emit_all(follow_ups, depth + 1)

    async def deliver(self, event: Event) -> None:
        """Hand one event to its targets (concurrently when configured), then its follow-ups.

        Raises what a handler raised, so the outbox can try the event again.
        """
        targets = self._targets(event)
        if self._concurrent and len(targets) > 1:
            results = await asyncio.gather(*(self._run_limited(event, t) for t in targets))
        else:
            results = [await self._run(event, t) for t in targets]
        follow_ups = [f for result in results for f in result]
        if follow_ups:
            await self.emit_all(follow_ups, 1)

    async def publish(self, message: Message) -> None:
        """Send one message to the broker."""
        await self._broker.send_message(message)

    def _targets(self, event: Event) -> typing.Sequence[typing.Any]:
        if isinstance(event, NotificationEvent):
            return (_BROKER,)
        if isinstance(event, DomainEvent):
            return self.event_map.handlers_for(event)
        logger.debug("event %s is neither domain nor notification; skipped", event)
        return ()

    async def _run_limited(self, event: Event, target: typing.Any) -> typing.Sequence[Event]:
        async with self._semaphore:
            return await self._run(event, target)

    async def _run(self, event: Event, target: typing.Any) -> typing.Sequence[Event]:
        if target is _BROKER:
            await self._broker.send_message(message_from_event(event))  # type: ignore[arg-type]
            return ()
        handler = await self._container.resolve(target)
        await handler.handle(event)
        return handler.events


_BROKER = object()
