"""Command palette: every entry calls an existing app action."""

from __future__ import annotations

import typing
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from engine.saga.storage.enums import SagaStatus

_ACTIONS: tuple[tuple[str, str, str], ...] = (
    ("Start new sagas", "new", "open the start form"),
    ("Recover saga(s)", "recover", "the current saga, or every marked one"),
    ("Compensate saga(s)", "compensate", "undo completed steps (asks first)"),
    ("Mark / unmark saga", "mark", "for bulk recover and compensate"),
    ("Filter sagas", "filter", "free text and status:failed name:Order"),
    ("Clear filter and marks", "clear", "show every saga"),
    ("Pause / resume live updates", "pause", "freeze the screen"),
    ("Toggle live step stream", "toggle_stream", "show or hide the stream"),
    ("Copy saga id", "copy_id", "to the clipboard"),
    ("Next page", "page(1)", "older sagas"),
    ("Previous page", "page(-1)", "newer sagas"),
    ("Keys and help", "help", "the key map"),
)


class SagaCommands(Provider):
    """Saga actions and status filters for the command palette."""

    def _commands(self) -> list[tuple[str, typing.Callable[[], typing.Any], str]]:
        app = self.app
        out: list[tuple[str, typing.Callable[[], typing.Any], str]] = [
            (name, partial(app.run_action, action), help_text)
            for name, action, help_text in _ACTIONS
        ]
        for status in SagaStatus:
            out.append(
                (
                    f"Show {status.name} sagas",
                    partial(self._status, status),
                    f"filter by status:{status.name.lower()}",
                ),
            )
        return out

    def _status(self, status: SagaStatus) -> None:
        from saga_tui.messages import StatusChosen

        self.app.post_message(StatusChosen(status))

    async def discover(self) -> Hits:
        """Everything, when nothing is typed yet."""
        for name, callback, help_text in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        """Fuzzy-match the commands."""
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
