"""``saga-tui serve`` test helpers: a prepared database, real servers, a real Chromium.

The browser shows the dashboard on a canvas (xterm.js), so the tests read the screen the
way xterm does: every byte the session sends over the websocket is fed to a terminal
emulator (pyte), whose screen is the text the browser shows. The database stays the
ground truth for what an action did.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import os
import pathlib
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import typing
import uuid

import pytest

from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from sample_sagas.app import example_context
from tests import support
from tests.e2e import apps

if typing.TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page, Playwright, WebSocket

ROOT = pathlib.Path(__file__).resolve().parents[2]
RELIABLE = "tests.e2e.apps:reliable"
# Debian's Chromium, as the issue asks: Playwright's own browser download is not reachable.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
DEADLINE = 60.0  # a session starts a Python process with Textual: slow on a busy machine


@dataclasses.dataclass
class Prepared:
    """A database with completed sagas and one FAILED saga."""

    path: pathlib.Path
    completed: list[uuid.UUID]
    failed: uuid.UUID

    def status(self, saga_id: uuid.UUID) -> str:
        """The stored status of one saga."""
        with contextlib.closing(sqlite3.connect(self.path)) as conn:
            row = conn.execute(
                "SELECT status FROM saga_executions WHERE id = ?", (saga_id.hex,)
            ).fetchone()
        return str(row[0])

    def audit(self, saga_id: uuid.UUID) -> list[tuple[str, str, str]]:
        """(action, os_user, host) of every audit row of one saga."""
        with contextlib.closing(sqlite3.connect(self.path)) as conn:
            rows = conn.execute(
                "SELECT action, os_user, host FROM saga_audit WHERE saga_id = ? ORDER BY id",
                (saga_id.hex,),
            ).fetchall()
        return [(str(a), str(u), str(h)) for a, u, h in rows]


async def _prepare(path: pathlib.Path) -> Prepared:
    # The FAILED saga's declined refund is logged as an error: wanted here, not news.
    engine_log = logging.getLogger("engine")
    level = engine_log.level
    engine_log.setLevel(logging.CRITICAL)
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{path}")
    try:
        reliable = apps.reliable(storage)
        completed = []
        for _ in range(4):
            saga_id = uuid.uuid4()
            await reliable.run(example_context("OrderSaga"), saga_id=saga_id)
            completed.append(saga_id)
        failed = uuid.uuid4()
        with contextlib.suppress(Exception):
            await apps.declining(storage).run(example_context("SubscriptionSaga"), saga_id=failed)
    finally:
        await storage.close()
        engine_log.setLevel(level)
    prepared = Prepared(path, completed, failed)
    assert prepared.status(failed) == "FAILED"
    return prepared


@pytest.fixture
def prepared(tmp_path: pathlib.Path) -> Prepared:
    """A fresh database: four completed OrderSagas and one FAILED SubscriptionSaga."""
    # In a thread of its own: Playwright's sync API keeps an event loop in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _prepare(tmp_path / "sagas.db")).result()


def children(pid: int) -> set[int]:
    """Every live process whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Server:
    """One ``saga-tui serve`` process and what it printed (read by threads, never blocking)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.stderr: list[str] = []
        self._cursor = 0
        self._eof = False
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(proc.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        first = self.read_until(" at http://")
        url = re.search(r" at (http://\S+)", first)
        assert url, first
        self.url = url[1]
        self.port = int(re.search(r":(\d+)/", self.url)[1])  # type: ignore[index]
        token = re.search(r"token=([\w-]+)", self.url)
        self.token = token[1] if token else None

    def _read(self, stream: typing.IO[str] | None, into: list[str]) -> None:
        assert stream is not None
        for line in stream:
            with self._changed:
                into.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            if into is self.lines:
                self._eof = True
            self._changed.notify_all()

    def page_url(self, host: str = "127.0.0.1") -> str:
        """The page's address as a browser on this machine opens it."""
        query = f"?token={self.token}" if self.token else ""
        return f"http://{host}:{self.port}/{query}"

    def read_until(self, needle: str, timeout: float = DEADLINE) -> str:
        """The next printed line that contains ``needle``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index in range(self._cursor, len(self.lines)):
                    if needle in self.lines[index]:
                        self._cursor = index + 1
                        return self.lines[index]
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    why = "exited" if self._eof else f"said nothing in {timeout}s"
                    raise AssertionError(
                        f"serve {why} before printing {needle!r}: "
                        f"stdout {self.lines!r}, stderr {self.stderr!r}"
                    )
                self._changed.wait(left)

    def session_opened(self) -> int:
        """Wait for the next ``session N opened`` line; the session's pid."""
        line = self.read_until(" opened: ")
        return int(re.search(r"\(pid (\d+)\)", line)[1])  # type: ignore[index]

    def sessions(self) -> set[int]:
        """The session processes running now."""
        return children(self.proc.pid)

    def stop(self) -> int:
        """SIGTERM, as Ctrl+C would; kill if it does not end in time. The exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for reader in self._readers:
            reader.join(timeout=DEADLINE)
        return self.proc.returncode


@pytest.fixture
def serve(tmp_path: pathlib.Path) -> typing.Iterator[typing.Callable[..., Server]]:
    """Start ``saga-tui serve --port 0 ARGS...``; every server is stopped afterwards."""
    servers: list[Server] = []
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}

    def start(*args: str) -> Server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "saga_tui", "serve", "--port", "0", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # as a service manager starts it: no terminal
        )
        try:
            server = Server(proc)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


# ---- the browser ---------------------------------------------------------------------------


def chromium() -> str:
    """Debian's Chromium, or skip with the reason."""
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("no chromium on PATH: apt-get install chromium (.ci/run does, as root)")
    return path


