"""``saga-tui worker``: serve operator requests and recover stale sagas until signalled.

SIGTERM or SIGINT stops taking work; running sagas stop at their next step boundary
within the grace period (their leases and request pairs given back), then the worker
deregisters and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import typing

from engine.saga.worker import RequestServer
from saga_tui.textfmt import clean

if typing.TYPE_CHECKING:
    from engine.saga.mediator import SagaMediator

Out = typing.Callable[[str], None]


async def run_worker(
    mediator: SagaMediator,
    out: Out,
    *,
    db_label: str,
    app: str,
    name: str | None,
    concurrency: int,
    grace: float,
) -> int:
    """Serve until SIGTERM/SIGINT; prints one line when serving and one when stopped."""

    def trouble(text: str) -> None:
        # The database going away and coming back: one line each, on stderr.
        who = clean(server.name)
        print(f"saga-tui: worker {who}: {clean(text)}", file=sys.stderr, flush=True)

    server = RequestServer(
        mediator,
        name=name,
        app=app,
        concurrency=concurrency,
        grace=grace,
        dedicated=True,
        report=trouble,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop)
    types = ", ".join(n for n, _, _ in mediator.registered()) or "no saga types"
    task = asyncio.create_task(server.serve())
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if task.done():
        await task  # registering failed: its error is the command's
    out(
        f"worker {server.name} serving {types} on {db_label} "
        f"(owner {server.owner}, concurrency {server.concurrency})"
    )
    try:
        await task
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
    out(f"worker {server.name} stopped: served {server.served}")
    return 0
