"""The one key map: every binding with its id and what it does.

The app, the screens and the dialogs take their ``BINDINGS`` from here; the help screen,
the command palette and the README's key table are built from the same bindings. Users
remap keys by binding id in ``$XDG_CONFIG_HOME/saga-tui/keymap.toml`` (Textual's
``App.set_keymap``); a bad file gives a one-line warning and the default keys.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import tomllib
import typing

from textual.binding import Binding

if typing.TYPE_CHECKING:
    from textual.dom import DOMNode

# The list screen's keys, in footer order. ``app.`` actions act on the saga under the
# cursor (or the marked ones); the detail screen binds those of them that apply there too.
SAGAS: list[Binding] = [
    Binding(
        "enter", "app.open_detail", "Detail", show=False, id="saga.open",
        tooltip="Open the saga's detail: steps, error and traceback, context, history",
    ),
    Binding(
        "n", "app.new", "New", id="saga.new",
        tooltip="Start new sagas (form: saga type, context JSON, count)",
    ),
    Binding(
        "r", "app.recover", "Recover", id="saga.recover",
        tooltip="Recover the saga, or every marked one: resume, finish or retry compensation",
    ),
    Binding(
        "c", "app.compensate", "Compensate", id="saga.compensate",
        tooltip="Compensate the saga, or every marked one; asks, naming the steps it undoes",
    ),
    Binding(
        "space", "mark", "Mark", id="saga.mark",
        tooltip="Mark / unmark the saga for bulk recover and compensate",
    ),
    Binding(
        "asterisk,ctrl+a", "app.mark_all", "Mark all", show=False, key_display="* / ctrl+a",
        id="saga.mark_all",
        tooltip="Mark every saga matching the filter (counted in the database, not the page)",
    ),
    Binding(
        "S", "stranded", "Stranded", id="saga.stranded",
        tooltip="Show the stranded sagas (unfinished, nobody runs them), or every saga again",
    ),
    Binding(
        "g", "app.groups", "Groups", id="saga.groups",
        tooltip="Failures grouped by cause: count, last hour, example; enter filters, r/c act",
    ),
    Binding(
        "i", "app.steps", "Steps", show=False, id="saga.steps",
        tooltip="Steps view: p50/p95 duration and failure rate of each step, from recent runs",
    ),
    Binding(
        # priority: handled as the key arrives, so the keys typed right behind it reach
        # the filter line (a browser or a fast typist sends them in one burst).
        "slash", "filter", "Filter", key_display="/", id="saga.filter", priority=True,
        tooltip="Filter: free text (id, error), status:failed,run (names or starts), name:Order",
    ),
    Binding(
        "escape", "clear", "Clear", show=False, id="saga.clear",
        tooltip="Close the filter line; else clear the marks; else clear the filter",
    ),
    Binding("p", "app.pause", "Pause", id="saga.pause", tooltip="Pause / resume live updates"),
    Binding(
        "l", "toggle_stream", "Live", id="saga.stream", tooltip="Show / hide the live step stream"
    ),
    Binding(
        "s", "sort", "Sort", id="saga.sort",
        tooltip="Sort by the next order: newest first, status, saga name, oldest first",
    ),
    Binding(
        "t", "app.toggle_times", "Times", id="saga.times",
        tooltip="Show times as ages (5s, 3m) or as clock times in the local time zone",
    ),
    Binding(
        "W", "toggle_wide", "Wide", show=False, id="saga.wide",
        tooltip="Wide mode: every column at full width, the whole error (← → scroll)",
    ),
    Binding(
        "y", "app.copy_id", "Copy id", id="saga.copy",
        tooltip="Copy the saga's full id (and show it, for terminals that cannot copy)",
    ),
    Binding(
        "right_square_bracket", "page(1)", "Next page", show=False, key_display="]",
        id="saga.next", tooltip="Next page (older sagas)",
    ),
    Binding(
        "left_square_bracket", "page(-1)", "Prev page", show=False, key_display="[",
        id="saga.prev", tooltip="Previous page (newer sagas)",
    ),
    Binding(
        "w", "app.workers", "Workers", show=False, id="saga.workers",
        tooltip="Workers: each one's host, pid, app, heartbeat, running and served; gone ones",
    ),
    Binding(
        "question_mark", "app.help", "Help", key_display="?", id="saga.help",
        tooltip="Show every key",
    ),
    Binding("q", "app.quit", "Quit", id="saga.quit", tooltip="Quit"),
]  # fmt: skip

# The app's own key, on every screen: Textual's command palette.
PALETTE = Binding(
    "ctrl+p", "command_palette", "Palette", show=False, priority=True, id="saga.palette",
    tooltip="Command palette: every action, and a filter for each status",
)  # fmt: skip

# The table's own keys: the cursor and the view. They are the table's (not the screen's)
# so they reach it only while it has the focus, never while the filter line is typed in.
TABLE: list[Binding] = [
    Binding("enter", "select_cursor", "Detail", id="saga.open", tooltip=SAGAS[0].tooltip),
    Binding(
        "up,k", "cursor(-1)", "Up", show=False, id="saga.up",
        tooltip="Cursor up (on the top row: the newer sagas counted above it, or the page before)",
    ),
    Binding(
        "down,j", "cursor(1)", "Down", show=False, id="saga.down",
        tooltip="Cursor down (on the last row: the next page)",
    ),
    Binding(
        "pageup", "cursor_page(-1)", "Page up", show=False, key_display="PgUp",
        id="saga.pageup", tooltip="Cursor up one screen",
    ),
    Binding(
        "pagedown", "cursor_page(1)", "Page down", show=False, key_display="PgDn",
        id="saga.pagedown", tooltip="Cursor down one screen",
    ),
    Binding(
        "home,ctrl+home", "first", "Top", show=False, id="saga.top",
        tooltip="First row of the first page: the list follows new sagas again",
    ),
    Binding(
        "end,G,ctrl+end", "last", "Bottom", show=False, id="saga.bottom",
        tooltip="Last row of this page (] goes on to older sagas)",
    ),
    Binding(
        "left", "scroll_columns(-1)", "Left", show=False, id="saga.left",
        tooltip="Scroll the columns left (wide mode)",
    ),
    Binding(
        "right", "scroll_columns(1)", "Right", show=False, id="saga.right",
        tooltip="Scroll the columns right (wide mode)",
    ),
]  # fmt: skip

# The detail's own keys; it also takes these of the list's, acting on its saga.
ON_DETAIL_TOO = frozenset(
    {
        "saga.recover",
        "saga.compensate",
        "saga.pause",
        "saga.times",
        "saga.copy",
        "saga.help",
        "saga.quit",
    }
)
DETAIL: list[Binding] = [
    Binding("escape", "close", "Back", id="detail.back", tooltip="Back to the list"),
    Binding(
        "f",
        "toggle_follow",
        "Follow",
        id="detail.follow",
        tooltip="Follow the saga live, or freeze it",
    ),
    Binding(
        "e",
        "redeliver",
        "Redeliver",
        show=False,
        id="detail.redeliver",
        tooltip="Redeliver the saga's failed events (and the ones held back behind them)",
    ),
]

# Destructive questions default to cancel: only y confirms; a stray enter cancels.
CONFIRM: list[Binding] = [
    Binding(
        "y",
        "answer(True)",
        "Confirm",
        id="confirm.yes",
        tooltip="Confirm: recover or compensate",
    ),
    Binding(
        "n,escape,enter",
        "answer(False)",
        "Cancel",
        id="confirm.no",
        tooltip="Cancel: nothing is done (enter cancels too)",
    ),
    Binding(
        "tab",
        "reason",
        "Reason",
        id="confirm.reason",
        tooltip="Type a reason, stored with the action (enter ends it, then y confirms)",
    ),
]

# The failure groups view's keys.
GROUPS_VIEW: list[Binding] = [
    Binding(
        "enter", "filter_group", "Show sagas", id="groups.filter",
        tooltip="Show the group's sagas in the list (filter group:KEY)",
    ),
    Binding(
        "r", "act('recover')", "Recover group", id="groups.recover",
        tooltip="Recover every saga of the group (asks first)",
    ),
    Binding(
        "c", "act('compensate')", "Compensate group", id="groups.compensate",
        tooltip="Compensate every saga of the group (asks first)",
    ),
    Binding("escape,g", "close", "Back", id="groups.back", tooltip="Back to the list"),
]  # fmt: skip

# The Steps view's keys.
STEPS_VIEW: list[Binding] = [
    Binding(
        "enter", "filter_saga", "Show sagas", id="steps.filter",
        tooltip="Show the saga type under the cursor in the list",
    ),
    Binding("escape,i", "close", "Back", id="steps.back", tooltip="Back to the list"),
]  # fmt: skip

START_FORM: list[Binding] = [
    Binding(
        "ctrl+s",
        "submit",
        "Start",
        id="start.submit",
        tooltip="Start (the context is validated first)",
    ),
    Binding(
        "escape", "cancel", "Cancel", id="start.cancel", tooltip="Close the form; nothing starts"
    ),
]

# The start form's JSON editor's own key.
START_EDITOR: list[Binding] = [
    Binding(
        "ctrl+a", "select_all", "Select all", id="start.select_all",
        tooltip="Select all of the context JSON (in the editor)",
    ),
]  # fmt: skip

HELP: list[Binding] = [
    Binding(
        "escape,q,question_mark", "dismiss", "Close", id="help.close", tooltip="Close the help"
    ),
]

WORKERS: list[Binding] = [
    Binding(
        "enter",
        "filter_worker",
        "Show sagas",
        id="workers.filter",
        tooltip="Show the worker's sagas in the list (filter worker:NAME)",
    ),
    Binding("escape,q,w", "dismiss", "Close", id="workers.close", tooltip="Close the workers view"),
]

GROUPS: tuple[tuple[str, list[Binding]], ...] = (
    ("Sagas", [*SAGAS, PALETTE]),
    ("Moving in the list", TABLE[1:]),
    ("Detail", DETAIL),
    ("Failure groups", GROUPS_VIEW),
    ("Steps", STEPS_VIEW),
    ("Confirmation", CONFIRM),
    ("Start form", [*START_FORM, *START_EDITOR]),
    ("Help", HELP),
    ("Workers", WORKERS),
)

BINDING_IDS = frozenset(b.id for _, group in GROUPS for b in group if b.id)

_KEY_NAMES = {
    "escape": "esc",
    "pageup": "PgUp",
    "pagedown": "PgDn",
    "left": "←",
    "right": "→",
    "question_mark": "?",
    "slash": "/",
    "right_square_bracket": "]",
    "asterisk": "*",
    "left_square_bracket": "[",
}


def key_label(binding: Binding, keymap: typing.Mapping[str, str] | None = None) -> str:
    """The keys of ``binding`` as shown to people (``y / enter``), after the user's keymap."""
    remapped = keymap.get(binding.id) if keymap and binding.id else None
    if remapped is None and binding.key_display:
        return binding.key_display
    keys = (remapped or binding.key).split(",")
    return " / ".join(_KEY_NAMES.get(k.strip(), k.strip()) for k in keys)


