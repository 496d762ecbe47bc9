"""Rich renderings for the dashboard: status marks, colours by meaning, progress bars, rows.

The wording (durations, ages, the error line, the sanitizer) is textfmt's, shared with
the command line. Database text goes through :func:`safe` (or ``textfmt.clean``) so it
is displayed as text: never parsed as markup, never with raw control characters.
"""

from __future__ import annotations

from rich.text import Text

from engine.saga.storage.enums import SagaStatus, SagaStepStatus
from engine.saga.storage.models import LaneView, LogRecord, SagaSummary
from saga_tui.textfmt import age, clean, clock, error_line, ms, short_id, took, truncate

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

Palette = dict[str, str]

# Plain ANSI colours for when no theme is at hand (tests, the CLI).
DEFAULT_PALETTE: Palette = {
    "ok": "green",
    "busy": "yellow",
    "bad": "red",
    "back": "blue",
    "dim": "dim",
    "mark": "bold",
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


def status_text(status: SagaStatus, palette: Palette | None = None) -> Text:
    """A status with its mark and colour, e.g. ``✗ FAILED``."""
    out = Text(f"{STATUS_MARKS[status]} {status.name}", style=STATUS_STYLES[status], end="")
    return paint(out, palette)


def progress_text(summary: SagaSummary, width: int = 5, palette: Palette | None = None) -> Text:
    """■■□ squares for the steps with the current step named, e.g. ``■■□ Charge ▶``."""
    total = max(summary.step_count, 0)
    done = max(0, min(summary.steps_done, total)) if total else 0
    status = summary.status
    out = Text(end="")
    if total:
        shown = min(total, width)
        filled = round(done * shown / total) if total else 0
        if status is SagaStatus.FAILED and filled < shown:
            out.append("■" * filled, style="ok")
            out.append("✗", style="bad")
            out.append("□" * (shown - filled - 1), style="dim")
        else:
            done_style = "back" if status in _BACKWARD else "ok"
            out.append("■" * filled, style=done_style)
            out.append("□" * (shown - filled), style="dim")
    if summary.current_step and status not in (SagaStatus.COMPLETED, SagaStatus.COMPENSATED):
        marker = {SagaStatus.COMPENSATING: "↺", SagaStatus.FAILED: "↺"}.get(status, "▶")
        out.append(" ")
        out.append(clean(summary.current_step), style=STATUS_STYLES[status])
        out.append(f" {marker}", style=STATUS_STYLES[status])
    return paint(out, palette)


_BACKWARD = frozenset({SagaStatus.COMPENSATING, SagaStatus.COMPENSATED})


def error_text(summary: SagaSummary, width: int = 40, palette: Palette | None = None) -> Text:
    """The saga's last error as one sanitized, truncated line."""
    if not summary.error_type and not summary.error_message:
        return Text("", end="")
    line = error_line(summary.error_type, summary.error_message)
    return paint(Text(truncate(clean(line), width), style="bad", end=""), palette)


def summary_row(
    summary: SagaSummary, marked: bool = False, palette: Palette | None = None
) -> tuple[Text, ...]:
    """The cells of one saga table row (all Text, so nothing is parsed as markup)."""
    cells = (
        paint(Text("*" if marked else " ", style="mark", end=""), palette),
        Text(short_id(summary.id), end=""),
        safe(truncate(clean(summary.name), 24)),
        status_text(summary.status, palette),
        progress_text(summary, palette=palette),
        Text(age(summary.updated_at), end=""),
        Text(took(summary), end=""),
        Text(str(summary.recovery_attempts), end=""),
        error_text(summary, palette=palette),
    )
    for cell in cells:
        # One line per cell: skipping the wrap pass makes a table repaint much cheaper.
        cell.no_wrap = True
        cell.overflow = "ellipsis"
    return cells


def lane_text(lane: LaneView, palette: Palette | None = None) -> Text:
    """One act/compensate lane: mark, status, duration and attempts."""
    if lane.status is None:
        return paint(Text("· not run", style="dim", end=""), palette)
    out = Text(
        f"{STEP_MARKS[lane.status]} {lane.status.name.lower()}", style=STEP_STYLES[lane.status]
    )
    if lane.duration_ms is not None:
        out.append(f"  {ms(lane.duration_ms)}")
    if lane.attempts > 1:
        out.append(f"  {lane.attempts} tries")
    out.end = ""
    return paint(out, palette)


def log_line(record: LogRecord, palette: Palette | None = None) -> Text:
    """One line of the live step stream."""
    status = record.status
    out = Text(end="")
    out.append(clock(record.created_at, millis=True), style="dim")
    out.append(f"  {short_id(record.saga_id)}  ")
    out.append(truncate(clean(record.saga_name), 16).ljust(16))
    out.append("  ")
    out.append(truncate(clean(record.step_name), 22).ljust(22))
    out.append(f"  {record.action:<10}  ")
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
