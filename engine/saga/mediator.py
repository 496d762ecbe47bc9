"""SagaMediator: runs sagas by context type and acts on stored sagas by id."""

from __future__ import annotations

import contextlib
import time
import typing
import uuid

from engine.container import wrap_container
from engine.events.emitter import EventEmitter
from engine.events.map import EventMap
from engine.message_brokers.devnull import DevnullMessageBroker
from engine.message_brokers.protocol import MessageBroker
from engine.middlewares.base import MiddlewareChain
from engine.saga.bulk import run_bounded
from engine.saga.context_codec import load_context
from engine.saga.errors import (
    CompensationRequestedError,
    ContextLoadError,
    ForwardNotAllowedError,
    RecoveryGaveUpError,
    SagaBusyError,
    SagaNotFoundError,
    SagaNotRegisteredError,
    SagaStorageError,
    saga_uuid,
)
from engine.saga.execution import SagaRun
from engine.saga.failure import describe
from engine.saga.lease import (
    DEFAULT_LEASE_SECONDS,
    LeaseKeeper,
    keeper_for,
    owner_is_dead,
    process_owner_id,
    this_host,
)
from engine.saga.map import SagaMap
from engine.saga.operator import ActionResult, Operator, audit_outcome, operator_action
from engine.saga.outbox import DeliveryReport, EventDelivery
from engine.saga.saga import Saga
from engine.saga.secrets import get_logger
from engine.saga.settings import Listener, RunSettings, Sleep
from engine.saga.step import SagaStepResult
from engine.saga.storage.enums import RequestedAction, SagaStatus
from engine.saga.storage.memory import MemorySagaStorage
from engine.saga.storage.models import LeaseInfo
from engine.saga.storage.protocol import ISagaStorage

logger = get_logger("engine.saga")

# Statuses a recovery run that raised can have reached by recording its own end.
_ENDED = frozenset({SagaStatus.COMPENSATED, SagaStatus.FAILED})


