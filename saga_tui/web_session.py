"""One browser session of ``saga-tui serve``: the dashboard in the process textual-serve starts.

The server starts ``python -m saga_tui.web_session --client ADDRESS`` once per browser tab
(textual-serve's web driver talks to it over stdin and stdout). What every session shares
comes in the environment (``SAGA_TUI_SERVE``, JSON), not on the command line: a PostgreSQL
URL may hold a password, and other users of the machine can read a process's arguments but
not its environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing

if typing.TYPE_CHECKING:
    from saga_tui.app import SagaApp

SESSION_ENV = "SAGA_TUI_SERVE"
VIEWER_WHY = "this browser is a viewer: the server runs without --allow-actions"


@dataclasses.dataclass(frozen=True, slots=True)
class SessionConfig:
    """What every session of one server shares."""

    db_url: str
    app_spec: str
    allow_actions: bool = False

    def to_env(self) -> str:
        """The value of ``SAGA_TUI_SERVE`` for the session processes."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_env(cls, environ: typing.Mapping[str, str]) -> SessionConfig:
        """Read ``SAGA_TUI_SERVE``; KeyError or ValueError when it is missing or malformed."""
        data = json.loads(environ[SESSION_ENV])
        return cls(str(data["db_url"]), str(data["app_spec"]), bool(data["allow_actions"]))


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
