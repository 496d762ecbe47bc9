"""The filter syntax: ``status:failed name:Order events:failed free text`` <-> SagaFilter.

``status:stranded`` (or ``is:stale``) keeps unfinished sagas nobody runs, ``key:ord-9ca8``
business keys starting so, ``group:KEY`` one failure group. Mistakes are errors with one
line that says what to type instead: an unknown key (``foo:bar``, ``is:done``), a key with
no value (``name:``), a status no name starts with. A status word is a name or the start
of names (``comp`` is completed, compensating and compensated). Text that holds a colon
is free text when quoted.
"""

from __future__ import annotations

import re
import typing

from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import SagaFilter
from saga_tui.ids import id_prefix, looks_like_id


class FilterError(ValueError):
    """The filter text cannot be understood; the message says why in one line."""


_STATUS_KEYS = ("status", "s")
_NAME_KEYS = ("name", "saga", "n")
_IS_KEYS = ("is",)
_BUSINESS_KEYS = ("key", "k")
_GROUP_KEYS = ("group",)
_EVENT_KEYS = ("events",)
_EVENT_STATES = ("failed", "pending")
_WORKER_KEYS = ("worker",)
_KEY = re.compile(r"([A-Za-z_]+):(.*)", re.S)
_ALL_KEYS = (
    _STATUS_KEYS + _NAME_KEYS + _IS_KEYS + _BUSINESS_KEYS + _GROUP_KEYS + _EVENT_KEYS + _WORKER_KEYS
)
STRANDED_WORDS = ("stranded", "stale")
"""``status:stranded`` / ``is:stale``: unfinished sagas nobody runs (not a stored status)."""
HELP = (
    "use status:NAME (or status:stranded), name:TEXT, key:BUSINESS-KEY, group:KEY, "
    "events:failed|pending, worker:NAME or free text "
    '(quote text that holds a colon: "a:b")'
)


def parse_status(word: str) -> tuple[SagaStatus, ...]:
    """The statuses a word names: a name, or every status it starts (any case)."""
    key = word.strip().upper()
    for status in SagaStatus:
        if status.name == key:
            return (status,)
    found = tuple(s for s in SagaStatus if s.name.startswith(key)) if key else ()
    if found:
        return found
    names = ", ".join(s.name.lower() for s in SagaStatus)
    raise FilterError(f"unknown status {word.strip()!r}: use one of {names} (or their start)")


def parse_statuses(values: typing.Iterable[str]) -> tuple[SagaStatus, ...]:
    """Statuses from comma-separated words (``failed,run``), each once, in order."""
    return _statuses(values)[0]


def _statuses(values: typing.Iterable[str]) -> tuple[tuple[SagaStatus, ...], bool]:
    """The statuses named, and whether ``stranded`` (or ``stale``) was one of the words."""
    out: list[SagaStatus] = []
    stranded = False
    for value in values:
        for part in value.split(","):
            if part.strip().lower() in STRANDED_WORDS:
                stranded = True
            elif part.strip():
                out += [s for s in parse_status(part) if s not in out]
    return tuple(out), stranded


def _words(text: str) -> list[tuple[str, bool]]:
    """Whitespace-separated words with quotes removed; (word, did it start with a quote).

    A quote without a closing partner is an ordinary character (``it's broken``).
    """
    words: list[tuple[str, bool]] = []
    word: list[str] = []
    quote: str | None = None
    started = leading_quote = False
    for index, char in enumerate(text):
        if quote is not None:
            if char == quote:
                quote = None
            else:
                word.append(char)
        elif char in "'\"" and text.find(char, index + 1) != -1:
            quote = char
            leading_quote = leading_quote or not started
            started = True
        elif char.isspace():
            if started:
                words.append(("".join(word), leading_quote))
            word, started, leading_quote = [], False, False
        else:
            word.append(char)
            started = True
    if started:
        words.append(("".join(word), leading_quote))
    return words


