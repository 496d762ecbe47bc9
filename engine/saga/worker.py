"""RequestServer: a process that serves operator requests and recovers stale sagas.

``saga-tui worker`` runs one; ``await mediator.serve_requests()`` runs one inside an
application; the dashboard runs one (not dedicated) while no dedicated worker lives.
It registers in the workers table and beats; claims (request, saga) pairs of the saga
types it has registered and records each pair's outcome; every few seconds it claims
the sagas whose runner is gone (each at most once per pass, failures backed off).
``stop()`` stops taking work; running sagas stop at their next step boundary (their
lease given back, their pair reopened for any process) or, past the grace period, are
cancelled; then the process deregisters.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import typing
import uuid

from engine.saga.errors import (
    CompensationRequestedError,
    ForwardNotAllowedError,
    LeaseLostError,
    SagaBusyError,
    SagaError,
    SagaNotRegisteredError,
    StorageUnavailableError,
)
from engine.saga.failure import describe
from engine.saga.fleet import RequestBook
from engine.saga.lease import owner_is_dead, this_host
from engine.saga.operator import ActionResult, Operator, audit_outcome, operator_action
from engine.saga.requests import HEARTBEAT_SECONDS, ClaimedItem, WorkerInfo
from engine.saga.retrying import Report, Retrying
from engine.saga.secrets import get_logger
from engine.saga.storage.enums import SagaStatus

if typing.TYPE_CHECKING:
    from engine.saga.execution import SagaRun
    from engine.saga.mediator import SagaMediator

logger = get_logger("engine.saga.worker")

STALE_PASS_SECONDS = 2.0
MAX_BACKOFF = 60.0
DEFAULT_GRACE = 10.0


class _Paused(Exception):
    """The server is stopping: the run gave its lease back at a step boundary."""


def _backoff(attempts: int) -> float:
    return min(MAX_BACKOFF, 0.5 * 2 ** max(0, attempts - 1))


def _requester(text: str) -> Operator:
    user, _, host = text.rpartition("@")
    return Operator(user or text, host)


class RequestServer:
    """Serves requests for one mediator until ``stop()``."""

    def __init__(
        self,
        mediator: SagaMediator,
        *,
        name: str | None = None,
        app: str = "",
        concurrency: int = 16,
        grace: float = DEFAULT_GRACE,
        dedicated: bool = True,
        recover_stale: bool = True,
        poll: float = 0.1,
        only_request: uuid.UUID | None = None,
        register: bool = True,
        report: Report | None = None,
    ) -> None:
        self.mediator = mediator
        self.book = RequestBook.of(mediator.storage)
        self.owner = mediator._keeper().owner
        self.name = name or f"worker-{socket.gethostname()}-{os.getpid()}"
        self.app = app
        self.concurrency = max(1, concurrency)
        self.grace = grace
        self.dedicated = dedicated
        self.recover_stale = recover_stale
        self.poll = poll
        self.only_request = only_request
        self.register = register
        self.served = 0
        self.deferring = False
        # Saga types a live dedicated worker serves: a non-dedicated server leaves them.
        self.left_to_others: frozenset[str] = frozenset()
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy: set[uuid.UUID] = set()
        self._held: set[int] = set()  # the request pairs being served (item ids)
        self._backoff: dict[uuid.UUID, tuple[float, int]] = {}
        self._stopping = False
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self.ready = asyncio.Event()
        # A database that cannot be reached is said once and retried with backoff.
        outage: list[Retrying] = []
        self._claims = Retrying("claiming requests", report, base=poll, group=outage)
        self._chores = Retrying(
            "housekeeping (closing requests, stale sagas)", report, base=poll, group=outage
        )
        self._beats = Retrying("the heartbeat", report, base=poll, group=outage)

    # ---- control ----------------------------------------------------------------------

    @property
    def running(self) -> int:
        """Requests and recoveries in progress here."""
        return len(self._tasks)

    def stop(self) -> None:
        """Stop taking work; running sagas stop at their next step boundary."""
        self._stopping = True
        self._wake.set()

    async def wait_stopped(self) -> None:
        """Until ``serve`` has returned."""
        await self._stopped.wait()

    def _names(self) -> list[str]:
        return [name for name, _, _ in self.mediator.registered()]

    def _info(self) -> WorkerInfo:
        now = time.time()
        return WorkerInfo(
            id=self.owner,
            name=self.name,
            host=this_host(),
            pid=os.getpid(),
            app=self.app,
            saga_types=tuple(self._names()),
            started_at=now,
            heartbeat=now,
            dedicated=self.dedicated,
        )

    # ---- main loop --------------------------------------------------------------------

    async def serve(self) -> None:
        """Register, serve until ``stop()``, shut down gracefully, deregister."""
        if self.register:
            await self.book.register(self._info())
        self.ready.set()
        beat = asyncio.create_task(self._beat_loop(), name="saga-worker-heartbeat")
        try:
            await self._loop()
        finally:
            await self._shutdown()
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await beat
            if self.register:
                with contextlib.suppress(Exception):
                    await self.book.deregister(self.owner)
            self._stopped.set()

    async def _loop(self) -> None:
        names = self._names()
        next_pass = 0.0
        dead: list[str] = []
        # Refill in handfuls: a claim is a write transaction, and one per finished saga
        # costs a busy server more than the sagas. A lone free slot still waits at most
        # one poll interval.
        refill = max(1, self.concurrency // 4)
        last_claim = 0.0
        while not self._stopping:
            now = time.monotonic()
            # While claims fail the database is away: its chores wait for it too.
            if now >= next_pass and not self._claims.failing:
                next_pass = now + STALE_PASS_SECONDS
                try:
                    dead = await self._housekeeping()
                except Exception as exc:
                    next_pass = now + max(STALE_PASS_SECONDS, self._chores.failed(exc))
                else:
                    self._chores.succeeded()
            free = self.concurrency - len(self._tasks)
            took = 0
            pause = self.poll
            wanted = [n for n in names if n not in self.left_to_others]
            if free > 0 and wanted and (free >= refill or now - last_claim >= self.poll):
                last_claim = now
                try:
                    found = await self.book.has_open(wanted, dead, self.only_request)
                    items = (
                        []
                        if not found
                        else await self.book.claim(
                            self.owner,
                            wanted,
                            free,
                            time.time() + self._claim_seconds(),
                            dead,
                            self.only_request,
                        )
                    )
                except Exception as exc:
                    pause = self._claims.failed(exc)  # the next look waits longer
                    items = []
                else:
                    self._claims.succeeded()
                later = [i.item_id for i in items if i.saga_id in self._busy or self._stopping]
                for item in items:
                    if item.saga_id not in self._busy and not self._stopping:
                        self._spawn(self._serve_item(item), item.saga_id)
                if later:
                    # This process is recovering that saga right now: the pair waits for it
                    # (or, should this fail, for its claim to expire).
                    try:
                        await self.book.release(self.owner, later, time.time() + 0.5)
                    except Exception as exc:
                        self._claims.failed(exc)
                took = len(items)
            if took and took == free:
                continue
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)

    def _claim_seconds(self) -> float:
        return max(self.mediator.lease_seconds, 1.0)

    async def _housekeeping(self) -> list[str]:
        """Defer to dedicated workers, close finished requests, recover stale sagas."""
        if not self.dedicated:
            others = [
                w for w in await self.book.live_workers(dedicated_only=True) if w.id != self.owner
            ]
            self.deferring = bool(others)
            self.left_to_others = frozenset(t for w in others for t in w.saga_types)
        await self.book.close_finished()
        host = this_host()
        dead = [o for o in await self.book.claim_holders(host) if owner_is_dead(o, host)]
        if self.recover_stale and not self.deferring:
            await self._stale_pass(host)
        return dead

    async def _stale_pass(self, host: str) -> None:
        now = time.time()
        storage = self.mediator.storage
        candidates = await storage.lease_candidates(now, host, 200)
        for c in candidates:
            if len(self._tasks) >= self.concurrency or self._stopping:
                break  # stopping: no new work, not even a pass that was under way
            if c.saga_id in self._busy or c.saga_id in self.mediator._keeper().running:
                continue
            stale = (
                c.owner is None
                or (c.expires is not None and c.expires < now)
                or owner_is_dead(c.owner, host)
            )
            due = self._backoff.get(c.saga_id, (0.0, 0))[0]
            if stale and due <= now:
                self._spawn(self._recover_stale(c.saga_id), c.saga_id)

    def _spawn(
        self, coro: typing.Coroutine[typing.Any, typing.Any, None], saga_id: uuid.UUID
    ) -> None:
        self._busy.add(saga_id)
        task = asyncio.create_task(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            self._busy.discard(saga_id)
            self._wake.set()
            if not t.cancelled() and t.exception() is not None:
                logger.error("worker task failed", exc_info=t.exception())

        task.add_done_callback(done)

    async def _beat_loop(self) -> None:
        interval = min(HEARTBEAT_SECONDS, self._claim_seconds() / 3.0)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.book.beat(
                    self.owner,
                    time.time() + self._claim_seconds(),
                    len(self._tasks),
                    sorted(self._held),
                )
            except Exception as exc:
                self._beats.failed(exc)
            else:
                self._beats.succeeded()

    async def _shutdown(self) -> None:
        """Let running work reach a step boundary within the grace period; give back."""
        self._stopping = True
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=self.grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=5.0)
        with contextlib.suppress(Exception):
            await self.book.release_all(self.owner)

    # ---- one pair ---------------------------------------------------------------------

    def _note_failure(self, saga_id: uuid.UUID) -> float:
        attempts = self._backoff.get(saga_id, (0.0, 0))[1] + 1
        due = time.time() + _backoff(attempts)
        self._backoff[saga_id] = (due, attempts)
        return due

    async def _serve_item(self, item: ClaimedItem) -> None:
        # The heartbeat renews the claims of these pairs only: one whose outcome cannot
        # be recorded here (the database went away) is left to expire for any process.
        self._held.add(item.item_id)
        try:
            await self._serve_held(item)
        finally:
            self._held.discard(item.item_id)

    async def _serve_held(self, item: ClaimedItem) -> None:
        try:
            result = await self._act(item)
        except _Paused:
            await self.book.release(self.owner, [item.item_id])
            return
        except StorageUnavailableError:
            # Nothing could be recorded: the saga is left for recovery, and the pair for
            # another try (its claim expires should giving it back fail too).
            due = self._note_failure(item.saga_id)
            with contextlib.suppress(Exception):
                await self.book.release(self.owner, [item.item_id], due)
            return
        except (SagaBusyError, LeaseLostError):
            # A live runner has the saga (elsewhere, or its lease not yet expired), or
            # took it over meanwhile: try again later; the outcome is its real end.
            due = self._note_failure(item.saga_id)
            await self.book.release(self.owner, [item.item_id], due)
            return
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.book.release(self.owner, [item.item_id]))
            raise
        except SagaError as exc:
            result = ActionResult(item.saga_id, item.kind, error=str(exc))
        except Exception as exc:
            result = ActionResult(item.saga_id, item.kind, error=f"{type(exc).__name__}: {exc}")
        self._backoff.pop(item.saga_id, None)
        outcome = (
            "REQUESTED"
            if result.requested
            else (result.status.name if result.status is not None else "ERROR")
        )
        if result.error:
            outcome = "ERROR"
        audit = None
        if item.kind != "compensate":  # compensate_saga audits itself
            audit = operator_action(
                item.saga_id,
                item.kind,
                item.reason,
                audit_outcome(result, result.error),
                _requester(item.requester),
            )
        recorded = await self.book.finish(item, self.owner, outcome, result.ok, result.error, audit)
        if recorded:
            self.served += 1

    async def _act(self, item: ClaimedItem) -> ActionResult:
        mediator = self.mediator
        if item.kind == "compensate":
            return await mediator.compensate_saga(
                item.saga_id, reason=item.reason, operator=_requester(item.requester)
            )
        if item.kind == "start":
            context_type, saga_type = mediator.saga_for_name(item.saga_name)
            from engine.saga.context_codec import load_context

            context = load_context(context_type, item.context or {})
            run = mediator._transaction(saga_type, context, item.saga_id)
            if item.fresh:
                # Its id was made with the request and no process took it before: the
                # saga cannot exist, so it is created without trying to claim it first.
                run._given_id = False
            error = await self._drive(run, recovery=False)
            status = run.status
            return ActionResult(
                item.saga_id, "start", status, error=error if status is None else None
            )
        return await self._recover(item.saga_id)

    async def _recover(self, saga_id: uuid.UUID) -> ActionResult:
        mediator = self.mediator
        lease = await mediator._lease(saga_id)
        if lease.status in (SagaStatus.COMPLETED, SagaStatus.COMPENSATED):
            return ActionResult(saga_id, "recover", lease.status)
        _, saga_type, context = await mediator._stored(saga_id)
        run = mediator._transaction(saga_type, context, saga_id)
        error = await self._drive(run, recovery=True)
        status = run.status
        if status is None:
            row = await mediator.storage.get_lease(saga_id)
            status = row.status if row else None
        return ActionResult(saga_id, "recover", status, error=error)

    async def _drive(self, run: SagaRun, *, recovery: bool) -> str | None:
        """Run to the end, or to the next step boundary once stopping (raises _Paused)."""
        gen = self.mediator._stream(run, recovery=recovery)
        paused = False
        try:
            async for _ in gen:
                if self._stopping:
                    paused = True
                    break
        except (SagaBusyError, LeaseLostError, _Paused):
            raise
        except (ForwardNotAllowedError, CompensationRequestedError):
            pass
        except SagaError as exc:
            if not recovery:
                return describe(exc) if run.status is None else None
            if run.status is None:
                return describe(exc)
        except Exception as exc:
            # A step failed and the saga was compensated: the status says so.
            logger.info("saga %s ended in compensation: %s", run.saga_id, describe(exc))
        finally:
            await gen.aclose()
        if paused and run.status not in (SagaStatus.COMPLETED, SagaStatus.COMPENSATED):
            raise _Paused()
        return None

    async def _recover_stale(self, saga_id: uuid.UUID) -> None:
        try:
            result = await self._recover(saga_id)
        except (_Paused, SagaBusyError, LeaseLostError):
            return
        except SagaNotRegisteredError:
            # Another application's saga: look again much later.
            self._backoff[saga_id] = (time.time() + MAX_BACKOFF, 99)
            return
        except Exception as exc:
            self._note_failure(saga_id)
            result = ActionResult(saga_id, "recover", error=str(exc))
        else:
            if result.error:
                self._note_failure(saga_id)
            else:
                self._backoff.pop(saga_id, None)
        await self.mediator._audit(saga_id, "recover", "stale", result)


async def serve_requests(
    mediator: SagaMediator,
    *,
    name: str | None = None,
    concurrency: int = 16,
    grace: float = DEFAULT_GRACE,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve operator requests (and recover stale sagas) from an application's process
    until ``stop`` is set or the task is cancelled; then stop gracefully and deregister.
    """
    server = RequestServer(mediator, name=name, concurrency=concurrency, grace=grace)
    serving = asyncio.ensure_future(server.serve())
    waiter = asyncio.ensure_future(stop.wait() if stop is not None else asyncio.Future())
    try:
        await asyncio.wait({serving, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.stop()
        waiter.cancel()
        await asyncio.shield(serving)
