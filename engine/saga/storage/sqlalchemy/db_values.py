"""Values as stored: the same text forms SQLAlchemy (and python-cqrs) write on SQLite.

The raw SQLite write path binds these itself, so both paths produce identical rows:
ids as 32 hex digits, times as naive UTC ``YYYY-MM-DD HH:MM:SS.ffffff``, statuses as
upper-case names.
"""

from __future__ import annotations

import datetime
import json
import typing
import uuid

from engine.saga.storage.enums import RequestedAction

UTC = datetime.UTC


def utcnow() -> datetime.datetime:
    """The current time, timezone-aware UTC."""
    return datetime.datetime.now(UTC)


def as_utc(value: datetime.datetime) -> datetime.datetime:
    """An aware UTC datetime; naive values are taken as UTC (SQLite stores no zone)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def time_to_db(value: datetime.datetime) -> str:
    """SQLAlchemy's SQLite DATETIME text for an instant."""
    return as_utc(value).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def time_from_db(value: typing.Any) -> datetime.datetime:
    """A stored time (text on SQLite, datetime elsewhere) as aware UTC."""
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    return as_utc(value)


def maybe_time(value: typing.Any) -> datetime.datetime | None:
    """Like time_from_db, passing None through."""
    return None if value is None else time_from_db(value)


def uuid_to_db(value: uuid.UUID) -> str:
    """SQLAlchemy's non-native Uuid form: 32 hex digits."""
    return value.hex


def action_from_db(value: str | None) -> RequestedAction | None:
    """A stored requested action."""
    return None if value is None else RequestedAction(value)


_ENCODE = json.JSONEncoder(allow_nan=False).encode


def context_to_db(context: typing.Any) -> str:
    """Context as JSON text, as SQLAlchemy's JSON type writes it (``json.dumps``).

    The engine hands over JSON-ready data; anything else is refused (TypeError) as the
    Core path refuses it, instead of being stored as its ``str``; so is NaN or Infinity
    (ValueError), which JSON cannot carry and PostgreSQL refuses.
    """
    return _ENCODE(context)


def context_from_db(raw: typing.Any) -> tuple[dict[str, typing.Any] | None, str, str | None]:
    """Parse a stored context: (value or None, raw text, one-line reason or None)."""
    if isinstance(raw, dict):
        return raw, json.dumps(raw, default=str), None
    text = raw if isinstance(raw, str) else (raw.decode("utf-8", "replace") if raw else "")
    try:
        value = json.loads(text)
    except ValueError as exc:
        return None, text, f"context is not valid JSON: {exc}"
    if not isinstance(value, dict):
        return None, text, f"context is a JSON {type(value).__name__}, not an object"
    return value, text, None
