"""A yes/no modal for destructive actions: y/enter confirm, n/esc cancel."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class ConfirmScreen(ModalScreen[bool]):
    """Says what will happen (and what will be undone) and waits for y or n."""

    BINDINGS = [
        Binding("y,enter", "answer(True)", "Confirm", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "Cancel", id="confirm.no"),
    ]

    def __init__(self, title: str, body: Text) -> None:
        super().__init__()
        self.title_text = title
        self.body = body

    def compose(self) -> ComposeResult:
        """Title, explanation, key hint."""
        with Vertical(id="confirm-box"):
            yield Static(Text(self.title_text, style="bold", end=""), id="confirm-title")
            with VerticalScroll(id="confirm-scroll"):
                yield Static(self.body, id="confirm-body")
            yield Static(Text("y / enter: confirm    n / esc: cancel", end=""), id="confirm-keys")

    def action_answer(self, answer: bool) -> None:
        """Close with the answer."""
        self.dismiss(answer)
