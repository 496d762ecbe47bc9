"""Saga and step statuses, stored as their upper-case names."""

import enum
import typing


class SagaStatus(str, enum.Enum):
    """Lifecycle of one saga."""

    PENDING = "pending"
    RUNNING = "running"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    COMPENSATED = "compensated"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        """True when no runner is needed any more (FAILED waits for an operator)."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {SagaStatus.COMPLETED, SagaStatus.COMPENSATED, SagaStatus.FAILED},
)
ACTIVE_STATUSES = frozenset(
    {SagaStatus.PENDING, SagaStatus.RUNNING, SagaStatus.COMPENSATING},
)


class SagaStepStatus(str, enum.Enum):
    """Status of one step log entry."""

    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    COMPENSATED = "compensated"

    def __str__(self) -> str:
        return self.value


class RequestedAction(str, enum.Enum):
    """An action asked of the owner of a saga through the database."""

    COMPENSATE = "compensate"

    def __str__(self) -> str:
        return self.value


_StatusT = typing.TypeVar("_StatusT", SagaStatus, SagaStepStatus)


def parse_status(value: str, enum_type: type[_StatusT]) -> _StatusT:
    """A stored status: its upper-case name, or its value as older writers stored it."""
    try:
        return enum_type[value.upper()]
    except KeyError:
        return enum_type(value.lower())
