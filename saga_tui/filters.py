"""The filter syntax: ``status:failed name:Order free text`` <-> SagaFilter."""

from __future__ import annotations

import shlex
import typing

from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import SagaFilter


class FilterError(ValueError):
    """The filter text cannot be understood; the message says why in one line."""


_STATUS_KEYS = ("status", "s")
_NAME_KEYS = ("name", "saga", "n")


def parse_status(word: str) -> SagaStatus:
    """One status from its name or a unique prefix, any case (``fail`` is FAILED)."""
    key = word.strip().upper()
    for status in SagaStatus:
        if status.name == key:
            return status
    found = [s for s in SagaStatus if s.name.startswith(key)] if key else []
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        which = ", ".join(s.name.lower() for s in found)
        raise FilterError(f"ambiguous status {word.strip()!r}: {which}?")
    names = ", ".join(s.name.lower() for s in SagaStatus)
    raise FilterError(f"unknown status {word.strip()!r}: use one of {names}")


def parse_statuses(values: typing.Iterable[str]) -> tuple[SagaStatus, ...]:
    """Statuses from comma-separated words (``failed,run``), each once, in order."""
    out: list[SagaStatus] = []
    for value in values:
        for part in value.split(","):
            if part.strip():
                status = parse_status(part)
                if status not in out:
                    out.append(status)
    return tuple(out)


def parse_filter(text: str) -> SagaFilter:
    """Parse ``status:failed,running name:Order text`` into a SagaFilter (pure)."""
    try:
        words = shlex.split(text)
    except ValueError:
        # An unbalanced quote: fall back to plain whitespace splitting.
        words = text.split()
    statuses: list[SagaStatus] = []
    names: list[str] = []
    free: list[str] = []
    for word in words:
        key, sep, value = word.partition(":")
        key = key.lower()
        if sep and key in _STATUS_KEYS:
            statuses += [s for s in parse_statuses([value]) if s not in statuses]
        elif sep and key in _NAME_KEYS:
            if value:
                names.append(value)
        else:
            free.append(word)
    return SagaFilter(
        statuses=tuple(statuses),
        name=" ".join(names) or None,
        text=" ".join(free) or None,
    )


def format_filter(saga_filter: SagaFilter) -> str:
    """The filter as text the parser reads back to the same SagaFilter."""
    parts: list[str] = []
    if saga_filter.statuses:
        parts.append("status:" + ",".join(s.name.lower() for s in saga_filter.statuses))
    if saga_filter.name:
        parts.append("name:" + _quote(saga_filter.name))
    if saga_filter.text:
        parts.append(" ".join(_quote(w) for w in saga_filter.text.split(" ")))
    return " ".join(parts)


def _quote(word: str) -> str:
    return shlex.quote(word) if any(c.isspace() or c in "'\"" for c in word) else word
