"""Circuit breakers for Fallback steps: the protocol and a small in-process breaker."""

from __future__ import annotations

import time
import typing


class ICircuitBreaker(typing.Protocol):
    """Runs a call unless the circuit for ``identifier`` is open."""

    async def call(
        self,
        identifier: type | str,
        func: typing.Callable[..., typing.Awaitable[typing.Any]],
        *args: typing.Any,
        **kwargs: typing.Any,
    ) -> typing.Any:
        """Run ``func`` or raise the breaker's open-circuit error."""
        ...

    def is_circuit_breaker_error(self, exc: Exception) -> bool:
        """True when ``exc`` says the circuit is open."""
        ...


class CircuitOpenError(Exception):
    """The circuit is open: the call was not made."""


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive failures; half-opens after a timeout."""

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: typing.Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._failures: dict[str, int] = {}
        self._opened_at: dict[str, float] = {}

    @staticmethod
    def _key(identifier: type | str) -> str:
        return identifier if isinstance(identifier, str) else identifier.__qualname__

    def is_open(self, identifier: type | str) -> bool:
        """True while calls for ``identifier`` are refused."""
        opened = self._opened_at.get(self._key(identifier))
        return opened is not None and self._clock() - opened < self.reset_timeout

    async def call(
        self,
        identifier: type | str,
        func: typing.Callable[..., typing.Awaitable[typing.Any]],
        *args: typing.Any,
        **kwargs: typing.Any,
    ) -> typing.Any:
        """Run ``func`` unless the circuit is open; count its failures."""
        key = self._key(identifier)
        if self.is_open(identifier):
            raise CircuitOpenError(f"circuit for {key} is open")
        try:
            result = await func(*args, **kwargs)
        except Exception:
            self._failures[key] = self._failures.get(key, 0) + 1
            if self._failures[key] >= self.failure_threshold:
                self._opened_at[key] = self._clock()
            raise
        self._failures[key] = 0
        self._opened_at.pop(key, None)
        return result

    def is_circuit_breaker_error(self, exc: Exception) -> bool:
        """True for this breaker's open-circuit error."""
        return isinstance(exc, CircuitOpenError)


def should_use_fallback(
    error: Exception,
    circuit_breaker: ICircuitBreaker | None,
    failure_exceptions: tuple[type[Exception], ...],
) -> bool:
    """Whether a primary step's failure switches to its fallback."""
    if circuit_breaker is not None and circuit_breaker.is_circuit_breaker_error(error):
        return True
    if not failure_exceptions:
        return True
    return isinstance(error, failure_exceptions)
