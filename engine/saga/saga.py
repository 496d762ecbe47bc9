"""Saga definitions and the transaction that runs one saga."""

from __future__ import annotations

import contextlib
import types
import typing
import uuid

from engine.container import ContainerAdapter, wrap_container
from engine.middlewares.base import MiddlewareChain
from engine.saga.execution import SagaRun
from engine.saga.lease import DEFAULT_LEASE_SECONDS, keeper_for
from engine.saga.models import ContextT
from engine.saga.plan import StepPlan, plan_steps
from engine.saga.settings import RunSettings, Sleep
from engine.saga.step import SagaStepResult
from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.protocol import ISagaStorage
from engine.saga.validation import context_type_of, validate_search_keys, validate_steps


class SagaTransaction(typing.Generic[ContextT]):
    """Runs one saga: an async context manager and an async iterator of step results.

    Leaving the ``async with`` block with an exception compensates the completed steps;
    leaving it early without one releases the lease so the saga can be resumed.
    """

    def __init__(
        self,
        saga: Saga[ContextT],
        context: ContextT,
        container: typing.Any,
        storage: ISagaStorage,
        saga_id: uuid.UUID | None = None,
        compensation_retry_count: int = 3,
        compensation_retry_delay: float = 1.0,
        compensation_retry_backoff: float = 2.0,
        *,
        middlewares: MiddlewareChain | None = None,
        sleep: Sleep | None = None,
        settings: RunSettings | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        recovery: bool = False,
    ) -> None:
        if settings is None:
            settings = RunSettings.create(
                compensation_retry_count=compensation_retry_count,
                compensation_retry_delay=compensation_retry_delay,
                compensation_retry_backoff=compensation_retry_backoff,
                middlewares=middlewares,
                sleep=sleep,
            )
        self._container: ContainerAdapter = wrap_container(container)
        self._run = SagaRun(
            saga.step_plan,
            context,
            self._container,
            storage,
            keeper_for(storage, lease_seconds),
            settings,
            saga_id,
        )
        self._recovery = recovery
        self._iterator: (
            typing.AsyncGenerator[SagaStepResult[typing.Any, typing.Any], None] | None
        ) = None

    @property
    def saga_id(self) -> uuid.UUID:
        """The id of the saga this transaction runs."""
        return self._run.saga_id

    @property
    def status(self) -> SagaStatus | None:
        """The saga's status as last written by this transaction."""
        return self._run.status

    @property
    def completed_steps(self) -> list[str]:
        """Names of the steps whose act completed, in order.

        Kept for python-cqrs code that reads ``transaction.completed_steps`` (there it
        lists the handlers; names are what a durable, resumable run can promise).
        """
        return self._run.completed

    async def __aenter__(self) -> SagaTransaction[ContextT]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> bool:
        if self._iterator is not None:
            await self._iterator.aclose()
        run = self._run
        if (
            isinstance(exc, Exception)
            and not run.compensated
            and run.status not in (SagaStatus.COMPENSATED, SagaStatus.FAILED, None)
        ):
            # The consumer failed after some steps: undo them, as python-cqrs does.
            with contextlib.suppress(Exception):
                await run.claim_and_compensate()
        return False

    def __aiter__(self) -> typing.AsyncIterator[SagaStepResult[ContextT, typing.Any]]:
        self._iterator = self._run.execute(recovery=self._recovery)
        return self._iterator


class Saga(typing.Generic[ContextT]):
    """An ordered list of steps (handlers or Fallbacks) sharing one context type.

    Steps are checked when the subclass is created: each must be a SagaStepHandler of
    the saga's context type, else a TypeError names the saga and the step. The step
    plan every run follows is worked out then too, once per class.
    """

    steps: typing.ClassVar[list[typing.Any]] = []
    search_keys: typing.ClassVar[tuple[str, ...]] = ()
    """Context fields that identify a saga (``("order_id",)``): stored, shown and searched."""
    step_plan: typing.ClassVar[StepPlan] = plan_steps("Saga", ())
    """The steps with the names they log under; set for each subclass at its creation."""

    def __init_subclass__(cls, **kwargs: typing.Any) -> None:
        super().__init_subclass__(**kwargs)
        context = context_type_of(cls, Saga)
        validate_steps(cls.__name__, context, cls.steps)
        keys = validate_search_keys(cls.__name__, context, cls.search_keys)
        cls.step_plan = plan_steps(cls.__name__, cls.steps, keys)

    @classmethod
    def context_type(cls) -> type | None:
        """The context type the saga was declared with."""
        return context_type_of(cls, Saga)

    @classmethod
    def step_names(cls) -> list[str]:
        """The declared step names in order (a Fallback counts by its primary)."""
        return cls.step_plan.primary_names()

    @property
    def steps_count(self) -> int:
        """How many steps the saga declares.

        The engine does not call it: it is python-cqrs's ``Saga.steps_count``, kept so
        code written against python-cqrs keeps working.
        """
        return len(self.steps)

    def transaction(
        self,
        context: ContextT,
        container: typing.Any,
        storage: ISagaStorage,
        saga_id: uuid.UUID | None = None,
        compensation_retry_count: int = 3,
        compensation_retry_delay: float = 1.0,
        compensation_retry_backoff: float = 2.0,
        **options: typing.Any,
    ) -> SagaTransaction[ContextT]:
        """A transaction running this saga for ``context`` (resumed when ``saga_id`` exists)."""
        return SagaTransaction(
            self,
            context,
            container,
            storage,
            saga_id,
            compensation_retry_count,
            compensation_retry_delay,
            compensation_retry_backoff,
            **options,
        )
