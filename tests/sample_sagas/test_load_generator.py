"""The load generator and the ledger check as a user runs them: real subprocesses."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def sample_sagas(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sample_sagas", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_ten_thousand_sagas_end_terminal_and_agree_with_the_ledger(tmp_path: pathlib.Path) -> None:
    db = str(tmp_path / "load.db")
    run = sample_sagas(
        "--db", db,
        "--count", "10000",
        "--concurrency", "100",
        "--failure-rate", "0.1",
        "--compensation-failure-rate", "0.02",
        "--latency-ms", "0-2",
        "--seed", "4",
        "--json",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout)
    assert summary["finished"] == 10_000 and summary["errors"] == 0
    assert summary["completed"] + summary["compensated"] + summary["failed"] == 10_000
    assert summary["compensated"] > 1000 and summary["failed"] > 0
    print(f"10,000 sagas: {summary['seconds']} s, {summary['sagas_per_second']} sagas/s")
    # The non-TTY progress is whole lines, ending with the final one.
    assert run.stderr.strip().splitlines()[-1].startswith("10000/10000 sagas")

    check = sample_sagas("check", "--db", db)
    assert check.returncode == 0, check.stdout[-2000:]
    assert check.stdout == ""
    assert "checked 10000 sagas: 0 disagree" in check.stderr


def test_check_reports_a_saga_whose_ledger_disagrees(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "small.db"
    run = sample_sagas("--db", str(db), "--count", "20", "--failure-rate", "0", "--latency-ms", "0")
    assert run.returncode == 0, run.stderr
    import sqlite3

    with sqlite3.connect(db) as conn:
        (victim,) = conn.execute("SELECT saga_id FROM demo_ledger LIMIT 1").fetchone()
        conn.execute("DELETE FROM demo_ledger WHERE saga_id = ?", (victim,))
    check = sample_sagas("check", "--db", str(db))
    assert check.returncode == 1
    assert victim in check.stdout and "COMPLETED: no 'do'" in check.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path: pathlib.Path) -> None:
    missing = sample_sagas("check", "--db", str(tmp_path / "nope.db"))
    assert missing.returncode == 2 and "no database file" in missing.stderr
    bad_rate = sample_sagas("--db", str(tmp_path / "x.db"), "--failure-rate", "2")
    assert bad_rate.returncode == 2 and len(bad_rate.stderr.strip().splitlines()) == 1
    bad_latency = sample_sagas("--db", str(tmp_path / "x.db"), "--latency-ms", "9-1")
    assert bad_latency.returncode == 2 and "LO <= HI" in bad_latency.stderr
