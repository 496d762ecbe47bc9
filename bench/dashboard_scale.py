"""The dashboard on 1,000,000 sagas, headless: first rows, paging, filtering, memory, idle CPU.

    python bench/dashboard_scale.py [--db bench/.cache/million.db] [--idle 10]

The database is the one bench/dashboard_queries.py builds (and caches); it is built here
through that script's builder when missing. The app runs under ``App.run_test`` at
120x40 with live updates on (250 ms probe), opened read-only so the cache is not touched.
Targets: first rows < 1 s, page and filter < 100 ms, RSS < 200 MB, idle CPU < 5 %.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import statistics
import sys
import time
import typing

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

# Imported before any clock starts (make_app imports them lazily, for the command line).
import engine.saga.storage.sqlalchemy  # noqa: E402, F401
import saga_tui.app  # noqa: E402, F401
from saga_tui.cli import make_app  # noqa: E402
from saga_tui.filters import parse_filter  # noqa: E402


def rss_mb() -> float:
    """Current resident set size of this process."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def until(
    pilot: typing.Any, predicate: typing.Callable[[], bool], timeout: float = 30
) -> None:
    """Let the app run until ``predicate()``; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        # A plain sleep: the app runs in this loop, so it renders meanwhile.
        await asyncio.sleep(0.001)


def verdict(value: float, target: float) -> str:
    return "ok" if value < target else "SLOW"


async def measure(db: str, idle_seconds: float) -> bool:
    """Run every measurement; True when all meet their targets."""
    started = time.perf_counter()
    app = make_app(db, None, read_only=True)  # as ``saga-tui --read-only``, with no --app
    ok = True
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.main_screen
        table = screen.table
        await until(pilot, lambda: len(table.order) > 0)
        first_rows = time.perf_counter() - started
        counts = app.shown.counts.total if app.shown else 0
        print(f"database: {db} ({counts:,} sagas)")
        shown = f"{first_rows * 1000:8.1f} ms"
        print(f"first rows on screen      {shown}   (< 1000 ms) {verdict(first_rows, 1)}")
        ok &= first_rows < 1

        query_times: list[float] = []

        async def timed(action: typing.Callable[[], None]) -> float:
            before = list(table.order)
            generation = app.browse.generation
            t0 = time.perf_counter()
            action()
            await until(
                pilot,
                lambda: (
                    app.shown is not None
                    and app.shown.request.generation > generation
                    and table.order != before
                ),
            )
            elapsed = time.perf_counter() - t0
            if app.shown is not None:
                query_times.append(app.shown.elapsed)
            return elapsed

        pages = [await timed(lambda: screen.action_page(1)) for _ in range(20)]
        pages += [await timed(lambda: screen.action_page(-1)) for _ in range(10)]
        # Within a page the cursor moves locally; page down there is a redraw only.
        t0 = time.perf_counter()
        await pilot.press("pagedown")
        local = time.perf_counter() - t0
        filters: dict[str, list[float]] = {}
        for text in ("status:failed", "status:running", "name:Travel", "timeout", ""):
            runs = []
            for _ in range(5):
                screen.set_filter(parse_filter("status:compensated"))
                await until(
                    pilot,
                    lambda: (
                        app.shown is not None
                        and app.shown.request.generation == app.browse.generation
                    ),
                )
                runs.append(await timed(lambda t=text: screen.set_filter(parse_filter(t))))  # type: ignore[misc]
            filters[text or "(cleared)"] = runs
        for label, values in [("page down (next keyset page)", pages)] + [
            (f"filter {k!r}", v) for k, v in filters.items()
        ]:
            med, top = statistics.median(values), max(values)
            figures = f"median {med * 1000:6.1f} ms  max {top * 1000:6.1f} ms"
            print(f"{label:30} {figures}   (< 100 ms) {verdict(med, 0.1)}")
            ok &= med < 0.1
        print(f"  of which database reads   median {statistics.median(query_times) * 1000:6.1f} ms")
        print(f"pagedown key inside a page {local * 1000:7.1f} ms   (a Pilot key press round trip)")
        # Idle with live updates on: the probe runs every 250 ms, nothing changes.
        screen.set_filter(parse_filter(""))
        await pilot.pause(1.0)
        cpu0, wall0 = os.times(), time.monotonic()
        await asyncio.sleep(idle_seconds)
        cpu1, wall1 = os.times(), time.monotonic()
        cpu = (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / (wall1 - wall0) * 100
        memory = rss_mb()
        print(f"resident memory           {memory:8.1f} MB   (< 200 MB)  {verdict(memory, 200)}")
        over = f"over {idle_seconds:.0f} s"
        print(f"idle CPU, live updates on {cpu:8.2f} %    (< 5 %) {over}  {verdict(cpu, 5)}")
        ok &= memory < 200 and cpu < 5
    return ok


def main() -> None:
    """Build the database if needed, then measure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=str(HERE / ".cache" / "million.db"))
    parser.add_argument("--sagas", type=int, default=1_000_000)
    parser.add_argument("--idle", type=float, default=10.0)
    args = parser.parse_args()
    if not os.path.exists(args.db):
        sys.path.insert(0, str(HERE))
        from dashboard_queries import build  # type: ignore[import-not-found]

        print(f"building {args.db} with {args.sagas:,} sagas ...", file=sys.stderr)
        os.makedirs(os.path.dirname(args.db), exist_ok=True)
        build(args.db, args.sagas)
    sys.exit(0 if asyncio.run(measure(args.db, args.idle)) else 1)


if __name__ == "__main__":
    main()
