"""Pictures of time (Rich): sparklines, the header's pulse, a saga's step timeline.

Each picture is built from data already read (a ``Pulse``, a failure group's hour, a
saga's log); nothing here queries. Database text is cleaned like everywhere else.
"""

from __future__ import annotations

import dataclasses
import datetime
import typing

from rich.text import Text

from engine.saga.storage.enums import SagaStatus, SagaStepStatus
from engine.saga.storage.oncall import Pulse
from saga_tui.render import Palette, paint
from saga_tui.textfmt import aware, clean, ms, truncate

if typing.TYPE_CHECKING:
    from engine.saga.storage.models import SagaDetail, SagaLogEntry

BARS = "·▁▂▃▄▅▆▇█"
"""Zero is a dot (a blank stretch reads as nothing drawn), then eight heights."""


def squeeze(values: typing.Sequence[int], width: int) -> list[int]:
    """``values`` summed into at most ``width`` buckets (the newest bucket stays last)."""
    if width <= 0:
        return []
    if len(values) <= width:
        return list(values)
    per = -(-len(values) // width)  # ceil: whole old buckets per new one
    # Align from the end so the newest (still filling) bucket is never split.
    head = len(values) % per
    out = [sum(values[:head])] if head else []
    out += [sum(values[i : i + per]) for i in range(head, len(values), per)]
    return out


def sparkline(values: typing.Sequence[int], width: int | None = None) -> str:
    """``·▁▃█`` for counts: the biggest a full bar, any count above zero at least ``▁``."""
    shown = squeeze(values, width) if width is not None else list(values)
    top = max(shown, default=0)
    if top <= 0:
        return BARS[0] * len(shown)
    steps = len(BARS) - 1
    return "".join(BARS[0] if v <= 0 else BARS[max(1, round(v * steps / top))] for v in shown)


_PULSE_ROLES = (
    (SagaStatus.COMPLETED, "✓", "ok"),
    (SagaStatus.COMPENSATED, "↺", "back"),
    (SagaStatus.FAILED, "✗", "bad"),
)


def pulse_text(pulse: Pulse, width: int, palette: Palette | None = None) -> Text:
    """``last 10m  ✓ ▁▂▅█ 1,234  ↺ ▁ 3  ✗ ▁▁ 2``: sagas that ended, per interval, by status."""
    minutes = round(len(next(iter(pulse.series.values()), ())) * pulse.bucket_seconds / 60)
    head = f"last {minutes}m "
    totals = [f"{pulse.total(status):,}" for status, _, _ in _PULSE_ROLES]
    fixed = len(head) + sum(len(t) + 5 for t in totals)
    bars = max(4, (width - fixed) // 3)
    out = Text(head, style="dim", end="")
    for (status, mark, role), total in zip(_PULSE_ROLES, totals, strict=True):
        out.append(f" {mark} ", style=role)
        out.append(sparkline(pulse.series.get(status, ()), bars), style=role)
        out.append(f" {total}")
    out.truncate(width)
    return paint(out, palette)


# ---- the step timeline ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Segment:
    """One attempt of one step action, from start to end (end None: still running)."""

    step: str
    action: str
    start: datetime.datetime
    end: datetime.datetime | None
    status: SagaStepStatus | None
    attempt: int


def segments(logs: typing.Iterable[SagaLogEntry]) -> list[Segment]:
    """Every attempt in the log: a STARTED entry opens one, the next outcome closes it."""
    open_: dict[tuple[str, str], SagaLogEntry] = {}
    out: list[Segment] = []
    for entry in logs:
        key = (entry.step_name, entry.action)
        at = aware(entry.created_at)
        if entry.status is SagaStepStatus.STARTED:
            started = open_.pop(key, None)
            if started is not None:  # started again without an outcome: cut off
                out.append(_segment(started, None, at))
            open_[key] = entry
            continue
        started = open_.pop(key, None)
        if started is not None:
            out.append(_segment(started, entry.status, at))
        else:
            took = datetime.timedelta(milliseconds=entry.duration_ms or 0)
            out.append(
                Segment(entry.step_name, entry.action, at - took, at, entry.status, entry.attempt)
            )
    out += [_segment(entry, None, None) for entry in open_.values()]
    return sorted(out, key=lambda s: s.start)


def _segment(
    started: SagaLogEntry, status: SagaStepStatus | None, end: datetime.datetime | None
) -> Segment:
    return Segment(
        started.step_name,
        started.action,
        aware(started.created_at),
        end,
        status,
        started.attempt,
    )


_FILL = {
    SagaStepStatus.COMPLETED: ("█", "ok"),
    SagaStepStatus.FAILED: ("✗", "bad"),
    SagaStepStatus.COMPENSATED: ("▒", "back"),
    None: ("▶", "busy"),
}
LABEL_WIDTH = 18


def timeline_text(
    detail: SagaDetail,
    width: int,
    now: datetime.datetime,
    palette: Palette | None = None,
) -> Text:
    """One line per step: its act (█, ✗ per failed try) and compensation (▒) on one axis."""
    parts = segments(detail.logs)
    # One screen line per step, always: a bar that does not fit is cut, never wrapped.
    out = Text(end="", no_wrap=True, overflow="crop")
    out.append("Timeline", style="bold")
    if not parts:
        out.append("  (no step has run yet)", style="dim")
        return out
    start = min(p.start for p in parts)
    end = max((p.end or aware(now)) for p in parts)
    span = max((end - start).total_seconds(), 1e-3)
    cells = max(10, width - LABEL_WIDTH - 2)
    out.append(
        f"  0 → {ms(span * 1000)} · █ act  ✗ failed try  ▒ compensate  ▶ running\n", style="dim"
    )
    steps = list(dict.fromkeys(p.step for p in parts))
    for index, step in enumerate(steps):
        row: list[tuple[str, str]] = [(" ", "")] * cells
        for part in (p for p in parts if p.step == step):
            first = int((part.start - start).total_seconds() / span * (cells - 1))
            stop = (part.end or aware(now)) - start
            last = max(first, int(stop.total_seconds() / span * (cells - 1)))
            char, role = _FILL[part.status]
            if part.action == "compensate" and part.status is not SagaStepStatus.FAILED:
                char, role = "▒", "back" if part.status is not None else "busy"
            for cell in range(first, min(last, cells - 1) + 1):
                row[cell] = (char, role)
        out.append(truncate(clean(step), LABEL_WIDTH - 1).ljust(LABEL_WIDTH))
        out.append("│", style="dim")
        for char, role in row:
            out.append(char, style=role)
        if index < len(steps) - 1:
            out.append("\n")
    return paint(out, palette)
