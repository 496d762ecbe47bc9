"""``saga-tui serve``: the dashboard in a browser, one session process per tab (textual-serve).

Each websocket gets its own ``python -m saga_tui.web_session`` process, which ends when the
tab closes. Who may open a session (the gate):

- bound to a loopback address, the Host header must name this machine (``localhost``,
  ``127.x``, ``::1``): a web page cannot reach the server through a domain of its own that
  resolves to 127.0.0.1 (DNS rebinding);
- bound to any other address, the page and its websocket must carry the token printed at
  start (compared in constant time; printed once and logged nowhere else);
- a websocket opened by a page of another origin is refused: another site cannot drive the
  dashboard through the operator's browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import html
import ipaddress
import itertools
import json
import os
import pathlib
import secrets
import shlex
import signal
import socket
import string
import sys
import typing
import urllib.parse

import textual_serve
from aiohttp import WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.download_manager import DownloadManager

from saga_tui.serve_config import SESSION_ENV, SessionConfig
from saga_tui.target import (
    DEFAULT_APP,
    UsageError,
    build_mediator,
    load_app_factory,
    open_storage,
    resolve_db_url,
)
from saga_tui.target import label as db_label

if typing.TYPE_CHECKING:
    from engine.saga.mediator import SagaMediator
    from engine.saga.storage.protocol import ISagaStorage
    from saga_tui.demo import DemoTraffic

ASSETS = pathlib.Path(textual_serve.__file__).parent  # xterm.js, its CSS and font
PAGE = "serve_page.html"
STOP_GRACE = 5.0  # seconds a session gets to quit, then to end on SIGTERM, before SIGKILL
HEARTBEAT = 15.0  # a tab that vanished without closing is noticed within two of these
Out = typing.Callable[[str], None]


@dataclasses.dataclass(frozen=True, slots=True)
class ServeOptions:
    """What ``saga-tui serve`` was asked for."""

    config: SessionConfig
    host: str = "127.0.0.1"
    port: int = 8000
    demo: bool = False


def is_loopback(host: str) -> bool:
    """True for names and addresses only this machine can reach."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """The name in a Host header, without the port (``[::1]:8000`` -> ``::1``)."""
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class Gate:
    """Decides whether a request may see the page or open a session."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    def refusal(self, request: web.Request, token: str | None) -> str | None:
        """Why ``request`` (carrying ``token``) is refused; None when it may pass."""
        if self.token is None:
            if not is_loopback(host_name(request.host)):
                return "this server answers to localhost only (it listens on a loopback address)"
            return None
        if token is None or not hmac.compare_digest(token.encode(), self.token.encode()):
            return "no valid token: open the address saga-tui serve printed when it started"
        return None

    def origin_refusal(self, request: web.Request) -> str | None:
        """Why a websocket from ``request``'s Origin is refused (browsers always send one)."""
        origin = request.headers.get("Origin")
        if origin is None:
            return None
        if urllib.parse.urlsplit(origin).netloc.lower() != request.host.lower():
            return "a page of another origin may not open a session"
        return None


@dataclasses.dataclass(eq=False)
class Session:
    """One browser tab: its websocket and its dashboard process."""

    number: int
    client: str
    websocket: web.WebSocketResponse
    service: AppService
    pid: int | None = None


