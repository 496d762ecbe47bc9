"""Middleware protocol and the chain that wraps a handler."""

from __future__ import annotations

import functools
import typing

HandleType = typing.Callable[[typing.Any], typing.Awaitable[typing.Any]]


class Middleware(typing.Protocol):
    """Called around a handler: ``await middleware(request, handle)``."""

    async def __call__(self, request: typing.Any, handle: HandleType) -> typing.Any:
        """Run code around ``handle(request)`` and return its result."""
        ...


class MiddlewareChain:
    """An ordered list of middlewares; the first added is the outermost."""

    def __init__(self, middlewares: typing.Iterable[Middleware] = ()) -> None:
        self._chain: list[Middleware] = list(middlewares)

    def add(self, middleware: Middleware) -> None:
        """Append a middleware (innermost so far)."""
        self._chain.append(middleware)

    def __bool__(self) -> bool:
        return bool(self._chain)

    def wrap(self, handle: HandleType) -> HandleType:
        """``handle`` wrapped by every middleware, outermost first."""
        for middleware in reversed(self._chain):
            handle = functools.partial(middleware, handle=handle)
        return handle
