"""Events: models, handlers, the event map and the emitter."""

from engine.events.handler import EventHandler
from engine.events.map import EventMap
from engine.events.models import DomainEvent, Event, NotificationEvent

__all__ = ["DomainEvent", "Event", "EventHandler", "EventMap", "NotificationEvent"]
