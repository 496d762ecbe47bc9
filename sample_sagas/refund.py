"""SubscriptionSaga: its refund can be declined for a while, so FAILED sagas exist."""

from __future__ import annotations

import uuid

from engine.response import Response
from engine.saga.saga import Saga
from engine.saga.step import SagaStepResult
from sample_sagas.contexts import SubscriptionContext
from sample_sagas.services import ServiceError, ServiceStep


class AccountError(ServiceError):
    """The account could not be created."""


class ChargeError(ServiceError):
    """The first payment was declined."""


class ProvisioningError(ServiceError):
    """The service could not be provisioned."""


class Done(Response):
    """The reference a service returned."""

    reference: str


def _ref(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class CreateAccount(ServiceStep[SubscriptionContext, Done]):
    """Create the customer's account."""

    error = AccountError

    async def act(self, context: SubscriptionContext) -> SagaStepResult[SubscriptionContext, Done]:
        """Create the account."""
        await self.do(f"account for '{context.customer}' could not be created")
        context.account_id = context.account_id or _ref("acc")
        return self._generate_step_result(Done(reference=context.account_id))


class ChargeFirstMonth(ServiceStep[SubscriptionContext, Done]):
    """Charge the first month; its compensation is a refund the gateway may decline."""

    error = ChargeError

    async def act(self, context: SubscriptionContext) -> SagaStepResult[SubscriptionContext, Done]:
        """Charge the card."""
        await self.do(f"card declined for {context.amount}")
        context.charge_id = context.charge_id or _ref("chg")
        return self._generate_step_result(Done(reference=context.charge_id))

    async def compensate(self, context: SubscriptionContext) -> None:
        """Refund the charge (may be declined until an operator retries later)."""
        await self.services.refund(self.name)


class ProvisionService(ServiceStep[SubscriptionContext, Done]):
    """Provision the subscribed plan."""

    error = ProvisioningError

    async def act(self, context: SubscriptionContext) -> SagaStepResult[SubscriptionContext, Done]:
        """Provision the plan."""
        await self.do(f"plan '{context.plan}' could not be provisioned")
        context.provisioned = True
        return self._generate_step_result(Done(reference=context.subscription_id))


class SubscriptionSaga(Saga[SubscriptionContext]):
    """Account, charge, provision; a declined refund leaves it FAILED for an operator."""

    steps = [CreateAccount, ChargeFirstMonth, ProvisionService]
    search_keys = ("subscription_id",)
