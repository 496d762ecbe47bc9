"""The pieces of the command line other code uses: URL and app resolution, the dashboard hook."""

from __future__ import annotations

import asyncio
import io
import os
import pathlib
import sys
import typing

import pytest

from saga_tui import cli
from saga_tui.target import UsageError, build_mediator, load_app_factory, resolve_db_url
from saga_tui.textfmt import clean
from sample_sagas.load import Progress, report_progress
from tests.support import wait_for


def test_resolve_db_url(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_db_url(None) == f"sqlite+aiosqlite:///{tmp_path / 'sagas.db'}"
    assert resolve_db_url("x/y.db") == f"sqlite+aiosqlite:///{tmp_path / 'x' / 'y.db'}"
    url = "postgresql+asyncpg://u:p@host/db"
    assert resolve_db_url(url) == url
    with pytest.raises(UsageError, match="not a database URL"):
        resolve_db_url("nonsense://:::")


def test_load_app_factory() -> None:
    from sample_sagas import create_mediator

    assert load_app_factory("sample_sagas:create_mediator") is create_mediator
    assert load_app_factory("sample_sagas.app:create_mediator") is create_mediator
    with pytest.raises(UsageError, match="expected module:factory"):
        load_app_factory("sample_sagas")
    with pytest.raises(UsageError, match="cannot import"):
        load_app_factory("no_such_module_xyz:f")
    with pytest.raises(UsageError, match="not callable"):
        load_app_factory("sample_sagas.load:MIX")
    with pytest.raises(UsageError, match="not a SagaMediator"):
        build_mediator(lambda storage: object(), typing.cast(typing.Any, None), "x:y")  # type: ignore[arg-type,return-value]


def test_no_command_builds_the_dashboard_with_make_app(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[typing.Any, ...]] = []

    class Ran:
        return_code = 0

        def run(self) -> None:
            calls.append(("run",))

    def fake_make_app(db: str | None, app: str, **options: typing.Any) -> Ran:
        calls.append((db, app, options))
        return Ran()

    monkeypatch.setattr(cli, "make_app", fake_make_app)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--read-only", "--demo", "--app", "m:f", "--db", "x.db"]) == 0
    assert calls == [("x.db", "m:f", {"read_only": True, "demo": True}), ("run",)]
    assert cli.main([]) == 0
    assert calls[-2] == (None, "sample_sagas:create_mediator", {"read_only": False, "demo": False})


def test_make_app_resolves_the_database_and_loads_the_app(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    app = cli.make_app(None, "tests.e2e.apps:reliable", read_only=False, demo=True)
    try:
        assert app.label == "sagas.db" and app.demo and not app.read_only
        assert app.mediator is not None
        assert {name for name, _, _ in app.mediator.registered()} >= {"OrderSaga"}
        assert (tmp_path / "sagas.db").exists()
    finally:
        asyncio.run(app.reader.close())
    with pytest.raises(UsageError, match="factory failed"):
        cli.make_app(str(tmp_path / "b.db"), "tests.e2e.apps:broken")


def test_a_missing_dashboard_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "saga_tui.app", None)  # makes the import fail
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dashboard is not available" in err


def test_clean_escapes_control_characters() -> None:
    assert clean("a\x1b[2Jb\x07\n\u202e") == "a\\x1b[2Jb\\a\\n\\u202e"
    assert clean("line\nnext", multiline=True) == "line\nnext"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_progress_line_is_rewritten_on_a_terminal() -> None:
    progress = Progress(total=10, started=4, finished=3, completed=3)
    stream = _Tty()
    task = asyncio.create_task(report_progress(progress, stream, 0.01))
    await wait_for(lambda: stream.getvalue().count("\r") >= 2, 5, what="two progress lines")
    task.cancel()
    text = stream.getvalue()
    assert "\n" not in text and text.startswith("\r\x1b[2K3/10 sagas")
    assert os.linesep not in progress.line()


async def test_compensate_says_what_it_will_undo_and_obeys_no(tmp_path: pathlib.Path) -> None:
    from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
    from saga_tui import headless
    from sample_sagas import example_context
    from tests.e2e.apps import reliable

    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    try:
        mediator = reliable(storage)
        started = await mediator.start(example_context("OrderSaga"))
        questions: list[str] = []
        lines: list[str] = []

        def answer(yes: bool) -> typing.Callable[[str], bool]:
            return lambda q: questions.append(q) or yes

        with pytest.raises(UsageError, match="cancelled"):
            await headless.compensate_command(
                mediator, lines.append, [str(started.saga_id)[:8]], confirm=answer(False)
            )
        short = str(started.saga_id)[:8]
        assert questions[0].splitlines() == [
            "Compensate 1 saga?  This undoes completed steps.",
            f"  {short}  OrderSaga  COMPLETED: "
            "will UNDO ShipOrder, ChargePayment, ReserveInventory",
        ]
        lease = await storage.get_lease(started.saga_id)
        assert lease is not None and lease.status.name == "COMPLETED"
        code = await headless.compensate_command(
            mediator, lines.append, [str(started.saga_id)], confirm=answer(True)
        )
        assert code == 0 and lines == [f"{started.saga_id}  compensate  COMPENSATED"]
    finally:
        await storage.close()
