"""The command line's request report: progress lines on a terminal, the wait said once."""

from __future__ import annotations

import dataclasses
import io
import uuid

import pytest

from engine.saga.requests import RequestProgress
from saga_tui import request_report
from saga_tui.fleet_actions import NO_WORKER
from saga_tui.request_report import RequestReport, worker_command

REQUEST = uuid.UUID("3f2a9c1e-0000-4000-8000-000000000000")


def _progress(done: int, **changes: object) -> RequestProgress:
    base = RequestProgress(
        REQUEST, "compensate", None, "ada@host", "", 0.0, "PENDING", None, 200, done, 0, 0, None
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_terminal_sees_progress_lines_when_the_request_moves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = iter([10.0, 10.5, 11.6, 13.0, 14.0])
    monkeypatch.setattr(request_report.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    report = RequestReport(out, start_worker="saga-tui worker", progress=True)
    report(_progress(0))
    report(_progress(40, taken=160, taker="worker-a"))  # half a second later: not yet
    report(_progress(40, taken=160, taker="worker-a"))
    report(_progress(40, taken=160, taker="worker-a"))  # unchanged: not again
    report(_progress(200))  # finished: the results say the rest
    lines = out.getvalue().replace("\r\x1b[2K", "").splitlines()
    assert lines == [
        "request 3f2a9c1e: compensate 200 sagas: 0 of 200 done, pending",
        "request 3f2a9c1e: compensate 200 sagas: 40 of 200 done, taken by worker-a",
    ]


def test_a_pipe_sees_only_the_wait_once() -> None:
    out = io.StringIO()  # not a terminal
    report = RequestReport(out, start_worker=worker_command("/tmp/s.db"))
    assert not report.progress
    report(_progress(0))
    for _ in range(3):
        report(_progress(0, waiting_for=NO_WORKER))
    assert out.getvalue() == (
        "request 3f2a9c1e: waiting for a worker: none is running; start one with "
        "`saga-tui --db /tmp/s.db --app MODULE:FACTORY worker` (an app that has the saga type)\n"
    )


def test_the_worker_command_hides_a_password() -> None:
    command = worker_command("postgresql+asyncpg://ops:s3cret@db/sagas")
    assert "s3cret" not in command and "ops:***@db/sagas" in command
    assert worker_command(None) == "saga-tui --app MODULE:FACTORY worker"


def test_a_database_lost_while_waiting_is_said_on_any_stream_once_each_way() -> None:
    out = io.StringIO()  # not a terminal
    report = RequestReport(out, start_worker="saga-tui worker")
    trouble = "reading the request's progress failed: gone\x1b[2J (X); trying again"
    report(_progress(0))
    for _ in range(3):
        report(_progress(0, trouble=trouble))
    report(_progress(10))
    report(_progress(20))
    assert out.getvalue().splitlines() == [
        "request 3f2a9c1e: reading the request's progress failed: gone\\x1b[2J (X); trying again",
        "request 3f2a9c1e: its progress reads again",
    ]
