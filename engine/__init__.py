"""engine: an embedded saga engine with a python-cqrs compatible API.

Never imports textual, rich, saga_tui or sample_sagas.
"""

from engine.events import DomainEvent, Event, EventHandler, EventMap, NotificationEvent
from engine.requests import Request
from engine.response import Response
from engine.saga.current import current_fence, current_saga_id
from engine.saga.map import SagaMap
from engine.saga.mediator import SagaMediator
from engine.saga.models import SagaContext
from engine.saga.saga import Saga
from engine.saga.step import SagaStepHandler, SagaStepResult

__version__ = "0.1.0"

__all__ = [
    "DomainEvent",
    "Event",
    "EventHandler",
    "EventMap",
    "NotificationEvent",
    "Request",
    "Response",
    "Saga",
    "SagaContext",
    "SagaMap",
    "SagaMediator",
    "SagaStepHandler",
    "SagaStepResult",
    "current_fence",
    "current_saga_id",
]
