"""The dashboard: the saga table, the detail, the live stream, the start form and dialogs.

The app owns the widgets and the handlers. What is browsed and how it reloads live in
``live.py``; what an action does lives in ``operations.py``; both know nothing of Textual.
Workers read the database and post messages; they never look at the screen.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import typing
import uuid

from textual import on, work
from textual.app import App
from textual.notifications import SeverityLevel
from textual.worker import Worker, WorkerState

from engine.saga.secrets import mask_secrets
from saga_tui import clipboard, examples, keys
from saga_tui.app_actions import REASON, ActionsMixin
from saga_tui.commands import SagaCommands
from saga_tui.components.detail import DetailScreen
from saga_tui.components.help import HelpScreen
from saga_tui.components.main_screen import MainScreen
from saga_tui.components.saga_table import SagaTable
from saga_tui.components.start_form import SagaChoice, StartForm, StartRequest
from saga_tui.demo import DemoTraffic
from saga_tui.events_text import counts_text
from saga_tui.fleet_actions import is_durable, waiting_text
from saga_tui.fleet_ui import FleetMixin
from saga_tui.live import PAGE_SIZE, POLL_INTERVAL, BrowseState, LiveFeed, LoadResult
from saga_tui.messages import (
    ActionsFinished,
    BrowseChanged,
    FollowChanged,
    Loaded,
    LoadFailed,
)
from saga_tui.operations import READ_ONLY_WHY, start_many, why_not_runnable
from saga_tui.render import Palette, palette_from_theme
from saga_tui.textfmt import clean, one_line, plural, utcnow, zone

if typing.TYPE_CHECKING:
    from engine.saga.mediator import SagaMediator
    from engine.saga.storage.reader import SagaReader

AGE_STEP = 1.0
"""Seconds between repaints of the ages (they read in whole seconds)."""


class SagaApp(FleetMixin, ActionsMixin):
    """Sagas of one database, live; start, recover and compensate from the keyboard."""

    CSS_PATH = "app.tcss"
    TITLE = "saga-tui"
    COMMANDS = App.COMMANDS | {SagaCommands}
    BINDINGS = [keys.PALETTE]

    def __init__(
        self,
        reader: SagaReader,
        mediator: SagaMediator | None,
        *,
        label: str = "sagas.db",
        read_only: bool = False,
        read_only_why: str | None = None,
        demo: bool = False,
        poll_interval: float = POLL_INTERVAL,
        page_size: int = PAGE_SIZE,
        user_keys: keys.UserKeys | None = None,
        close_reader: bool = False,
        environ: typing.Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.environ = os.environ if environ is None else environ
        self.reader = reader
        self.mediator = mediator
        self.label = mask_secrets(label)  # a URL given as the label keeps its password hidden
        self.read_only = read_only or reader.read_only
        self.read_only_why = read_only_why or READ_ONLY_WHY
        self.demo = demo
        self.browse = BrowseState(page_size=page_size)
        self.feed = LiveFeed(reader, poll_interval=poll_interval)
        self.user_keys = user_keys or keys.UserKeys()
        self.shown: LoadResult | None = None  # what the list shows
        self.last_load: LoadResult | None = None  # the newest load, shown or not
        self.load_error: str | None = None  # why the last load failed, until one succeeds
        self.palette: Palette = {}
        self._demo: DemoTraffic | None = None
        self._close_reader = close_reader
        if self.user_keys.keymap:
            self.set_keymap(self.user_keys.keymap)

    # ---- layout ---------------------------------------------------------------------------

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every toast of the dashboard, with any password in a URL masked."""
        super().notify(
            mask_secrets(message),
            title=mask_secrets(title),
            severity=severity,
            timeout=timeout,
            markup=markup,
        )

    def get_default_screen(self) -> MainScreen:
        """The saga list is the bottom screen."""
        return MainScreen(self.browse, read_only=self.read_only)

    def _alive(self) -> bool:
        # Messages and timers can fire while the app shuts down.
        if not self.screen_stack or not self.is_running:
            return False
        return bool(self.main_screen.query(SagaTable))

    def on_mount(self) -> None:
        """Start the live feed, the clock (and the demo)."""
        self.palette = palette_from_theme(self.theme_variables)
        if self.mediator is not None:
            self.mediator.add_listener(self._on_checkpoint)
        self._poll()
        self.set_interval(1.0, self._tick)
        if self.demo and self.mediator is not None and not self.read_only:
            self._demo = DemoTraffic(self.mediator)
            self._demo.start()
        self._serve_requests()
        self._watch_waiting()
        if self.user_keys.warning:
            self.notify(self.user_keys.warning, title="Keymap", severity="warning", markup=False)
        self.reload()

    def watch_theme(self) -> None:
        """Re-map the status colours when the theme changes."""
        self.palette = palette_from_theme(self.theme_variables)
        self.reload()

    async def on_unmount(self) -> None:
        """Stop the demo and release the database."""
        if self.mediator is not None:
            self.mediator.remove_listener(self._on_checkpoint)
        self.feed.stop_listening()
        if self._demo is not None:
            await self._demo.stop(grace=0)
        await self._stop_serving()
        if self._close_reader:
            # Readers stop before the database closes: a query cut off by close can hang.
            self.workers.cancel_all()
            with contextlib.suppress(Exception):
                await self.workers.wait_for_complete()
            with contextlib.suppress(Exception):
                await self.reader.close()

    # ---- live refresh ---------------------------------------------------------------------

    @on(BrowseChanged)
    def reload(self) -> None:
        """Load what the browse state shows, now (after any change to it)."""
        self.feed.want(self.browse.request())

    def _on_checkpoint(self, saga_id: uuid.UUID) -> None:
        # Called by the engine after each checkpoint of this process: a hint, not data.
        self.feed.nudge()

    @work(exclusive=True, group="poll", exit_on_error=False)
    async def _poll(self) -> None:
        """Post what the feed loads; the feed decides when, and the next waits for the last."""
        with contextlib.suppress(Exception):  # no hints: polling alone still shows everything
            await self.feed.listen()
        while True:
            try:
                result = await self.feed.next()
                logs = await self.feed.stream_lines(result.request)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.post_message(LoadFailed(one_line(exc, with_type=True)))
                await asyncio.sleep(1.0)
                continue
            # One message, so the page and the stream change in one screen update.
            self.post_message(Loaded(result, logs))

    def _tick(self) -> None:
        # The one clock: the title every second; the ages while the list is live on screen.
        if not self._alive():
            return
        self._draw_title()
        if self.feed.paused or self.shown is None:
            return
        if self.screen is self.main_screen:
            table, now = self.main_screen.table, utcnow()
            # A reload in the last second already painted the ages: no frame just for them.
            if (now - table.now).total_seconds() >= AGE_STEP:
                table.refresh_ages(now)
        elif isinstance(self.screen, DetailScreen):
            self.screen.tick(utcnow())

    def _draw_title(self) -> None:
        live = "paused ‖ (p resumes)" if self.feed.paused else "live ●"
        if self.load_error is not None:
            live = "cannot read ✗"
        running = self.mediator.running if self.mediator else 0
        now = utcnow()
        clock = f"{now.astimezone().strftime('%H:%M:%S')} {zone(now)}"
        events = counts_text(self.shown.event_counts) if self.shown else ""
        waiting = waiting_text(self.waiting_types)
        self.main_screen.show_title(self.label, live, running, clock, events, waiting)

    @on(Loaded)
    def _show_load(self, message: Loaded) -> None:
        result = message.result
        self.last_load = result
        if not self._alive():
            return
        if self.load_error is not None:
            self.load_error = None
            self.main_screen.show_unreadable(False)
            self.notify("the database can be read again", title="Database", markup=False)
        with self.batch_update():
            if message.logs and not self.feed.paused:
                self.main_screen.add_logs(message.logs, self.palette)
            self._show_result(result)

    def _show_result(self, result: LoadResult) -> None:
        if not self.browse.is_current(result):
            return  # the filter or page changed, or live updates paused, while this was read
        if not result.page.items and not self.browse.following:
            # The page emptied (sagas vanished or filter narrowed): back to the top.
            self.browse.to_first_page()
            self.reload()
            return
        self.shown = result
        self.main_screen.show_load(result, self.palette)
        self._draw_title()
        screen = self.screen
        followed = result.request.follow
        if isinstance(screen, DetailScreen) and screen.follow and screen.saga_id == followed:
            screen.show(result.detail, self.palette)
            screen.show_events(result.events, self.palette)

    @on(LoadFailed)
    def _load_failed(self, message: LoadFailed) -> None:
        # Said once per reason: the poll tries again every second.
        if message.reason != self.load_error:
            self.notify(message.reason, title="Database", severity="error", markup=False)
        self.load_error = message.reason
        if self._alive():
            self.main_screen.show_unreadable(True)
            self._draw_title()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that died becomes a one-line notification, never a traceback."""
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            self.notify(
                one_line(event.worker.error, with_type=True), severity="error", markup=False
            )
            if event.worker.group == "poll":
                self._poll()

    # ---- navigation -----------------------------------------------------------------------

    def current_id(self) -> uuid.UUID | None:
        """The saga the keys act on: the detail's, else the one under the cursor."""
        screen = self.screen
        if isinstance(screen, DetailScreen):
            return screen.saga_id
        return self.main_screen.table.current_id

    @on(SagaTable.Selected)
    def _row_selected(self) -> None:
        self.action_open_detail()

    def action_open_detail(self) -> None:
        """Open the saga under the cursor; it follows live until frozen or closed."""
        saga_id = self.main_screen.table.current_id
        if saga_id is None or self.screen is not self.main_screen:
            return
        summary = self.main_screen.table.summary(saga_id)
        why = why_not_runnable(self.mediator, summary.name) if summary else None
        if why and summary and self.mediator is not None and is_durable(self.mediator):
            why = f"{clean(summary.name)} is not registered here: r and c ask a worker that has it"
        detail = DetailScreen(
            saga_id,
            why,
            self.palette,
            absolute=self.browse.absolute_times,
            read_only=self.read_only,
            keymap=self.user_keys.keymap,
        )
        self.push_screen(detail, self._detail_closed)
        self.browse.follow = saga_id
        self.reload()

    def _detail_closed(self, _: None) -> None:
        self.browse.follow = None
        self.reload()

    @on(FollowChanged)
    def _follow_changed(self, message: FollowChanged) -> None:
        self.browse.follow = message.saga_id if message.follow else None
        self.reload()

    def action_pause(self) -> None:
        """Pause or resume live updates; a reload already in flight is not shown."""
        self.feed.paused = not self.feed.paused
        self.browse.invalidate()
        self._draw_title()
        self.notify(
            "live updates paused" if self.feed.paused else "live updates resumed", timeout=2
        )
        if not self.feed.paused:
            self.reload()

    def action_copy_id(self) -> None:
        """Copy the saga's full id: OSC 52, and what can confirm it; say where it went."""
        saga_id = self.current_id()
        if saga_id is None:
            return
        self.copy_to_clipboard(str(saga_id))
        self._copy(str(saga_id))

    @work(group="copy", exclusive=True, exit_on_error=False)
    async def _copy(self, text: str) -> None:
        copied = await clipboard.copy(text, self.environ)
        self.notify(copied.message, markup=False, timeout=10 if not copied.confirmed else 4)

    def action_toggle_times(self) -> None:
        """Times as ages or as local clock times (list and detail)."""
        browse = self.browse
        browse.absolute_times = not browse.absolute_times
        now = utcnow()
        self.main_screen.table.set_view(
            absolute=browse.absolute_times, wide=browse.wide, sort=browse.order, now=now
        )
        if isinstance(self.screen, DetailScreen):
            self.screen.set_absolute(browse.absolute_times)
        self.notify(
            f"times: local clock ({zone(now)})" if browse.absolute_times else "times: ages",
            timeout=2,
        )

    def action_help(self) -> None:
        """Show every key (as remapped by the user)."""
        self.push_screen(HelpScreen(keys.help_rows(self.user_keys.keymap)))

    # ---- actions --------------------------------------------------------------------------

    def action_new(self) -> None:
        """Open the start form."""
        if self._refused("start") or self.mediator is None:
            return
        choices = [SagaChoice(n, c, e) for n, c, e in examples.choices(self.mediator)]
        if not choices:
            self.notify("no saga is registered in this application", severity="error")
            return
        self.push_screen(StartForm(choices), self._start_chosen)

    def _start_chosen(self, request: StartRequest | None) -> None:
        if request is not None:
            self.notify(f"starting {plural(len(request.contexts), request.name)}", timeout=3)
            self._start(request)

    @work(group="actions", exit_on_error=False)
    async def _start(self, request: StartRequest) -> None:
        assert self.mediator is not None
        results = await start_many(
            self.mediator, request.contexts, reason=REASON, on_progress=self._request_progress
        )
        self.post_message(ActionsFinished("start", results))
