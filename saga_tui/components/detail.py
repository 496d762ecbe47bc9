"""The detail of one saga: header, step lanes, error with traceback, context, history."""

from __future__ import annotations

import datetime
import json
import typing
import uuid

from rich.console import Group, RenderableType
from rich.highlighter import JSONHighlighter
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from engine.saga.storage.models import SagaDetail
from engine.saga.storage.outbox import EventState, StoredEvent
from saga_tui import keys
from saga_tui.events_text import STATE_MARK, report_text
from saga_tui.messages import FollowChanged
from saga_tui.pictures import timeline_text
from saga_tui.render import (
    Palette,
    is_stranded,
    lane_text,
    paint,
    safe,
    status_text,
    time_text,
)
from saga_tui.textfmt import (
    aware,
    clean,
    error_line,
    one_line,
    timestamp,
    took,
    utcnow,
    why_stranded,
    zone,
    zone_offset,
)

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _step_columns(width: int) -> list[tuple[str, str, int]]:
    """The step table's columns for a terminal ``width`` wide (ERROR only when it fits)."""
    columns = [
        ("n", "#", 2),
        ("step", "STEP", 16 if width < 100 else 22),
        ("act", "ACT", 18 if width < 100 else 24),
        ("compensate", "COMPENSATE", 22 if width < 100 else 26),
        ("started", "STARTED", 8),
    ]
    # DataTable pads every cell by one on each side; the body has its own padding.
    left = width - 4 - sum(w + 2 for _, _, w in columns) - 2
    if left >= 20:
        columns.append(("error", "ERROR", left))
    return columns


