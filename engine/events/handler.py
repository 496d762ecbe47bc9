"""Event handler base class."""

from __future__ import annotations

import abc
import typing

from engine.events.models import Event

E = typing.TypeVar("E", bound=Event, contravariant=True)


class EventHandler(abc.ABC, typing.Generic[E]):
    """Handles one event type; may produce follow-up events."""

    @property
    def events(self) -> typing.Sequence[Event]:
        """Follow-up events produced by ``handle``."""
        return ()

    @abc.abstractmethod
    async def handle(self, event: E) -> None:
        """React to the event."""
        raise NotImplementedError
