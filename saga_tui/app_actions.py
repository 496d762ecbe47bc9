"""The dashboard's operator actions: ask, then act through ``operations.submit_action``.

A mixin of ``SagaApp``: recover and compensate on the cursor, the marked sagas, every
saga matching a filter, a failure group or every stranded saga all go the same way:
plan (read the first sagas), ask (destructive questions default to cancel), then one
``submit_action`` with its progress on screen and its outcome summed up. Quitting while
an action runs asks first.
"""

from __future__ import annotations

import typing
import uuid

from textual import work
from textual.app import App

from engine.saga.requests import RequestProgress
from engine.saga.storage.models import SagaFilter
from saga_tui.components.confirm import ConfirmScreen
from saga_tui.components.detail import DetailScreen
from saga_tui.components.groups import GroupsScreen
from saga_tui.components.steps import StepsScreen
from saga_tui.messages import (
    ActionProgress,
    ActionsFinished,
    MarkAllCounted,
    PlansReady,
)
from saga_tui.operations import (
    Target,
    Verb,
    all_ok,
    preview_action,
    refusal,
    submit_action,
    summarize,
)
from saga_tui.textfmt import operator_reason, plural

if typing.TYPE_CHECKING:
    from engine.saga.mediator import SagaMediator
    from engine.saga.storage.reader import SagaReader
    from saga_tui import keys
    from saga_tui.components.main_screen import MainScreen
    from saga_tui.demo import DemoTraffic
    from saga_tui.live import BrowseState
    from saga_tui.render import Palette

REASON = "dashboard"
STRANDED = SagaFilter(stranded=True)


