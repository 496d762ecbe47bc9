"""Rich renderings for the dashboard: status marks, colours by meaning, progress bars, rows.

The wording (durations, ages, the error line, the sanitizer) is textfmt's, shared with
the command line. Database text goes through :func:`safe` (or ``textfmt.clean``) so it
is displayed as text: never parsed as markup, never with raw control characters.
"""

from __future__ import annotations

import datetime

from rich.text import Text

from engine.saga.storage.enums import SagaStatus, SagaStepStatus
from engine.saga.storage.models import LaneView, LogRecord, SagaSummary
from saga_tui.textfmt import (
    UNREADABLE,
    age,
    clean,
    clock,
    error_line,
    is_stranded,
    ms,
    row_error,
    short_id,
    took,
    truncate,
    utcnow,
    when,
)

# One mark per status so nothing depends on colour alone.
STATUS_MARKS: dict[SagaStatus, str] = {
    SagaStatus.PENDING: "○",
    SagaStatus.RUNNING: "●",
    SagaStatus.COMPENSATING: "↺",
    SagaStatus.COMPLETED: "✓",
    SagaStatus.COMPENSATED: "↺",
    SagaStatus.FAILED: "✗",
}

# Meaning, not colour: the app maps these roles to its theme's variables (see Palette).
STATUS_STYLES: dict[SagaStatus, str] = {
    SagaStatus.PENDING: "dim",
    SagaStatus.RUNNING: "busy",
    SagaStatus.COMPENSATING: "back",
    SagaStatus.COMPLETED: "ok",
    SagaStatus.COMPENSATED: "back",
    SagaStatus.FAILED: "bad",
}

STEP_MARKS: dict[SagaStepStatus | None, str] = {
    None: "·",
    SagaStepStatus.STARTED: "▶",
    SagaStepStatus.COMPLETED: "✓",
    SagaStepStatus.FAILED: "✗",
    SagaStepStatus.COMPENSATED: "↺",
}

STEP_STYLES: dict[SagaStepStatus | None, str] = {
    None: "dim",
    SagaStepStatus.STARTED: "busy",
    SagaStepStatus.COMPLETED: "ok",
    SagaStepStatus.FAILED: "bad",
    SagaStepStatus.COMPENSATED: "back",
}

STRANDED_MARK = "⚠"
"""A stranded saga's own mark: unfinished, and nobody runs it (lease lapsed, owner gone)."""

Palette = dict[str, str]

# Plain ANSI colours for when no theme is at hand (tests, the CLI).
DEFAULT_PALETTE: Palette = {
    "ok": "green",
    "busy": "yellow",
    "bad": "red",
    "back": "blue",
    "dim": "dim",
    "mark": "bold",
    "stranded": "bold magenta",
}


def palette_from_theme(variables: dict[str, str]) -> Palette:
    """Map the roles to a Textual theme's colour variables."""
    return {
        "ok": variables.get("success", "green"),
        "busy": variables.get("warning", "yellow"),
        "bad": variables.get("error", "red"),
        "back": variables.get("primary", "blue"),
        "dim": "dim",
        "mark": f"bold {variables.get('accent', '')}".strip(),
        "stranded": f"bold {variables.get('secondary', 'magenta')}",
    }


def safe(value: object, style: str = "", *, multiline: bool = False) -> Text:
    """Database text as a rich Text: literal (no markup) and free of control characters."""
    return Text(clean(value, multiline=multiline), style=style, end="")


def paint(text: Text, palette: Palette | None = None) -> Text:
    """Replace role names (ok, busy, bad, back, dim) in ``text``'s styles by real styles."""
    colours = palette or DEFAULT_PALETTE
    if isinstance(text.style, str):
        text.style = colours.get(text.style, text.style)
    for index, span in enumerate(text.spans):
        if isinstance(span.style, str) and span.style in colours:
            text.spans[index] = span._replace(style=colours[span.style])
    return text


def status_text(
    status: SagaStatus, palette: Palette | None = None, *, stranded: bool = False
) -> Text:
    """A status with its mark and colour, e.g. ``✗ FAILED`` (``⚠ STRANDED`` when stranded)."""
    if stranded:
        return paint(Text(f"{STRANDED_MARK} STRANDED", style="stranded", end=""), palette)
    out = Text(f"{STATUS_MARKS[status]} {status.name}", style=STATUS_STYLES[status], end="")
    return paint(out, palette)


_FINISHED = frozenset({SagaStatus.COMPLETED, SagaStatus.COMPENSATED})


def progress_text(
    summary: SagaSummary, width: int = 5, palette: Palette | None = None, *, step: bool = True
) -> Text:
    """One square per step and the current step, e.g. ``■■□ Charge ▶``.

    ■ done (still applied), ↺ undone by compensation, ✗ the step that failed, □ not run:
    a COMPENSATED saga shows ``↺↺✗``, never squares that read as steps still applied.
    """
    total = max(summary.step_count, 0)
    done = max(0, min(summary.steps_done, total)) if total else 0
    status = summary.status
    out = Text(end="")
    if total:
        shown = min(total, width)
        filled = round(done * shown / total) if total else 0
        failed_step = filled < shown and bool(summary.error_type or summary.error_message)
        if status is SagaStatus.COMPENSATED:
            out.append("↺" * filled, style="back")
        else:
            out.append("■" * filled, style="back" if status is SagaStatus.COMPENSATING else "ok")
        rest = shown - filled
        if status is SagaStatus.FAILED or (status is SagaStatus.COMPENSATED and failed_step):
            out.append("✗" if rest else "", style="bad")
            rest = max(0, rest - 1)
        out.append("□" * rest, style="dim")
    if step and summary.current_step and status not in _FINISHED:
        marker = {SagaStatus.COMPENSATING: "↺", SagaStatus.FAILED: "↺"}.get(status, "▶")
        out.append(" ")
        out.append(clean(summary.current_step), style=STATUS_STYLES[status])
        out.append(f" {marker}", style=STATUS_STYLES[status])
    return paint(out, palette)


