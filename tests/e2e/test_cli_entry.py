"""The pieces of the command line other code uses: URL and app resolution, the dashboard hook."""

from __future__ import annotations

import asyncio
import io
import os
import pathlib
import sys
import types
import typing

import pytest

from saga_tui import cli
from saga_tui.target import UsageError, build_mediator, load_app_factory, resolve_db_url
from saga_tui.textout import clean
from sample_sagas.load import Progress, report_progress


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


def test_no_command_opens_the_dashboard_with_the_resolved_options(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str, bool, bool]] = []
    fake = types.ModuleType("saga_tui.app")
    fake.run_dashboard = lambda *args: calls.append(args) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "saga_tui.app", fake)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--read-only", "--demo", "--app", "m:f"]) == 0
    assert calls == [(f"sqlite+aiosqlite:///{tmp_path / 'sagas.db'}", "m:f", True, True)]
    assert cli.main([]) == 0
    assert calls[-1][1:] == ("sample_sagas:create_mediator", False, False)


def test_a_missing_dashboard_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "saga_tui.app", None)  # makes the import fail
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dashboard is not available" in err


def test_clean_escapes_control_characters() -> None:
    assert clean("a\x1b[2Jb\x07\n\u202e") == "a\\x1b[2Jb\\a\\n\\u202e"
    assert clean("line\nnext", keep_newlines=True) == "line\nnext"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_progress_line_is_rewritten_on_a_terminal() -> None:
    progress = Progress(total=10, started=4, finished=3, completed=3)
    stream = _Tty()
    task = asyncio.create_task(report_progress(progress, stream, 0.01))
    deadline = asyncio.get_running_loop().time() + 5
    while stream.getvalue().count("\r") < 2:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
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
        assert (
            "OrderSaga (COMPLETED): undo ShipOrder, ChargePayment, ReserveInventory" in questions[0]
        )
        lease = await storage.get_lease(started.saga_id)
        assert lease is not None and lease.status.name == "COMPLETED"
        code = await headless.compensate_command(
            mediator, lines.append, [str(started.saga_id)], confirm=answer(True)
        )
        assert code == 0 and lines == [f"{started.saga_id}  compensate  COMPENSATED"]
    finally:
        await storage.close()
