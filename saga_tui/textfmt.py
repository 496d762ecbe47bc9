"""Plain-text wording shared by the dashboard (render.py) and the command line (textout.py).

No Rich, no Textual: durations, ages, clock times, progress, the error line, short ids,
and the one sanitizer, :func:`clean`, that every piece of database text goes through
before it reaches a terminal (control characters become visible escapes).
"""

from __future__ import annotations

import datetime
import functools
import re

from engine.saga.failure import safe_text
from engine.saga.lease import DeadOwners, lease_lapsed
from engine.saga.storage.enums import ACTIVE_STATUSES, SagaStatus
from engine.saga.storage.models import SagaSummary

# C0 and C1 controls plus DEL; tab and newline are kept only where multi-line text is wanted.
# Also the invisible Unicode format characters that reorder or hide text (bidi overrides,
# zero-width characters, line separators), so what is shown is what is stored.
# Emoji parts whose width terminals disagree on (a tmux shows the skin tone of 👍🏽 as a
# second emoji, a newer terminal joins them) are escaped too, so no border moves.
_INVISIBLE = (
    "\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\u20e3\U0001f3fb-\U0001f3ff\U000e0000-\U000e007f"
)
_CONTROL = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{_INVISIBLE}]")
_CONTROL_ONE_LINE = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_INVISIBLE}]")
# Variation selectors only pick a glyph style (❤️ or ❤); rich counts ❤️ two cells and
# many terminals one, so they are dropped.
_STYLE_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")
_NAMED = {"\x1b": "\\x1b", "\x07": "\\a", "\r": "\\r", "\n": "\\n", "\t": "\\t", "\x08": "\\b"}


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    code = ord(char)
    if code < 0x100:
        return _NAMED.get(char, f"\\x{code:02x}")
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def clean(value: object, *, multiline: bool = False) -> str:
    """The value as a str with every control character replaced by a visible escape."""
    text = "" if value is None else str(value)
    pattern = _CONTROL if multiline else _CONTROL_ONE_LINE
    return _STYLE_SELECTORS.sub("", pattern.sub(_escape, text))


def one_line(exc: BaseException, *, with_type: bool = False) -> str:
    """An exception's first message line, cleaned (its type name when it has no message).

    ``with_type`` prefixes the type (``TimeoutError: gateway``), for a reader who did not
    choose the operation that failed.
    """
    lines = safe_text(exc).strip().splitlines()
    message = clean(lines[0]) if lines else ""
    name = type(exc).__name__
    if not message:
        return name
    return f"{name}: {message}" if with_type else message


def error_line(error_type: str | None, error_message: str | None) -> str:
    """``Type: message`` of a stored error (empty when there is none); not yet cleaned."""
    if not error_type and not error_message:
        return ""
    if not error_message:
        return error_type or ""
    return f"{error_type or 'Error'}: {error_message}"


UNREADABLE = "UNREADABLE"
"""What a row shows for its status when a stored field of it does not parse."""


def row_error(summary: SagaSummary) -> str:
    """The ERROR column of a saga row: why it is unreadable, else its last error; not cleaned."""
    if summary.unreadable:
        return f"unreadable row: {summary.unreadable}"
    return error_line(summary.error_type, summary.error_message)


def status_word(summary: SagaSummary) -> str:
    """The status of a saga row as a word (UNREADABLE when the row does not parse)."""
    return UNREADABLE if summary.unreadable else summary.status.name


def short_id(saga_id: object) -> str:
    """The first eight characters of a saga id, as shown in tables."""
    return str(saga_id)[:8]


