"""The dashboard's part in the fleet: serving requests locally, the workers view, progress.

Local-first: a dashboard with an app on a SQL database serves requests itself while no
dedicated worker lives (for the saga types such a worker has), so one process on one
file still does everything; quitting stops its sagas at a step boundary and leaves
their requests pending for any worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import typing

from textual import work

from engine.saga.fleet import RequestBook, RequestsUnsupportedError
from engine.saga.lease import this_host
from engine.saga.requests import RequestProgress
from engine.saga.storage.models import SagaFilter
from engine.saga.worker import RequestServer
from saga_tui.fleet_actions import is_durable
from saga_tui.textfmt import clean, one_line
from saga_tui.workers_view import WorkersScreen

if typing.TYPE_CHECKING:
    from textual.app import App

    from engine.saga.mediator import SagaMediator
    from engine.saga.storage.reader import SagaReader

    _Base = App[int]
else:
    _Base = object

SERVER_GRACE = 3.0
"""Seconds the dashboard's own request server gives running sagas when it quits."""
WAITING_EVERY = 2.0
"""Seconds between two looks for requests no live process can serve."""
WAITING_TOAST = 10.0
PROGRESS_EVERY = 2.0
"""At most one progress toast per this many seconds while a request is followed."""


class FleetMixin(_Base):
    """Mixed into SagaApp: needs ``mediator``, ``reader`` and ``read_only``."""

    mediator: SagaMediator | None
    reader: SagaReader
    read_only: bool
    _server: RequestServer | None = None
    _serving: asyncio.Task[None] | None = None
    _progress_shown: tuple[float, str] = (0.0, "")
    _waiting_shown: str | None = None
    _trouble_shown: str | None = None
    waiting_types: tuple[str, ...] = ()
    """Saga types with open requests no live process can serve (the header says so)."""

    def _watch_waiting(self) -> None:
        """Look every few seconds for requests nobody can serve (any SQL database)."""
        try:
            book = RequestBook.of(typing.cast(typing.Any, self.reader))
        except RequestsUnsupportedError:
            return
        self._check_waiting(book)
        self.set_interval(WAITING_EVERY, lambda: self._check_waiting(book))

    @work(exclusive=True, group="fleet-waiting", exit_on_error=False)
    async def _check_waiting(self, book: RequestBook) -> None:
        try:
            self.waiting_types = tuple(await book.unserved_types())
        except Exception:  # a python-cqrs database has no requests table: nothing waits
            self.waiting_types = ()

    def _serve_requests(self) -> None:
        """Local-first: with an app on a SQL database, serve requests while no worker lives."""
        if self.mediator is None or self.read_only or not is_durable(self.mediator):
            return
        self._server = RequestServer(
            self.mediator,
            name=f"dashboard-{this_host()}-{os.getpid()}",
            app="dashboard",
            dedicated=False,
            grace=SERVER_GRACE,
            # Healing stale sagas is a worker's job (and `recover --stale`): the operator
            # sees them as they are.
            recover_stale=False,
        )
        self._serving = asyncio.create_task(self._server.serve())

    def action_workers(self) -> None:
        """Show the workers view."""
        try:
            book = RequestBook.of(typing.cast(typing.Any, self.reader))
        except RequestsUnsupportedError as exc:
            self.notify(one_line(exc), severity="warning", markup=False)
            return
        self.push_screen(WorkersScreen(book), self._worker_chosen)

    def _worker_chosen(self, name: str | None) -> None:
        if name:
            screen: typing.Any = self.screen_stack[0]
            screen.set_filter(SagaFilter(worker=name))

    def _request_progress(self, progress: RequestProgress) -> None:
        # Called while an action's request is followed: a toast when it moved, not too often.
        if progress.trouble != self._trouble_shown:
            # The database went away while following: said once, until it answers again.
            self._trouble_shown = progress.trouble
            if progress.trouble:
                self.notify(
                    clean(progress.trouble),
                    severity="warning",
                    markup=False,
                    timeout=WAITING_TOAST,
                )
                return
        when, text = self._progress_shown
        now, line = time.monotonic(), progress.describe()
        if progress.waiting_for != self._waiting_shown and not progress.finished:
            # Why it waits is said at once, and stays a while: the operator must act.
            self._waiting_shown = progress.waiting_for
            if progress.waiting_for:
                self._progress_shown = (now, line)
                self.notify(line, severity="warning", markup=False, timeout=WAITING_TOAST)
                return
        if progress.finished or line == text or now - when < PROGRESS_EVERY:
            return
        self._progress_shown = (now, line)
        self.notify(line, markup=False, timeout=PROGRESS_EVERY)

    async def _stop_serving(self) -> None:
        """Stop the local server: sagas stop at a step boundary, requests stay pending."""
        if self._server is not None and self._serving is not None:
            self._server.stop()
            with contextlib.suppress(Exception):
                await self._serving
