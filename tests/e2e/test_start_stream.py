"""``start --count N`` streams: results as they come, Ctrl+C stops and says how many started."""

from __future__ import annotations

import json
import pathlib
import re
import signal
import sqlite3
import subprocess
import sys

import pytest

from tests.support import wait_for_sync

ROOT = pathlib.Path(__file__).resolve().parents[2]
APP = ("--app", "tests.e2e.apps:reliable")


def _completed(db: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            # The audit row is the last write of a start, just before its result is printed.
            row = conn.execute("SELECT count(*) FROM saga_audit WHERE action = 'start'")
            return int(row.fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # the file exists before its tables do


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("as_json", [False, True])
def test_ctrl_c_stops_a_long_start_and_says_how_many_started(
    tmp_path: pathlib.Path, as_json: bool
) -> None:
    db = str(tmp_path / "stream.db")
    argv = [sys.executable, "-m", "saga_tui", "--db", db, *APP, "start", "OrderSaga"]
    argv += ["--count", "1000000", *(["--json"] if as_json else [])]
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As a terminal's Ctrl+C finds it: a test run started in the background of a
        # script inherits SIGINT ignored, and so would the command.
        preexec_fn=_sigint_default,
    )
    try:
        wait_for_sync(lambda: _completed(db) >= 5, timeout=120, what="a few sagas")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    said = re.search(r"started (\d+) of 1000000 sagas, (\d+) finished", err)
    assert said, err
    started, finished = int(said.group(1)), int(said.group(2))
    assert finished <= started < 1000000 and started >= 5
    if as_json:
        results = json.loads(out)  # still one valid JSON array
        assert len(results) == finished
    else:
        lines = out.strip().splitlines()
        assert len(lines) == finished
        assert all(line.endswith("start  COMPLETED") for line in lines)
    recovered = subprocess.run(
        [sys.executable, "-m", "saga_tui", "--db", db, *APP, "recover", "--stale", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert recovered.returncode == 0, recovered.stderr


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\xff\xfe{", "not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_a_context_file_that_cannot_be_read_is_a_usage_error(
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
    needle: str,
) -> None:
    from saga_tui import cli

    context = tmp_path / "context.json"
    context.write_bytes(content)
    db = str(tmp_path / "c.db")
    code = cli.main(["--db", db, *APP, "start", "OrderSaga", "--context", f"@{context}"])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err


def test_a_start_of_more_sagas_than_one_request_holds_runs_each_once(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The sample world with instant services; 1,200 sagas are two start requests.
    from saga_tui import cli
    from saga_tui.headless import START_CHUNK

    count = START_CHUNK + 200
    db = str(tmp_path / "instant.db")
    app = ("--app", "sample_sagas:create_instant_mediator")
    argv = ["--db", db, *app, "start", "OrderSaga", "--count", str(count)]
    code = cli.main([*argv, "--concurrency", "32", "--json"])
    results = json.loads(capsys.readouterr().out)
    assert len(results) == count and len({r["id"] for r in results}) == count
    statuses = {r["status"] for r in results}
    assert statuses <= {"COMPLETED", "COMPENSATED"} and "COMPLETED" in statuses
    assert code == (0 if statuses == {"COMPLETED"} else 1)
    with sqlite3.connect(db) as conn:
        requests = conn.execute("SELECT count(*), sum(state = 'DONE') FROM saga_requests")
        assert requests.fetchone() == (2, 2)
    checked = subprocess.run(
        [sys.executable, "-m", "sample_sagas", "check", "--db", db],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"checked {count} sagas: 0 disagree" in checked.stderr


def test_on_a_terminal_a_long_start_shows_its_progress(tmp_path: pathlib.Path) -> None:
    # stderr on a pseudo-terminal, stdout a pipe: the progress line goes to the terminal.
    import os
    import threading

    db = str(tmp_path / "progress.db")
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "saga_tui", "--db", db,
            "--app", "sample_sagas:create_instant_mediator",
            "start", "OrderSaga", "--count", "40",
        ],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    os.close(slave)
    seen: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the other end closed
                return
            if not chunk:
                return
            seen.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out, _ = proc.communicate(timeout=120)
    reader.join(timeout=30)
    os.close(master)
    said = b"".join(seen).decode()
    assert len(out.strip().splitlines()) == 40  # the results, on stdout only
    # Beside the request's own progress line ("request 3f2a9c1e: start 40 OrderSaga: ..."),
    # each redraw of the start's line overwrites the last.
    shown = [part for part in said.split("\r\x1b[2K") if part.startswith("started")]
    assert shown and all(re.fullmatch(PROGRESS, part) for part in shown), said
    assert re.fullmatch(r"started 40/40  finished 40  not completed \d+", shown[-1]), said
    assert said.endswith("\r\x1b[2K")  # the line is cleared at the end


PROGRESS = r"started \d+/40  finished \d+  not completed \d+"
