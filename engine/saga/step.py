"""Saga step handlers and the result each step yields."""

from __future__ import annotations

import abc
import dataclasses
import typing
import uuid

from engine.events.models import Event
from engine.saga.models import ContextT

Resp = typing.TypeVar("Resp", covariant=True)


@dataclasses.dataclass(slots=True)
class SagaStepResult(typing.Generic[ContextT, Resp]):
    """The outcome of one step's ``act``, stamped with the saga id by the transaction.

    Not frozen: the transaction stamps ``saga_id`` in place (a copy per step is costly
    on the hot path); treat it as read-only.
    """

    response: Resp
    step_type: type[SagaStepHandler[typing.Any, typing.Any]]
    with_error: bool = False
    error_message: str | None = None
    error_traceback: list[str] | None = None
    error_type: type[Exception] | None = None
    saga_id: uuid.UUID | None = None


class SagaStepHandler(abc.ABC, typing.Generic[ContextT, Resp]):
    """One undoable step: ``act`` does the work, ``compensate`` undoes it.

    ``compensate`` must be idempotent and tolerate an ``act`` that never happened:
    a step found in flight after a crash is compensated since its effect is unknown.
    """

    def _generate_step_result(
        self,
        response: typing.Any,
        with_error: bool = False,
        error_message: str | None = None,
        error_traceback: list[str] | None = None,
        error_type: type[Exception] | None = None,
    ) -> SagaStepResult[ContextT, Resp]:
        """A result for this step carrying ``response``."""
        return SagaStepResult(
            response=response,
            step_type=type(self),
            with_error=with_error,
            error_message=error_message,
            error_traceback=error_traceback,
            error_type=error_type,
        )

    @property
    def events(self) -> typing.Sequence[Event]:
        """Events produced by ``act``; emitted after the step's checkpoint is durable."""
        return ()

    @abc.abstractmethod
    async def act(self, context: ContextT) -> SagaStepResult[ContextT, Resp]:
        """Do the step's work, recording on ``context`` what compensation needs."""
        raise NotImplementedError

    @abc.abstractmethod
    async def compensate(self, context: ContextT) -> None:
        """Undo ``act``; safe to run more than once and when ``act`` never ran."""
        raise NotImplementedError
