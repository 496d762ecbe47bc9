"""``saga-tui``: the dashboard, or a headless command for scripts.

Exit codes: 0 done, 1 an action failed, 2 bad input (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import typing

from engine.saga.secrets import MaskingFormatter, mask_secrets
from saga_tui.target import DEFAULT_APP, DEFAULT_DB, AppFactory, UsageError
from saga_tui.textfmt import REASON_LENGTH, one_line

if typing.TYPE_CHECKING:
    import pathlib

    from engine.saga.operator import Operator
    from saga_tui.app import SagaApp

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PROG = "saga-tui"
_CLOSING: set[asyncio.Task[None]] = set()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        # One line instead of argparse's usage block: scripts read stderr.
        self.exit(EXIT_USAGE, f"{PROG}: {message} (see {self.prog} --help)\n")


def _common(*, suppress: bool) -> _Parser:
    # The same options work before and after the subcommand; SUPPRESS keeps a value
    # given before it from being overwritten by the subcommand's default.
    default: typing.Any = argparse.SUPPRESS if suppress else None
    p = _Parser(add_help=False)
    p.add_argument(
        "--db", default=default, metavar="PATH|URL", help=f"database (default {DEFAULT_DB})"
    )
    p.add_argument(
        "--app", default=default, metavar="MODULE:FACTORY", help=f"sagas (default {DEFAULT_APP})"
    )
    p.add_argument("--read-only", action="store_true", default=default or False, help="never write")
    p.add_argument(
        "-v", "--verbose", action="store_true", default=default or False, help="engine logs"
    )
    return p


def _reason(text: str) -> str:
    if not text.isprintable() or len(text) > REASON_LENGTH:
        raise argparse.ArgumentTypeError(f"one line of at most {REASON_LENGTH} characters")
    return text.strip()


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = _Parser(
        prog=PROG,
        parents=[_common(suppress=False)],
        description="A terminal dashboard for sagas. Without a command, opens the dashboard.",
    )
    parser.add_argument("--demo", action="store_true", help="keep sample sagas running")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    shared = [_common(suppress=True)]

    p = sub.add_parser("list", parents=shared, help="the newest sagas")
    p.add_argument("--status", action="append", default=[], help="e.g. failed or running,pending")
    p.add_argument("--name", help="saga name contains this")
    p.add_argument("--stranded", action="store_true", help="only unfinished sagas nobody runs")
    p.add_argument("--filter", help="the dashboard's filter, e.g. 'status:failed key:ord-9ca8'")
    p.add_argument("--limit", type=_positive, default=50)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("groups", parents=shared, help="failures grouped by cause")
    p.add_argument("--limit", type=_positive, default=50)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("show", parents=shared, help="one saga in full")
    p.add_argument("id", help="saga id or a unique prefix")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("recover", parents=shared, help="resume sagas whose runner stopped")
    p.add_argument("ids", nargs="*", metavar="ID")
    p.add_argument("--stale", action="store_true", help="every saga whose runner is gone")
    p.add_argument("--yes", "-y", action="store_true", help="accepted; recover never asks")
    p.add_argument("--filter", help="every saga matching, e.g. 'status:failed name:Order'")
    p.add_argument("--reason", type=_reason, default="", help="why, stored with the action")
    _request_options(p)

    p = sub.add_parser("compensate", parents=shared, help="undo sagas (asks first)")
    p.add_argument("ids", nargs="*", metavar="ID")
    p.add_argument("--filter", help="every saga matching, e.g. 'group:3f2a9c1e0b7d4a21'")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")
    p.add_argument("--reason", type=_reason, default="", help="why, stored with the action")
    _request_options(p)

    p = sub.add_parser("start", parents=shared, help="start sagas")
    p.add_argument("name", help="saga name, e.g. OrderSaga")
    p.add_argument("--context", help="context as JSON, or @file.json (default: the app's example)")
    p.add_argument("--count", type=_positive, default=1)
    p.add_argument("--concurrency", type=_positive, default=16, help="sagas at once here (16)")
    _request_options(p)

    p = sub.add_parser("worker", parents=shared, help="serve requests and recover stale sagas")
    p.add_argument("--concurrency", type=_positive, default=16, help="sagas at once (default 16)")
    p.add_argument("--name", help="shown in the workers view (default worker-HOST-PID)")
    p.add_argument(
        "--grace", type=_seconds, default=10.0, help="seconds to reach a step boundary (10)"
    )
    p.add_argument(
        "--lease", type=_seconds, default=None, help="lease and claim length in seconds (15)"
    )

    p = sub.add_parser("events", parents=shared, help="the events sagas produced (the outbox)")
    p.add_argument("--failed", action="store_true", help="only events out of tries")
    p.add_argument("--limit", type=_positive, default=50)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("redeliver", parents=shared, help="deliver a saga's failed events again")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("serve", parents=shared, help="the dashboard in a browser (textual-serve)")
    p.add_argument(
        "--host", default="127.0.0.1", help="listen here (default 127.0.0.1; others need a token)"
    )
    p.add_argument("--port", type=_port, default=8000, help="default 8000; 0 picks a free one")
    p.add_argument(
        "--allow-actions", action="store_true", help="browsers may start, recover, compensate"
    )
    # SUPPRESS: `saga-tui --demo serve` keeps the --demo given before the command.
    p.add_argument(
        "--demo", action="store_true", default=argparse.SUPPRESS, help="keep sample sagas running"
    )
    return parser


def _request_options(p: argparse.ArgumentParser) -> None:
    """--json and --no-wait, for the commands that make requests."""
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--no-wait", action="store_true", help="print the request id at once; a worker serves it"
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {text}")
    return value


def _print(line: str) -> None:
    print(line, flush=True)


def _confirm_with(args: argparse.Namespace) -> typing.Callable[[str], bool]:
    def confirm(question: str) -> bool:
        if args.yes:
            return True
        if not sys.stdin.isatty():
            raise UsageError("compensate needs --yes when not run from a terminal")
        try:
            answer = input(f"{question}\n[y/N] ")
        except EOFError:
            return False
        return answer.strip().lower() in ("y", "yes")

    return confirm


async def _run(args: argparse.Namespace) -> int:
    from saga_tui import events_cli, headless, reads
    from saga_tui.target import build_mediator, load_app_factory, open_storage, resolve_db_url

    url = resolve_db_url(args.db)
    app_spec = args.app or DEFAULT_APP
    command = args.command
    writes = command in ("recover", "compensate", "start", "redeliver", "worker")
    if writes and args.read_only:
        raise UsageError(f"{command} writes to the database; drop --read-only")
    saga_filter = None
    if getattr(args, "filter", None) is not None:
        saga_filter = headless.filter_option(args.filter)
    if (
        command == "recover"
        and [bool(args.ids), args.stale, saga_filter is not None].count(True) != 1
    ):
        raise UsageError("recover takes saga ids, --stale or --filter (one of them)")
    if command == "compensate" and bool(args.ids) == (saga_filter is not None):
        raise UsageError("compensate takes saga ids or --filter (one of them)")
    # Import the app before opening the database: a broken --app must not create files.
    # An --app given to a read command must import too (exit 2), though list and show
    # never call it: a typo is reported, never silently ignored.
    factory = load_app_factory(app_spec) if writes or args.app else None
    must_exist = command not in ("start", "worker")
    storage = open_storage(url, read_only=args.read_only, must_exist=must_exist)
    try:
        if command == "list":
            return await reads.list_command(
                storage,
                _print,
                statuses=headless.status_option(args.status),
                name=args.name,
                limit=args.limit,
                as_json=args.json,
                stranded=args.stranded,
                saga_filter=saga_filter,
            )
        if command == "groups":
            return await reads.groups_command(storage, _print, limit=args.limit, as_json=args.json)
        if command == "show":
            return await reads.show_command(storage, _print, args.id, as_json=args.json)
        if command == "events":
            return await events_cli.events_command(
                storage, _print, failed=args.failed, limit=args.limit, as_json=args.json
            )
        assert factory is not None and writes
        mediator = build_mediator(factory, storage, app_spec)
        if command == "worker":
            from saga_tui.target import label as db_label
            from saga_tui.worker_cli import run_worker

            if args.lease is not None:
                mediator.lease_seconds = max(args.lease, 0.5)
            return await run_worker(
                mediator,
                _print,
                db_label=db_label(url),
                app=app_spec,
                name=args.name,
                concurrency=args.concurrency,
                grace=args.grace,
            )
        wait = not getattr(args, "no_wait", False)
        from saga_tui.request_report import RequestReport, worker_command

        report = RequestReport(sys.stderr, start_worker=worker_command(args.db))
        if command == "recover":
            code = await headless.recover_command(
                mediator,
                _print,
                args.ids,
                stale=args.stale,
                saga_filter=saga_filter,
                as_json=args.json,
                wait=wait,
                why=args.reason,
                on_request=report,
            )
            if args.stale:
                await events_cli.deliver_pending_command(mediator, _print, as_json=args.json)
            return code
        if command == "redeliver":
            return await events_cli.redeliver_command(mediator, _print, args.ids, as_json=args.json)
        if command == "compensate":
            return await headless.compensate_command(
                mediator,
                _print,
                args.ids,
                confirm=_confirm_with(args),
                saga_filter=saga_filter,
                as_json=args.json,
                wait=wait,
                why=args.reason,
                on_request=report,
            )
        plan = headless.plan_start(mediator, args.name, args.context)
        return await headless.start_command(
            mediator,
            _print,
            plan,
            count=args.count,
            as_json=args.json,
            status=sys.stderr,
            wait=wait,
            on_request=report,
            concurrency=args.concurrency,
        )
    finally:
        await storage.close()


def make_app(
    db: str | None = None,
    app: str | AppFactory | None = DEFAULT_APP,
    *,
    read_only: bool = False,
    demo: bool = False,
    poll_interval: float | None = None,
    keymap_file: pathlib.Path | None = None,
    read_only_why: str | None = None,
    operator: Operator | None = None,
) -> SagaApp:
    """The dashboard on ``db`` with the sagas of ``app`` (``module:factory`` or a factory).

    The one way to build the app, for the console script, the tests, the screenshot and
    the benchmark (and each browser session of ``saga-tui serve``, which says why it is
    read-only and whom actions are audited as). Bad input is a UsageError with one line,
    and then nothing was created: the factory is imported before the database is opened,
    and a factory that fails closes the database again.
    """
    from saga_tui import keys
    from saga_tui.app import SagaApp
    from saga_tui.live import POLL_INTERVAL
    from saga_tui.target import build_mediator, load_app_factory, open_storage, resolve_db_url
    from saga_tui.target import label as db_label

    url = resolve_db_url(db)
    spec = app if isinstance(app, str) else "--app"
    factory = load_app_factory(app) if isinstance(app, str) else app
    storage = open_storage(url, read_only, must_exist=read_only)
    try:
        mediator = build_mediator(factory, storage, spec) if factory is not None else None
    except BaseException:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop running: the console script
            asyncio.run(storage.close())
        else:  # called from async code (tests): close in its loop
            task = loop.create_task(storage.close())
            _CLOSING.add(task)
            task.add_done_callback(_CLOSING.discard)
        raise
    if mediator is not None and operator is not None:
        mediator.operator = operator
    return SagaApp(
        storage,
        mediator,
        label=db_label(url),
        read_only=read_only,
        read_only_why=read_only_why,
        demo=demo,
        poll_interval=POLL_INTERVAL if poll_interval is None else poll_interval,
        user_keys=keys.load_user_keys(keymap_file),
        close_reader=True,
    )


def open_dashboard(args: argparse.Namespace) -> int:
    """Run the Textual dashboard (imported only now: commands must not pay for Textual)."""
    try:
        app = make_app(args.db, args.app or DEFAULT_APP, read_only=args.read_only, demo=args.demo)
    except ModuleNotFoundError as exc:
        if exc.name not in ("saga_tui.app", "textual"):
            raise
        print(f"{PROG}: the dashboard is not available ({one_line(exc)})", file=sys.stderr)
        return EXIT_USAGE
    app.run()
    return app.return_code or 0


def serve_command(args: argparse.Namespace) -> int:
    """``saga-tui serve`` (imported only now: it needs the ``web`` extra)."""
    try:
        from saga_tui import serve
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in ("textual_serve", "aiohttp", "jinja2"):
            raise
        hint = 'serve needs textual-serve, which is not installed: pip install "saga-tui[web]"'
        print(f"{PROG}: {hint}", file=sys.stderr)
        return EXIT_USAGE
    return serve.main(args, _print)


def _quiet_engine_logs(verbose: bool) -> None:
    # Failed compensations are reported as results (or on the dashboard's screen, which a
    # log line on stderr would be written over): once, for every command.
    engine_log = logging.getLogger("engine")
    if verbose:
        handler = logging.StreamHandler()
        handler.setFormatter(MaskingFormatter("%(levelname)s %(name)s: %(message)s"))
        logging.basicConfig(level=logging.INFO, handlers=[handler])
    else:
        engine_log.addHandler(logging.NullHandler())
        engine_log.propagate = False


def _is_database_unreachable(exc: BaseException) -> bool:
    import sqlalchemy as sa

    if isinstance(exc, BrokenPipeError):
        return False
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | ConnectionError)


def main(argv: typing.Sequence[str] | None = None) -> int:
    """The ``saga-tui`` console script."""
    args = build_parser().parse_args(argv)
    _quiet_engine_logs(bool(args.verbose) and args.command is not None)
    try:
        if args.command is None:
            return open_dashboard(args)
        if args.command == "serve":
            return serve_command(args)
        return asyncio.run(_run(args))
    except UsageError as exc:
        print(f"{PROG}: {mask_secrets(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``saga-tui list | head -1``): it has what it wanted.
        # Point stdout at /dev/null so the interpreter's last flush fails silently too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        if _is_database_unreachable(exc):
            # Connection refused, a lock held for longer than the busy timeout, a
            # read-only file system: the environment, not the action, is at fault.
            print(f"{PROG}: database: {one_line(exc)}", file=sys.stderr)
            return EXIT_USAGE
        if os.environ.get("SAGA_TUI_DEBUG"):
            raise
        print(f"{PROG}: {one_line(exc, with_type=True)}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
