"""A yes/no modal for destructive actions: says what will be done and undone, then waits.

Only ``y`` confirms; ``n``, ``esc`` and ``enter`` cancel (a stray enter never acts). A
recover or compensate also offers a reason line: ``tab`` moves into it, ``enter`` ends
it (the question is asked again, ``y`` confirms), and the reason is stored with the action.
Keys typed into the line are text: a ``y`` there never confirms.
"""

from __future__ import annotations

import typing

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Static

from saga_tui import keys
from saga_tui.operations import ActionPlan, Verb, confirmation
from saga_tui.textfmt import REASON_LENGTH


class ConfirmScreen(ModalScreen[bool]):
    """Says what will happen (and what will be undone) and waits for y or n."""

    BINDINGS = [*keys.CONFIRM]
    # The explanation, not the reason line, has the focus: y and n answer at once.
    AUTO_FOCUS = "#confirm-scroll"

    def __init__(self, title: str, body: Text, keys_hint: str, *, ask_reason: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.keys_hint = keys_hint
        self.ask_reason = ask_reason

    @classmethod
    def for_plans(
        cls, verb: Verb, plans: list[ActionPlan], keymap: typing.Mapping[str, str]
    ) -> ConfirmScreen:
        """The question for a recover or compensate: one plan line per saga."""
        title, lines = confirmation(verb, plans)
        return cls.asking(title, lines, keymap, ask_reason=True)

    @classmethod
    def asking(
        cls,
        title: str,
        lines: typing.Sequence[str],
        keymap: typing.Mapping[str, str],
        *,
        verb: str = "confirm",
        ask_reason: bool = False,
    ) -> ConfirmScreen:
        """The question ``title`` with one line per saga (already cleaned)."""
        yes, no, why = (keys.key_label(binding, keymap) for binding in keys.CONFIRM)
        hint = f"{yes}: {verb}    {no}: cancel"
        if verb != "confirm":
            hint = f"{yes}: confirm, {verb}    {no}: cancel"
        if ask_reason:
            hint += f"    {why}: type a reason"
        return cls(title, Text("\n".join(lines), end=""), hint, ask_reason=ask_reason)

    @property
    def reason(self) -> str:
        """The reason typed (empty when none was, or none was asked)."""
        if not self.ask_reason:
            return ""
        return self.query_one("#confirm-reason", Input).value.strip()

    def compose(self) -> ComposeResult:
        """Title, explanation, the reason line when asked, key hint."""
        with Vertical(id="confirm-box"):
            yield Static(Text(self.title_text, style="bold", end=""), id="confirm-title")
            with VerticalScroll(id="confirm-scroll"):
                yield Static(self.body, id="confirm-body")
            if self.ask_reason:
                yield Input(
                    placeholder="reason (optional), stored with the action",
                    max_length=REASON_LENGTH,
                    id="confirm-reason",
                )
            yield Static(Text(self.keys_hint, end=""), id="confirm-keys")
        yield Footer()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """No reason key where no reason is asked (the quit question)."""
        if action == "reason":
            return self.ask_reason
        return True

    def action_reason(self) -> None:
        """Into the reason line, or out of it again."""
        line = self.query_one("#confirm-reason", Input)
        if line.has_focus:
            self.query_one("#confirm-scroll").focus()
        else:
            line.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter ends the reason; the next y confirms (enter never does)."""
        event.stop()
        self.query_one("#confirm-scroll").focus()

    def action_answer(self, answer: bool) -> None:
        """Close with the answer."""
        self.dismiss(answer)
