"""The running counts of a streaming ``saga-tui start --count``, and its progress line."""

from __future__ import annotations

import time
import typing

from engine.saga.operator import ActionResult


class StartTally:
    """Counts of a streaming ``start --count``, and its progress line on a terminal."""

    def __init__(self, total: int, status: typing.TextIO | None) -> None:
        self.total = total
        self.started = 0
        self.finished = 0
        self.failed = 0
        self.status = status if status is not None and status.isatty() else None
        self._shown = 0.0

    def pulled(self, contexts: typing.Iterable[typing.Any]) -> typing.Iterator[typing.Any]:
        for context in contexts:
            self.started += 1
            yield context

    def add(self, result: ActionResult) -> None:
        self.finished += 1
        if not result.ok:
            self.failed += 1
        now = time.monotonic()
        if self.status is not None and (now - self._shown >= 0.2 or self.finished == self.total):
            self._shown = now
            self.status.write(
                f"\r\x1b[2Kstarted {self.started}/{self.total}  finished {self.finished}"
                f"  not completed {self.failed}"
            )
            self.status.flush()

    def clear(self) -> None:
        if self.status is not None and self._shown:
            self.status.write("\r\x1b[2K")
            self.status.flush()