class DetailScreen(Screen[None]):
    """One saga in full; ``f`` follows it live, ``esc`` goes back to the list."""

    BINDINGS = [*keys.detail_bindings()]

    def __init__(
        self,
        saga_id: uuid.UUID,
        why_not: str | None,
        palette: Palette,
        *,
        absolute: bool = False,
        read_only: bool = False,
        keymap: typing.Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.read_only = read_only
        self.keymap = keymap or {}
        self._steps_width = 0
        self.saga_id = saga_id
        self.follow = True
        self.detail: SagaDetail | None = None
        self.why_not = why_not
        self.palette = palette
        self.absolute = absolute

    def compose(self) -> ComposeResult:
        """Header, steps, then one scrolling body."""
        yield Static(Text(f"Saga {self.saga_id} · loading…"), id="detail-header")
        with VerticalScroll(id="detail-body"):
            steps: DataTable[object] = DataTable(id="detail-steps", cursor_type="row")
            yield steps
            yield Static("", id="detail-timeline")
            events = Static("", id="detail-events")
            events.display = False  # until the saga has events
            yield events
            yield Static("", id="detail-error")
            yield Static("", id="detail-context")
            yield Static("", id="detail-history")
        yield Footer()

    def on_mount(self) -> None:
        """Lay out for the terminal's width now (a resize does it again)."""
        self._lay_out(self.app.size.width)

    def on_resize(self, event: events.Resize) -> None:
        """Step columns and footer keys for the width."""
        self._lay_out(event.size.width)

    def _lay_out(self, width: int) -> None:
        hidden = ("saga.recover", "saga.compensate") if self.read_only else ()
        shown, palette = keys.footer_ids(
            keys.detail_bindings(), width, self.keymap, hidden=hidden, compact=width < 120
        )
        keys.show_in_footer([self], shown)
        footer = self.query_one(Footer)
        footer.show_command_palette = palette
        footer.compact = width < 120
        if width != self._steps_width:
            self._steps_width = width
            table = self.query_one("#detail-steps", DataTable)
            table.clear(columns=True)
            for key, label, column_width in _step_columns(width):
                table.add_column(label, key=key, width=column_width)
            if self.detail is not None:
                self._show_steps(self.detail, self.palette)

    def action_close(self) -> None:
        """Back to the list."""
        self.dismiss(None)

    def action_toggle_follow(self) -> None:
        """Follow the saga live (reload on every change) or freeze it."""
        self.follow = not self.follow
        self.post_message(FollowChanged(self.saga_id, self.follow))
        self.notify("following live" if self.follow else "frozen: press f to follow again")
        if self.detail is not None:
            self.show(self.detail, self.palette)

    def show(self, detail: SagaDetail | None, palette: Palette) -> None:
        """Render a freshly loaded saga."""
        header = self.query_one("#detail-header", Static)
        if detail is None:
            header.update(Text(f"Saga {self.saga_id} no longer exists", end=""))
            return
        self.detail = detail
        self.palette = palette
        self._show_header(detail, palette, utcnow())
        self._show_steps(detail, palette)
        self._show_timeline(detail, palette, utcnow())
        self._show_error(detail, palette)
        self._show_context(detail)
        self._show_history(detail, palette)

    def show_events(self, events: typing.Sequence[StoredEvent], palette: Palette) -> None:
        """The saga's events with their state (hidden when it produced none)."""
        widget = self.query_one("#detail-events", Static)
        if not events:
            widget.display = False
            return
        widget.display = True
        styles = {EventState.DELIVERED: "ok", EventState.PENDING: "busy", EventState.FAILED: "bad"}
        text = Text(end="", overflow="fold")
        text.append("Events", style="bold")
        if any(e.state is EventState.FAILED for e in events):
            text.append("  (e redelivers the failed ones)", style="dim")
        for event in events:
            text.append("\n")
            text.append(
                f"{STATE_MARK[event.state]} {event.state.name:<9}", style=styles[event.state]
            )
            text.append(f" {clean(event.step_name)} → {clean(event.event_name)}")
            text.append(f"  {event.kind}  tries {event.attempts}", style="dim")
            when = event.delivered_at or event.updated_at
            text.append(f"  {timestamp(when, millis=True)}", style="dim")
            if event.last_error and event.state is not EventState.DELIVERED:
                text.append("  ")
                text.append(clean(event.last_error), style="bad")
        widget.update(paint(text, palette))

    def action_redeliver(self) -> None:
        """Redeliver the saga's FAILED events through the application's handlers."""
        from saga_tui.operations import refusal

        app = typing.cast(typing.Any, self.app)
        reason = refusal(
            "redeliver", read_only=app.read_only, mediator=app.mediator, why=app.read_only_why
        )
        if reason is not None:
            self.notify(reason, severity="warning", markup=False)
            return
        self.notify("redelivering the failed events…", timeout=2)
        self.run_worker(self._redeliver(app), group="redeliver", exclusive=True)

    async def _redeliver(self, app: typing.Any) -> None:
        try:
            report = await app.mediator.redeliver_events(self.saga_id, reason="dashboard")
        except Exception as exc:
            self.notify(
                f"redeliver: {one_line(exc, with_type=True)}", severity="error", markup=False
            )
            return
        failed = report.failed or report.waiting or report.busy
        self.notify(
            f"redeliver: {report_text(report)}",
            severity="warning" if failed else "information",
            markup=False,
        )
        app.reload()

    def tick(self, now: datetime.datetime) -> None:
        """The clock moved: a running saga's TOOK and the steps' ages."""
        if self.detail is not None:
            self._show_header(self.detail, self.palette, now)
            if self.detail.summary.finished_at is None:
                self._show_timeline(self.detail, self.palette, now)
            if not self.absolute:
                self._show_steps(self.detail, self.palette)

    def set_absolute(self, absolute: bool) -> None:
        """Ages or local clock times for when the steps started."""
        self.absolute = absolute
        if self.detail is not None:
            self._show_steps(self.detail, self.palette)

    def _show_header(self, detail: SagaDetail, palette: Palette, now: datetime.datetime) -> None:
        s = detail.summary
        line = Text(end="")
        line.append(clean(s.name), style="bold")
        line.append(f"  {s.id}  ")
        if s.search_key:
            line.append("key ")
            line.append(clean(s.search_key), style="bold")
            line.append("  ")
        stranded = is_stranded(s, now.timestamp())
        line.append_text(status_text(s.status, palette))
        if stranded:
            line.append("  ")
            line.append_text(status_text(s.status, palette, stranded=True))
        # TOOK and TRIES mean what the list's columns mean; recoveries are counted apart.
        line.append(f"  created {timestamp(s.created_at, millis=True)} {zone(s.created_at)}")
        line.append(f"  took {took(s, now)}  tries {s.tries}  recoveries {s.recovery_attempts}")
        if s.lease_owner:
            line.append("  owner ")
            line.append(clean(s.lease_owner))
        if stranded:
            line.append(f"  {why_stranded(s, now)}", style="bold")
        if s.requested_action:
            line.append(f"  requested: {s.requested_action.name}")
        if s.unreadable:
            line.append("  unreadable row: ", style="bold")
            line.append(clean(s.unreadable))
        line.append("  · following" if self.follow else "  · frozen")
        if self.why_not:
            line.append("\n")
            line.append(self.why_not, style="bold")
        self.query_one("#detail-header", Static).update(line)

    def _show_steps(self, detail: SagaDetail, palette: Palette | None) -> None:
        table = self.query_one("#detail-steps", DataTable)
        if not table.columns:
            return  # laid out at the first resize
        row = table.cursor_row
        table.clear()
        for index, step in enumerate(detail.steps, 1):
            lane_error = step.compensate if step.compensate.error_type else step.act
            error = error_line(lane_error.error_type, lane_error.error_message)
            started = step.act.started_at
            cells = {
                "n": Text(str(index), end=""),
                "step": safe(step.name),
                "act": lane_text(step.act, palette),
                "compensate": lane_text(step.compensate, palette),
                "started": time_text(started, utcnow(), self.absolute),
                "error": paint(safe(error, "bad"), palette),
            }
            table.add_row(*(cells[str(key.value)] for key in table.columns), key=f"{index}")
        table.styles.height = len(detail.steps) + 2
        if detail.steps:
            table.move_cursor(row=min(row, len(detail.steps) - 1), animate=False)

    def _show_timeline(
        self, detail: SagaDetail, palette: Palette | None, now: datetime.datetime
    ) -> None:
        widget = self.query_one("#detail-timeline", Static)
        # The bars fill the box's inside: borders, padding and a scrollbar's room taken off
        # whether or not the scrollbar shows yet, so the drawing never depends on when
        # the first layout happened.
        inside = (self.size.width or self.app.size.width) - 10
        widget.update(timeline_text(detail, max(40, inside), now, palette))

    def _show_error(self, detail: SagaDetail, palette: Palette | None) -> None:
        s = detail.summary
        widget = self.query_one("#detail-error", Static)
        if not (s.error_type or s.error_message or detail.error_traceback):
            widget.display = False
            return
        widget.display = True
        text = Text(end="")
        text.append("Error\n", style="bold")
        text.append(clean(error_line(s.error_type, s.error_message) or "Error"), style="bad")
        if detail.error_traceback:
            text.append("\n")
            text.append(clean(detail.error_traceback, multiline=True))
        text.overflow = "fold"  # a long line wraps; nothing is cut off
        widget.update(paint(text, palette))

    def _show_context(self, detail: SagaDetail) -> None:
        widget = self.query_one("#detail-context", Static)
        body: RenderableType
        if detail.context is not None:
            # Our own JSON text, cleaned: rich's JSON view would parse it again and print
            # bidi overrides (U+202E) raw. clean's escapes are valid JSON escapes too.
            raw = json.dumps(detail.context, indent=2, ensure_ascii=False, default=str)
            text = Text(clean(raw, multiline=True), end="", overflow="fold")
            body = JSONHighlighter()(text)
        else:
            body = Text(
                f"stored context does not parse: {clean(detail.context_error)}\n"
                + clean(detail.context_raw[:4000], multiline=True),
                end="",
            )
        widget.update(Group(Text("Context", style="bold"), body))

    def _show_history(self, detail: SagaDetail, palette: Palette | None) -> None:
        rows: list[tuple[object, Text]] = []
        for record in detail.logs:
            line = Text(end="")
            line.append(timestamp(record.created_at, millis=True), style="dim")
            line.append(f"  {record.action:<10} ")
            line.append(clean(record.step_name))
            line.append(f"  {record.status.name.lower()}")
            if record.attempt > 1:
                line.append(f" (try {record.attempt})")
            if error := error_line(record.error_type, record.error_message):
                line.append("  ")
                line.append(clean(error), style="bad")
            rows.append((record.created_at, line))
        for action in detail.audit:
            line = Text(end="")
            line.append(timestamp(action.created_at, millis=True), style="dim")
            line.append("  operator   ", style="bold")
            line.append(clean(f"{action.action} by {action.os_user}@{action.host}"))
            if action.reason:
                line.append(clean(f" ({action.reason})"))
            if action.outcome:
                line.append(clean(f" -> {action.outcome}"))
            rows.append((action.created_at, line))
        # Log entries come in id order; the stable sort slots operator actions among them.
        rows.sort(
            key=lambda item: aware(item[0]) if isinstance(item[0], datetime.datetime) else _EPOCH
        )
        text = Text(end="", overflow="fold")
        text.append("History", style="bold")
        text.append(f"  (local times, {zone()} {zone_offset()})\n", style="dim")
        text.append_text(Text("\n").join(line for _, line in rows))
        self.query_one("#detail-history", Static).update(paint(text, palette))
