"""Backoff and one report per outage for a call a long-running loop keeps making.

A worker whose database went away (a restart, a failover, a dropped network) must not
retry ten times a second in silence: it says so once, waits longer between attempts
(up to ``cap`` seconds), and says so again when the call works again.
"""

from __future__ import annotations

import re
import time
import typing

from engine.saga.failure import exception_text, type_name
from engine.saga.secrets import get_logger

logger = get_logger("engine.saga.retrying")

Report = typing.Callable[[str], None]


class Retrying:
    """The state of one kind of call: failing since when, and how long to wait next."""

    def __init__(
        self,
        what: str,
        report: Report | None,
        *,
        base: float,
        cap: float = 5.0,
        group: list[Retrying] | None = None,
    ):
        self.what = what
        self.report = report
        self.base = base
        self.cap = cap
        # Calls that fail together when the database goes away: the first to fail says
        # so (and later that it works again); the others stay quiet meanwhile.
        self.group = group if group is not None else []
        self.group.append(self)
        self.failures = 0
        self._since = 0.0
        self._reported = False
        self.said: str | None = None
        """What the first failure of the current outage said (None while it works)."""

    @property
    def failing(self) -> bool:
        """True from a failure until the next success."""
        return self.failures > 0

    @property
    def failing_for(self) -> float:
        """Seconds since the first failure of this outage (0 when not failing)."""
        return time.monotonic() - self._since if self.failures else 0.0

    def failed(self, exc: BaseException) -> float:
        """Note a failure; the seconds to wait before the next attempt."""
        self.failures += 1
        if self.failures == 1:
            self._since = time.monotonic()
            text = f"{self.what} failed: {message(exc)}; trying again, at most {self.cap:g} s apart"
            self.said = text
            logger.warning(text, exc_info=exc)
            told = any(r._reported for r in self.group if r is not self)
            report = None if told else self.report
            self._reported = report is not None
            if report is not None:
                report(text)
        else:
            logger.debug("%s failed again (%d times): %s", self.what, self.failures, exc)
        return min(self.cap, self.base * 2**self.failures)

    def succeeded(self) -> None:
        """Note a success; reports the end of an outage."""
        if not self.failures:
            return
        seconds = time.monotonic() - self._since
        text = f"{self.what} works again after {seconds:.0f} s ({self.failures} failed attempts)"
        self.failures = 0
        self.said = None
        logger.info(text)
        if self._reported and self.report is not None:
            self.report(text)
        self._reported = False


# SQLAlchemy's prefix naming the driver's class: "(sqlalchemy.dialects....Error) ".
_WRAPPER = re.compile(r"^\([\w.]+\) ")


def message(exc: BaseException) -> str:
    """The first line of the error's message, then its type: what an operator reads."""
    lines = exception_text(exc).strip().splitlines()
    text = _WRAPPER.sub("", lines[0]) if lines else ""
    name = type_name(exc)
    return f"{text} ({name})" if text else name
