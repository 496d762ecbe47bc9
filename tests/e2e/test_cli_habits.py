"""The command line in scripts and shells: pipes, permissions, --app, every spelling of an id."""

from __future__ import annotations

import io
import json
import os
import pathlib
import shutil
import sqlite3
import subprocess
import sys
import tempfile

import pytest

from saga_tui import cli
from tests.support import run_module

ROOT = pathlib.Path(__file__).resolve().parents[2]
RELIABLE = "tests.e2e.apps:reliable"


def saga_tui(*args: str) -> subprocess.CompletedProcess[str]:
    return run_module(*args)


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A database with enough sagas that ``list --json`` outgrows a pipe's buffer."""
    path = tmp_path_factory.mktemp("habits") / "many.db"
    run = saga_tui("--db", str(path), "--app", RELIABLE, "start", "OrderSaga", "--count", "300")
    assert run.returncode == 0, run.stderr
    return path


def test_a_reader_that_stops_early_ends_the_command_silently(many: pathlib.Path) -> None:
    # ``list | head -1`` used to print "database: [Errno 32] Broken pipe" and exit 2,
    # which fails a ``set -o pipefail`` script.
    saga_id = json.loads(saga_tui("--db", str(many), "list", "--json", "--limit", "1").stdout)
    for command in (
        "list --json --limit 300 | head -c 100",
        "list --limit 300 | head -1",
        f"show {saga_id[0]['id']} --json | head -c 10",
    ):
        run = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {sys.executable} -m saga_tui --db {many} {command}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, (command, run.returncode, run.stderr)
        assert run.stderr == "", (command, run.stderr)
        assert run.stdout


def test_every_spelling_of_an_id_names_the_saga(many: pathlib.Path) -> None:
    saga_id = json.loads(saga_tui("--db", str(many), "list", "--json", "--limit", "1").stdout)[0]
    dashed = saga_id["id"]
    stored = sqlite3.connect(many).execute("SELECT id FROM saga_executions LIMIT 1").fetchone()
    assert len(stored[0]) == 32  # what a SQL query shows
    spellings = [
        dashed.replace("-", ""),
        dashed.upper(),
        "{" + dashed + "}",
        "urn:uuid:" + dashed,
        dashed.replace("-", "")[:12],  # a prefix of the stored form
    ]
    for spelling in spellings:
        run = saga_tui("--db", str(many), "show", spelling, "--json")
        assert run.returncode == 0, (spelling, run.stderr)
        assert json.loads(run.stdout)["id"] == dashed
    stored_id = stored[0]
    run = saga_tui("--db", str(many), "show", stored_id, "--json")
    assert run.returncode == 0, run.stderr
    bad = saga_tui("--db", str(many), "show", "not-an-id")
    assert bad.returncode == 2 and "not a saga id" in bad.stderr


def test_an_app_that_does_not_import_is_exit_2_for_read_commands_too(
    many: pathlib.Path,
) -> None:
    for command in (["list"], ["show", "0"]):
        run = saga_tui("--app", "nonexistent:factory", "--db", str(many), *command)
        assert run.returncode == 2, (command, run.stdout, run.stderr)
        assert "cannot import nonexistent" in run.stderr
        assert run.stdout == ""
    # The default app is never imported for reading (list works without it).
    assert saga_tui("--db", str(many), "list", "--limit", "1").returncode == 0


def _as_another_user(args: list[str], warm: pathlib.Path) -> tuple[int, str]:
    """``cli.main(args)`` run as the ``nobody`` user (root forks and drops privileges)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 99
        err = io.StringIO()
        try:
            os.close(read)
            # Everything the command imports is imported before the privileges go (the
            # interpreter's own library is not readable by nobody).
            import concurrent.futures.thread  # noqa: F401

            import saga_tui.app  # noqa: F401

            with open(os.devnull, "w") as quiet:
                sys.stdout = sys.stderr = quiet
                cli.main(["--db", str(warm), "list"])
            os.setgid(65534)
            os.setuid(65534)
            sys.stderr = err
            with open(os.devnull, "w") as quiet:
                sys.stdout = quiet
                code = cli.main(args)
        except BaseException as exc:
            err.write(f"{type(exc).__name__}: {exc}")
        finally:
            os.write(write, f"{code}\n{err.getvalue()}".encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as fh:
        out = fh.read()
    os.waitpid(pid, 0)
    code, _, stderr = out.partition("\n")
    return int(code), stderr


def test_a_database_another_user_owns_says_permission_denied(many: pathlib.Path) -> None:
    # A root-owned 0644 file opened by another user used to be "on a read-only file
    # system": the file system is writable, the user is not allowed to write.
    folder = pathlib.Path(tempfile.mkdtemp(prefix="saga-perm-"))
    try:
        folder.chmod(0o755)
        path = folder / "sagas.db"
        shutil.copy(many, path)
        path.chmod(0o644)
        args = ["--db", str(path), "list"]
        if os.geteuid() == 0:
            code, stderr = _as_another_user(args, many)
        else:
            path.chmod(0o444)
            run = saga_tui(*args)
            code, stderr = run.returncode, run.stderr
        assert code == 2, stderr
        assert "permission denied" in stderr and "read-only file system" not in stderr
        assert "--read-only" in stderr and stderr.count("\n") == 1
    finally:
        shutil.rmtree(folder)


def test_the_dashboard_says_permission_denied_too(many: pathlib.Path) -> None:
    folder = pathlib.Path(tempfile.mkdtemp(prefix="saga-perm-"))
    try:
        folder.chmod(0o755)
        path = folder / "sagas.db"
        shutil.copy(many, path)
        path.chmod(0o644 if os.geteuid() == 0 else 0o444)
        # The dashboard refuses before it draws anything, so no terminal is needed.
        if os.geteuid() == 0:
            code, stderr = _as_another_user(["--db", str(path)], many)
        else:
            run = saga_tui("--db", str(path))
            code, stderr = run.returncode, run.stderr
        assert code == 2, stderr
        assert "permission denied" in stderr and stderr.count("\n") == 1
    finally:
        shutil.rmtree(folder)