class SagaMediator:
    """Finds the saga for a context, runs it, emits its events; recovers and compensates."""

    def __init__(
        self,
        saga_map: SagaMap,
        container: typing.Any,
        event_emitter: EventEmitter | None = None,
        middleware_chain: MiddlewareChain | None = None,
        event_map: EventMap | None = None,
        max_concurrent_event_handlers: int = 1,
        concurrent_event_handle_enable: bool = True,
        storage: ISagaStorage | None = None,
        compensation_retry_count: int = 3,
        compensation_retry_delay: float = 1.0,
        compensation_retry_backoff: float = 2.0,
        *,
        message_broker: MessageBroker | None = None,
        sleep: Sleep | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        max_recovery_attempts: int = 5,
        event_retry_count: int = 3,
        event_retry_delay: float = 0.5,
        event_retry_backoff: float = 2.0,
    ) -> None:
        self.saga_map = saga_map
        self.container = wrap_container(container)
        self.storage: ISagaStorage = storage if storage is not None else MemorySagaStorage()
        self.emitter = event_emitter or EventEmitter(
            event_map or EventMap(),
            self.container,
            message_broker or DevnullMessageBroker(),
            max_concurrent_event_handlers=max_concurrent_event_handlers,
            concurrent_event_handle_enable=concurrent_event_handle_enable,
        )
        self.settings = RunSettings.create(
            compensation_retry_count=compensation_retry_count,
            compensation_retry_delay=compensation_retry_delay,
            compensation_retry_backoff=compensation_retry_backoff,
            middlewares=middleware_chain,
            sleep=sleep,
            max_recovery_attempts=max_recovery_attempts,
        )
        self.lease_seconds = lease_seconds
        self._lease_keeper: LeaseKeeper | None = None
        self.events = EventDelivery(
            self.emitter,
            self.storage,
            self.settings,
            lease_seconds=lease_seconds,
            retry_count=event_retry_count,
            retry_delay=event_retry_delay,
            retry_backoff=event_retry_backoff,
        )
        # Who operator actions are audited as; None: the OS user on this host. A process
        # acting for someone else (a browser session of ``saga-tui serve``) sets it.
        self.operator: Operator | None = None

    # ---- registry ----------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(saga_id)`` after every checkpoint this process writes.

        An exception from the listener is logged; it never fails the saga.
        """
        self.settings.listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        with contextlib.suppress(ValueError):
            self.settings.listeners.remove(listener)

    def saga_for_context(self, context: typing.Any) -> type[Saga[typing.Any]]:
        """The saga class bound to the context's type."""
        saga_type = self.saga_map.get(type(context))
        if saga_type is None:
            raise SagaNotRegisteredError(
                f"No saga is registered for context type {type(context).__name__}",
            )
        return saga_type

    def saga_for_name(self, name: str) -> tuple[type, type[Saga[typing.Any]]]:
        """(context type, saga class) of a stored saga name."""
        found = self.saga_map.by_name(name)
        if found is None:
            raise SagaNotRegisteredError(
                f"{name} is not registered in this application, so it cannot be run here",
            )
        return found

    def registered(self) -> list[tuple[str, type, type[Saga[typing.Any]]]]:
        """(saga name, context type, saga class) of every registered saga."""
        return sorted(
            ((s.__name__, c, s) for c, s in self.saga_map.items()), key=lambda item: item[0]
        )

    # ---- running -----------------------------------------------------------------------

    def _keeper(self) -> LeaseKeeper:
        keeper = self._lease_keeper
        if (
            keeper is None
            or keeper.storage is not self.storage
            or keeper.owner != process_owner_id()
        ):
            keeper = self._lease_keeper = keeper_for(self.storage, self.lease_seconds)
        return keeper

    def _transaction(
        self,
        saga_type: type[Saga[typing.Any]],
        context: typing.Any,
        saga_id: uuid.UUID | None,
    ) -> SagaRun:
        return SagaRun(
            saga_type.step_plan,
            context,
            self.container,
            self.storage,
            self._keeper(),
            self.settings,
            saga_id,
        )

    def stream(
        self,
        context: typing.Any,
        saga_id: uuid.UUID | None = None,
    ) -> typing.AsyncIterator[SagaStepResult[typing.Any, typing.Any]]:
        """Run the saga for ``context``, yielding each step result after its events."""
        saga_type = self.saga_for_context(context)
        if saga_id is not None:
            saga_id = saga_uuid(saga_id)
        return self._stream(self._transaction(saga_type, context, saga_id))

    execute = stream

    def _stream(
        self,
        run: SagaRun,
        *,
        recovery: bool = False,
    ) -> typing.AsyncGenerator[SagaStepResult[typing.Any, typing.Any], None]:
        run.emit = self.events
        return run.execute(recovery=recovery)

    @property
    def running(self) -> int:
        """How many sagas this process is running right now."""
        return len(self._keeper().running)

    async def run(
        self,
        context: typing.Any,
        saga_id: uuid.UUID | None = None,
    ) -> list[SagaStepResult[typing.Any, typing.Any]]:
        """Run a saga to its end and return every step result."""
        return [result async for result in self.stream(context, saga_id)]

    # ---- events (the outbox) -----------------------------------------------------------

    async def deliver_events(self, *, limit: int = 1000) -> DeliveryReport:
        """Deliver PENDING events of up to ``limit`` sagas (the redelivery loop's pass).

        Events a dead process left after its checkpoint, or held back behind a FAILED
        one; sagas running in this process deliver their own.
        """
        return await self.events.deliver_pending(limit=limit, skip=self._keeper().running)

    async def redeliver_events(self, saga_id: uuid.UUID, *, reason: str = "") -> DeliveryReport:
        """An operator's redelivery of a saga's FAILED events (audited)."""
        await self._lease(saga_id)
        report = await self.events.retry_failed(saga_id)
        outcome = (
            f"{report.delivered} delivered, {report.failed} failed, {report.waiting} waiting"
            + (", busy" if report.busy else "")
        )
        with contextlib.suppress(Exception):
            await self.storage.record_operator_action(
                operator_action(saga_id, "redeliver", reason, outcome, self.operator)
            )
        return report

    # ---- operator actions --------------------------------------------------------------

    async def start(
        self,
        context: typing.Any,
        *,
        reason: str = "",
        saga_id: uuid.UUID | None = None,
    ) -> ActionResult:
        """Start a saga as an operator: audited, and a failure becomes the result."""
        saga_type = self.saga_for_context(context)
        saga_id = saga_uuid(saga_id) if saga_id is not None else None
        transaction = self._transaction(saga_type, context, saga_id)
        error: str | None = None
        try:
            async for _ in self._stream(transaction):
                pass
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        result = ActionResult(
            transaction.saga_id,
            "start",
            transaction.status,
            error=error if transaction.status is None else None,
        )
        # A saga that started and then failed is judged by its status; the audit keeps
        # the exception too.
        await self._audit(transaction.saga_id, "start", reason, result, error)
        return result

    async def recover_saga(self, saga_id: uuid.UUID, *, reason: str = "") -> ActionResult:
        """Resume a saga by id: forward if it was running, else finish compensation."""
        saga_id = saga_uuid(saga_id)
        result = await self._recover(saga_id)
        await self._audit(saga_id, "recover", reason, result)
        return result

    async def _recover(self, saga_id: uuid.UUID) -> ActionResult:
        lease = await self._lease(saga_id)
        if lease.status in (SagaStatus.COMPLETED, SagaStatus.COMPENSATED):
            return ActionResult(saga_id, "recover", lease.status)
        _, saga_type, context = await self._stored(saga_id)
        transaction = self._transaction(saga_type, context, saga_id)
        error: str | None = None
        try:
            async for _ in self._stream(transaction, recovery=True):
                pass
        except (SagaBusyError, ContextLoadError):
            raise
        except (ForwardNotAllowedError, CompensationRequestedError):
            pass
        except RecoveryGaveUpError as exc:
            error = describe(exc)
        except SagaStorageError as exc:
            error = describe(exc)
        except Exception as exc:
            if transaction.stopped is not None or transaction.status not in _ENDED:
                # Not an outcome of the saga: the run did not get to record an end.
                error = describe(exc)
            else:
                # The forward step failed again; the saga was compensated: the outcome.
                logger.info("recovery of %s ended in compensation: %s", saga_id, describe(exc))
        status = transaction.status
        if status is None:
            status_row = await self.storage.get_lease(saga_id)
            status = status_row.status if status_row else None
        return ActionResult(saga_id, "recover", status, error=error)

    async def compensate_saga(
        self, saga_id: uuid.UUID, *, reason: str = "", operator: Operator | None = None
    ) -> ActionResult:
        """Compensate a saga (a rollback when COMPLETED); asks its owner if another runs it."""
        saga_id = saga_uuid(saga_id)
        lease = await self._lease(saga_id)
        if lease.status is SagaStatus.COMPENSATED:
            result = ActionResult(saga_id, "compensate", lease.status)
            await self._audit(saga_id, "compensate", reason, result, operator=operator)
            return result
        # A stored context that does not load is refused here, before anything is claimed.
        context_type, saga_type, _ = await self._stored(saga_id)

        def load(claimed: dict[str, typing.Any]) -> typing.Any:
            return _load_context(saga_id, context_type, claimed)

        run = self._transaction(saga_type, None, saga_id)
        try:
            status = await run.claim_and_compensate(load)
        except SagaBusyError:
            # Its runner is alive (here or elsewhere): it compensates at its next step.
            await self.storage.request_action(saga_id, RequestedAction.COMPENSATE)
            result = ActionResult(saga_id, "compensate", lease.status, requested=True)
        else:
            result = ActionResult(saga_id, "compensate", status)
        await self._audit(saga_id, "compensate", reason, result, operator=operator)
        return result

    async def _lease(self, saga_id: uuid.UUID) -> LeaseInfo:
        lease = await self.storage.get_lease(saga_id)
        if lease is None:
            raise SagaNotFoundError(f"Saga {saga_id} not found")
        return lease

    async def _stored(self, saga_id: uuid.UUID) -> tuple[type, type[Saga[typing.Any]], typing.Any]:
        """(context type, saga class, loaded context) of a stored saga."""
        detail = await self.storage.get_saga(saga_id)
        if detail is None:
            raise SagaNotFoundError(f"Saga {saga_id} not found")
        context_type, saga_type = self.saga_for_name(detail.summary.name)
        context = _load_context(saga_id, context_type, detail.context, detail.context_error)
        return context_type, saga_type, context

    async def recover_stale(
        self,
        *,
        limit: int = 1000,
        concurrency: int = 16,
        reason: str = "",
        skip: typing.Collection[uuid.UUID] = (),
    ) -> list[ActionResult]:
        """Claim and recover unfinished sagas whose runner is gone (lease expired or dead).

        Ids in ``skip`` (recovered already by the caller's earlier batches) are left
        alone, so one sweep recovers each saga at most once.
        """
        now = time.time()
        host = this_host()
        candidates = await self.storage.lease_candidates(now, host, limit + len(skip))
        stale = [
            c.saga_id
            for c in candidates
            if c.saga_id not in skip
            and (
                c.owner is None
                or (c.expires is not None and c.expires < now)
                or owner_is_dead(c.owner, host)
            )
        ][:limit]

        async def one(saga_id: uuid.UUID) -> ActionResult | None:
            try:
                result = await self._recover(saga_id)
            except SagaBusyError:
                return None  # another runner got there first
            except Exception as exc:
                result = ActionResult(saga_id, "recover", error=describe(exc))
            await self._audit(saga_id, "recover", reason or "stale", result)
            return result

        done = await run_bounded(stale, one, concurrency=concurrency)
        return [result for result in done if result is not None]

    async def _audit(
        self,
        saga_id: uuid.UUID,
        action: str,
        reason: str,
        result: ActionResult,
        error: str | None = None,
        *,
        operator: Operator | None = None,
    ) -> None:
        """Record an operator action; ``error`` (else the result's) becomes the outcome.

        The audit is a record, not the action: a failure to write it is swallowed.
        """
        with contextlib.suppress(Exception):
            await self.storage.record_operator_action(
                operator_action(
                    saga_id,
                    action,
                    reason,
                    audit_outcome(result, error or result.error),
                    operator or self.operator,
                ),
            )


def _load_context(
    saga_id: uuid.UUID,
    context_type: type,
    stored: dict[str, typing.Any] | None,
    problem: str | None = None,
) -> typing.Any:
    """The stored context as ``context_type``; ContextLoadError worded once for every action."""
    if stored is None:
        raise ContextLoadError(f"Saga {saga_id}: stored context does not parse: {problem}")
    try:
        return load_context(context_type, stored)
    except Exception as exc:
        reason = str(exc).splitlines()[0]
        raise ContextLoadError(
            f"Saga {saga_id}: stored context is not a valid {context_type.__name__}: {reason}",
        ) from exc