def error_text(
    summary: SagaSummary, width: int | None = None, palette: Palette | None = None
) -> Text:
    """The saga's last error (or why its row is unreadable) as one sanitized line."""
    if not summary.error_type and not summary.error_message and not summary.unreadable:
        return Text("", end="")
    line = clean(row_error(summary))
    return paint(Text(truncate(line, width) if width else line, style="bad", end=""), palette)


def tries_text(summary: SagaSummary, palette: Palette | None = None) -> Text:
    """TRIES: the most tries one step action took (a lane's ``3 tries``); over 1 stands out."""
    if not summary.tries:
        return Text("", end="")
    return paint(
        Text(str(summary.tries), style="busy" if summary.tries > 1 else "", end=""), palette
    )


def time_text(moment: datetime.datetime | None, now: datetime.datetime, absolute: bool) -> Text:
    """An age (``4.6s``) or, with absolute times on, the local time (``16:58:41``)."""
    return Text(when(moment, now) if absolute else age(moment, now), end="")


def summary_cells(
    summary: SagaSummary,
    marked: bool = False,
    palette: Palette | None = None,
    *,
    now: datetime.datetime | None = None,
    absolute: bool = False,
    step: bool = True,
) -> dict[str, Text]:
    """The cells of one saga table row by column key (all Text: nothing is parsed as markup)."""
    now = now or utcnow()
    stranded = is_stranded(summary, now.timestamp())
    cells = {
        "mark": paint(Text("*" if marked else " ", style="mark", end=""), palette),
        "id": Text(short_id(summary.id), end=""),
        "saga": safe(summary.name),
        "key": safe(summary.search_key or ""),
        "status": (
            paint(Text(f"? {UNREADABLE}", style="bad", end=""), palette)
            if summary.unreadable
            else status_text(summary.status, palette, stranded=stranded)
        ),
        "progress": progress_text(summary, palette=palette, step=step),
        "updated": time_text(summary.updated_at, now, absolute),
        "took": Text(took(summary, now), end=""),
        "tries": tries_text(summary, palette),
        "created": time_text(summary.created_at, now, absolute),
        "error": error_text(summary, palette=palette),
    }
    for cell in cells.values():
        # One line per cell: skipping the wrap pass makes a table repaint much cheaper.
        cell.no_wrap = True
        cell.overflow = "ellipsis"
    return cells


def summary_row(
    summary: SagaSummary, marked: bool = False, palette: Palette | None = None
) -> tuple[Text, ...]:
    """The cells of one row in screen order (every column, as wide mode shows them)."""
    return tuple(summary_cells(summary, marked, palette).values())


def lane_text(lane: LaneView, palette: Palette | None = None) -> Text:
    """One act/compensate lane: mark, status, duration and attempts."""
    if lane.status is None:
        return paint(Text("· not run", style="dim", end=""), palette)
    out = Text(
        f"{STEP_MARKS[lane.status]} {lane.status.name.lower()}", style=STEP_STYLES[lane.status]
    )
    if lane.duration_ms is not None:
        out.append(f" {ms(lane.duration_ms)}")
    if lane.attempts > 1:
        out.append(f" {lane.attempts} tries", style="busy")
    out.end = ""
    return paint(out, palette)


NARROW_STREAM = 100
"""Narrower than this, a stream line leaves out the saga name and shortens the rest."""


def log_line(record: LogRecord, palette: Palette | None = None, width: int = 200) -> Text:
    """One line of the live step stream (without the saga name on a narrow terminal)."""
    status = record.status
    narrow = width < NARROW_STREAM
    out = Text(end="")
    out.append(clock(record.created_at, millis=True), style="dim")
    out.append(f" {short_id(record.saga_id)} " if narrow else f"  {short_id(record.saga_id)}  ")
    if not narrow:
        out.append(truncate(clean(record.saga_name), 16).ljust(16))
        out.append("  ")
    step_width = 18 if narrow else 22
    out.append(truncate(clean(record.step_name), step_width).ljust(step_width))
    action = (
        ("undo" if record.action == "compensate" else "act") if narrow else clean(record.action)
    )
    out.append(f" {action:<4} " if narrow else f"  {action:<10}  ")
    mark = STEP_MARKS[status]
    if status is SagaStepStatus.STARTED:
        out.append(f"{mark} started", style=STEP_STYLES[status])
    elif status is SagaStepStatus.FAILED:
        message = error_line(record.error_type, record.error_message) or "Error"
        out.append(f"{mark} {truncate(clean(message), 60)}", style=STEP_STYLES[status])
    else:
        done = ms(record.duration_ms) or status.name.lower()
        out.append(f"{mark} {done}", style=STEP_STYLES[status])
    return paint(out, palette)
