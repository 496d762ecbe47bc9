"""Pure rendering helpers: status marks, progress bars, durations and safe text.

Everything that comes from the database goes through :func:`safe` (or :func:`clean`)
so it is displayed as text: never parsed as markup, never with raw control characters.
"""

from __future__ import annotations

import datetime
import re

from rich.text import Text

from engine.saga.storage.enums import SagaStatus, SagaStepStatus
from engine.saga.storage.models import LaneView, LogRecord, SagaSummary

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


# C0 and C1 controls plus DEL; tab and newline are kept only where multi-line text is wanted.
# Also the invisible Unicode format characters that reorder or hide text (bidi overrides,
# zero-width characters, line separators), so what is shown is what is stored.
_INVISIBLE = "\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff"
_CONTROL = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{_INVISIBLE}]")
_CONTROL_ONE_LINE = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_INVISIBLE}]")
_NAMED = {"\x1b": "\\x1b", "\x07": "\\a", "\r": "\\r", "\n": "\\n", "\t": "\\t", "\x08": "\\b"}


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    code = ord(char)
    return _NAMED.get(char, f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def clean(value: object, *, multiline: bool = False) -> str:
    """The value as a str with every control character replaced by a visible escape."""
    text = "" if value is None else str(value)
    pattern = _CONTROL if multiline else _CONTROL_ONE_LINE
    return pattern.sub(_escape, text)


def safe(value: object, style: str = "", *, multiline: bool = False) -> Text:
    """Database text as a rich Text: literal (no markup) and free of control characters."""
    return Text(clean(value, multiline=multiline), style=style, end="")


def truncate(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` cells with an ellipsis."""
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def short_id(saga_id: object) -> str:
    """The first eight characters of a saga id, as shown in tables."""
    return str(saga_id)[:8]


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


def duration(seconds: float | None) -> str:
    """A compact duration: ``41 ms``, ``1.2s``, ``3m05s``, ``2h04m``, ``3d4h``."""
    if seconds is None:
        return ""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return f"{int(seconds // 86400)}d{int(seconds % 86400 // 3600)}h"


def ms(value: float | None) -> str:
    """Milliseconds as a compact duration (empty when unknown)."""
    return "" if value is None else duration(value / 1000)


def _aware(moment: datetime.datetime) -> datetime.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def age(moment: datetime.datetime | None, now: datetime.datetime | None = None) -> str:
    """How long ago ``moment`` was, compactly (``0.4s``, ``3m05s``)."""
    if moment is None:
        return ""
    now = now or datetime.datetime.now(datetime.UTC)
    return duration((_aware(now) - _aware(moment)).total_seconds())


def took(summary: SagaSummary, now: datetime.datetime | None = None) -> str:
    """Wall time of a saga: to its finish, or so far while it is not finished."""
    if summary.status.is_terminal:
        return duration(summary.duration.total_seconds())
    return age(summary.created_at, now)


def clock(moment: datetime.datetime | None, *, millis: bool = False) -> str:
    """Local wall-clock time of ``moment``."""
    if moment is None:
        return ""
    local = _aware(moment).astimezone()
    return local.strftime("%H:%M:%S.%f")[:-3] if millis else local.strftime("%H:%M:%S")


def timestamp(moment: datetime.datetime | None) -> str:
    """Local date and time of ``moment``."""
    if moment is None:
        return ""
    return _aware(moment).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def error_text(summary: SagaSummary, width: int = 40, palette: Palette | None = None) -> Text:
    """The saga's last error as one sanitized, truncated line."""
    if not summary.error_type and not summary.error_message:
        return Text("", end="")
    line = f"{summary.error_type or 'Error'}: {summary.error_message or ''}".strip()
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
        message = f"{record.error_type or 'Error'}: {record.error_message or ''}"
        out.append(f"{mark} {truncate(clean(message), 60)}", style=STEP_STYLES[status])
    else:
        done = ms(record.duration_ms) or status.name.lower()
        out.append(f"{mark} {done}", style=STEP_STYLES[status])
    return paint(out, palette)
