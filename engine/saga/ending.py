"""How a run ends other than by completing: a step's failure, compensation, giving up.

A failing step is recorded (its error taken safely and capped, the traceback kept once,
with its log entry), then the steps whose effect may exist are compensated. When the
database refuses what is to be recorded, a simpler record is written instead, so a
failure is never lost to the text of its own error. A stopped run (lease lost, database
unavailable) records and compensates nothing.
"""

from __future__ import annotations

import typing

from engine.saga.acting import FallbackFailed, ms_since
from engine.saga.compensation import undo_steps
from engine.saga.context_codec import dump_context
from engine.saga.errors import (
    ContextSerializationError,
    RecoveryGaveUpError,
    SagaDataError,
    SagaNotFoundError,
)
from engine.saga.failure import error_info, safe_text, without_traceback
from engine.saga.grouping import cause_in_history, failure_mark
from engine.saga.leased_run import LeasedRun
from engine.saga.storage.enums import SagaStatus, SagaStepStatus
from engine.saga.storage.lanes import steps_to_compensate
from engine.saga.storage.models import NO_FAILURE, ErrorInfo, FailureMark, LogWrite, SagaState

_REFUSED_TEXT = "the database refused the text of this error"


def last_error(state: SagaState) -> str:
    """The newest error in a saga's log, as ``Type: message``."""
    for entry in reversed(state.history):
        if entry.error_type or entry.error_message:
            kind = entry.error_type or "Error"
            return f"{kind}: {entry.error_message}" if entry.error_message else kind
    return "no error was recorded (each run stopped before it could record one)"


def _last_step(state: SagaState) -> str:
    """The step the saga's log last mentions ("" before any)."""
    return state.history[-1].step_name if state.history else ""


class EndingRun(LeasedRun):
    """A leased run that can fail a step, compensate, and give a saga up."""

    completed: list[str]
    compensated: bool
    cause: FailureMark | None
    """The failure that made the saga roll back (its failure group once it ends)."""

    async def claim(self) -> SagaState | None:
        """Take the lease (see ``LeasedRun.claim``) and recall why the saga rolls back."""
        state = await super().claim()
        if state is not None:
            self.cause = cause_in_history(self.plan.saga_name, state.history)
        return state

    async def fail_step(self, name: str, exc: Exception, t0: float, *, acted: bool) -> None:
        """Record that step ``name`` failed with ``exc``, then compensate.

        ``acted``: the step body ran to its end (only recording its result failed), so
        its effect exists and is compensated too. Raises the stop error instead when the
        run stopped (lease lost, database unavailable): then nothing is recorded.
        """
        if isinstance(exc, FallbackFailed):
            name, t0, exc = exc.step_name, exc.started, exc.original
        if self.stopped is not None:
            raise self.stop_error() from exc
        err = error_info(exc)
        if acted or isinstance(exc, ContextSerializationError):
            # act ran and changed the world; only its result could not be stored.
            self.completed.append(name)
        log = LogWrite(name, "act", SagaStepStatus.FAILED, None, err, duration_ms=ms_since(t0))
        saga_error = without_traceback(err)
        self.cause = failure_mark(self.plan.saga_name, name, err)
        refused = ErrorInfo(err.type, _REFUSED_TEXT)
        # The full record first; when the database refuses it, a simpler one.
        attempts: tuple[dict[str, typing.Any], ...] = (
            {"logs": (log,), "error": saga_error, "failure": self.cause},
            {"error": saga_error, "failure": self.cause},
            {"error": refused, "failure": failure_mark(self.plan.saga_name, name, refused)},
        )
        for index, fields in enumerate(attempts):
            try:
                await self.write(self._cp(status=SagaStatus.COMPENSATING, **fields))
                break
            except SagaDataError:
                if index == len(attempts) - 1:
                    raise
        self.status = SagaStatus.COMPENSATING
        await self.compensate(list(self.completed), already_compensating=True)

    async def give_up(self, state: SagaState, attempts: int) -> RecoveryGaveUpError:
        """Set the saga FAILED: it was recovered ``attempts`` times without reaching an end."""
        message = f"recovery gave up after {attempts} attempts: {last_error(state)}"
        error = ErrorInfo("RecoveryGaveUp", safe_text(message))
        await self.write(
            self._cp(
                status=SagaStatus.FAILED,
                error=error,
                failure=failure_mark(self.plan.saga_name, _last_step(state), error),
                release_lease=True,
                current_step="",
            )
        )
        self.status = SagaStatus.FAILED
        return RecoveryGaveUpError(f"Saga {self.saga_id}: {message}")

    async def claim_and_compensate(
        self,
        load: typing.Callable[[dict[str, typing.Any]], typing.Any] | None = None,
    ) -> SagaStatus:
        """Claim the saga and compensate every step whose effect may exist.

        ``load`` rebuilds the context from the stored one (kept as is when None).
        Raises SagaBusyError when a live runner has the saga, SagaNotFoundError when
        there is none. The lease and this process's claim are given back in any case.
        """
        self.keeper.acquire()
        try:
            state = await self.claim()
            if state is None:
                raise SagaNotFoundError(f"Saga {self.saga_id} not found")
            if load is not None:
                self.context = load(state.context)
            return await self.compensate(steps_to_compensate(state.history))
        finally:
            if self.holds_lease:
                await self.release()
            self.unregister()
            self.keeper.release()

    async def compensate(
        self, names: list[str], *, already_compensating: bool = False
    ) -> SagaStatus:
        """Compensate ``names`` (in execution order) in reverse; ends COMPENSATED or FAILED."""
        if self.stopped is not None:
            raise self.stop_error()
        self.compensated = True
        if not already_compensating:
            logs = self._not_started("compensation was requested first")
            await self.write(self._cp(status=SagaStatus.COMPENSATING, logs=logs))
            self.status = SagaStatus.COMPENSATING
        failure = await undo_steps(self, names)
        status = SagaStatus.FAILED if failure else SagaStatus.COMPENSATED
        try:
            context = dump_context(self.context)
        except ContextSerializationError:
            context = None
        # Grouped by the undo that failed, else by what made the saga roll back.
        if failure is not None:
            mark = failure_mark(self.plan.saga_name, failure[0], failure[1])
        else:
            mark = self.cause or NO_FAILURE
        end = {
            "status": status,
            "error": without_traceback(failure[1] if failure else None),
            "failure": mark,
            "release_lease": True,
            "clear_requested_action": True,
            "current_step": "",
        }
        try:
            await self.write(self._cp(context=context, **end))
        except SagaDataError:
            if context is None:
                raise
            await self.write(self._cp(**end))  # the context is refused: keep the stored one
        self.status = status
        return status
