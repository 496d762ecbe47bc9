"""Failures grouped by cause: a message with its variable parts taken out, and the key.

Two failures are one cause when they happened in the same saga type, in the same step,
with the same exception type, and their messages differ only in numbers, ids and quoted
values (``card 'ada' declined for 99.80`` and ``card 'bob' declined for 12.00``). The key
is computed where the failure is written and stored, indexed, on the saga, so grouping a
million sagas is one grouped query over an index.
"""

from __future__ import annotations

import hashlib
import re
import typing

from engine.saga.storage.enums import SagaStepStatus
from engine.saga.storage.models import ErrorInfo, FailureMark

if typing.TYPE_CHECKING:
    from engine.saga.storage.models import SagaLogEntry

MESSAGE_CAP = 300
"""Characters of a normalised message that decide its group (and of a stored example)."""

# In this order: quoted values first (they may hold anything), then ids, then numbers.
_QUOTED = re.compile(r"""(?<![\w'"])(?:'[^'\n]*'|"[^"\n]*")(?![\w'"])""")
_UUID = re.compile(
    r"\b[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\b"
)
# A word of letters and digits mixed (``ord-9ca8f0``, ``res_1a2b``, ``0x1f``, ``a1b2c3``).
_MIXED = re.compile(r"\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9][\w-]{3,}\b")
_HEX = re.compile(r"\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{6,}\b")
# A sign belongs to a number only where a number can start (``-5``, not ``2026-12``).
_NUMBER = re.compile(r"(?<![\w-])[-+]?\d+(?:[.,:]\d+)*|\d+(?:[.,:]\d+)*")
_SPACE = re.compile(r"\s+")


def normalise_message(message: str) -> str:
    """``message`` with numbers, ids and quoted values replaced by ``<n>``, ``<id>``, ``<q>``."""
    text = _QUOTED.sub("<q>", message[: MESSAGE_CAP * 4])
    text = _UUID.sub("<id>", text)
    text = _MIXED.sub(_mixed, text)
    text = _HEX.sub("<id>", text)
    text = _NUMBER.sub("<n>", text)
    return _SPACE.sub(" ", text).strip()[:MESSAGE_CAP]


def _mixed(match: re.Match[str]) -> str:
    word = match.group(0)
    # ``30s`` or ``500ms`` is a number with a unit, not an id.
    if re.fullmatch(r"\d+[A-Za-z]{1,3}", word):
        return word
    return "<id>"


def failure_key(saga_name: str, step: str, error_type: str, message: str) -> str:
    """The group key: a short hash of the saga type, step, error type and normalised message."""
    text = "\x1f".join((saga_name, step, error_type, normalise_message(message)))
    return hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=8).hexdigest()


def failure_mark(saga_name: str, step: str, error: ErrorInfo) -> FailureMark:
    """The mark to store for a failure of ``step`` in a saga of ``saga_name``."""
    message = error.message or ""
    return FailureMark(
        failure_key(saga_name, step, error.type, message),
        step,
        error.type,
        message[:MESSAGE_CAP],
    )


def cause_in_history(saga_name: str, history: typing.Iterable[SagaLogEntry]) -> FailureMark | None:
    """The failure that made a saga roll back: its last failed act, as a mark (None if none).

    An act closed as never started (it carries no error) is not a cause.
    """
    cause = None
    for entry in history:
        if entry.action == "act" and entry.status is SagaStepStatus.FAILED and entry.error_type:
            cause = entry
    if cause is None or cause.error_type is None:
        return None
    error = ErrorInfo(cause.error_type, cause.error_message or "")
    return failure_mark(saga_name, cause.step_name, error)