class Terminal:
    """One browser tab on the dashboard; ``text()`` is the screen the tab shows."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.websockets: list[WebSocket] = []
        self.screen: typing.Any = None
        self._stream: typing.Any = None
        page.on("websocket", self._on_websocket)

    def _on_websocket(self, websocket: WebSocket) -> None:
        import pyte

        self.websockets.append(websocket)
        size = re.search(r"[?&]width=(\d+)&height=(\d+)", websocket.url)
        assert size, websocket.url
        self.screen = pyte.Screen(int(size[1]), int(size[2]))
        self._stream = pyte.ByteStream(self.screen)
        websocket.on("framereceived", self._received)
        websocket.on("framesent", self._sent)

    def _received(self, payload: str | bytes) -> None:
        if isinstance(payload, bytes):  # terminal output; text frames are the protocol's
            self._stream.feed(payload)

    def _sent(self, payload: str | bytes) -> None:
        if isinstance(payload, str) and payload.startswith('["resize"'):
            size = json.loads(payload)[1]
            self.screen.resize(lines=int(size["height"]), columns=int(size["width"]))

    def text(self) -> str:
        """The screen as lines of text."""
        return "\n".join(self.screen.display) if self.screen is not None else ""

    def pause(self, seconds: float) -> None:
        """Let the browser deliver its events (a plain sleep would hold them back)."""
        self.page.wait_for_timeout(seconds * 1000)

    def wait_for(
        self, condition: typing.Callable[[str], bool], what: str, timeout: float = DEADLINE
    ) -> str:
        """Wait until ``condition(screen text)``; the screen text."""

        def check() -> str | None:
            text = self.text()
            return text if condition(text) else None

        try:
            return typing.cast(
                str, support.wait_for_sync(check, timeout, what=what, sleep=self.pause)
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the screen:\n{self.text()}") from None

    def showing(self, *needles: str, timeout: float = DEADLINE) -> str:
        """Wait until the screen shows every needle; the screen text."""
        return self.wait_for(
            lambda text: all(n in text for n in needles), f"{needles} on screen", timeout
        )

    def focus(self) -> None:
        """Focus the terminal, as a click would (without a click's mouse event)."""
        self.page.locator(".xterm-helper-textarea").focus()

    def keys(self, *keys: str) -> None:
        """Type into the terminal: each item is a key name (``Enter``) or text."""
        self.focus()
        for key in keys:
            if len(key) > 1 and key[0].isupper():
                self.page.keyboard.press(key)
            else:
                self.page.keyboard.type(key)


@dataclasses.dataclass
class Browser:
    """A Chromium with a fresh profile; ``open`` makes a tab."""

    context: BrowserContext

    def open(self, url: str) -> Terminal:
        """A new tab on ``url``, its screen followed from the start."""
        page = self.context.new_page()
        terminal = Terminal(page)
        page.goto(url)
        return terminal


@pytest.fixture(scope="module")
def playwright() -> typing.Iterator[Playwright]:
    """Playwright's driver (one per module)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'")
    pytest.importorskip("pyte", reason="pip install -e '.[test]'")
    chromium()
    with sync_api.sync_playwright() as driver:
        yield driver


@pytest.fixture
def browser(playwright: Playwright, tmp_path: pathlib.Path) -> typing.Iterator[Browser]:
    """Debian's Chromium, headless, with a fresh user data dir; closed afterwards."""
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"),
        executable_path=chromium(),
        args=CHROMIUM_ARGS,
        headless=True,
        viewport=VIEWPORT,  # type: ignore[arg-type]
    )
    try:
        yield Browser(context)
    finally:
        context.close()
