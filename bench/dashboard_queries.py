"""Time the dashboard's query API on a database of 1,000,000 sagas and 5,000,000 log rows.

    python bench/dashboard_queries.py [--db bench/.cache/million.db] [--sagas 1000000]

The database is built once (bulk inserts in big transactions, indexes and triggers
created afterwards) and reused while the file exists. Every query then goes through
SqlAlchemySagaStorage, as the TUI calls it, and is reported as median / p95 in ms
against its target.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import functools
import os
import random
import sqlite3
import statistics
import sys
import time
import typing
import uuid

import sqlalchemy as sa

from engine.saga.grouping import failure_key
from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import PageCursor, SagaFilter, SagaOrder
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage, schema

NAMES = (
    ("OrderSaga", ("ReserveStock", "ChargePayment", "ShipOrder")),
    ("TravelSaga", ("BookFlight", "BookHotel", "RentCar")),
    ("RefundSaga", ("ValidateRefund", "RefundPayment")),
    ("PaymentSaga", ("AuthorizeCard", "CapturePayment")),
    ("ShipmentSaga", ("PickItems", "PackBox", "HandToCarrier")),
    ("SubscriptionSaga", ("CreateAccount", "ChargeFirstMonth", "SendWelcome")),
)
NAME_WEIGHTS = (40, 15, 10, 15, 12, 8)
STATUSES = (
    (SagaStatus.COMPLETED, 900),
    (SagaStatus.COMPENSATED, 50),
    (SagaStatus.FAILED, 20),
    (SagaStatus.RUNNING, 15),
    (SagaStatus.COMPENSATING, 10),
    (SagaStatus.PENDING, 5),
)
ERRORS = (
    ("TimeoutError", "payment gateway timed out after 30s"),
    ("ConnectionError", "connection reset by inventory service"),
    ("PaymentDeclined", "card declined: insufficient funds"),
    ("ValueError", "hotel rejected booking: no rooms left"),
)
LOGS_PER_SAGA = 5
TARGETS_MS = {"counts": 50.0, "page": 20.0, "saga": 10.0, "probe": 1.0, "oncall": 50.0}
GROUPS_TARGET_MS = 100.0
"""Issue 11: the failure groups view is one grouped query, under 100 ms at a million."""


def _ts(t: datetime.datetime) -> str:
    return t.isoformat(sep=" ", timespec="microseconds")


def build(path: str, sagas: int) -> None:
    """Create the schema through the storage, then bulk-load rows with raw sqlite3."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".building"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(tmp + suffix):
            os.remove(tmp + suffix)
    asyncio.run(SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{tmp}").close())
    conn = sqlite3.connect(tmp, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -400000")
    # Indexes and triggers are rebuilt after the load: far faster than per-row upkeep.
    indexes = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        " AND tbl_name IN ('saga_executions', 'saga_logs')",
    ).fetchall()
    for (name,) in indexes:
        conn.execute(f"DROP INDEX {name}")
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    rng = random.Random(42)
    # The newest sagas are from the last minutes, so the pulse and the groups' last hour
    # have rows to count (30 days up to the build).
    span = 30 * 86400.0
    start = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(
        seconds=span
    )
    statuses = [s for s, _ in STATUSES]
    weights = [w for _, w in STATUSES]
    saga_sql = (
        "INSERT INTO saga_executions (id, name, status, context, version, created_at, updated_at,"
        " recovery_attempts, step_count, steps_done, current_step, error_type, error_message,"
        " error_traceback, finished_at, lease_owner, lease_expires, search_key, failure_key,"
        " failure_step, failure_type, failure_message, failed_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    )
    now = time.time()
    log_sql = (
        "INSERT INTO saga_logs (saga_id, step_name, action, status, created_at, error_type,"
        " error_message, attempt, duration_ms) VALUES (?,?,?,?,?,?,?,?,?)"
    )
    batch = 100_000
    started = time.perf_counter()
    for first in range(0, sagas, batch):
        saga_rows = []
        log_rows: list[tuple[typing.Any, ...]] = []
        for i in range(first, min(first + batch, sagas)):
            name, steps = rng.choices(NAMES, NAME_WEIGHTS)[0]
            status = rng.choices(statuses, weights)[0]
            created = start + datetime.timedelta(seconds=span * i / sagas)
            updated = created + datetime.timedelta(milliseconds=rng.randint(50, 5000))
            hex_id = uuid.UUID(int=rng.getrandbits(128), version=4).hex
            error: tuple[str, str] | None = None
            if status in (SagaStatus.FAILED, SagaStatus.COMPENSATED):
                error = rng.choice(ERRORS)
            done = len(steps) if status is SagaStatus.COMPLETED else rng.randrange(len(steps))
            finished = _ts(updated) if status.is_terminal else None
            step_now = steps[min(done, len(steps) - 1)]
            message = f"{error[1]} (order {i})" if error else None
            mark: tuple[str | None, ...] = (None,) * 5
            if error is not None and message is not None:
                key = failure_key(name, step_now, error[0], message)
                mark = (key, step_now, error[0], message, _ts(updated))
            owner: str | None = None
            expires: float | None = None
            if not status.is_terminal:
                # Half of the unfinished sagas are stranded (lease run out), half run
                # elsewhere (another host's owner, lease ahead).
                owner = f"otherhost:{1000 + i % 7}:0"
                expires = now - 600 if i % 2 else now + 86400 * 365
            saga_rows.append(
                (
                    hex_id,
                    name,
                    status.name,
                    f'{{"order_id":{i},"amount":"{rng.randint(1, 999)}.00"}}',
                    done + 1,
                    _ts(created),
                    _ts(updated),
                    1 if status is SagaStatus.FAILED else 0,
                    len(steps),
                    done,
                    step_now,
                    error[0] if error else None,
                    message,
                    f"Traceback (most recent call last):\n  ...\n{error[0]}: {error[1]}"
                    if error
                    else None,
                    finished,
                    owner,
                    expires,
                    f"ord-{i:08d}",
                    *mark,
                ),
            )
            t = created
            for n in range(LOGS_PER_SAGA):
                step = steps[(n // 2) % len(steps)]
                state = "STARTED" if n % 2 == 0 else "COMPLETED"
                failed = error is not None and n == LOGS_PER_SAGA - 1
                t += datetime.timedelta(milliseconds=rng.randint(1, 400))
                log_rows.append(
                    (
                        hex_id,
                        step,
                        "compensate" if failed else "act",
                        "FAILED" if failed else state,
                        _ts(t),
                        error[0] if failed and error else None,
                        error[1] if failed and error else None,
                        1,
                        None if state == "STARTED" else rng.uniform(1, 400),
                    ),
                )
        conn.execute("BEGIN")
        conn.executemany(saga_sql, saga_rows)
        conn.executemany(log_sql, log_rows)
        conn.execute("COMMIT")
        done_rows = min(first + batch, sagas)
        print(
            f"  loaded {done_rows:,} sagas ({time.perf_counter() - started:.0f}s)", file=sys.stderr
        )
    conn.close()
    engine = sa.create_engine(f"sqlite:///{tmp}")
    with engine.begin() as sa_conn:
        for ix in (*schema.SAGA_INDEXES, *schema.LOG_INDEXES):
            ix.create(sa_conn)
        for ddl in schema.count_trigger_ddl("sqlite"):
            sa_conn.exec_driver_sql(ddl)
        for sql in schema.RECOUNT_SQL:
            sa_conn.exec_driver_sql(sql)
        sa_conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    os.replace(tmp, path)
    print(f"  built {path} in {time.perf_counter() - started:.0f}s", file=sys.stderr)


async def timed(fn: typing.Callable[[], typing.Awaitable[typing.Any]], runs: int) -> list[float]:
    """Run ``fn`` ``runs`` times after one warm-up; milliseconds per run."""
    await fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def p95(values: list[float]) -> float:
    """The 95th percentile."""
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


async def measure(path: str, runs: int) -> bool:
    """Time every query; True when all meet their targets."""
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{path}", read_only=True)
    ok = True
    try:
        counts = await storage.count_by_status()
        print(f"database: {path}: {counts.total:,} sagas, {await storage.last_log_id():,} log rows")
        raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        ids = [
            uuid.UUID(hex=r[0])
            for r in raw.execute("SELECT id FROM saga_executions ORDER BY random() LIMIT 200")
        ]
        mid = raw.execute(
            "SELECT created_at, id FROM saga_executions"
            " ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET ?",
            (counts.total // 2,),
        ).fetchone()
        raw.close()
        deep = PageCursor(
            datetime.datetime.fromisoformat(mid[0]).replace(tzinfo=datetime.UTC),
            uuid.UUID(hex=mid[1]),
        )
        filters = {
            "no filter": SagaFilter(),
            "status:failed": SagaFilter(statuses=(SagaStatus.FAILED,)),
            "status:running": SagaFilter(statuses=(SagaStatus.RUNNING,)),
            "name:Travel": SagaFilter(name="Travel"),
            "text:timed out": SagaFilter(text="timed out"),
            "text:<id fragment>": SagaFilter(text=str(ids[0])[:8]),
            "status:failed name:Refund": SagaFilter(statuses=(SagaStatus.FAILED,), name="Refund"),
            "name:<no match>": SagaFilter(name="NoSuchSaga"),
            "text:<no match>": SagaFilter(text="no such error anywhere"),
        }
        rotating = iter(ids * (runs + 2))

        def page(f: SagaFilter, order: SagaOrder) -> typing.Awaitable[typing.Any]:
            return storage.list_sagas(f, limit=50, order=order)

        cases: list[tuple[str, str, typing.Callable[[], typing.Awaitable[typing.Any]]]] = [
            ("counts", "count_by_status", storage.count_by_status),
        ]
        for label, f in filters.items():
            cases.append(("page", f"first page, {label}", functools.partial(storage.list_sagas, f)))
        # The sort orders of the dashboard (s, or a click on a header): each walks one index.
        orders = {
            "oldest first": SagaOrder("created", descending=False),
            "by status": SagaOrder("status"),
            "by saga name": SagaOrder("name", descending=False),
        }
        for label, order in orders.items():
            cases.append(
                ("page", f"first page, {label}", functools.partial(page, SagaFilter(), order))
            )
        combos = {
            "status:failed by saga name": (filters["status:failed"], orders["by saga name"]),
            "name:Travel by status": (filters["name:Travel"], orders["by status"]),
            "text:timed out by saga name": (filters["text:timed out"], orders["by saga name"]),
        }
        for label, (f, order) in combos.items():
            cases.append(("page", f"first page, {label}", functools.partial(page, f, order)))
        by_status = orders["by status"]
        second = await storage.list_sagas(filters["name:Travel"], limit=50, order=by_status)
        assert second.next_cursor is not None
        cases.append(
            (
                "page",
                "next page, name:Travel by status",
                lambda: storage.list_sagas(
                    filters["name:Travel"], limit=50, order=by_status, after=second.next_cursor
                ),
            )
        )
        anchor_row = (await storage.list_sagas(limit=50)).items[10]
        cases.append(
            (
                "page",
                "anchored first page (at=, list stays put)",
                lambda: storage.list_sagas(limit=50, at=SagaOrder().cursor(anchor_row)),
            )
        )
        cases.append(("page", "page 2,500 deep (cursor)", lambda: storage.list_sagas(after=deep)))
        cases.append(
            ("page", "page back from deep (cursor)", lambda: storage.list_sagas(before=deep))
        )
        cases.append(("saga", "get_saga with history", lambda: storage.get_saga(next(rotating))))
        cases.append(("probe", "change_token", storage.change_token))
        # Issue 11's on-call queries, each one statement over its own index.
        groups = await storage.failure_groups()
        print(f"failure groups: {len(groups)}, {sum(g.count for g in groups):,} sagas")
        key_of = f"ord-{counts.total // 3:08d}"
        stranded = SagaFilter(stranded=True)
        cases += [
            ("oncall", "stranded count (header)", storage.stranded_count),
            ("groups", "failure groups (g view)", storage.failure_groups),
            ("oncall", "pulse sparklines (header)", storage.pulse),
            (
                "oncall",
                f"business key key:{key_of}",
                lambda: storage.list_sagas(SagaFilter(key=key_of), limit=50),
            ),
            (
                "oncall",
                f"plain text {key_of} (a key)",
                lambda: storage.list_sagas(SagaFilter(text=key_of), limit=50),
            ),
            ("oncall", "first page, status:stranded", lambda: storage.list_sagas(stranded)),
            (
                "oncall",
                "count of status:stranded (mark all)",
                lambda: storage.count_sagas(stranded),
            ),
            (
                "oncall",
                "count of one group (mark all)",
                lambda: storage.count_sagas(SagaFilter(failure_key=groups[0].key)),
            ),
            (
                "page",
                "first page of one group",
                lambda: storage.list_sagas(SagaFilter(failure_key=groups[0].key)),
            ),
        ]
        print(f"{'query':42} {'median':>9} {'p95':>9} {'target':>9}")
        for kind, label, fn in cases:
            times = await timed(fn, runs)
            med, top = statistics.median(times), p95(times)
            target = GROUPS_TARGET_MS if kind == "groups" else TARGETS_MS[kind]
            # The on-call targets are medians (issue 11: "each under 50 ms median").
            judged = med if kind in ("oncall", "groups") else top
            verdict = "ok" if judged < target else "SLOW"
            ok = ok and judged < target
            print(f"{label:42} {med:8.2f}ms {top:8.2f}ms {'<':>2}{target:5.0f}ms  {verdict}")
    finally:
        await storage.close()
    return ok


def main() -> None:
    """Build the database if needed, then time the query API."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=os.path.join("bench", ".cache", "million.db"))
    parser.add_argument("--sagas", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    if args.rebuild or not os.path.exists(args.db):
        print(f"building {args.db} with {args.sagas:,} sagas ...", file=sys.stderr)
        build(args.db, args.sagas)
    ok = asyncio.run(measure(args.db, args.runs))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
