"""The demo ledger in a PostgreSQL saga database: the same tables and refusals as SQLite.

Each effect is one transaction that locks the saga's fence row (``SELECT ... FOR
UPDATE``), so the fence check and the write that follows it are atomic across
processes, as ``BEGIN IMMEDIATE`` makes them on SQLite.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sample_sagas.ledger import Action, Effect, LedgerRow, StaleEffectError, refusal

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS demo_ledger (
        seq BIGSERIAL PRIMARY KEY,
        saga_id TEXT NOT NULL,
        step TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('do', 'undo')),
        time DOUBLE PRECISION NOT NULL,
        UNIQUE (saga_id, step, action)
    )""",
    """CREATE TABLE IF NOT EXISTS demo_ledger_fences (
        saga_id TEXT PRIMARY KEY,
        fence BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS demo_ledger_refused (
        seq BIGSERIAL PRIMARY KEY,
        saga_id TEXT NOT NULL,
        step TEXT NOT NULL,
        action TEXT NOT NULL,
        fence BIGINT,
        reason TEXT NOT NULL,
        time DOUBLE PRECISION NOT NULL
    )""",
)


class PostgresLedger:
    """The ``demo_ledger`` tables of a PostgreSQL database."""

    def __init__(self, url: str | sa.URL) -> None:
        self.url = url
        self._engine: AsyncEngine | None = None
        self._closing: asyncio.Task[None] | None = None
        self._creating: asyncio.Future[AsyncEngine] | None = None

    async def _connected(self) -> AsyncEngine:
        if self._engine is None:
            # Fifty sagas asking at once must share one engine, not make fifty.
            if self._creating is None or (self._creating.done() and self._creating.exception()):
                self._creating = asyncio.ensure_future(self._create())
            self._engine = await asyncio.shield(self._creating)
        return self._engine

    async def _create(self) -> AsyncEngine:
        engine = create_async_engine(self.url, pool_pre_ping=True)
        async with engine.begin() as conn:
            # One creator at a time: concurrent CREATE IF NOT EXISTS can collide.
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(774201)"))
            for statement in SCHEMA:
                await conn.execute(sa.text(statement))
        return engine

    async def record(
        self, saga_id: uuid.UUID, step: str, action: Action, fence: int | None = None
    ) -> None:
        """Record a side effect (a repeat is a no-op); StaleEffectError if refused."""
        engine = await self._connected()
        key = str(saga_id)
        effect: Effect = (key, step, action, time.time(), fence)
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO demo_ledger_fences (saga_id, fence) VALUES (:s, 0)"
                    " ON CONFLICT (saga_id) DO NOTHING"
                ),
                {"s": key},
            )
            highest = (
                await conn.execute(
                    sa.text("SELECT fence FROM demo_ledger_fences WHERE saga_id = :s FOR UPDATE"),
                    {"s": key},
                )
            ).scalar_one()
            undone = (
                action == "do"
                and (
                    await conn.execute(
                        sa.text(
                            "SELECT 1 FROM demo_ledger"
                            " WHERE saga_id = :s AND step = :t AND action = 'undo'"
                        ),
                        {"s": key, "t": step},
                    )
                ).first()
                is not None
            )
            why = refusal(effect, highest, undone)
            if why is not None:
                await conn.execute(
                    sa.text(
                        "INSERT INTO demo_ledger_refused (saga_id, step, action, fence, reason,"
                        " time) VALUES (:s, :t, :a, :f, :r, :w)"
                    ),
                    {"s": key, "t": step, "a": action, "f": fence, "r": why, "w": effect[3]},
                )
            else:
                if fence is not None:
                    await conn.execute(
                        sa.text(
                            "UPDATE demo_ledger_fences SET fence = GREATEST(fence, :f)"
                            " WHERE saga_id = :s"
                        ),
                        {"s": key, "f": fence},
                    )
                await conn.execute(
                    sa.text(
                        "INSERT INTO demo_ledger (saga_id, step, action, time)"
                        " VALUES (:s, :t, :a, :w) ON CONFLICT DO NOTHING"
                    ),
                    {"s": key, "t": step, "a": action, "w": effect[3]},
                )
        if why is not None:
            raise StaleEffectError(why)

    async def has(self, saga_id: uuid.UUID, step: str, action: Action) -> bool:
        """True when that side effect was recorded."""
        engine = await self._connected()
        async with engine.connect() as conn:
            row = await conn.execute(
                sa.text(
                    "SELECT 1 FROM demo_ledger WHERE saga_id = :s AND step = :t AND action = :a"
                ),
                {"s": str(saga_id), "t": step, "a": action},
            )
            return row.first() is not None

    async def rows(self) -> list[LedgerRow]:
        """Every ledger row, in recording order."""
        engine = await self._connected()
        async with engine.connect() as conn:
            result = await conn.execute(
                sa.text("SELECT saga_id, step, action, time, seq FROM demo_ledger ORDER BY seq")
            )
            return [LedgerRow(r[0], r[1], r[2], r[3], r[4]) for r in result]

    async def refused(self) -> list[tuple[str, str, str, int | None, str]]:
        """Refused effects: (saga id, step, action, fence, reason), oldest first."""
        engine = await self._connected()
        async with engine.connect() as conn:
            result = await conn.execute(
                sa.text(
                    "SELECT saga_id, step, action, fence, reason FROM demo_ledger_refused"
                    " ORDER BY seq"
                )
            )
            return [(r[0], r[1], r[2], r[3], r[4]) for r in result]

    async def aclose(self) -> None:
        """Close the connections."""
        self._creating = None
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await engine.dispose()

    def close(self) -> None:
        """Close the connections (from a running loop: soon; otherwise now)."""
        if self._engine is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(self.aclose())
        else:
            self._closing = loop.create_task(self.aclose())
