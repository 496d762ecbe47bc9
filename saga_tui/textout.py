"""Plain-text and JSON renderings of query results for the headless commands.

The wording is textfmt's, as on the dashboard. Text from the database is escaped before
it reaches a terminal: a stored ESC byte is printed as ``\\x1b``, never sent raw. JSON
output relies on ``json.dumps``'s escaping.
"""

from __future__ import annotations

import datetime
import json
import time
import typing

from engine.saga.storage.models import (
    LaneView,
    LogRecord,
    OperatorAction,
    SagaDetail,
    SagaSummary,
    StepView,
)
from engine.saga.storage.oncall import FailureGroup
from saga_tui.textfmt import (
    age,
    clean,
    error_line,
    is_stranded,
    iso,
    ms,
    progress,
    row_error,
    short_id,
    status_word,
    took,
    utcnow,
    why_stranded,
)


def summary_json(summary: SagaSummary) -> dict[str, typing.Any]:
    """One saga row as JSON data."""
    return {
        "id": str(summary.id),
        "name": summary.name,
        "status": summary.status.name,
        "created_at": iso(summary.created_at),
        "updated_at": iso(summary.updated_at),
        "finished_at": iso(summary.finished_at),
        "duration_seconds": round(summary.duration.total_seconds(), 6),
        "step_count": summary.step_count,
        "steps_done": summary.steps_done,
        "current_step": summary.current_step or None,
        "recovery_attempts": summary.recovery_attempts,
        "tries": summary.tries,
        "error_type": summary.error_type,
        "error_message": summary.error_message,
        "lease_owner": summary.lease_owner,
        "lease_expires": summary.lease_expires,
        "requested_action": summary.requested_action.name if summary.requested_action else None,
        "version": summary.version,
        "unreadable": summary.unreadable,
        "stranded": stranded(summary),
        "search_key": summary.search_key,
        "failure_key": summary.failure_key,
    }


def stranded(summary: SagaSummary, now: float | None = None) -> bool:
    """Unfinished and nobody runs it (the dashboard's rule, ``textfmt.is_stranded``)."""
    return is_stranded(summary, time.time() if now is None else now)


def shown_status(summary: SagaSummary, strand: bool | None = None) -> str:
    """The status word a reader sees: STRANDED for a saga nobody runs, else the stored one."""
    return "STRANDED" if (stranded(summary) if strand is None else strand) else status_word(summary)


def _lane_json(lane: LaneView) -> dict[str, typing.Any]:
    return {
        "status": lane.status.name if lane.status else None,
        "attempts": lane.attempts,
        "duration_ms": lane.duration_ms,
        "started_at": iso(lane.started_at),
        "error_type": lane.error_type,
        "error_message": lane.error_message,
    }


def _log_json(entry: LogRecord) -> dict[str, typing.Any]:
    return {
        "id": entry.id,
        "step": entry.step_name,
        "action": entry.action,
        "status": entry.status.name,
        "created_at": iso(entry.created_at),
        "attempt": entry.attempt,
        "duration_ms": entry.duration_ms,
        "details": entry.details,
        "error_type": entry.error_type,
        "error_message": entry.error_message,
        "error_traceback": entry.error_traceback,
    }


def _audit_json(action: OperatorAction) -> dict[str, typing.Any]:
    return {
        "action": action.action,
        "reason": action.reason,
        "os_user": action.os_user,
        "host": action.host,
        "outcome": action.outcome,
        "created_at": iso(action.created_at),
    }


def detail_json(detail: SagaDetail) -> dict[str, typing.Any]:
    """One saga in full as JSON data."""
    return {
        **summary_json(detail.summary),
        "context": detail.context,
        "context_raw": detail.context_raw if detail.context is None else None,
        "context_error": detail.context_error,
        "error_traceback": detail.error_traceback,
        "steps": [
            {"name": s.name, "act": _lane_json(s.act), "compensate": _lane_json(s.compensate)}
            for s in detail.steps
        ],
        "log": [_log_json(e) for e in detail.logs],
        "history": [_audit_json(a) for a in detail.audit],
    }


def dumps(data: typing.Any) -> str:
    """JSON text; anything not JSON-native becomes its string form."""
    return json.dumps(data, indent=2, default=str)


TABLE_COLUMNS = ("ID", "SAGA", "KEY", "STATUS", "PROGRESS", "UPDATED", "TOOK", "TRIES", "ERROR")


def table(rows: typing.Sequence[SagaSummary]) -> list[str]:
    """The saga table as aligned lines (KEY only when a saga shown has a business key)."""
    cells = [
        [
            short_id(s.id),
            clean(s.name),
            clean(s.search_key or ""),
            shown_status(s),
            clean(progress(s)),
            age(s.updated_at),
            took(s),
            str(s.tries) if s.tries else "",
            clean(row_error(s))[:60],
        ]
        for s in rows
    ]
    header = list(TABLE_COLUMNS)
    if not any(s.search_key for s in rows):
        key = header.index("KEY")
        header.pop(key)
        for row in cells:
            row.pop(key)
    widths = [len(h) for h in header]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = []
    for row in [header, *cells]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return lines