class WebServer:
    """The aiohttp application: the page, the static files and one session per websocket."""

    def __init__(self, label: str, gate: Gate, out: Out) -> None:
        self.label = label
        self.gate = gate
        self.out = out
        self.sessions: dict[int, Session] = {}
        self._numbers = itertools.count(1)
        self._downloads = DownloadManager()
        self._page = string.Template((pathlib.Path(__file__).parent / PAGE).read_text())

    def application(self) -> web.Application:
        """The routes: ``/`` (the page), ``/ws[/TOKEN]`` (a session), ``/static`` (xterm.js)."""
        app = web.Application()
        app.add_routes(
            [
                web.get("/", self.page),
                web.get("/ws", self.websocket),
                web.get("/ws/{token}", self.websocket),
                web.static("/static", ASSETS / "static"),
            ]
        )
        return app

    def _refuse(self, reason: str) -> web.HTTPForbidden:
        return web.HTTPForbidden(text=f"saga-tui serve: {reason}\n")

    async def page(self, request: web.Request) -> web.Response:
        """The page that runs xterm.js and connects to its session's websocket."""
        token = request.query.get("token")
        refusal = self.gate.refusal(request, token)
        if refusal is not None:
            raise self._refuse(refusal)
        scheme = "wss" if request.secure else "ws"
        # Built from the Host the browser used, so an SSH tunnel on another port works.
        path = "/ws" if self.gate.token is None else f"/ws/{self.gate.token}"
        try:
            font_size = max(6, min(64, int(request.query.get("fontsize", "16"))))
        except ValueError:
            font_size = 16
        text = self._page.substitute(
            title=html.escape(f"saga-tui · {self.label}"),
            websocket_url=html.escape(f"{scheme}://{request.host}{path}"),
            font_size=font_size,
        )
        # no-referrer: the token in this page's address never leaves in a Referer header.
        headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
        return web.Response(text=text, content_type="text/html", headers=headers)

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        """One browser tab: start its dashboard process and relay until either side ends."""
        refusal = self.gate.refusal(request, request.match_info.get("token"))
        refusal = refusal or self.gate.origin_refusal(request)
        if refusal is not None:
            raise self._refuse(refusal)
        websocket = web.WebSocketResponse(heartbeat=HEARTBEAT)
        await websocket.prepare(request)
        client = request.remote or "unknown"
        command = [sys.executable, "-m", "saga_tui.web_session", "--client", client]

        async def close() -> None:
            await websocket.close()

        service = AppService(
            # exec: the session's pid is the dashboard's, not a shell's.
            "exec " + shlex.join(command),
            write_bytes=websocket.send_bytes,
            write_str=websocket.send_str,
            close=close,
            download_manager=self._downloads,
        )
        session = Session(next(self._numbers), client, websocket, service)
        self.sessions[session.number] = session
        try:
            await service.start(_size(request, "width", 80), _size(request, "height", 24))
            process = service._process
            session.pid = process.pid if process is not None else None
            self.out(f"session {session.number} opened: web@{client} (pid {session.pid})")
            await self._relay(websocket, service)
        finally:
            await self.end(session)
        return websocket

    async def _relay(self, websocket: web.WebSocketResponse, service: AppService) -> None:
        async for message in websocket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                envelope = json.loads(message.data)
            except ValueError:
                continue
            if not isinstance(envelope, list) or not envelope:
                continue
            kind, data = envelope[0], envelope[1] if len(envelope) > 1 else None
            if kind == "stdin" and isinstance(data, str):
                await service.send_bytes(data.encode("utf-8"))
            elif kind == "resize" and isinstance(data, dict):
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    width, height = _clamp(data["width"]), _clamp(data["height"])
                    await service.set_terminal_size(width, height)
            elif kind == "ping":
                await websocket.send_json(["pong", data])
            elif kind == "blur":
                await service.blur()
            elif kind == "focus":
                await service.focus()

    async def end(self, session: Session) -> None:
        """Ask the session's dashboard to quit; terminate it, then kill it, if it does not."""
        if self.sessions.pop(session.number, None) is None:
            return
        process = session.service._process
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.service.stop(), STOP_GRACE)
        if process is not None:
            # Wait first: a process that closed its output may not be reaped yet, and
            # signalling it then would race asyncio's child watcher.
            for then in (process.terminate, process.kill, None):
                try:
                    await asyncio.wait_for(process.wait(), STOP_GRACE)
                    break
                except TimeoutError:
                    if then is None:
                        break
                    with contextlib.suppress(ProcessLookupError):
                        then()
        with contextlib.suppress(Exception):
            await session.websocket.close()
        self.out(f"session {session.number} closed: web@{session.client} (pid {session.pid})")

    async def end_all(self) -> None:
        """End every session (the server is stopping)."""
        await asyncio.gather(*(self.end(s) for s in list(self.sessions.values())))


