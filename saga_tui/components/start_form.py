"""The start-saga form: saga type, context JSON (pre-filled, validated), count."""

from __future__ import annotations

import dataclasses
import json
import typing

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Select, Static, TextArea

from saga_tui import keys
from saga_tui.context_input import ContextInputError, context_from_json

MAX_COUNT = 10_000


@dataclasses.dataclass(frozen=True)
class SagaChoice:
    """A registered saga the form can start, with an example context (None: none found)."""

    name: str
    context_type: type
    example: dict[str, typing.Any] | None


@dataclasses.dataclass(frozen=True)
class StartRequest:
    """What the form asks the app to start: validated contexts, one per saga."""

    name: str
    contexts: list[typing.Any]


def validate(
    choice: SagaChoice, text: str, count_text: str
) -> tuple[StartRequest | None, str | None]:
    """Build the contexts from the form's text, or every problem, one per line (pure)."""
    problems: list[str] = []
    count = 1
    try:
        count = int(count_text.strip() or "1")
    except ValueError:
        problems.append(f"count must be a whole number, not {count_text.strip()!r}")
    else:
        if not 1 <= count <= MAX_COUNT:
            problems.append(f"count must be between 1 and {MAX_COUNT}")
    try:
        # One context per saga: the steps write into it.
        first = context_from_json(choice.name, choice.context_type, text)
    except ContextInputError as exc:
        problems += exc.problems
    if problems:
        return None, "\n".join(problems)
    rest = [context_from_json(choice.name, choice.context_type, text) for _ in range(count - 1)]
    return StartRequest(choice.name, [first, *rest]), None


class ContextEditor(TextArea):
    """The JSON editor; ctrl+a selects all of it (TextArea's own ctrl+a goes to line start)."""

    BINDINGS = [*keys.START_EDITOR]


class StartForm(ModalScreen[StartRequest | None]):
    """Pick a saga, edit its context, choose how many; ctrl+s or Start submits."""

    BINDINGS = [*keys.START_FORM]

    def __init__(self, choices: list[SagaChoice]) -> None:
        super().__init__()
        self.choices = {c.name: c for c in choices}
        self._shown = next(iter(self.choices))  # the saga whose example the editor holds

    def compose(self) -> ComposeResult:
        """Saga select, context editor, count, error line, buttons."""
        first = next(iter(self.choices.values()))
        with Vertical(id="start-box"):
            yield Static(Text("Start sagas", style="bold", end=""), id="start-title")
            yield Select(
                [(Text(name), name) for name in self.choices],
                value=first.name,
                allow_blank=False,
                id="start-saga",
            )
            yield Label("Context (JSON)")
            yield ContextEditor(_pretty(first.example), language=None, id="start-context")
            yield Static("", id="start-error")
            with Horizontal(id="start-row"):
                yield Label("Count ")
                yield Input("1", id="start-count", restrict=r"[0-9]*")
                yield Button("Start", variant="primary", id="start-go")
                yield Button("Cancel", id="start-cancel")
        yield Footer()

    def on_mount(self) -> None:
        """No error line until there is an error."""
        self._error("")

    @on(Select.Changed, "#start-saga")
    def _saga_changed(self, event: Select.Changed) -> None:
        choice = self.choices.get(str(event.value))
        # The select announces its first value after mount: that is no change, and text
        # typed meanwhile must stay.
        if choice is not None and choice.name != self._shown:
            self._shown = choice.name
            self.query_one("#start-context", TextArea).text = _pretty(choice.example)
            self._error("")

    @on(Button.Pressed, "#start-go")
    @on(Input.Submitted, "#start-count")
    def action_submit(self) -> None:
        """Validate; start only when everything parses."""
        name = str(self.query_one("#start-saga", Select).value)
        choice = self.choices[name]
        text = self.query_one("#start-context", TextArea).text
        count = self.query_one("#start-count", Input).value
        request, error = validate(choice, text, count)
        if error is not None:
            self._error(error)
            return
        self.dismiss(request)

    @on(Button.Pressed, "#start-cancel")
    def action_cancel(self) -> None:
        """Close without starting anything."""
        self.dismiss(None)

    def _error(self, message: str) -> None:
        widget = self.query_one("#start-error", Static)
        widget.update(Text(message, end=""))
        widget.set_class(bool(message), "-error")
        widget.display = bool(message)


def _pretty(example: dict[str, typing.Any] | None) -> str:
    return json.dumps(example or {}, indent=2, default=str)
