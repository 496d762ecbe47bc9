"""Export the README's screenshots from the app itself (docs/dashboard.svg, docs/groups.svg).

    python docs/screenshot.py

Seeds a scratch database with finished, rolled-back and FAILED sample sagas, runs the
dashboard headless in --demo mode for a few seconds, then saves ``export_screenshot()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
import sys
import tempfile
import typing
import uuid

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage  # noqa: E402
from saga_tui.cli import make_app  # noqa: E402
from sample_sagas import Knobs, create_mediator  # noqa: E402
from sample_sagas.app import example_context  # noqa: E402


async def main() -> None:
    """Seed, run, export."""
    # The seeded FAILED sagas log their failed compensations; they are wanted, not news.
    logging.getLogger("engine").setLevel(logging.CRITICAL)
    path = pathlib.Path(tempfile.mkdtemp()) / "sagas.db"
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{path}")
    quick = Knobs(latency_ms=(1.0, 5.0), failure_rate=0.25, compensation_retry_delay=0.01)
    seeder = create_mediator(storage, knobs=quick)
    names = ["OrderSaga", "TravelSaga", "SubscriptionSaga"]
    for index in range(24):
        with contextlib.suppress(Exception):
            await seeder.run(example_context(names[index % 3]))
    declining = create_mediator(
        storage,
        knobs=Knobs(
            latency_ms=(1.0, 5.0),
            failure_rate=0.0,
            refund_decline_rate=1.0,
            refund_decline_seconds=1e6,
            compensation_retry_count=1,
            compensation_retry_delay=0.01,
        ),
    )
    for _ in range(2):
        saga_id = uuid.uuid4()
        await declining.run(example_context("SubscriptionSaga"), saga_id=saga_id)
        await declining.compensate_saga(saga_id, reason="screenshot")
    await storage.close()
    # As ``saga-tui --db sagas.db --demo`` opens it (the user's keymap left out).
    no_keymap = path.with_name("keymap.toml")
    app = make_app(str(path), "sample_sagas:create_mediator", demo=True, keymap_file=no_keymap)
    async with app.run_test(size=(120, 36)) as pilot:
        # Until the first load is on screen (slow on a busy machine), then some demo life.
        for _ in range(300):
            if len(app.main_screen.table.order) >= 20:
                break
            await pilot.pause(0.1)
        await pilot.pause(3.5)
        target = HERE / "dashboard.svg"
        target.write_text(app.export_screenshot(title="saga-tui"))
        print(f"wrote {target}")
        # The on-call view: failures grouped by cause (g).
        await pilot.press("g")
        for _ in range(300):
            if type(app.screen).__name__ == "GroupsScreen" and "COUNT" in _text(app):
                break
            await pilot.pause(0.1)
        await pilot.pause(1.0)
        groups = HERE / "groups.svg"
        groups.write_text(app.export_screenshot(title="saga-tui: failure groups"))
        print(f"wrote {groups}")


def _text(app: typing.Any) -> str:
    return app.export_screenshot()


if __name__ == "__main__":
    asyncio.run(main())
