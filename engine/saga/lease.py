"""Single-runner leases: who this process is, whether another owner is alive, heartbeat."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import typing
import weakref

if typing.TYPE_CHECKING:
    from engine.saga.storage.protocol import ISagaStorage

DEFAULT_LEASE_SECONDS = 15.0


def _proc_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rfind(")") + 2 :].split()
    if len(fields) < 20:
        return None
    if fields[0] in ("Z", "X"):
        return "dead"
    return fields[19]


HOST_ENV = "SAGA_HOST_ID"
"""Overrides the host id (tests simulate two hosts on one machine; containers name theirs)."""


def this_host() -> str:
    """The host part of owner ids: ``$SAGA_HOST_ID`` when set, else the host name."""
    host = os.environ.get(HOST_ENV) or socket.gethostname()
    return host.replace(":", "_") or "localhost"


_OWNER: str | None = None


def process_owner_id() -> str:
    """This process's owner id: ``host:pid:start`` (start tells a reused pid apart)."""
    global _OWNER
    owner = _OWNER
    if owner is None:
        pid = os.getpid()
        start = _proc_start_time(pid) or f"t{int(time.time())}"
        owner = _OWNER = f"{this_host()}:{pid}:{start}"
    return owner


def _forget_owner() -> None:
    global _OWNER
    _OWNER = None


# A forked child is another process: it computes its own id (asked on every saga start,
# so the pid is not read each time).
os.register_at_fork(after_in_child=_forget_owner)


def owner_is_dead(owner: str, host: str | None = None) -> bool:
    """True only when ``owner`` is on this host and its process is gone.

    Owners on other hosts are never declared dead here: their lease expiry decides.
    """
    parts = owner.split(":")
    if len(parts) < 3 or parts[0] != (host or this_host()):
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    start = _proc_start_time(pid)
    if start is None:
        if os.path.isdir("/proc"):
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    if start == "dead":
        return True
    recorded = parts[2]
    return not recorded.startswith("t") and recorded != start


class Leased(typing.Protocol):
    """A run holding a lease, as the heartbeat sees it (``SagaRun`` provides it)."""

    fence: int
    lease_expires: float

    def lease_lost(self, why: str) -> None:
        """Stop: cancel the step in flight; write nothing more."""
        ...


def lease_lapsed(
    owner: str | None,
    expires: float | None,
    now: float,
    dead: typing.Callable[[str], bool] = owner_is_dead,
) -> bool:
    """True when nobody runs a saga under this lease: no owner, expired, or its owner dead.

    The rule of stranded sagas (and of ``recover_stale``); ``dead`` may be a cached
    ``owner_is_dead``, which only ever declares owners on this host dead.
    """
    if owner is None or expires is None or expires < now:
        return True
    return dead(owner)


class DeadOwners:
    """``owner_is_dead`` remembered for ``ttl`` seconds: a screen asks it for every row."""

    def __init__(self, ttl: float = 1.0) -> None:
        self.ttl = ttl
        self._seen: dict[str, tuple[float, bool]] = {}

    def __call__(self, owner: str) -> bool:
        now = time.monotonic()
        seen = self._seen.get(owner)
        if seen is not None and now - seen[0] < self.ttl:
            return seen[1]
        dead = owner_is_dead(owner)
        if len(self._seen) > 10_000:
            self._seen.clear()
        self._seen[owner] = (now, dead)
        return dead


class LeaseKeeper:
    """Renews the lease of every saga this process runs, and stops runs that lost theirs.

    One heartbeat per process and storage: every ``lease_seconds / 3`` it extends, in
    one conditional update, the leases of the sagas running here (only while still this
    process's, at the fence its claim got, and not yet expired). A run whose lease was
    not extended lost it (taken over after this process was paused past its lease, or
    its loop was blocked that long): it is told, cancels its step and stops. So is a run
    whose lease expires while renewals fail.
    """

    def __init__(
        self,
        storage: ISagaStorage,
        owner: str,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.storage = storage
        self.owner = owner
        self.lease_seconds = lease_seconds
        self._active = 0
        self._task: asyncio.Task[None] | None = None
        # Saga id -> the run of this process executing it right now: the lease says "this
        # process", this map says "busy here", so two runs in one process never overlap.
        self.running: dict[typing.Any, Leased] = {}

    def expiry(self) -> float:
        """The expiry a lease taken now gets."""
        return time.time() + self.lease_seconds

    def acquire(self) -> None:
        """One more saga runs here; start the heartbeat if it is the first."""
        self._active += 1
        if self._task is None or self._task.done():
            with contextlib.suppress(RuntimeError):
                self._task = asyncio.get_running_loop().create_task(self._beat())

    def release(self) -> None:
        """One saga finished here."""
        self._active = max(0, self._active - 1)

    async def _beat(self) -> None:
        interval = max(self.lease_seconds / 3.0, 0.05)
        while self._active > 0:
            await asyncio.sleep(interval)
            if self._active <= 0:
                break
            await self.renew()
        self._task = None

    async def renew(self) -> None:
        """Extend the leases of the runs of this process; tell those that lost theirs."""
        runs = dict(self.running)
        if not runs:
            return
        now = time.time()
        # A lease that expired while this process could not renew it (paused, its loop
        # blocked) is lost even if nobody took it yet: a recoverer may be about to.
        for saga_id, run in list(runs.items()):
            if run.lease_expires < now:
                del runs[saga_id]
                late = now - run.lease_expires
                self._lost(
                    saga_id,
                    run,
                    f"it expired {late:.1f} s before this process could renew it:"
                    " the process was paused or its event loop blocked",
                )
        if not runs:
            return
        fences = {saga_id: run.fence for saga_id, run in runs.items()}
        expiry = now + self.lease_seconds
        try:
            renewed = await self.storage.heartbeat(self.owner, fences, expiry, now)
        except Exception:
            # Retried at the next beat; a lease that expires meanwhile is lost then.
            return
        for saga_id, run in runs.items():
            if run.fence != fences[saga_id]:
                continue  # claimed again meanwhile (a rollback after the last step)
            if saga_id in renewed:
                run.lease_expires = max(run.lease_expires, expiry)
            else:
                self._lost(saga_id, run, await self._holder(saga_id))

    async def _holder(self, saga_id: typing.Any) -> str:
        try:
            lease = await self.storage.get_lease(saga_id)
        except Exception:
            return "it could not be renewed"
        if lease is None or lease.owner is None:
            return "it was released: another runner took the saga over or ended it"
        if lease.owner == self.owner:
            return f"it expired (fence {lease.fence})"
        return f"now held by {lease.owner} (fence {lease.fence})"

    def _lost(self, saga_id: typing.Any, run: Leased, why: str) -> None:
        if self.running.get(saga_id) is run:
            run.lease_lost(f"Saga {saga_id}: lease lost ({why}); this run stopped")


_KEEPERS: weakref.WeakKeyDictionary[typing.Any, LeaseKeeper] = weakref.WeakKeyDictionary()


def keeper_for(storage: ISagaStorage, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> LeaseKeeper:
    """The one heartbeat of this process for ``storage``."""
    keeper = _KEEPERS.get(storage)
    if keeper is None or keeper.owner != process_owner_id():
        keeper = LeaseKeeper(storage, process_owner_id(), lease_seconds)
        _KEEPERS[storage] = keeper
    return keeper
