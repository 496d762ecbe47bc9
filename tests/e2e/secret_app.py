"""App factories whose failures carry a password in a URL (``--app tests.e2e.secret_app:NAME``).

The secrets tests check that the password never reaches a command's output, log or rows.
"""

from __future__ import annotations

import dataclasses
import typing

import engine
from engine.saga.bootstrap import bootstrap
from engine.saga.mediator import SagaMediator
from engine.saga.models import SagaContext
from engine.saga.saga import Saga
from engine.saga.step import SagaStepHandler, SagaStepResult
from engine.saga.storage.protocol import ISagaStorage

PASSWORD = "Hidden9PW"
CACHE_URL = f"redis://cache:{PASSWORD}@10.0.0.9:6379/0"


def broken(storage: ISagaStorage) -> SagaMediator:
    """A factory that fails naming its configuration server, password and all."""
    raise RuntimeError(f"cannot reach {CACHE_URL}")


@dataclasses.dataclass
class CacheContext(SagaContext):
    """What the leaky saga works on."""

    key: str

    @classmethod
    def example(cls) -> CacheContext:
        """What ``saga-tui start CacheSaga`` runs."""
        return cls(key="k1")


class Warm(SagaStepHandler[CacheContext, engine.Response]):
    """A step that always fails with the cache's URL in its message."""

    async def act(self, context: CacheContext) -> SagaStepResult[CacheContext, engine.Response]:
        raise ConnectionError(f"cannot warm {context.key}: {CACHE_URL} refused")

    async def compensate(self, context: CacheContext) -> None:
        return None


class CacheSaga(Saga[CacheContext]):
    """One step that fails: the saga ends COMPENSATED with the URL in its error."""

    steps = [Warm]


class _Container:
    async def resolve(self, type_: type) -> typing.Any:
        return type_()


def leaky(storage: ISagaStorage) -> SagaMediator:
    """An application whose one saga fails with a password-bearing URL in the error."""
    return bootstrap(
        _Container(),
        sagas_mapper=lambda sagas: sagas.bind(CacheContext, CacheSaga),
        saga_storage=storage,
    )
