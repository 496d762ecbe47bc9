"""Sample sagas, fake services with a ledger, and a load generator for the demo."""

from sample_sagas.app import create_instant_mediator, create_mediator, example_context, examples
from sample_sagas.services import Knobs

__all__ = ["Knobs", "create_instant_mediator", "create_mediator", "example_context", "examples"]
