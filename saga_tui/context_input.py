"""A saga's context typed as JSON (the start form and ``saga-tui start --context``).

``context_from_json`` parses and validates it against the saga's context type; every
fault becomes a ``ContextInputError`` whose one-line message says where.
"""

from __future__ import annotations

import json
import typing

import pydantic

from engine.saga.context_codec import load_context
from saga_tui.textfmt import clean, one_line, plural


class ContextInputError(ValueError):
    """A context typed as JSON does not parse or validate; the message says where.

    ``problems`` lists every fault (each with where it is); the message is one line.
    """

    def __init__(self, message: str, problems: typing.Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems) or [message]


def context_from_json(saga_name: str, context_type: type, text: str) -> typing.Any:
    """A context of ``context_type`` from JSON text, or ContextInputError saying where."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContextInputError(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise ContextInputError("the JSON is nested too deeply to read") from None
    if not isinstance(data, dict):
        raise ContextInputError(
            f"the context must be a JSON object {{...}}, not {type(data).__name__}"
        )
    try:
        return load_context(context_type, data)
    except pydantic.ValidationError as exc:
        problems = [
            f"at {'.'.join(str(p) for p in error.get('loc', ())) or '(top level)'}: "
            f"{clean(error.get('msg', ''))}"
            for error in exc.errors()
        ]
        head = f"invalid {saga_name} context"
        many = f", {plural(len(problems), 'error')}: " if len(problems) > 1 else " "
        raise ContextInputError(
            head + many + "; ".join(problems), [f"{head} {problem}" for problem in problems]
        ) from None
    except Exception as exc:
        raise ContextInputError(f"invalid {saga_name} context: {one_line(exc)}") from exc
