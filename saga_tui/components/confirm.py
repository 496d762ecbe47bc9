"""A yes/no modal for destructive actions: says what will be done and undone, then waits.

Only ``y`` confirms; ``n``, ``esc`` and ``enter`` cancel (a stray enter never acts).
"""

from __future__ import annotations

import typing

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from saga_tui import keys
from saga_tui.operations import ActionPlan, Verb, confirmation


class ConfirmScreen(ModalScreen[bool]):
    """Says what will happen (and what will be undone) and waits for y or n."""

    BINDINGS = [*keys.CONFIRM]

    def __init__(self, title: str, body: Text, keys_hint: str) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.keys_hint = keys_hint

    @classmethod
    def for_plans(
        cls, verb: Verb, plans: list[ActionPlan], keymap: typing.Mapping[str, str]
    ) -> ConfirmScreen:
        """The question for a recover or compensate: one plan line per saga."""
        title, lines = confirmation(verb, plans)
        return cls.asking(title, lines, keymap)

    @classmethod
    def asking(
        cls,
        title: str,
        lines: typing.Sequence[str],
        keymap: typing.Mapping[str, str],
        *,
        verb: str = "confirm",
    ) -> ConfirmScreen:
        """The question ``title`` with one line per saga (already cleaned)."""
        yes, no = (keys.key_label(binding, keymap) for binding in keys.CONFIRM)
        hint = f"{yes}: {verb}    {no}: cancel"
        if verb != "confirm":
            hint = f"{yes}: confirm, {verb}    {no}: cancel"
        return cls(title, Text("\n".join(lines), end=""), hint)

    def compose(self) -> ComposeResult:
        """Title, explanation, key hint."""
        with Vertical(id="confirm-box"):
            yield Static(Text(self.title_text, style="bold", end=""), id="confirm-title")
            with VerticalScroll(id="confirm-scroll"):
                yield Static(self.body, id="confirm-body")
            yield Static(Text(self.keys_hint, end=""), id="confirm-keys")
        yield Footer()

    def action_answer(self, answer: bool) -> None:
        """Close with the answer."""
        self.dismiss(answer)
