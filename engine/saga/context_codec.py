"""Context <-> JSON through pydantic, with errors that name the offending field."""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import typing

import pydantic
import pydantic_core

from engine.saga.errors import ContextSerializationError


@functools.lru_cache(maxsize=512)
def adapter_for(cls: type) -> pydantic.TypeAdapter[typing.Any]:
    """A cached TypeAdapter for a context class."""
    try:
        return pydantic.TypeAdapter(cls)
    except pydantic.PydanticSchemaGenerationError as exc:
        field = _field_without_schema(cls)
        raise ContextSerializationError(
            f"{cls.__name__}{'.' + field if field else ''} cannot be stored as JSON: "
            f"{str(exc).splitlines()[0]}",
        ) from exc


def _field_without_schema(cls: type) -> str | None:
    if not dataclasses.is_dataclass(cls):
        return None
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        try:
            pydantic.TypeAdapter(hints.get(field.name, typing.Any))
        except pydantic.PydanticSchemaGenerationError:
            return field.name
    return None


_SERIALIZERS: dict[type, typing.Any] = {}


def dump_context(context: typing.Any) -> dict[str, typing.Any]:
    """The context as a JSON-compatible dict with its own field names."""
    cls = type(context)
    serializer = _SERIALIZERS.get(cls)
    if serializer is None:
        serializer = _SERIALIZERS[cls] = adapter_for(typing.cast(typing.Hashable, cls)).serializer
    try:
        data = serializer.to_python(context, mode="json")
    except (pydantic_core.PydanticSerializationError, TypeError, ValueError) as exc:
        raise ContextSerializationError(_describe_failure(context, exc)) from exc
    if not isinstance(data, dict):
        raise ContextSerializationError(f"{cls.__name__} does not serialize to a JSON object")
    if _suspect(data):
        problem = unstorable(data)
        if problem is not None:
            raise ContextSerializationError(f"{cls.__name__}.{problem}")
    return data


# The checkpoint path asks this of every context: a walk without building a path per
# key (``unstorable`` does that, only once something looks wrong). True means "maybe".
_SURROGATE = re.compile("[\ud800-\udfff]")


def _suspect(data: typing.Any) -> bool:
    """True when ``data`` may hold a value ``unstorable`` refuses (it then says which)."""
    kind = type(data)
    if kind is dict:
        for key, value in data.items():
            if type(key) is not str or _suspect_text(key):
                return True
            if _suspect_value(value):
                return True
        return False
    if kind is list:
        return any(_suspect_value(value) for value in data)
    return _suspect_value(data)


def _suspect_value(value: typing.Any) -> bool:
    kind = type(value)
    if kind is str:
        return _suspect_text(value)
    if kind is float:
        return value - value != 0.0  # NaN and +-Infinity
    if kind is dict or kind is list:
        return _suspect(value)
    return not (value is None or kind is int or kind is bool)


def _suspect_text(text: str) -> bool:
    return "\x00" in text or (not text.isascii() and _SURROGATE.search(text) is not None)


# NUL and lone surrogates: JSON text can spell them, PostgreSQL's jsonb refuses them.
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


def _bad_text(text: str) -> str | None:
    found = _BAD_CHARS.search(text)
    if found is None:
        return None
    return "a NUL character" if found.group(0) == "\x00" else "a lone surrogate"


def unstorable(data: typing.Any, path: str = "") -> str | None:
    """Where ``data`` holds a value not every backend stores, and why; None if none.

    NaN and Infinity (JSON has no such number; PostgreSQL refuses them, SQLite would
    store them as text that no JSON reader accepts), NUL characters and lone surrogates.
    """
    if isinstance(data, float):
        if not math.isfinite(data):
            return f"{path or 'value'} cannot be stored as JSON: {data!r} is not a JSON number"
        return None
    if isinstance(data, str):
        bad = _bad_text(data)
        return f"{path or 'value'} cannot be stored: it contains {bad}" if bad else None
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str):
                bad = _bad_text(key)
                if bad:
                    return f"{where!a} cannot be stored: the key contains {bad}"
            problem = unstorable(value, where)
            if problem is not None:
                return problem
        return None
    if isinstance(data, list | tuple):
        for index, value in enumerate(data):
            problem = unstorable(value, f"{path}[{index}]")
            if problem is not None:
                return problem
    return None


def _describe_failure(context: typing.Any, exc: Exception) -> str:
    cls = type(context)
    if dataclasses.is_dataclass(context):
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(context):
            value = getattr(context, field.name, None)
            try:
                pydantic.TypeAdapter(hints.get(field.name, typing.Any)).dump_python(
                    value, mode="json"
                )
            except Exception as field_exc:
                reason = str(field_exc).splitlines()[0]
                return (
                    f"{cls.__name__}.{field.name} cannot be stored as JSON "
                    f"({type(value).__name__}): {reason}"
                )
    return f"{cls.__name__} cannot be stored as JSON: {str(exc).splitlines()[0]}"


def load_context(cls: type, data: typing.Mapping[str, typing.Any]) -> typing.Any:
    """Rebuild a context of ``cls`` from its stored dict."""
    return adapter_for(cls).validate_python(dict(data))
