"""Open the database and the user's application for the dashboard (helpers of target.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import typing

from saga_tui.target import (
    UsageError,
    build_mediator,
    load_app_factory,
    open_storage,
    resolve_db_url,
    sqlite_file,
)

if typing.TYPE_CHECKING:
    from engine.saga.mediator import SagaMediator
    from engine.saga.storage.protocol import ISagaStorage

LaunchError = UsageError


def open_everything(
    db: str | None, app_factory: str | None, *, read_only: bool
) -> tuple[ISagaStorage, SagaMediator | None, str]:
    """(storage, mediator, label) or UsageError; the storage is closed on failure."""
    url = resolve_db_url(db)
    # The factory is imported first: a broken --app must not create an empty database.
    factory = load_app_factory(app_factory) if app_factory else None
    storage = open_storage(url, read_only, must_exist=read_only)
    mediator: SagaMediator | None = None
    if factory is not None:
        try:
            mediator = build_mediator(factory, storage, app_factory or "--app")
        except BaseException:
            with contextlib.suppress(Exception):
                asyncio.run(storage.close())
            raise
    path = sqlite_file(url)
    label = os.path.basename(path) if path else url.split("://", 1)[0]
    return storage, mediator, label
