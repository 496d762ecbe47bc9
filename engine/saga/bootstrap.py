"""bootstrap(): build a SagaMediator from a container, a saga map and options."""

from __future__ import annotations

import typing

from engine.container import wrap_container
from engine.events.emitter import EventEmitter
from engine.events.map import EventMap
from engine.message_brokers.devnull import DevnullMessageBroker
from engine.message_brokers.protocol import MessageBroker
from engine.middlewares.base import Middleware, MiddlewareChain
from engine.saga.lease import DEFAULT_LEASE_SECONDS
from engine.saga.map import SagaMap
from engine.saga.mediator import SagaMediator
from engine.saga.settings import Sleep
from engine.saga.storage.protocol import ISagaStorage


def bootstrap(
    di_container: typing.Any,
    message_broker: MessageBroker | None = None,
    middlewares: typing.Sequence[Middleware] | None = None,
    sagas_mapper: typing.Callable[[SagaMap], None] | None = None,
    domain_events_mapper: typing.Callable[[EventMap], None] | None = None,
    on_startup: typing.Sequence[typing.Callable[[], typing.Any]] | None = None,
    saga_storage: ISagaStorage | None = None,
    max_concurrent_event_handlers: int = 1,
    concurrent_event_handle_enable: bool = True,
    *,
    compensation_retry_count: int = 3,
    compensation_retry_delay: float = 1.0,
    compensation_retry_backoff: float = 2.0,
    sleep: Sleep | None = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    max_recovery_attempts: int = 5,
    event_retry_count: int = 3,
    event_retry_delay: float = 0.5,
    event_retry_backoff: float = 2.0,
) -> SagaMediator:
    """A SagaMediator wired with sagas, event handlers, broker, middlewares and storage.

    ``on_startup`` callables run once, here. ``sleep`` replaces ``asyncio.sleep`` for
    compensation and event delivery backoff (tests pass a recorder so they never wait).
    A step's events are stored with its checkpoint and delivered after it; a delivery
    that fails is tried ``event_retry_count`` times in all (``event_retry_delay`` seconds
    apart, times ``event_retry_backoff`` each time) and then marked FAILED.
    """
    for callback in on_startup or ():
        callback()
    container = wrap_container(di_container)
    saga_map = SagaMap()
    if sagas_mapper is not None:
        sagas_mapper(saga_map)
    event_map = EventMap()
    if domain_events_mapper is not None:
        domain_events_mapper(event_map)
    emitter = EventEmitter(
        event_map,
        container,
        message_broker or DevnullMessageBroker(),
        max_concurrent_event_handlers=max_concurrent_event_handlers,
        concurrent_event_handle_enable=concurrent_event_handle_enable,
    )
    return SagaMediator(
        saga_map,
        container,
        event_emitter=emitter,
        middleware_chain=MiddlewareChain(middlewares or ()),
        storage=saga_storage,
        compensation_retry_count=compensation_retry_count,
        compensation_retry_delay=compensation_retry_delay,
        compensation_retry_backoff=compensation_retry_backoff,
        sleep=sleep,
        lease_seconds=lease_seconds,
        max_recovery_attempts=max_recovery_attempts,
        event_retry_count=event_retry_count,
        event_retry_delay=event_retry_delay,
        event_retry_backoff=event_retry_backoff,
    )
