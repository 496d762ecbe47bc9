"""EventMap: event type -> handler types."""

from __future__ import annotations

import typing

from engine.events.handler import EventHandler
from engine.events.models import Event


class EventMap(dict[type[Event], list[type[EventHandler]]]):
    """Registry of handlers per event type; several handlers may share one event."""

    def bind(self, event_type: type[Event], handler_type: type[EventHandler]) -> None:
        """Add a handler for an event type (binding the same handler twice is an error)."""
        handlers = self.setdefault(event_type, [])
        if handler_type in handlers:
            raise KeyError(f"{handler_type.__name__} already bound to {event_type.__name__}")
        handlers.append(handler_type)

    def handlers_for(self, event: Event) -> typing.Sequence[type[EventHandler]]:
        """Handlers bound to the event's exact type."""
        return self.get(type(event), ())

    def __delitem__(self, key: type[Event]) -> typing.NoReturn:
        raise TypeError("EventMap has no delete")
