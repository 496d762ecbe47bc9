"""Run one coroutine per item with bounded concurrency: the one bulk runner.

Items are pulled lazily from their iterable by ``concurrency`` workers, so a million
items never become a million tasks at once; results keep the items' order.
"""

from __future__ import annotations

import asyncio
import typing

T = typing.TypeVar("T")
R = typing.TypeVar("R")


async def run_bounded(
    items: typing.Iterable[T],
    fn: typing.Callable[[T], typing.Awaitable[R]],
    *,
    concurrency: int = 16,
    on_result: typing.Callable[[T, R], None] | None = None,
    collect: bool = True,
) -> list[R]:
    """``await fn(item)`` for every item, at most ``concurrency`` at a time.

    Returns the results in item order (an empty list when ``collect`` is False, for
    streams too long to keep); ``on_result(item, result)`` is called as each finishes.
    An exception from ``fn`` cancels the rest and propagates: callers that want every
    item tried catch inside ``fn``.
    """
    iterator = iter(items)
    results: dict[int, R] = {}
    counter = 0

    async def worker() -> None:
        nonlocal counter
        for item in iterator:  # shared: each item goes to exactly one worker
            index = counter
            counter += 1
            result = await fn(item)
            if collect:
                results[index] = result
            if on_result is not None:
                on_result(item, result)

    async with asyncio.TaskGroup() as group:
        for _ in range(max(1, concurrency)):
            group.create_task(worker())
    return [results[i] for i in range(len(results))] if collect else []
