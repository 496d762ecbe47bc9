"""Who an operator is, for the audit trail."""

from __future__ import annotations

import dataclasses
import getpass
import typing
import uuid

from engine.saga.lease import this_host
from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import OperatorAction


def os_user() -> str:
    """The OS user running this process."""
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


@dataclasses.dataclass(frozen=True, slots=True)
class Operator:
    """Who acts, for the audit: a user and the host they act from (``user@host``)."""

    user: str
    host: str

    def __str__(self) -> str:
        return f"{self.user}@{self.host}"


def this_operator() -> Operator:
    """The default operator: the OS user of this process, on this host."""
    return Operator(os_user(), this_host())


def operator_action(
    saga_id: uuid.UUID,
    action: str,
    reason: str = "",
    outcome: str = "",
    operator: Operator | None = None,
) -> OperatorAction:
    """An audit record stamped with ``operator`` (by default this OS user and host)."""
    who = operator or this_operator()
    return OperatorAction(
        saga_id=saga_id,
        action=action,
        reason=reason,
        os_user=who.user,
        host=who.host,
        outcome=outcome,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class ActionResult:
    """The outcome of an operator action on one saga."""

    saga_id: uuid.UUID
    action: typing.Literal["start", "recover", "compensate"]
    status: SagaStatus | None = None
    requested: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        """The one success rule: the action did what was asked, or was handed to the owner.

        A start succeeds when its saga completed; a recovery or compensation that leaves
        failed compensations behind (FAILED) did not work; any error is a failure.
        """
        if self.error is not None:
            return False
        if self.requested:
            return True
        if self.action == "start":
            return self.status is SagaStatus.COMPLETED
        return self.status is not SagaStatus.FAILED

    def describe(self) -> str:
        """One line for a status bar or a terminal."""
        short = str(self.saga_id)[:8]
        if self.error:
            return f"{self.action} {short}: {self.error}"
        if self.requested:
            return f"{self.action} {short}: requested from the running owner"
        return f"{self.action} {short}: {self.status.name if self.status else 'done'}"


def audit_outcome(result: ActionResult, error: str | None) -> str:
    """The audit row's outcome: the error, ``requested from owner`` or the status."""
    if error:
        return f"error: {error}"[:500]
    if result.requested:
        return "requested from owner"
    return result.status.name if result.status else ""
