"""The dashboard app: live saga table, detail, stream, forms; and ``run_dashboard``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
import typing
import uuid

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import Worker, WorkerState

from engine.saga.errors import SagaNotRegisteredError
from engine.saga.operator import ActionResult
from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.lanes import steps_to_compensate
from engine.saga.storage.models import PageCursor, SagaDetail, SagaFilter
from saga_tui import examples
from saga_tui.commands import SagaCommands
from saga_tui.components.confirm import ConfirmScreen
from saga_tui.components.detail import DetailScreen
from saga_tui.components.help import HelpScreen
from saga_tui.components.live_stream import LiveStream
from saga_tui.components.saga_table import SagaTable
from saga_tui.components.start_form import SagaChoice, StartForm, StartRequest
from saga_tui.components.status_bar import CountsBar, TitleBar
from saga_tui.demo import DemoTraffic
from saga_tui.filters import FilterError, format_filter, parse_filter
from saga_tui.messages import (
    ActionsFinished,
    DetailLoaded,
    LoadFailed,
    NewLogs,
    PlanReady,
    Snapshot,
    StatusChosen,
)
from saga_tui.render import Palette, clean, palette_from_theme, short_id

if typing.TYPE_CHECKING:
    from engine.saga.mediator import SagaMediator
    from engine.saga.storage.protocol import ISagaStorage

PAGE_SIZE = 50
ACTION_CONCURRENCY = 16
# In-process checkpoints can arrive thousands of times a second; reload at most this often.
MIN_RELOAD_GAP = 0.1
MIN_SIZE = (40, 10)
COMPACT_HEIGHT = 24


def one_line(exc: BaseException) -> str:
    """An exception as one line for a notification (no traceback)."""
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    return clean(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


class SagaApp(App[int]):
    """Sagas of one database, live; start, recover and compensate from the keyboard."""

    CSS_PATH = "app.tcss"
    TITLE = "saga-tui"
    COMMANDS = App.COMMANDS | {SagaCommands}
    BINDINGS = [
        Binding("enter", "open_detail", "Detail", show=False, id="saga.open"),
        Binding("n", "new", "New", id="saga.new"),
        Binding("r", "recover", "Recover", id="saga.recover"),
        Binding("c", "compensate", "Compensate", id="saga.compensate"),
        Binding("space", "mark", "Mark", id="saga.mark"),
        Binding("slash", "filter", "Filter", key_display="/", id="saga.filter"),
        Binding("escape", "clear", "Clear", show=False, id="saga.clear"),
        Binding("p", "pause", "Pause", id="saga.pause"),
        Binding("l", "toggle_stream", "Live", id="saga.stream"),
        Binding("y", "copy_id", "Copy id", id="saga.copy"),
        Binding("right_square_bracket", "page(1)", "Next page", show=False, id="saga.next"),
        Binding("left_square_bracket", "page(-1)", "Prev page", show=False, id="saga.prev"),
        Binding("question_mark", "help", "Help", key_display="?", id="saga.help"),
        Binding("q", "quit", "Quit", id="saga.quit"),
    ]

    def __init__(
        self,
        storage: ISagaStorage,
        mediator: SagaMediator | None,
        *,
        label: str = "sagas.db",
        read_only: bool = False,
        demo: bool = False,
        poll_interval: float = 0.25,
        page_size: int = PAGE_SIZE,
        close_storage: bool = False,
    ) -> None:
        super().__init__()
        self.storage = storage
        self.mediator = mediator
        self.label = label
        self.read_only = read_only or bool(getattr(storage, "read_only", False))
        self.demo = demo
        self.poll_interval = poll_interval
        self.page_size = page_size
        self.saga_filter = SagaFilter()
        self.page_after: PageCursor | None = None
        self.page_back: list[PageCursor | None] = []
        self.marks: set[uuid.UUID] = set()
        self.paused = False
        self.generation = 0
        self.last_snapshot: Snapshot | None = None
        self.watermark: int | None = None
        self.palette: Palette = {}
        self._wake = asyncio.Event()
        self._forced = True
        self._nudged = False
        self._demo: DemoTraffic | None = None
        self._close_storage = close_storage

    # ---- layout ---------------------------------------------------------------------------

    @property
    def main_screen(self) -> Screen[typing.Any]:
        """The list screen at the bottom of the stack (whatever is shown above it)."""
        return self.screen_stack[0]

    def _alive(self) -> bool:
        # Messages from the poll worker can arrive while the app shuts down.
        if not self.screen_stack or not self.is_running:
            return False
        return bool(self.main_screen.query(SagaTable))

    def compose(self) -> ComposeResult:
        """Title, counts, table, filter input, live stream, footer."""
        yield TitleBar(self.label, id="title")
        yield CountsBar(id="counts")
        with Vertical(id="main"):
            yield SagaTable(id="sagas")
            yield Input(placeholder="status:failed name:Order free text", id="filter")
            yield LiveStream(id="stream")
        yield Static("", id="too-small")
        yield Footer()

    def on_mount(self) -> None:
        """Start polling (and the demo), focus the table."""
        self.palette = palette_from_theme(self.theme_variables)
        self.main_screen.query_one("#filter", Input).display = False
        self._title_table()
        self.main_screen.query_one(SagaTable).focus()
        if self.mediator is not None:
            self.mediator.add_listener(self._on_checkpoint)
        self._poll()
        self.set_interval(1.0, self._tick)
        if self.demo and self.mediator is not None and not self.read_only:
            self._demo = DemoTraffic(self.mediator)
            self._demo.start()
        self._layout_for(self.size.width, self.size.height)

    def watch_theme(self) -> None:
        """Re-map the status colours when the theme changes."""
        self.palette = palette_from_theme(self.theme_variables)
        self.refresh_now()

    async def on_unmount(self) -> None:
        """Stop the demo and release the database."""
        if self.mediator is not None:
            self.mediator.remove_listener(self._on_checkpoint)
        if self._demo is not None:
            await self._demo.stop(grace=0)
        if self._close_storage:
            with contextlib.suppress(Exception):
                await self.storage.close()

    def on_resize(self, event: typing.Any) -> None:
        """Compact layout on a small terminal, a one-line reason on a tiny one."""
        self._layout_for(event.size.width, event.size.height)

    def _layout_for(self, width: int, height: int) -> None:
        tiny = width < MIN_SIZE[0] or height < MIN_SIZE[1]
        compact = height < COMPACT_HEIGHT
        screen = self.screen_stack[0] if self.screen_stack else None
        if screen is None:
            return
        screen.set_class(tiny, "-tiny")
        screen.set_class(compact, "-compact")
        with contextlib.suppress(Exception):
            self.main_screen.query_one("#too-small", Static).update(
                Text(
                    f"Terminal too small ({width}x{height}): "
                    f"make it at least {MIN_SIZE[0]}x{MIN_SIZE[1]}",
                    end="",
                ),
            )

    # ---- live refresh ---------------------------------------------------------------------

    def _on_checkpoint(self, saga_id: uuid.UUID) -> None:
        # Called by the engine after each checkpoint of this process: a hint, not data.
        if not self.paused:
            self._nudged = True
            self._wake.set()

    def refresh_now(self) -> None:
        """Reload counts and the visible page at once (after a filter or page change)."""
        self._forced = True
        self._wake.set()

    @work(exclusive=True, group="poll", exit_on_error=False)
    async def _poll(self) -> None:
        """The one refresh loop: probe, reload on change; the next waits for the last."""
        token: int | None = None
        last_reload = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()
            forced, nudged = self._forced, self._nudged
            self._forced = self._nudged = False
            if self.paused and not forced:
                continue
            try:
                if nudged and not forced:
                    gap = MIN_RELOAD_GAP - (time.monotonic() - last_reload)
                    if gap > 0:
                        await asyncio.sleep(gap)
                new_token = await self.storage.change_token()
                if new_token == token and not forced and not nudged:
                    continue
                token = new_token
                last_reload = time.monotonic()
                await self._reload()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.post_message(LoadFailed(one_line(exc)))
                await asyncio.sleep(1.0)

    async def _reload(self) -> None:
        generation = self.generation
        started = time.perf_counter()
        counts = await self.storage.count_by_status()
        page = await self.storage.list_sagas(
            self.saga_filter, limit=self.page_size, after=self.page_after
        )
        self.post_message(Snapshot(counts, page, generation, time.perf_counter() - started))
        if self.watermark is None:
            self.watermark = await self.storage.last_log_id()
        elif self._stream_visible():
            records = await self.storage.logs_after(self.watermark, 500)
            if records:
                self.watermark = records[-1].id
                if len(records) == 500:
                    # Far behind (a burst): skip to the newest rather than replay history.
                    self.watermark = await self.storage.last_log_id()
                self.post_message(NewLogs(records))
        screen = self.screen
        if isinstance(screen, DetailScreen) and screen.follow:
            detail = await self.storage.get_saga(screen.saga_id)
            self.post_message(DetailLoaded(screen.saga_id, detail))

    def _stream_visible(self) -> bool:
        with contextlib.suppress(Exception):
            return bool(self.main_screen.query_one(LiveStream).display)
        return False

    def _tick(self) -> None:
        # Ages ("UPDATED") move with the clock; re-render them without a query.
        if (
            not self._alive()
            or self.paused
            or self.last_snapshot is None
            or self.screen is not self.screen_stack[0]
        ):
            return
        self.main_screen.query_one(SagaTable).refresh_ages()
        self.main_screen.query_one("#title", TitleBar).running = (
            self.mediator.running if self.mediator else 0
        )

    _LIST_ONLY = frozenset({"open_detail", "new", "mark", "filter", "toggle_stream", "page"})

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide list keys on the detail screen and every saga key under a modal."""
        screen = self.screen
        if isinstance(screen, ModalScreen) and action not in ("quit", "command_palette"):
            return action.startswith(("app.", "focus", "screenshot", "notify"))
        return not (isinstance(screen, DetailScreen) and action in self._LIST_ONLY)

    @on(Snapshot)
    def _show_snapshot(self, message: Snapshot) -> None:
        if not self._alive():
            return
        if message.generation != self.generation:
            return  # the filter or page changed while this was read
        if not message.page.items and self.page_after is not None:
            # The page emptied (sagas vanished or filter narrowed): back to the top.
            self.page_after = None
            self.page_back.clear()
            self.generation += 1
            self.refresh_now()
            return
        self.last_snapshot = message
        table = self.main_screen.query_one(SagaTable)
        with self.batch_update():
            table.show_page(message.page.items, self.marks, self.palette)
            self.main_screen.query_one(CountsBar).show(message.counts, self.saga_filter.statuses)
            self._title_table()
        title = self.main_screen.query_one("#title", TitleBar)
        title.running = self.mediator.running if self.mediator else 0
        title.redraw()

    def _title_table(self) -> None:
        table = self.main_screen.query_one(SagaTable)
        text = format_filter(self.saga_filter)
        table.border_title = Text(f"Sagas · {clean(text)}" if text else "Sagas", end="")  # type: ignore[assignment]
        shown = len(table.order)
        first = len(self.page_back) * self.page_size + 1
        more = self.last_snapshot is not None and self.last_snapshot.page.next_cursor is not None
        if shown:
            span = f"{first:,}-{first + shown - 1:,}{' ·  ] more' if more else ''}"
        else:
            span = "no sagas match" if text else "no sagas yet: press n to start one"
        marks = f" · {len(self.marks)} marked" if self.marks else ""
        table.border_subtitle = Text(f"{span}{marks} · newest first", end="")  # type: ignore[assignment]

    @on(NewLogs)
    def _show_logs(self, message: NewLogs) -> None:
        if not self._alive():
            return
        self.main_screen.query_one(LiveStream).add(message.records, self.palette)

    @on(DetailLoaded)
    def _show_detail(self, message: DetailLoaded) -> None:
        screen = self.screen
        if isinstance(screen, DetailScreen) and screen.saga_id == message.saga_id:
            screen.show(message.detail, self.palette)

    @on(LoadFailed)
    def _load_failed(self, message: LoadFailed) -> None:
        self.notify(message.reason, title="Database", severity="error", markup=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that died becomes a one-line notification, never a traceback."""
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            self.notify(one_line(event.worker.error), severity="error", markup=False)
            if event.worker.group == "poll":
                self._poll()

    # ---- navigation -----------------------------------------------------------------------

    def current_id(self) -> uuid.UUID | None:
        """The saga the keys act on: the detail's, else the one under the cursor."""
        screen = self.screen
        if isinstance(screen, DetailScreen):
            return screen.saga_id
        return self.main_screen.query_one(SagaTable).current_id

    def why_not_runnable(self, name: str) -> str | None:
        """Why this process cannot run a saga of ``name`` (None when it can)."""
        if self.mediator is None:
            return "no application is loaded (--app), so sagas cannot be run here"
        try:
            self.mediator.saga_for_name(name)
        except SagaNotRegisteredError as exc:
            return f"cannot be recovered here: {clean(exc)}"
        return None

    @on(DataTable.RowSelected, "#sagas")
    def _row_selected(self) -> None:
        self.action_open_detail()

    async def action_quit(self) -> None:
        """Quit; demo sagas in flight get a moment to finish first."""
        if self._demo is not None and self.mediator is not None and self.mediator.running:
            self.notify(f"Finishing {self.mediator.running} demo saga(s) in flight…")
            await self._demo.stop(grace=2.0)
        self.exit(0)

    def action_open_detail(self) -> None:
        """Open the saga under the cursor."""
        saga_id = self.current_id()
        if saga_id is None or isinstance(self.screen, DetailScreen):
            return
        summary = self.main_screen.query_one(SagaTable).summary(saga_id)
        why = self.why_not_runnable(summary.name) if summary else None
        self.push_screen(DetailScreen(saga_id, why))
        self._load_detail(saga_id)

    @work(exclusive=True, group="detail", exit_on_error=False)
    async def _load_detail(self, saga_id: uuid.UUID) -> None:
        detail = await self.storage.get_saga(saga_id)
        self.post_message(DetailLoaded(saga_id, detail))

    def action_filter(self) -> None:
        """Show the filter input."""
        field = self.main_screen.query_one("#filter", Input)
        field.value = format_filter(self.saga_filter)
        field.display = True
        field.focus()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        try:
            new = parse_filter(event.value)
        except FilterError as exc:
            self.notify(clean(exc), title="Filter", severity="error", markup=False)
            return
        event.input.display = False
        self.set_filter(new)
        self.main_screen.query_one(SagaTable).focus()

    def set_filter(self, new: SagaFilter) -> None:
        """Show the first page of sagas matching ``new``."""
        self.saga_filter = new
        self.page_after = None
        self.page_back.clear()
        self.generation += 1
        self._title_table()
        self.refresh_now()

    @on(StatusChosen)
    def _status_chosen(self, message: StatusChosen) -> None:
        statuses = () if message.status is None else (message.status,)
        self.set_filter(SagaFilter(statuses, self.saga_filter.name, self.saga_filter.text))

    def action_clear(self) -> None:
        """Esc: close the filter input, else clear marks, else clear the filter."""
        field = self.main_screen.query_one("#filter", Input)
        if field.display:
            field.display = False
            self.main_screen.query_one(SagaTable).focus()
        elif self.marks:
            self.clear_marks()
        elif not self.saga_filter.is_empty or self.page_after is not None:
            self.set_filter(SagaFilter())

    def action_page(self, delta: int) -> None:
        """Next (1) or previous (-1) page by keyset."""
        snapshot = self.last_snapshot
        if delta > 0:
            if snapshot is None or snapshot.page.next_cursor is None:
                self.notify("this is the last page", timeout=2)
                return
            self.page_back.append(self.page_after)
            self.page_after = snapshot.page.next_cursor
        else:
            if not self.page_back:
                self.notify("this is the first page", timeout=2)
                return
            self.page_after = self.page_back.pop()
        self.generation += 1
        self.main_screen.query_one(SagaTable).move_cursor(row=0, animate=False)
        self.refresh_now()

    def action_pause(self) -> None:
        """Pause or resume live updates."""
        self.paused = not self.paused
        title = self.main_screen.query_one("#title", TitleBar)
        title.live = "paused ‖ (p resumes)" if self.paused else "live ●"
        title.redraw()
        self.notify("live updates paused" if self.paused else "live updates resumed", timeout=2)
        if not self.paused:
            self.refresh_now()

    def action_toggle_stream(self) -> None:
        """Show or hide the live step stream."""
        stream = self.main_screen.query_one(LiveStream)
        stream.display = not stream.display
        if stream.display:
            self.watermark = None  # start from now, not from where it was hidden
            self.refresh_now()

    def action_copy_id(self) -> None:
        """Copy the saga's full id to the clipboard."""
        saga_id = self.current_id()
        if saga_id is None:
            return
        self.copy_to_clipboard(str(saga_id))
        self.notify(f"copied {saga_id}", timeout=3)

    def action_help(self) -> None:
        """Show the key map."""
        self.push_screen(HelpScreen())

    def action_mark(self) -> None:
        """Mark or unmark the saga under the cursor for bulk actions."""
        table = self.main_screen.query_one(SagaTable)
        saga_id = table.current_id
        if saga_id is None:
            return
        if saga_id in self.marks:
            self.marks.discard(saga_id)
        else:
            self.marks.add(saga_id)
        table.set_mark(saga_id, saga_id in self.marks, self.palette)
        if table.cursor_row < len(table.order) - 1:
            table.move_cursor(row=table.cursor_row + 1)
        self._title_table()

    def clear_marks(self) -> None:
        """Unmark every saga."""
        table = self.main_screen.query_one(SagaTable)
        for saga_id in list(self.marks):
            self.marks.discard(saga_id)
            table.set_mark(saga_id, False, self.palette)
        self._title_table()

    # ---- actions --------------------------------------------------------------------------

    def _refuse_read_only(self, verb: str) -> bool:
        if self.read_only:
            self.notify(
                f"read-only: {verb} refused (the database was opened with --read-only)",
                severity="warning",
                markup=False,
            )
            return True
        if self.mediator is None:
            self.notify(f"{verb} refused: no application is loaded", severity="error")
            return True
        return False

    def targets(self) -> list[uuid.UUID]:
        """Marked sagas on the list screen, else the current saga."""
        if self.marks and not isinstance(self.screen, DetailScreen):
            return sorted(self.marks, key=str)
        current = self.current_id()
        return [current] if current is not None else []

    def action_new(self) -> None:
        """Open the start form."""
        if self._refuse_read_only("start") or self.mediator is None:
            return
        choices = [SagaChoice(n, c, e) for n, c, e in examples.choices(self.mediator)]
        if not choices:
            self.notify("no saga is registered in this application", severity="error")
            return
        self.push_screen(StartForm(choices), self._start_chosen)

    def _start_chosen(self, request: StartRequest | None) -> None:
        if request is None:
            return
        count = len(request.contexts)
        self.notify(f"starting {count} {request.name}{'' if count == 1 else 's'}", timeout=3)
        self._start(request)

    @work(group="actions", exit_on_error=False)
    async def _start(self, request: StartRequest) -> None:
        assert self.mediator is not None
        mediator = self.mediator
        semaphore = asyncio.Semaphore(ACTION_CONCURRENCY)
        results: list[ActionResult] = []
        errors: list[str] = []

        async def one(context: typing.Any) -> None:
            async with semaphore:
                try:
                    results.append(await mediator.start(context, reason="dashboard"))
                except Exception as exc:
                    errors.append(one_line(exc))

        await asyncio.gather(*(one(c) for c in request.contexts))
        self.post_message(ActionsFinished("start", results, errors))

    def action_recover(self) -> None:
        """Recover the current or marked sagas (after confirmation)."""
        if self._refuse_read_only("recover"):
            return
        ids = self.targets()
        if ids:
            self._plan("recover", ids)

    def action_compensate(self) -> None:
        """Compensate the current or marked sagas (after confirmation)."""
        if self._refuse_read_only("compensate"):
            return
        ids = self.targets()
        if ids:
            self._plan("compensate", ids)

    @work(exclusive=True, group="plan", exit_on_error=False)
    async def _plan(self, verb: str, ids: list[uuid.UUID]) -> None:
        """Read each saga and say what the action will do (and undo)."""
        lines: list[Text] = []
        runnable: list[uuid.UUID] = []
        refused: list[str] = []
        for saga_id in ids:
            detail = await self.storage.get_saga(saga_id)
            if detail is None:
                refused.append(f"{short_id(saga_id)}: no longer exists")
                continue
            why, what = self._what_happens(verb, detail)
            line = Text(end="")
            line.append(f"{short_id(saga_id)}  ", style="bold")
            line.append(clean(detail.summary.name))
            line.append(f"  {detail.summary.status.name}: ")
            if why is not None:
                refused.append(f"{short_id(saga_id)} {clean(detail.summary.name)}: {why}")
                line.append(f"skipped, {why}")
            else:
                runnable.append(saga_id)
                line.append(what)
            lines.append(line)
        self.post_message(PlanReady(verb, runnable, lines, refused))

    def _what_happens(self, verb: str, detail: SagaDetail) -> tuple[str | None, str]:
        summary = detail.summary
        why = self.why_not_runnable(summary.name)
        if why is not None:
            return why, ""
        undo = [clean(s) for s in reversed(steps_to_compensate(detail.logs))]
        undo_text = ", ".join(undo) if undo else "nothing (no step left an effect)"
        status = summary.status
        if verb == "compensate":
            if status is SagaStatus.COMPENSATED:
                return "already compensated", ""
            return None, f"will UNDO {undo_text}"
        if status in (SagaStatus.COMPLETED, SagaStatus.COMPENSATED):
            return f"already {status.name}, nothing to recover", ""
        if status is SagaStatus.FAILED:
            return None, f"will retry the failed compensations: undo {undo_text}"
        if status is SagaStatus.COMPENSATING:
            return None, f"will finish compensation: undo {undo_text}"
        step = clean(summary.current_step) if summary.current_step else "the first step"
        return None, f"will resume forward from {step} (a step in flight runs again)"

    @on(PlanReady)
    def _confirm_plan(self, message: PlanReady) -> None:
        if not message.ids:
            reason = "; ".join(message.refused) or "nothing to do"
            self.notify(f"{message.verb}: {reason}", severity="warning", markup=False, timeout=8)
            return
        body = Text("\n", end="").join(message.lines)
        count = len(message.ids)
        title = f"{message.verb.capitalize()} {count} saga{'' if count == 1 else 's'}?"
        if message.verb == "compensate":
            title += "  This undoes completed steps."

        def answered(yes: bool | None) -> None:
            if yes:
                self._act(message.verb, message.ids)

        self.push_screen(ConfirmScreen(title, body), answered)

    @work(group="actions", exit_on_error=False)
    async def _act(self, verb: str, ids: list[uuid.UUID]) -> None:
        assert self.mediator is not None
        mediator = self.mediator
        semaphore = asyncio.Semaphore(ACTION_CONCURRENCY)
        results: list[ActionResult] = []
        errors: list[str] = []

        async def one(saga_id: uuid.UUID) -> None:
            async with semaphore:
                try:
                    if verb == "recover":
                        result = await mediator.recover_saga(saga_id, reason="dashboard")
                    else:
                        result = await mediator.compensate_saga(saga_id, reason="dashboard")
                    results.append(result)
                except Exception as exc:
                    errors.append(f"{short_id(saga_id)}: {one_line(exc)}")

        self.call_later(self.notify, f"{verb}: {len(ids)} saga(s) in progress…", timeout=2)
        await asyncio.gather(*(one(i) for i in ids))
        self.post_message(ActionsFinished(verb, results, errors))

    @on(ActionsFinished)
    def _actions_finished(self, message: ActionsFinished) -> None:
        if not self._alive():
            return
        for result in message.results:
            self.marks.discard(result.saga_id)
            with contextlib.suppress(Exception):
                self.main_screen.query_one(SagaTable).set_mark(result.saga_id, False, self.palette)
        self._title_table()
        total = len(message.results) + len(message.errors)
        if total == 1 and message.results:
            text = clean(message.results[0].describe())
        else:
            tally: dict[str, int] = {}
            for result in message.results:
                key = "error" if result.error else (result.status.name if result.status else "done")
                tally[key] = tally.get(key, 0) + 1
            if message.errors:
                tally["error"] = tally.get("error", 0) + len(message.errors)
            text = f"{message.verb} {total}: " + ", ".join(f"{v} {k}" for k, v in tally.items())
            if message.errors:
                text += f" · {message.errors[0]}"
        bad = bool(message.errors) or any(r.error for r in message.results)
        self.notify(text, severity="error" if bad else "information", markup=False, timeout=6)
        self.refresh_now()


def run_dashboard(db_url: str, app_factory: str, read_only: bool, demo: bool) -> int:
    """Open the database and the application, run the dashboard; 2 on a usage error."""
    from saga_tui.launch import LaunchError, open_everything

    # Engine warnings (a failed compensation...) are shown on screen; on stderr they
    # would be written over the dashboard.
    engine_log = logging.getLogger("engine")
    if not engine_log.handlers:
        engine_log.addHandler(logging.NullHandler())
        engine_log.propagate = False

    try:
        storage, mediator, label = open_everything(db_url, app_factory, read_only=read_only)
    except LaunchError as exc:
        print(f"saga-tui: {exc}", file=sys.stderr)
        return 2
    app = SagaApp(
        storage, mediator, label=label, read_only=read_only, demo=demo, close_storage=True
    )
    app.run()
    return app.return_code or 0
