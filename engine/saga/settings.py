"""RunSettings: the knobs every run of one mediator (or one standalone transaction) shares."""

from __future__ import annotations

import asyncio
import dataclasses
import typing
import uuid

from engine.middlewares.base import MiddlewareChain
from engine.saga.secrets import get_logger

logger = get_logger("engine.saga")

Sleep = typing.Callable[[float], typing.Awaitable[None]]
Listener = typing.Callable[[uuid.UUID], None]


@dataclasses.dataclass(slots=True)
class RunSettings:
    """Compensation retry, middlewares, the backoff sleep and the checkpoint listeners."""

    compensation_retry_count: int = 3
    compensation_retry_delay: float = 1.0
    compensation_retry_backoff: float = 2.0
    middlewares: MiddlewareChain = dataclasses.field(default_factory=MiddlewareChain)
    sleep: Sleep = asyncio.sleep
    listeners: list[Listener] = dataclasses.field(default_factory=list)
    max_recovery_attempts: int = 5

    @classmethod
    def create(
        cls,
        *,
        compensation_retry_count: int = 3,
        compensation_retry_delay: float = 1.0,
        compensation_retry_backoff: float = 2.0,
        middlewares: MiddlewareChain | None = None,
        sleep: Sleep | None = None,
        max_recovery_attempts: int = 5,
    ) -> RunSettings:
        """Settings from the public keyword options (None means the default)."""
        return cls(
            compensation_retry_count=compensation_retry_count,
            compensation_retry_delay=compensation_retry_delay,
            compensation_retry_backoff=compensation_retry_backoff,
            middlewares=middlewares if middlewares is not None else MiddlewareChain(),
            sleep=sleep if sleep is not None else asyncio.sleep,
            max_recovery_attempts=max(1, max_recovery_attempts),
        )

    def notify(self, saga_id: uuid.UUID) -> None:
        """Tell every listener that ``saga_id`` has a new durable checkpoint.

        A listener is an observer (a dashboard refresh, a metric): its exception is
        logged and never becomes the saga's failure.
        """
        for listener in self.listeners:
            try:
                listener(saga_id)
            except Exception:
                logger.exception("checkpoint listener %r failed for saga %s", listener, saga_id)
