"""Saga storage: the protocol, in-memory storage and (in .sqlalchemy) the SQL store."""

from engine.saga.storage.enums import SagaStatus, SagaStepStatus
from engine.saga.storage.protocol import ISagaStorage

__all__ = ["ISagaStorage", "SagaStatus", "SagaStepStatus"]
