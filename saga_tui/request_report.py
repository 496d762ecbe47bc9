"""How a command line's request goes, on stderr (stdout stays the results, JSON or not).

On a terminal: a progress line when the request moved (at most one a second),
``request 3f2a9c1e: compensate 200 sagas: 40 of 200 done, taken by w1``. On any stream,
once: that it waits for a worker nobody runs, and the command that starts one; and when
the database cannot be read while waiting, and when it reads again.
"""

from __future__ import annotations

import contextlib
import shlex
import time
import typing

from engine.saga.requests import RequestProgress
from saga_tui.fleet_actions import NO_WORKER
from saga_tui.textfmt import clean

EVERY = 1.0
"""Seconds between two progress lines."""


class RequestReport:
    """An ``on_progress`` for ``fleet_actions.follow`` that writes to ``stream``."""

    def __init__(
        self,
        stream: typing.TextIO,
        *,
        start_worker: str,
        progress: bool | None = None,
    ) -> None:
        self.stream = stream
        # ``start_worker``: the command that serves these requests (``saga-tui --db ... worker``).
        self.start_worker = start_worker
        self.progress = _is_terminal(stream) if progress is None else progress
        self.waited = False
        self._shown: tuple[float, str] = (0.0, "")
        self._trouble: str | None = None

    def __call__(self, progress: RequestProgress) -> None:
        """Told each poll of a followed request."""
        if progress.trouble != self._trouble:
            # The database went away while waiting, and came back: said on any stream.
            head = f"request {str(progress.request_id)[:8]}: "
            if progress.trouble:
                self._write(head + clean(progress.trouble))
            else:
                self._write(head + "its progress reads again")
            self._trouble = progress.trouble
            return
        if progress.waiting_for and not self.waited:
            self.waited = True
            self._write(self.waiting_line(progress))
        if not self.progress or progress.finished:
            return
        when, last = self._shown
        line = f"request {str(progress.request_id)[:8]}: {clean(progress.describe())}"
        now = time.monotonic()
        if line != last and now - when >= EVERY:
            self._shown = (now, line)
            self._write(line)

    def waiting_line(self, progress: RequestProgress) -> str:
        """``waiting for a worker: none is running; start one with `...```."""
        head = f"request {str(progress.request_id)[:8]}: waiting for a worker: "
        if progress.waiting_for == NO_WORKER:
            return (
                head + f"none is running; start one with `{self.start_worker}` "
                "(an app that has the saga type)"
            )
        return head + clean(progress.waiting_for or "")

    def _write(self, line: str) -> None:
        # A terminal's status line (start --count's) is cleared first, and redrawn by it.
        self.stream.write(("\r\x1b[2K" if self.progress else "") + line + "\n")
        self.stream.flush()


def worker_command(db: str | None) -> str:
    """The command that starts a worker on this database (a URL's password hidden)."""
    where = ""
    if db:
        shown = db
        if "://" in db:
            import sqlalchemy as sa

            with contextlib.suppress(Exception):
                shown = sa.make_url(db).render_as_string(hide_password=True)
        where = f" --db {shlex.quote(shown)}"
    return f"saga-tui{where} --app MODULE:FACTORY worker"


def _is_terminal(stream: typing.TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
