"""SagaMediator: runs sagas by context type and acts on stored sagas by id."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import typing
import uuid

from engine.container import wrap_container
from engine.events.emitter import EventEmitter
from engine.events.map import EventMap
from engine.message_brokers.devnull import DevnullMessageBroker
from engine.message_brokers.protocol import MessageBroker
from engine.middlewares.base import MiddlewareChain
from engine.saga.context_codec import load_context
from engine.saga.errors import (
    CompensationRequestedError,
    ContextLoadError,
    ForwardNotAllowedError,
    SagaBusyError,
    SagaNotFoundError,
    SagaNotRegisteredError,
    SagaStorageError,
)
from engine.saga.execution import (
    Listener,
    RunSettings,
    SagaRun,
    Sleep,
)
from engine.saga.lease import (
    DEFAULT_LEASE_SECONDS,
    LeaseKeeper,
    keeper_for,
    owner_is_dead,
    this_host,
)
from engine.saga.map import SagaMap
from engine.saga.operator import ActionResult, Operator, operator_action
from engine.saga.saga import Saga
from engine.saga.step import SagaStepResult
from engine.saga.storage.enums import RequestedAction, SagaStatus
from engine.saga.storage.memory import MemorySagaStorage
from engine.saga.storage.protocol import ISagaStorage

logger = logging.getLogger("engine.saga")


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
        self.settings = RunSettings(
            compensation_retry_count=compensation_retry_count,
            compensation_retry_delay=compensation_retry_delay,
            compensation_retry_backoff=compensation_retry_backoff,
            middlewares=middleware_chain or MiddlewareChain(),
        )
        if sleep is not None:
            self.settings.sleep = sleep
        self.lease_seconds = lease_seconds
        # Who operator actions are audited as; None: the OS user on this host. A process
        # acting for someone else (a browser session of ``saga-tui serve``) sets it.
        self.operator: Operator | None = None

    # ---- registry ----------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(saga_id)`` after every checkpoint this process writes."""
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
        return keeper_for(self.storage, self.lease_seconds)

    def _transaction(
        self,
        saga_type: type[Saga[typing.Any]],
        context: typing.Any,
        saga_id: uuid.UUID | None,
    ) -> SagaRun:
        return SagaRun(
            saga_type(),
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
        return self._stream(self._transaction(saga_type, context, saga_id))

    execute = stream

    def _stream(
        self,
        run: SagaRun,
        *,
        recovery: bool = False,
    ) -> typing.AsyncGenerator[SagaStepResult[typing.Any, typing.Any], None]:
        run.emit = self.emitter.emit_all
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
        with contextlib.suppress(Exception):
            await self.storage.record_operator_action(
                operator_action(
                    transaction.saga_id,
                    "start",
                    reason,
                    _outcome(result, error),
                    self.operator,
                ),
            )
        return result

    async def recover_saga(self, saga_id: uuid.UUID, *, reason: str = "") -> ActionResult:
        """Resume a saga by id: forward if it was running, else finish compensation."""
        result = await self._recover(saga_id)
        await self._audit(saga_id, "recover", reason, result)
        return result

    async def _recover(self, saga_id: uuid.UUID, steal_from: str | None = None) -> ActionResult:
        lease = await self.storage.get_lease(saga_id)
        if lease is None:
            raise SagaNotFoundError(f"Saga {saga_id} not found")
        if lease.status in (SagaStatus.COMPLETED, SagaStatus.COMPENSATED):
            return ActionResult(saga_id, "recover", lease.status)
        detail = await self.storage.get_saga(saga_id)
        if detail is None:
            raise SagaNotFoundError(f"Saga {saga_id} not found")
        context_type, saga_type = self.saga_for_name(detail.summary.name)
        if detail.context is None:
            raise ContextLoadError(
                f"Saga {saga_id}: stored context does not parse: {detail.context_error}",
            )
        try:
            context = load_context(context_type, detail.context)
        except Exception as exc:
            reason = str(exc).splitlines()[0]
            raise ContextLoadError(
                f"Saga {saga_id}: stored context is not a valid {context_type.__name__}: {reason}",
            ) from exc
        transaction = self._transaction(saga_type, context, saga_id)
        error: str | None = None
        try:
            async for _ in self._stream(transaction, recovery=True):
                pass
        except (SagaBusyError, ContextLoadError):
            raise
        except (ForwardNotAllowedError, CompensationRequestedError):
            pass
        except SagaStorageError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            # The forward step failed again; the saga was compensated: that is the outcome.
            logger.info("recovery of %s ended in compensation: %s", saga_id, exc)
        status = transaction.status
        if status is None:
            status_row = await self.storage.get_lease(saga_id)
            status = status_row.status if status_row else None
        return ActionResult(saga_id, "recover", status, error=error)

    async def compensate_saga(self, saga_id: uuid.UUID, *, reason: str = "") -> ActionResult:
        """Compensate a saga (a rollback when COMPLETED); asks its owner if another runs it."""
        lease = await self.storage.get_lease(saga_id)
        if lease is None:
            raise SagaNotFoundError(f"Saga {saga_id} not found")
        if lease.status is SagaStatus.COMPENSATED:
            result = ActionResult(saga_id, "compensate", lease.status)
            await self._audit(saga_id, "compensate", reason, result)
            return result
        detail = await self.storage.get_saga(saga_id)
        if detail is None:
            raise SagaNotFoundError(f"Saga {saga_id} not found")
        context_type, saga_type = self.saga_for_name(detail.summary.name)

        def load(stored: dict[str, typing.Any]) -> typing.Any:
            try:
                return load_context(context_type, stored)
            except Exception as exc:
                raise ContextLoadError(
                    f"Saga {saga_id}: stored context is not a valid {context_type.__name__}: "
                    f"{str(exc).splitlines()[0]}",
                ) from exc

        run = self._transaction(saga_type, None, saga_id)
        try:
            status = await run.claim_and_compensate(load)
        except SagaBusyError:
            # Its runner is alive (here or elsewhere): it compensates at its next step.
            await self.storage.request_action(saga_id, RequestedAction.COMPENSATE)
            result = ActionResult(saga_id, "compensate", lease.status, requested=True)
            await self._audit(saga_id, "compensate", reason, result)
            return result
        result = ActionResult(saga_id, "compensate", status)
        await self._audit(saga_id, "compensate", reason, result)
        return result

    async def recover_stale(
        self,
        *,
        limit: int = 1000,
        concurrency: int = 16,
        reason: str = "",
    ) -> list[ActionResult]:
        """Claim and recover unfinished sagas whose runner is gone (lease expired or dead)."""
        now = time.time()
        host = this_host()
        candidates = await self.storage.lease_candidates(now, host, limit)
        semaphore = asyncio.Semaphore(max(1, concurrency))
        results: list[ActionResult] = []

        async def one(saga_id: uuid.UUID) -> None:
            async with semaphore:
                try:
                    result = await self._recover(saga_id)
                except SagaBusyError:
                    return
                except Exception as exc:
                    result = ActionResult(saga_id, "recover", error=str(exc))
                results.append(result)
                await self._audit(saga_id, "recover", reason or "stale", result)

        todo = [
            c.saga_id
            for c in candidates
            if c.owner is None
            or (c.expires is not None and c.expires < now)
            or owner_is_dead(c.owner, host)
        ]
        await asyncio.gather(*(one(saga_id) for saga_id in todo))
        return results

    async def _audit(
        self, saga_id: uuid.UUID, action: str, reason: str, result: ActionResult
    ) -> None:
        with contextlib.suppress(Exception):
            await self.storage.record_operator_action(
                operator_action(
                    saga_id, action, reason, _outcome(result, result.error), self.operator
                ),
            )


def _outcome(result: ActionResult, error: str | None) -> str:
    if error:
        return f"error: {error}"[:500]
    if result.requested:
        return "requested from owner"
    return result.status.name if result.status else ""
