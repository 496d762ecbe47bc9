"""One browser session of ``saga-tui serve``: the dashboard in the process textual-serve starts.

The server starts ``python -m saga_tui.web_session --client ADDRESS`` once per browser tab
(textual-serve's web driver talks to it over stdin and stdout). What every session shares
comes in the environment (``SAGA_TUI_SERVE``, JSON), not on the command line: a PostgreSQL
URL may hold a password, and other users of the machine can read a process's arguments but
not its environment.
"""

from __future__ import annotations

import argparse
import os
import sys
import typing

from saga_tui.serve_config import SESSION_ENV, VIEWER_WHY, SessionConfig

if typing.TYPE_CHECKING:
    from saga_tui.app import SagaApp


def build_app(config: SessionConfig, client: str) -> SagaApp:
    """The dashboard of one browser session: read-only unless actions are allowed."""
    from engine.saga.operator import Operator
    from saga_tui.cli import make_app

    return make_app(
        config.db_url,
        config.app_spec,
        read_only=not config.allow_actions,
        read_only_why=VIEWER_WHY,
        operator=Operator("web", client),
    )


def main(argv: typing.Sequence[str] | None = None) -> int:
    """Run the dashboard for one browser client (started by ``saga-tui serve`` only)."""
    from saga_tui.target import UsageError
    from saga_tui.textfmt import one_line

    parser = argparse.ArgumentParser(prog="saga-tui serve (session)")
    parser.add_argument("--client", required=True, help="the browser's address")
    args = parser.parse_args(argv)
    try:
        config = SessionConfig.from_env(os.environ)
    except (KeyError, ValueError, TypeError):
        print(
            f"saga-tui serve: {SESSION_ENV} is not set: start sessions with saga-tui serve",
            file=sys.stderr,
        )
        return 2
    try:
        app = build_app(config, args.client)
    except UsageError as exc:
        print(f"saga-tui serve: session of web@{args.client}: {one_line(exc)}", file=sys.stderr)
        return 2
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