class ActionsMixin(App[int]):
    """Recover and compensate, one saga or a whole filter; the failure groups view.

    ``SagaApp`` derives from it and provides what is declared here.
    """

    _in_flight: int = 0
    reader: SagaReader
    mediator: SagaMediator | None
    read_only: bool
    read_only_why: str
    browse: BrowseState
    user_keys: keys.UserKeys
    palette: Palette
    _demo: DemoTraffic | None

    @property
    def main_screen(self) -> MainScreen:
        """The list screen at the bottom of the stack (whatever is shown above it)."""
        return typing.cast("MainScreen", self.screen_stack[0])

    def current_id(self) -> uuid.UUID | None:
        """The saga the keys act on (SagaApp's)."""
        raise NotImplementedError

    def _alive(self) -> bool:
        raise NotImplementedError

    def reload(self) -> None:
        """Load what the browse state shows (SagaApp's)."""
        raise NotImplementedError

    def _refused(self, verb: str) -> bool:
        reason = refusal(
            verb, read_only=self.read_only, mediator=self.mediator, why=self.read_only_why
        )
        if reason is not None:
            self.notify(reason, severity="warning", markup=False)
        return reason is not None

    def action_recover(self) -> None:
        """Recover the current or marked sagas (after confirmation)."""
        self._ask("recover")

    def action_compensate(self) -> None:
        """Compensate the current or marked sagas (after confirmation)."""
        self._ask("compensate")

    def recover_stranded(self) -> None:
        """Recover every stranded saga (asks first, listing what each will do)."""
        self.ask_about("recover", STRANDED)

    def _ask(self, verb: Verb) -> None:
        on_list = not isinstance(self.screen, DetailScreen)
        target = self.browse.targets(self.current_id(), on_list=on_list)
        if target or isinstance(target, SagaFilter):
            self.ask_about(verb, target)

    def ask_about(self, verb: Verb, target: Target) -> None:
        """Plan ``verb`` on ``target`` and ask before doing it."""
        if not self._refused(verb):
            self._plan(verb, target)

    @work(exclusive=True, group="plan", exit_on_error=False)
    async def _plan(self, verb: Verb, target: Target) -> None:
        """Read the (first) sagas and say what the action will do (and undo)."""
        self.post_message(
            PlansReady(await preview_action(self.reader, self.mediator, verb, target))
        )

    def on_plans_ready(self, message: PlansReady) -> None:
        """Ask about a planned action (nothing to ask when nothing would run)."""
        preview = message.preview
        verb = preview.verb
        if not preview.runnable:
            reason = "; ".join(p.line() for p in preview.plans) or "no saga matches"
            self.notify(f"{verb}: {reason}", severity="warning", markup=False, timeout=8)
            return

        title, lines = preview.question()
        question = ConfirmScreen.asking(title, lines, self.user_keys.keymap, ask_reason=True)

        def answered(yes: bool | None) -> None:
            if yes:
                self._act(verb, preview.target, operator_reason(REASON, question.reason))

        self.push_screen(question, answered)

    @work(group="actions", exit_on_error=False)
    async def _act(self, verb: Verb, target: Target, reason: str = REASON) -> None:
        assert self.mediator is not None
        self._in_flight += 1
        try:

            def progress(done: int, total: int) -> None:
                self.post_message(ActionProgress(verb, done, total))

            results = await submit_action(
                self.mediator,
                verb,
                target,
                reason=reason,
                progress=progress,
                on_request=self._request_progress,
            )
        finally:
            self._in_flight -= 1
        self.post_message(ActionsFinished(verb, results))

    def _request_progress(self, progress: RequestProgress) -> None:
        """Told how a durable request goes (the fleet mixin shows it)."""

    def on_action_progress(self, message: ActionProgress) -> None:
        """Say how far a bulk action is (a few sagas need no progress)."""
        if message.total <= 1:
            return
        text = f"{message.verb}: {message.done:,} / {message.total:,} sagas"
        if message.done == 0:
            self.notify(f"{message.verb}: {plural(message.total, 'saga')} in progress…", timeout=2)
        if self._alive():
            self.main_screen.show_progress(text if message.done < message.total else None)

    def on_actions_finished(self, message: ActionsFinished) -> None:
        """Unmark what was acted on and sum up how it went."""
        if not self._alive():
            return
        if message.verb != "start":
            self.main_screen.show_progress(None)
        if self.browse.marked_filter is not None and message.verb != "start":
            self.browse.clear_marks()
            self.main_screen.show_marks()
        self.main_screen.unmark([result.saga_id for result in message.results])
        text = summarize(message.verb, message.results) if message.results else "no saga matched"
        if all_ok(message.results):
            self.notify(text, markup=False, timeout=6)
        else:
            self.notify(text, severity="error", markup=False, timeout=6)
        self.reload()

    # ---- marking everything that matches ------------------------------------------------

    def action_mark_all(self) -> None:
        """Mark every saga matching the filter, counted in the database (not the page)."""
        if self.screen is self.main_screen:
            self._count_all(self.browse.saga_filter)

    @work(exclusive=True, group="count", exit_on_error=False)
    async def _count_all(self, saga_filter: SagaFilter) -> None:
        count = await self.reader.count_sagas(saga_filter)
        self.post_message(MarkAllCounted(saga_filter, count))

    def on_mark_all_counted(self, message: MarkAllCounted) -> None:
        """Mark them all, if the filter is still the one counted."""
        if message.saga_filter != self.browse.saga_filter or not self._alive():
            return
        if message.count == 0:
            self.notify("no saga matches the filter: nothing to mark", timeout=3)
            return
        self.browse.mark_all(message.saga_filter, message.count)
        self.main_screen.show_marks()
        self.notify(f"marked all {message.count:,} matching sagas (r / c act on them)", timeout=3)

    # ---- failure groups ------------------------------------------------------------------

    def action_groups(self) -> None:
        """Open the failure groups view."""
        if not isinstance(self.screen, GroupsScreen):
            self.push_screen(GroupsScreen(self.reader, self.palette), self._group_chosen)

    def _group_chosen(self, key: str | None) -> None:
        if key:
            self.main_screen.set_filter(SagaFilter(failure_key=key))

    def action_steps(self) -> None:
        """Open the Steps view (p50/p95 and failure rate per step)."""
        if not isinstance(self.screen, StepsScreen):
            self.push_screen(StepsScreen(self.reader, self.palette), self._saga_type_chosen)

    def _saga_type_chosen(self, name: str | None) -> None:
        if name:
            self.main_screen.set_filter(SagaFilter(name=name))

    # ---- quitting ------------------------------------------------------------------------

    async def action_quit(self) -> None:
        """Quit; asks first while actions run (they would stop half done)."""
        if self._in_flight:
            question = (
                f"{plural(self._in_flight, 'action')} still running: quit anyway?",
                [
                    "Sagas being recovered or compensated stop where they are; "
                    "they are left stranded until recovered (saga-tui recover --stale).",
                ],
            )

            def answered(yes: bool | None) -> None:
                if yes:
                    self.call_later(self._quit_now)

            self.push_screen(
                ConfirmScreen.asking(*question, self.user_keys.keymap, verb="quit"), answered
            )
            return
        await self._quit_now()

    async def _quit_now(self) -> None:
        if self._demo is not None and self.mediator is not None and self.mediator.running:
            self.notify(f"Finishing {self.mediator.running} demo saga(s) in flight…")
            await self._demo.stop(grace=2.0)
        self.exit(0)
