"""What every browser session of one ``saga-tui serve`` shares, passed in its environment."""

from __future__ import annotations

import dataclasses
import json
import typing

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