def detail_bindings() -> list[Binding]:
    """The detail screen's keys: its own, then the list's that act on its saga."""
    return DETAIL + [b for b in SAGAS if b.id in ON_DETAIL_TOO]


HelpRows = list[tuple[str, list[tuple[str, str]]]]


def help_rows(keymap: typing.Mapping[str, str] | None = None) -> HelpRows:
    """(group, [(keys, what it does)]) for the help screen, with the user's keys."""
    return [(title, [(key_label(b, keymap), b.tooltip) for b in group]) for title, group in GROUPS]


# ---- the user's keymap --------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class UserKeys:
    """Keys remapped by binding id, and a one-line warning about the file if it had faults."""

    keymap: dict[str, str] = dataclasses.field(default_factory=dict)
    warning: str | None = None


def keymap_path(environ: typing.Mapping[str, str] | None = None) -> pathlib.Path:
    """``$XDG_CONFIG_HOME/saga-tui/keymap.toml`` (``~/.config`` when the variable is unset)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return pathlib.Path(base) / "saga-tui" / "keymap.toml"


def _flatten(table: dict[str, typing.Any], prefix: str = "") -> dict[str, typing.Any]:
    # ``saga.recover = "R"`` is a nested table in TOML; ids are dotted strings.
    out: dict[str, typing.Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def load_user_keys(path: pathlib.Path | None = None) -> UserKeys:
    """Read the keymap file (missing is fine); faults become one warning, never an error."""
    path = path or keymap_path()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return UserKeys()
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return UserKeys(warning=f"{path}: {reason}; using the default keys")
    keymap: dict[str, str] = {}
    faults: list[str] = []
    for binding_id, value in _flatten(data).items():
        if binding_id not in BINDING_IDS:
            faults.append(f"unknown binding id {binding_id!r}")
            continue
        parts = value if isinstance(value, list) else [value]
        keys = [k.strip() for part in parts if isinstance(part, str) for k in part.split(",")]
        if not all(isinstance(p, str) for p in parts) or not all(keys) or not keys:
            faults.append(f'{binding_id}: keys must be a string like "ctrl+r"')
            continue
        keymap[binding_id] = ",".join(keys)
    warning = f"{path}: {'; '.join(faults)} (ignored)" if faults else None
    return UserKeys(keymap, warning)


FOOTER_ORDER = (
    "saga.help",
    "saga.quit",
    "saga.open",
    "detail.back",
    "saga.new",
    "saga.recover",
    "saga.compensate",
    "saga.filter",
    "detail.follow",
    "saga.mark",
    "saga.groups",
    "saga.stranded",
    "saga.pause",
    "saga.stream",
    "saga.sort",
    "saga.times",
    "saga.copy",
)
"""What the footer offers first when not every key fits: ? and q are never cut off."""
PALETTE_WIDTH = 13


def footer_ids(
    bindings: typing.Iterable[Binding],
    width: int,
    keymap: typing.Mapping[str, str] | None = None,
    *,
    hidden: typing.Collection[str] = (),
    compact: bool = False,
) -> tuple[set[str], bool]:
    """The ids the footer shows in ``width`` cells (by ``FOOTER_ORDER``), and the palette."""
    candidates = {b.id: b for b in bindings if b.show and b.id and b.id not in hidden}
    ordered = [i for i in FOOTER_ORDER if i in candidates]
    ordered += [i for i in candidates if i not in ordered]

    def cost(binding: Binding) -> int:
        label = key_label(binding, keymap).replace("enter", "⏎").replace("ctrl+", "^")
        # "key label" plus one space each side (one in all when compact).
        return len(label) + 1 + len(binding.description) + (1 if compact else 2)

    total = 1 + sum(cost(candidates[i]) for i in ordered)
    palette = total + PALETTE_WIDTH <= width
    shown: set[str] = set()
    used = 1
    for binding_id in ordered:
        used += cost(candidates[binding_id])
        if used > width:
            break
        shown.add(binding_id)
    return shown, palette


def show_in_footer(nodes: typing.Iterable[DOMNode], ids: typing.Collection[str]) -> None:
    """Offer in the footer only the bindings with these ids (the keys still work)."""
    wanted = set(ids)
    for node in nodes:
        bindings = node._bindings.key_to_bindings
        for key, group in bindings.items():
            bindings[key] = [
                dataclasses.replace(b, show=b.id in wanted) if b.id in FOOTER_IDS else b
                for b in group
            ]
        node.refresh_bindings()


FOOTER_IDS = frozenset(b.id for b in [*SAGAS, *TABLE, *DETAIL] if b.show and b.id)
"""Bindings the footer may offer; the others are only in the help."""
