"""recover_saga(): resume one saga with an explicit saga instance (python-cqrs API)."""

from __future__ import annotations

import typing
import uuid

from engine.saga.saga import Saga
from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.protocol import ISagaStorage


async def recover_saga(
    saga: Saga[typing.Any],
    saga_id: uuid.UUID,
    context_builder: typing.Callable[[dict[str, typing.Any]], typing.Any] | type,
    container: typing.Any,
    storage: ISagaStorage,
    **options: typing.Any,
) -> None:
    """Resume ``saga_id``: completed steps are skipped, compensation is finished.

    Raises python-cqrs's RuntimeError when the saga was compensating or failed (after
    finishing its compensation), and re-raises a forward failure after compensating.
    """
    status, data, _ = await storage.load_saga_state(saga_id)
    if status is SagaStatus.COMPLETED:
        return
    if isinstance(context_builder, type) and hasattr(context_builder, "from_dict"):
        context = context_builder.from_dict(data)
    elif isinstance(context_builder, type):
        context = context_builder(**data)
    else:
        context = context_builder(data)
    async with saga.transaction(
        context, container, storage, saga_id, recovery=True, **options
    ) as transaction:
        async for _ in transaction:
            pass
