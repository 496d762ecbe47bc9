"""Example contexts for the start form and ``saga-tui start``: the app's own, else a skeleton."""

from __future__ import annotations

import importlib
import typing
import uuid

from engine.saga.context_codec import adapter_for, dump_context, load_context

if typing.TYPE_CHECKING:
    from engine.saga.mediator import SagaMediator


def _from_module(name: str, context_type: type) -> dict[str, typing.Any] | None:
    # An application may offer examples: a context classmethod ``example()``, or an
    # ``example_context(name_or_type)`` function in the context's package.
    maker = getattr(context_type, "example", None)
    if callable(maker):
        try:
            return dump_context(maker())
        except Exception:
            return None
    package = context_type.__module__.split(".")[0]
    try:
        module = importlib.import_module(package)
    except Exception:
        return None
    listed = getattr(module, "examples", None)
    if callable(listed):
        try:
            found = listed().get(name)
        except Exception:
            found = None
        if isinstance(found, dict):
            return found
    finder = getattr(module, "example_context", None)
    if callable(finder):
        for arg in (name, context_type):
            try:
                value = finder(arg)
            except Exception:
                continue
            if value is None:
                continue
            return value if isinstance(value, dict) else dump_context(value)
    return None


def _skeleton(
    schema: dict[str, typing.Any], defs: dict[str, typing.Any], depth: int = 0
) -> typing.Any:
    if depth > 6:
        return None
    if "$ref" in schema:
        return _skeleton(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs, depth + 1)
    if "default" in schema:
        return schema["default"]
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return _skeleton(options[0], defs, depth + 1) if options else None
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    fmt = schema.get("format", "")
    if kind == "object":
        props = schema.get("properties", {})
        required = schema.get("required", list(props))
        return {k: _skeleton(v, defs, depth + 1) for k, v in props.items() if k in required}
    if kind == "array":
        return [_skeleton(schema.get("items", {}), defs, depth + 1)]
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    if kind == "string":
        return {
            "uuid": str(uuid.uuid4()),
            "date": "2030-01-01",
            "date-time": "2030-01-01T00:00:00Z",
        }.get(fmt, "example")
    return None


def _valid(context_type: type, data: typing.Any) -> bool:
    if not isinstance(data, dict):
        return False
    try:
        load_context(context_type, data)
    except Exception:
        return False
    return True


def example_for(name: str, context_type: type) -> dict[str, typing.Any] | None:
    """The one example lookup: a context dict that validates as ``context_type``, or None.

    The application's own example first (``example()`` on the context, ``examples()`` or
    ``example_context()`` in its package), else a skeleton built from the JSON schema.
    The start form pre-fills it and ``saga-tui start NAME`` runs it, so they agree.
    """
    found = _from_module(name, context_type)
    if _valid(context_type, found):
        return found
    try:
        schema = adapter_for(context_type).json_schema()
        data = _skeleton(schema, schema.get("$defs", {}))
    except Exception:
        return None
    return data if _valid(context_type, data) else None


def choices(mediator: SagaMediator) -> list[tuple[str, type, dict[str, typing.Any] | None]]:
    """(saga name, context type, example or None) of every saga the mediator can start."""
    return [(name, ctx, example_for(name, ctx)) for name, ctx, _ in mediator.registered()]
