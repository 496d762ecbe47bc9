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
_OWNER_PID: int | None = None


def process_owner_id() -> str:
    """This process's owner id: ``host:pid:start`` (start tells a reused pid apart)."""
    global _OWNER, _OWNER_PID
    pid = os.getpid()
    if _OWNER is None or pid != _OWNER_PID:
        start = _proc_start_time(pid) or f"t{int(time.time())}"
        _OWNER = f"{this_host()}:{pid}:{start}"
        _OWNER_PID = pid
    return _OWNER


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


class LeaseKeeper:
    """Renews every lease this process holds while at least one saga runs here."""

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
        # Saga ids a run of this process is executing right now: the lease says "this
        # process", this set says "busy here", so two runs in one process never overlap.
        self.running: set[typing.Any] = set()

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
            with contextlib.suppress(Exception):
                # A failed renewal is retried at the next beat; the lease has slack.
                await self.storage.renew_leases(self.owner, self.expiry())
        self._task = None


_KEEPERS: weakref.WeakKeyDictionary[typing.Any, LeaseKeeper] = weakref.WeakKeyDictionary()


def keeper_for(storage: ISagaStorage, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> LeaseKeeper:
    """The one heartbeat of this process for ``storage``."""
    keeper = _KEEPERS.get(storage)
    if keeper is None or keeper.owner != process_owner_id():
        keeper = LeaseKeeper(storage, process_owner_id(), lease_seconds)
        _KEEPERS[storage] = keeper
    return keeper
