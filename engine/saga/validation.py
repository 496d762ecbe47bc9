"""Class-creation checks for sagas: steps are handlers of the saga's context type."""

from __future__ import annotations

import typing

from engine.saga.fallback import Fallback
from engine.saga.step import SagaStepHandler


def context_type_of(cls: type, generic_base: type) -> type | None:
    """The context type argument ``cls`` gives ``generic_base``, searching its bases."""
    for klass in cls.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            origin = typing.get_origin(base)
            if isinstance(origin, type) and issubclass(origin, generic_base):
                args = typing.get_args(base)
                if args and isinstance(args[0], type):
                    return args[0]
    return None


def _check_step(saga_name: str, context_type: type | None, step: typing.Any, where: str) -> None:
    if not (isinstance(step, type) and issubclass(step, SagaStepHandler)):
        shown = getattr(step, "__name__", repr(step))
        raise TypeError(
            f"{saga_name}: step {where} ({shown}) is not a SagaStepHandler subclass or a Fallback",
        )
    step_context = context_type_of(step, SagaStepHandler)
    if context_type is None or step_context is None:
        return
    if not issubclass(context_type, step_context):
        raise TypeError(
            f"{saga_name}: step {step.__name__} handles {step_context.__name__}, "
            f"but the saga's context is {context_type.__name__}",
        )


def validate_steps(saga_name: str, context_type: type | None, steps: typing.Any) -> None:
    """Raise TypeError naming the saga and the step when a step does not fit."""
    if not isinstance(steps, list | tuple):
        raise TypeError(f"{saga_name}.steps must be a list, not {type(steps).__name__}")
    names: set[str] = set()
    for index, item in enumerate(steps):
        if isinstance(item, Fallback):
            _check_step(saga_name, context_type, item.step, f"#{index + 1} (primary)")
            _check_step(saga_name, context_type, item.fallback, f"#{index + 1} (fallback)")
            step_names = [item.step.__name__, item.fallback.__name__]
        else:
            _check_step(saga_name, context_type, item, f"#{index + 1}")
            step_names = [item.__name__]
        for name in step_names:
            if name in names:
                raise TypeError(f"{saga_name}: step {name} appears twice; step names are keys")
            names.add(name)


def validate_search_keys(
    saga_name: str, context_type: type | None, keys: typing.Any
) -> tuple[str, ...]:
    """The saga's ``search_keys`` as a tuple; TypeError when one is not a context field."""
    if isinstance(keys, str) or not isinstance(keys, list | tuple):
        raise TypeError(
            f"{saga_name}.search_keys must be a tuple of field names, like ('order_id',)"
        )
    fields = _field_names(context_type)
    for key in keys:
        if not isinstance(key, str) or not key:
            raise TypeError(f"{saga_name}.search_keys: {key!r} is not a field name")
        if fields is not None and key not in fields:
            context = context_type.__name__ if context_type else "its context"
            raise TypeError(f"{saga_name}.search_keys: {context} has no field {key!r}")
    return tuple(keys)


def _field_names(context_type: type | None) -> set[str] | None:
    """The field names of a dataclass or pydantic context; None when they cannot be known."""
    if context_type is None:
        return None
    fields = getattr(context_type, "__dataclass_fields__", None)
    if fields is not None:
        return set(fields)
    model_fields = getattr(context_type, "model_fields", None)
    if isinstance(model_fields, dict):
        return set(model_fields)
    return None
