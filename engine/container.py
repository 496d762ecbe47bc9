"""One way to resolve handlers from a ``di.Container`` or any ``async resolve(type)`` object."""

from __future__ import annotations

import typing

T = typing.TypeVar("T")


class ContainerAdapter:
    """Resolves step and event handlers per run.

    A ``di.Container`` is solved once per type and cached; a type whose solved graph is
    just its own no-argument constructor is called directly, which is what ``di`` would
    do, minus the scope bookkeeping.
    """

    def __init__(self, container: typing.Any) -> None:
        self.container = container
        self._di = _is_di_container(container)
        self._solved: dict[type, tuple[int, typing.Any]] = {}
        if self._di:
            from di.executors import AsyncExecutor

            self._executor = AsyncExecutor()
        elif not callable(getattr(container, "resolve", None)):
            raise TypeError(
                f"{type(container).__name__} is not a container: expected a di.Container "
                "or an object with 'async resolve(type)'",
            )

    async def resolve(self, type_: type[T]) -> T:
        """An instance of ``type_``."""
        if not self._di:
            return typing.cast(T, await self.container.resolve(type_))
        hooks = len(self.container._bind_hooks)
        cached = self._solved.get(type_)
        if cached is None or cached[0] != hooks:
            cached = (hooks, self._solve(type_))
            self._solved[type_] = cached
        solved = cached[1]
        if solved is None:
            return type_()
        async with self.container.enter_scope("request") as state:
            return typing.cast(T, await solved.execute_async(executor=self._executor, state=state))

    def _solve(self, type_: type) -> typing.Any:
        from di.dependent import Dependent

        solved = self.container.solve(Dependent(type_, scope="request"), scopes=["request"])
        dag = solved.dag
        if len(dag) == 1:
            ((node, params),) = dag.items()
            if node.call is type_ and not params:
                return None
        return solved


def _is_di_container(container: typing.Any) -> bool:
    try:
        import di
    except ImportError:  # pragma: no cover - di is a dependency
        return False
    return isinstance(container, di.Container)


def wrap_container(container: typing.Any) -> ContainerAdapter:
    """Wrap a container once; wrapping an adapter returns it."""
    if isinstance(container, ContainerAdapter):
        return container
    return ContainerAdapter(container)
