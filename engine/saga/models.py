"""Saga context: the shared state of one saga run."""

from __future__ import annotations

import dataclasses
import typing

from engine.saga.context_codec import dump_context, load_context

_T = typing.TypeVar("_T", bound="SagaContext")


@dataclasses.dataclass
class SagaContext:
    """Base class of saga contexts; subclasses are dataclasses.

    Stored as JSON with the fields' own names. str, int, float, bool, None, list, dict,
    UUID, datetime, date, Decimal, Enum, nested dataclasses and pydantic models
    round-trip.
    """

    def to_dict(self) -> dict[str, typing.Any]:
        """The context as a JSON-compatible dict."""
        return dump_context(self)

    @classmethod
    def from_dict(cls: type[_T], data: dict[str, typing.Any]) -> _T:
        """Rebuild a context from ``to_dict`` output."""
        return typing.cast(_T, load_context(cls, data))

    def model_dump(self) -> dict[str, typing.Any]:
        """Alias of ``to_dict``."""
        return self.to_dict()


ContextT = typing.TypeVar("ContextT", bound=SagaContext)