def _size(request: web.Request, name: str, default: int) -> int:
    try:
        return _clamp(request.query.get(name, default))
    except ValueError:
        return default


def _clamp(value: typing.Any) -> int:
    return max(1, min(1000, int(value)))


def public_url(host: str, port: int, token: str | None) -> str:
    """The address to open: a wildcard bind is shown with this machine's name."""
    try:
        wildcard = ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        wildcard = False
    name = socket.gethostname() if wildcard else host.strip("[]")
    if ":" in name:
        name = f"[{name}]"
    query = "" if token is None else "?" + urllib.parse.urlencode({"token": token})
    return f"http://{name}:{port}/{query}"


async def _check_target(options: ServeOptions) -> tuple[ISagaStorage, SagaMediator]:
    """Open the database once and build the app, so bad input fails now, not per tab."""
    config = options.config
    factory = load_app_factory(config.app_spec)
    writes = config.allow_actions or options.demo
    storage = open_storage(config.db_url, read_only=not writes, must_exist=not writes)
    try:
        mediator = build_mediator(factory, storage, config.app_spec)
        await storage.count_by_status()  # creates or migrates the schema; proves it reads
    except BaseException:
        await storage.close()
        raise
    return storage, mediator


async def serve(options: ServeOptions, out: Out) -> int:
    """Serve until SIGINT or SIGTERM; every session process is ended before returning."""
    storage: ISagaStorage | None
    storage, mediator = await _check_target(options)
    if not options.demo:
        await storage.close()  # the sessions open their own; this process needs none
        storage = None
    demo: DemoTraffic | None = None
    runner: web.AppRunner | None = None
    server: WebServer | None = None
    try:
        if options.demo:
            from saga_tui.demo import DemoTraffic

            demo = DemoTraffic(mediator)
            demo.start()
        gate = Gate(None if is_loopback(options.host) else secrets.token_urlsafe(24))
        # The sessions inherit this environment (textual-serve copies os.environ).
        os.environ[SESSION_ENV] = options.config.to_env()
        server = WebServer(db_label(options.config.db_url), gate, out)
        runner = web.AppRunner(server.application(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, options.host, options.port)
        try:
            await site.start()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise UsageError(f"cannot listen on {options.host}:{options.port}: {reason}") from exc
        port = runner.addresses[0][1]
        _banner(out, options, db_label(options.config.db_url), port, gate.token)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        out(f"stopping: ending {len(server.sessions)} session(s)")
        return 0
    finally:
        if server is not None:
            await server.end_all()
        if runner is not None:
            await runner.cleanup()
        if demo is not None:
            await demo.stop()
        if storage is not None:
            await storage.close()


def main(args: typing.Any, out: Out) -> int:
    """``saga-tui serve`` from parsed arguments; bad input is a UsageError."""
    if args.allow_actions and args.read_only:
        raise UsageError("--allow-actions and --read-only contradict each other")
    if args.demo and args.read_only:
        raise UsageError("--demo writes to the database; drop --read-only")
    config = SessionConfig(resolve_db_url(args.db), args.app or DEFAULT_APP, args.allow_actions)
    options = ServeOptions(config, host=args.host, port=args.port, demo=bool(args.demo))
    return asyncio.run(serve(options, out))


def _banner(out: Out, options: ServeOptions, label: str, port: int, token: str | None) -> None:
    url = public_url(options.host, port, token)
    if token is None:
        out(f"saga-tui serve: {label} at {url}")
    else:
        out(f"saga-tui serve: {label} at {url} (listening on {options.host}:{port})")
        out("  the token is shown only here: a page or websocket without it is refused")
    if options.config.allow_actions:
        out("  browsers may start, recover and compensate; the audit names them web@ADDRESS")
    else:
        out("  browsers are viewers: n, r and c are refused (--allow-actions lets them act)")
    if options.demo:
        out("  --demo: sample sagas keep running in this process")
    out("  one process per browser tab; Ctrl+C stops the server and every session")
