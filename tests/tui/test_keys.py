"""One key map: the bindings are the help, the palette and the README table; users remap."""

from __future__ import annotations

import pathlib
import re
import tomllib

import pytest

from saga_tui import keys
from saga_tui.commands import binding_commands
from saga_tui.components.confirm import ConfirmScreen
from saga_tui.components.help import HelpScreen
from tests.tui.conftest import SIZE, Env, notifications, select, wait_for

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def readme_key_table() -> list[tuple[str, str, str]]:
    """(key, binding id, what it does) rows of the README's key table."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("| key | id | does |") :]
    rows = []
    for line in section.splitlines()[2:]:
        if not line.startswith("|"):
            break
        key, binding_id, does = (cell.strip() for cell in line.strip("|").split("|"))
        rows.append((key.strip("`"), binding_id.strip("`"), does))
    return rows


def test_the_readme_key_table_is_the_bindings() -> None:
    bindings = [
        (keys.key_label(b), b.id or "", b.tooltip) for _, group in keys.GROUPS for b in group
    ]
    assert readme_key_table() == bindings


def test_every_binding_has_an_id_and_a_description() -> None:
    every = [b for _, group in keys.GROUPS for b in group] + keys.TABLE
    assert all(b.id and b.tooltip and b.description for b in every)
    # Ids name what a key does: one id, one action (the table's enter opens the detail too).
    actions: dict[str, set[str]] = {}
    for b in every:
        actions.setdefault(b.id or "", set()).add(b.action)
    assert all(len(a) == 1 for i, a in actions.items() if i != "saga.open")


def test_the_palette_is_built_from_the_bindings() -> None:
    ran: list[str] = []
    commands = binding_commands(keys.SAGAS, ran.append, {"saga.recover": "x"})
    assert [name for name, _, _ in commands] == [b.tooltip for b in keys.SAGAS]
    (recover,) = (c for c in commands if c[2] == "key x")
    recover[1]()
    assert ran == ["app.recover"]


def test_the_readme_keymap_example_loads_cleanly(tmp_path: pathlib.Path) -> None:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"```toml\n(.*?)```", text, re.S)
    assert found, "the README shows an example keymap.toml"
    path = tmp_path / "keymap.toml"
    path.write_text(found.group(1), encoding="utf-8")
    loaded = keys.load_user_keys(path)
    assert loaded.warning is None and loaded.keymap
    assert "$XDG_CONFIG_HOME/saga-tui/keymap.toml" in text


def test_the_keymap_path_follows_xdg() -> None:
    assert keys.keymap_path({"XDG_CONFIG_HOME": "/c"}) == pathlib.Path("/c/saga-tui/keymap.toml")
    home = pathlib.Path.home()
    assert keys.keymap_path({}) == home / ".config" / "saga-tui" / "keymap.toml"


@pytest.mark.parametrize(
    ("content", "warning"),
    [
        ("saga.recover = ", "keymap.toml"),  # not TOML
        ('"saga.recovr" = "x"', "unknown binding id 'saga.recovr'"),
        ("[saga]\nrecover = 3", "saga.recover: keys must be a string"),
        ('[saga]\nrecover = ""', "saga.recover: keys must be a string"),
    ],
)
def test_a_bad_keymap_is_one_warning(tmp_path: pathlib.Path, content: str, warning: str) -> None:
    path = tmp_path / "keymap.toml"
    path.write_text(content, encoding="utf-8")
    loaded = keys.load_user_keys(path)
    assert loaded.warning is not None and warning in loaded.warning
    assert "\n" not in loaded.warning
    assert loaded.keymap == {}


def test_a_keymap_file_with_good_and_bad_entries_keeps_the_good(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "keymap.toml"
    path.write_text('[saga]\nrecover = "x"\nnope = "z"\n[detail]\nfollow = ["g", "ctrl+f"]\n')
    loaded = keys.load_user_keys(path)
    assert loaded.keymap == {"saga.recover": "x", "detail.follow": "g,ctrl+f"}
    assert loaded.warning is not None and "saga.nope" in loaded.warning
    assert tomllib.loads(path.read_text())  # the file itself is valid TOML


async def test_remapped_keys_work_and_the_help_shows_them(
    env: Env, no_user_keymap: pathlib.Path
) -> None:
    (no_user_keymap / "saga-tui").mkdir(parents=True)
    (no_user_keymap / "saga-tui" / "keymap.toml").write_text('[saga]\ncompensate = "x"\n')
    saga_id = await env.run_saga()
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, saga_id)
        bindings = app.screen.active_bindings
        assert bindings["x"].binding.action == "app.compensate"
        assert "c" not in bindings
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is app.main_screen, what="cancelled")
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        rows = dict(app.screen.rows[0][1])  # type: ignore[attr-defined]
        assert any(key == "x" and "Compensate" in what for key, what in rows.items())
        assert not notifications(app)


async def test_a_bad_keymap_file_warns_in_one_line_and_keeps_the_defaults(
    env: Env, no_user_keymap: pathlib.Path
) -> None:
    (no_user_keymap / "saga-tui").mkdir(parents=True)
    (no_user_keymap / "saga-tui" / "keymap.toml").write_text("[saga\nrecover = 'x'\n")
    saga_id = await env.run_saga()
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: notifications(app), what="the warning")
        (warning,) = notifications(app)
        assert "keymap.toml" in warning and "default keys" in warning and "\n" not in warning
        await select(pilot, app, saga_id)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="default c")
