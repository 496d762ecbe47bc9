"""Command palette: the app's key bindings (each runs its action) and a filter per status."""

from __future__ import annotations

import typing
from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from engine.saga.storage.enums import SagaStatus
from saga_tui import keys
from saga_tui.components.detail import DetailScreen
from saga_tui.components.main_screen import MainScreen
from saga_tui.messages import StatusChosen

Command = tuple[str, typing.Callable[[], typing.Any], str]


def binding_commands(
    bindings: typing.Iterable[Binding],
    run: typing.Callable[[str], typing.Any],
    keymap: typing.Mapping[str, str],
) -> list[Command]:
    """(name, callback, help) for each binding: its tooltip, its action, its key."""
    return [
        (b.tooltip, partial(run, b.action), f"key {keys.key_label(b, keymap)}")
        for b in bindings
        if b.action != "command_palette"
    ]


class SagaCommands(Provider):
    """Saga actions and status filters for the command palette."""

    def _commands(self) -> list[Command]:
        # The palette only runs on SagaApp, which has user_keys (no import: app imports us).
        app: typing.Any = self.app
        screen = self.screen
        bindings = keys.SAGAS if isinstance(screen, MainScreen) else []
        if isinstance(screen, DetailScreen):
            bindings = keys.detail_bindings()
        # The actions run on the screen the palette was opened over.
        run = partial(app.run_action, default_namespace=screen)
        out = binding_commands(bindings, run, app.user_keys.keymap)
        if isinstance(screen, MainScreen):
            out.append(
                (
                    "Recover all stranded",
                    app.recover_stranded,
                    "every unfinished saga nobody runs; asks first, listing what each will do",
                ),
            )
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
        self.app.screen_stack[0].post_message(StatusChosen(status))

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
