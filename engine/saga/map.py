"""SagaMap: context type -> saga class."""

from __future__ import annotations

import typing

if typing.TYPE_CHECKING:
    from engine.saga.saga import Saga


class SagaMap(dict[type, "type[Saga[typing.Any]]"]):
    """Registry of one saga class per context type."""

    def bind(self, context_type: type, saga_type: type[Saga[typing.Any]]) -> None:
        """Register the saga that runs for ``context_type``."""
        if context_type in self:
            raise KeyError(
                f"{context_type.__name__} already bound to {self[context_type].__name__}"
            )
        self[context_type] = saga_type

    def by_name(self, saga_name: str) -> tuple[type, type[Saga[typing.Any]]] | None:
        """The (context type, saga class) registered under a saga class name."""
        for context_type, saga_type in self.items():
            if saga_type.__name__ == saga_name:
                return context_type, saga_type
        return None
