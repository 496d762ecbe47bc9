"""App factories for end-to-end tests (``--app tests.e2e.apps:NAME``)."""

from __future__ import annotations

from engine.saga.mediator import SagaMediator
from engine.saga.storage.protocol import ISagaStorage
from sample_sagas import Knobs, create_mediator


def reliable(storage: ISagaStorage) -> SagaMediator:
    """Sample sagas whose services never fail and answer at once."""
    return create_mediator(
        storage,
        knobs=Knobs(
            failure_rate=0.0,
            compensation_failure_rate=0.0,
            refund_decline_rate=0.0,
            latency_ms=(0.0, 1.0),
        ),
    )


def declining(storage: ISagaStorage) -> SagaMediator:
    """Provisioning always fails and every refund is declined: SubscriptionSagas end FAILED."""
    return create_mediator(
        storage,
        knobs=Knobs(
            failure_rate=0.0,
            step_failure_rates={"ProvisionService": 1.0},
            compensation_failure_rate=0.0,
            refund_decline_rate=1.0,
            refund_decline_seconds=3600.0,
            latency_ms=(0.0, 1.0),
            compensation_retry_delay=0.0,
        ),
    )


def broken(storage: ISagaStorage) -> SagaMediator:
    """A factory that fails, as a user's app might."""
    raise RuntimeError("cannot reach the configuration server")