def parse_filter(text: str) -> SagaFilter:
    """Parse ``status:failed,running name:Order text`` into a SagaFilter (pure)."""
    statuses: list[SagaStatus] = []
    names: list[str] = []
    free: list[str] = []
    stranded = False
    business: str | None = None
    group: str | None = None
    events: str | None = None
    worker: str | None = None
    for word, quoted in _words(text):
        if not quoted and looks_like_id(word):
            free.append(id_prefix(word) or word)  # any spelling of a whole id
            continue
        found = None if quoted else _KEY.fullmatch(word)
        if found is None:
            free.append(word)
            continue
        key, value = found.group(1).lower(), found.group(2)
        if key not in _ALL_KEYS:
            raise FilterError(f"unknown filter {word!r}: {HELP}")
        if not value.strip():
            raise FilterError(f"{key}: needs a value, e.g. {key}:{_EXAMPLES[key]}")
        if key in _EVENT_KEYS:
            events = parse_event_state(value)
        elif key in _STATUS_KEYS:
            named, strand = _statuses([value])
            statuses += [s for s in named if s not in statuses]
            stranded = stranded or strand
        elif key in _IS_KEYS:
            if value.strip().lower() not in STRANDED_WORDS:
                raise FilterError(f"unknown filter {word!r}: is: takes stranded or stale")
            stranded = True
        elif key in _BUSINESS_KEYS:
            business = value.strip()
        elif key in _GROUP_KEYS:
            group = value.strip().lower()
        elif key in _WORKER_KEYS:
            worker = value.strip()
        else:
            names.append(value)
    return SagaFilter(
        statuses=tuple(statuses),
        name=" ".join(names) or None,
        text=" ".join(free) or None,
        stranded=stranded,
        key=business,
        failure_key=group,
        events=events,
        worker=worker,
    )


def parse_event_state(word: str) -> str:
    """The event state ``events:`` names: failed or pending, or their start (any case)."""
    key = word.strip().lower()
    found = [s for s in _EVENT_STATES if s.startswith(key)]
    if not key or len(found) != 1:
        raise FilterError(
            f"unknown event state {word.strip()!r}: use events:failed or events:pending"
        )
    return found[0].upper()


_EXAMPLES = {
    "events": "failed",
    "status": "failed",
    "s": "failed",
    "name": "Order",
    "saga": "Order",
    "n": "Order",
    "is": "stranded",
    "key": "ord-9ca8",
    "k": "ord-9ca8",
    "group": "3f2a9c1e0b7d4a21",
    "worker": "w1",
}


def format_filter(saga_filter: SagaFilter) -> str:
    """The filter as text the parser reads back to the same SagaFilter."""
    parts: list[str] = []
    words = [s.name.lower() for s in saga_filter.statuses]
    if saga_filter.stranded:
        words.append("stranded")
    if words:
        parts.append("status:" + ",".join(words))
    if saga_filter.key:
        parts.append("key:" + _quote(saga_filter.key))
    if saga_filter.failure_key:
        parts.append("group:" + saga_filter.failure_key)
    if saga_filter.name:
        parts.append("name:" + _quote(saga_filter.name))
    if saga_filter.events:
        parts.append("events:" + saga_filter.events.lower())
    if saga_filter.worker:
        parts.append("worker:" + _quote(saga_filter.worker))
    if saga_filter.text:
        parts.append(" ".join(_quote(w) for w in saga_filter.text.split(" ")))
    return " ".join(parts)


def status_hint(saga_filter: SagaFilter) -> str | None:
    """``status:stranded`` when free text names a status (``stranded``, ``failed``), else None.

    A bare word is text to search for, not a status; when nothing matched, the list says
    what the user probably meant.
    """
    for word in (saga_filter.text or "").split():
        key = word.lower()
        if key in STRANDED_WORDS and not saga_filter.stranded:
            return "status:stranded"
        status = SagaStatus.__members__.get(key.upper())
        if status is not None and status not in saga_filter.statuses:
            return f"status:{key}"
    return None


def _quote(word: str) -> str:
    if any(c.isspace() for c in word) or ":" in word or "'" in word or '"' in word:
        return '"' + word + '"' if '"' not in word else "'" + word + "'"
    return word