def _lane_text(lane: LaneView) -> str:
    if lane.status is None:
        return "-"
    text = lane.status.name
    if lane.duration_ms is not None:
        text += f" {ms(lane.duration_ms)}"
    if lane.attempts > 1:
        text += f" ({lane.attempts} tries)"
    if lane.error_type:
        text += f" ({lane.error_type})"
    return text


def _steps_text(steps: typing.Sequence[StepView]) -> list[str]:
    width = max((len(clean(s.name)) for s in steps), default=4)
    lines = [f"  {'STEP'.ljust(width)}  {'ACT':<28}  COMPENSATE"]
    for step in steps:
        lines.append(
            f"  {clean(step.name).ljust(width)}  {_lane_text(step.act):<28}  "
            f"{_lane_text(step.compensate)}"
        )
    return lines


def detail_text(detail: SagaDetail) -> list[str]:
    """One saga in full as readable lines."""
    s = detail.summary
    strand = stranded(s)
    lines = [
        f"{clean(s.name)}  {s.id}  {shown_status(s, strand)}",
        f"created {iso(s.created_at)}  updated {iso(s.updated_at)}  "
        f"took {took(s)}  tries {s.tries}  recoveries {s.recovery_attempts}  "
        f"steps {progress(s) if s.step_count else s.steps_done}",
    ]
    if s.lease_owner:
        until = (
            iso(datetime.datetime.fromtimestamp(s.lease_expires, datetime.UTC))
            if s.lease_expires is not None
            else "none"
        )
        lines.append(f"owner {clean(s.lease_owner)}  lease until {until}")
    if strand:
        lines.append(
            f"stranded: stored as {s.status.name}, {why_stranded(s, utcnow())}; "
            f"`saga-tui recover {s.id}` resumes it"
        )
    if s.requested_action:
        lines.append(f"requested: {s.requested_action.name}")
    if s.unreadable:
        lines.append(f"unreadable row: {s.unreadable}")
    if error := error_line(s.error_type, s.error_message):
        lines.append(f"error: {clean(error)}")
    lines += ["", "Steps:", *_steps_text(detail.steps), "", "Context:"]
    if detail.context is not None:
        lines += ["  " + clean(line) for line in dumps(detail.context).splitlines()]
    else:
        lines.append(f"  (does not parse: {clean(detail.context_error or '')})")
        lines.append("  " + clean(detail.context_raw))
    if detail.error_traceback:
        lines += ["", "Traceback:"]
        lines += ["  " + clean(line) for line in detail.error_traceback.splitlines()]
    lines += ["", "Log:"]
    for e in detail.logs:
        error = error_line(e.error_type, e.error_message)
        error = f"  {error}" if error else ""
        lasted = f" {ms(e.duration_ms)}" if e.duration_ms is not None else ""
        lines.append(
            clean(
                f"  {e.id:>6}  {iso(e.created_at)}  {e.step_name}  {e.action}  "
                f"{e.status.name}{lasted}  try {e.attempt}{error}"
            )
        )
    if detail.audit:
        lines += ["", "History:"]
        for a in detail.audit:
            reason = f" ({a.reason})" if a.reason else ""
            lines.append(
                clean(
                    f"  {iso(a.created_at)}  {a.os_user}@{a.host}  {a.action}{reason}"
                    f" -> {a.outcome}"
                )
            )
    # Every line once more through the sanitizer: any field missed above (a step name
    # in a lane, the current step in the progress) cannot reach the terminal raw.
    return [clean(line) for line in lines]


def group_json(group: FailureGroup) -> dict[str, typing.Any]:
    """One failure group as JSON."""
    return {
        "key": group.key,
        "saga": group.saga_name,
        "step": group.step,
        "error_type": group.error_type,
        "pattern": group.pattern,
        "example": group.example,
        "count": group.count,
        "by_status": {status.name: n for status, n in group.by_status.items()},
        "first_seen": group.first_seen.isoformat(),
        "last_seen": group.last_seen.isoformat(),
        "last_hour": list(group.hour),
        "filter": f"group:{group.key}",
    }


GROUP_COLUMNS = ("COUNT", "SAGA", "STEP", "ERROR", "LAST", "GROUP", "MESSAGE")


def groups_table(groups: typing.Sequence[FailureGroup]) -> list[str]:
    """The failure groups as aligned lines (GROUP is what ``group:KEY`` filters by)."""
    cells = [
        [
            f"{g.count:,}",
            clean(g.saga_name),
            clean(g.step),
            clean(g.error_type),
            age(g.last_seen),
            g.key,
            clean(g.pattern)[:70],
        ]
        for g in groups
    ]
    widths = [len(h) for h in GROUP_COLUMNS]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [list(GROUP_COLUMNS), *cells]
    ]