def truncate(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` cells with an ellipsis."""
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


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


def aware(moment: datetime.datetime) -> datetime.datetime:
    """``moment`` with a time zone: a naive time from the database is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def utcnow() -> datetime.datetime:
    """The time now, in UTC: the one clock of ages, the title and the detail."""
    return _now()


# Snapshot tests replace this to freeze the clock.
_now = functools.partial(datetime.datetime.now, datetime.UTC)


def age(moment: datetime.datetime | None, now: datetime.datetime | None = None) -> str:
    """How long ago ``moment`` was: ``4s``, ``3m``, ``2h04m``, ``3d4h``; naive times are UTC.

    Whole seconds only under a minute and whole minutes under an hour: an age that
    changed every tenth of a second would repaint every row of a live list.
    """
    if moment is None:
        return ""
    now = now or utcnow()
    seconds = max(0.0, (aware(now) - aware(moment)).total_seconds())
    if seconds < 60:
        return f"{int(seconds)}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    return duration(seconds)


def when(moment: datetime.datetime | None, now: datetime.datetime | None = None) -> str:
    """Local time of ``moment``: ``16:58:41`` today, ``11-26 16:58`` on another day."""
    if moment is None:
        return ""
    local = aware(moment).astimezone()
    today = aware(now or utcnow()).astimezone().date()
    return local.strftime("%H:%M:%S" if local.date() == today else "%m-%d %H:%M")


def zone(moment: datetime.datetime | None = None) -> str:
    """The local time zone's name as ``TZ`` sets it (``JST``, ``UTC``; else ``+0900``)."""
    local = aware(moment or utcnow()).astimezone()
    name = local.strftime("%Z")
    return name if name and name.isalpha() else local.strftime("%z")


def zone_offset(moment: datetime.datetime | None = None) -> str:
    """The local offset from UTC: ``UTC+09:00``."""
    offset = aware(moment or utcnow()).astimezone().strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"


def took(summary: SagaSummary, now: datetime.datetime | None = None) -> str:
    """Wall time of a saga: to its finish, or so far while it is not finished."""
    if summary.status.is_terminal:
        return duration(summary.duration.total_seconds())
    return age(summary.created_at, now)


def clock(moment: datetime.datetime | None, *, millis: bool = False) -> str:
    """Local wall-clock time of ``moment`` (``14:41:41.204`` with milliseconds)."""
    if moment is None:
        return ""
    local = aware(moment).astimezone()
    return local.strftime("%H:%M:%S.%f")[:-3] if millis else local.strftime("%H:%M:%S")


def timestamp(moment: datetime.datetime | None, *, millis: bool = False) -> str:
    """Local date and time of ``moment`` (``2025-11-27 14:41:41.204`` with milliseconds)."""
    if moment is None:
        return ""
    text = aware(moment).astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")
    return text[:-3] if millis else text[:-7]


def iso(moment: datetime.datetime | None) -> str | None:
    """An ISO 8601 timestamp, None kept."""
    return moment.isoformat() if moment is not None else None


def progress(summary: SagaSummary) -> str:
    """Steps done out of all, with the current step while the saga is not finished."""
    text = f"{summary.steps_done}/{summary.step_count}"
    if summary.current_step and summary.status not in _FINISHED:
        text += f" {summary.current_step}"
    return text


_FINISHED = frozenset({SagaStatus.COMPLETED, SagaStatus.COMPENSATED})


def plural(count: int, noun: str) -> str:
    """``1 saga``, ``3 sagas``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


_DEAD = DeadOwners(ttl=2.0)


def is_stranded(summary: SagaSummary, now: float) -> bool:
    """Unfinished and nobody runs it: no lease, an expired one, or its owner's process gone.

    A row that could not be read is shown as unreadable, never guessed to be stranded.
    """
    if summary.unreadable or summary.status not in ACTIVE_STATUSES:
        return False
    return lease_lapsed(summary.lease_owner, summary.lease_expires, now, _DEAD)


def why_stranded(summary: SagaSummary, now: datetime.datetime) -> str:
    """``nobody runs it: owner gone for 2m`` (how long its lease has been lapsed)."""
    if summary.lease_owner is None:
        return "nobody runs it (no owner)"
    expires = summary.lease_expires
    if expires is not None and expires < now.timestamp():
        lapsed = datetime.datetime.fromtimestamp(expires, datetime.UTC)
        return f"nobody runs it: owner gone for {age(lapsed, now)}"
    return "nobody runs it: the owner's process is gone"


REASON_LENGTH = 200
"""The longest reason an operator may give (it is one line of a saga's history)."""


def operator_reason(origin: str, typed: str | None) -> str:
    """What is stored with an operator action: where it came from, then why, if told."""
    why = clean(" ".join((typed or "").split()))
    return f"{origin}: {why}" if why else origin
