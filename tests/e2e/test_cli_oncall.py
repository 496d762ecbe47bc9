"""``saga-tui`` on-call commands end to end: ``groups``, ``list --stranded``, and recover
and compensate on a whole ``--filter``, as real subprocesses on a real database file."""

from __future__ import annotations

import asyncio
import json
import pathlib
import subprocess
import typing
import uuid

import pytest

from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import Checkpoint, NewSaga
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from tests.support import run_module

ROOT = pathlib.Path(__file__).resolve().parents[2]
RELIABLE = "tests.e2e.apps:reliable"
DECLINING = "tests.e2e.apps:declining"


def saga_tui(*args: str) -> subprocess.CompletedProcess[str]:
    return run_module(*args)


def ok_json(*args: str) -> typing.Any:
    run = saga_tui(*args, "--json")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@pytest.fixture
def db(tmp_path: pathlib.Path) -> str:
    """Five completed OrderSagas and two FAILED SubscriptionSagas (refunds declined)."""
    path = str(tmp_path / "sagas.db")
    started = saga_tui("--db", path, "--app", RELIABLE, "start", "OrderSaga", "--count", "5")
    assert started.returncode == 0, started.stderr
    failed = saga_tui("--db", path, "--app", DECLINING, "start", "SubscriptionSaga", "--count", "2")
    assert failed.returncode == 1, failed.stderr
    return path


def test_groups_in_text_and_json_and_recover_by_filter(db: str) -> None:
    groups = ok_json("--db", db, "groups")
    assert [(g["saga"], g["step"], g["error_type"], g["count"]) for g in groups] == [
        ("SubscriptionSaga", "ChargeFirstMonth", "RefundDeclinedError", 2)
    ]
    assert groups[0]["by_status"] == {"FAILED": 2} and sum(groups[0]["last_hour"]) == 2
    text = saga_tui("--db", db, "groups")
    assert text.returncode == 0 and text.stdout.split()[:3] == ["COUNT", "SAGA", "STEP"]
    assert groups[0]["key"] in text.stdout

    # The group's filter names exactly its sagas; recovering them works end to end.
    recovered = ok_json("--db", db, "--app", RELIABLE, "recover", "--filter", groups[0]["filter"])
    assert [r["status"] for r in recovered] == ["COMPENSATED", "COMPENSATED"]
    again = ok_json("--db", db, "groups")
    # Rolled back cleanly now: grouped under what made them roll back.
    assert [(g["step"], g["by_status"]) for g in again] == [
        ("ProvisionService", {"COMPENSATED": 2})
    ]


def test_compensate_by_filter_asks_then_acts_on_every_match(db: str) -> None:
    refused = saga_tui("--db", db, "--app", RELIABLE, "compensate", "--filter", "status:completed")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    done = ok_json(
        "--db", db, "--app", RELIABLE, "compensate", "--filter", "status:completed", "--yes"
    )
    assert len(done) == 5 and {r["status"] for r in done} == {"COMPENSATED"}
    assert ok_json("--db", db, "list", "--filter", "status:completed") == []


def test_a_bad_or_empty_filter_is_a_one_line_usage_error(db: str) -> None:
    for args, says in (
        (["recover", "--filter", "foo:bar"], "unknown filter 'foo:bar'"),
        (["recover", "--filter", ""], "matches every saga"),
        (["recover", "--filter", "status:failed", "abc"], "one of them"),
        (["compensate"], "saga ids or --filter"),
    ):
        run = saga_tui("--db", db, "--app", RELIABLE, *args)
        assert run.returncode == 2, (args, run.stderr)
        assert len(run.stderr.strip().splitlines()) == 1 and says in run.stderr, run.stderr


def test_list_stranded_shows_only_sagas_nobody_runs(db: str) -> None:
    async def strand() -> str:
        storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{db}")
        saga_id = uuid.uuid4()
        try:
            # Created RUNNING with a lease that ran out a minute ago: nobody runs it.
            await storage.apply(
                Checkpoint(
                    saga_id,
                    create=NewSaga("OrderSaga", {"order_id": "ord-strand"}, 3, "ord-strand"),
                    status=SagaStatus.RUNNING,
                    current_step="ChargePayment",
                )
            )
        finally:
            await storage.close()
        return str(saga_id)

    stranded = asyncio.run(strand())
    rows = ok_json("--db", db, "list", "--stranded")
    assert [(r["id"], r["stranded"], r["search_key"]) for r in rows] == [
        (stranded, True, "ord-strand")
    ]
    text = saga_tui("--db", db, "list", "--stranded")
    assert text.returncode == 0 and "STRANDED" in text.stdout.splitlines()[1]
    assert ok_json("--db", db, "list", "--filter", "key:ord-str")[0]["id"] == stranded


def test_list_shows_the_business_key_and_compensate_stores_the_reason(db: str) -> None:
    rows = ok_json("--db", db, "list", "--filter", "status:completed")
    # start --count repeats the app's example context: one order id, five sagas.
    assert [r["search_key"] for r in rows] == ["ord-0001"] * 5
    text = saga_tui("--db", db, "list", "--filter", "status:completed").stdout.splitlines()
    assert text[0].split()[:4] == ["ID", "SAGA", "KEY", "STATUS"]
    assert [line.split()[2:4] for line in text[1:]] == [["ord-0001", "COMPLETED"]] * 5
    one = rows[0]["id"]
    done = ok_json(
        "--db", db, "--app", RELIABLE, "compensate", one, "--yes", "--reason", "  refund by hand "
    )
    assert [r["status"] for r in done] == ["COMPENSATED"]
    history = ok_json("--db", db, "show", one)["history"]
    # The start is in the history too (from the command line, no reason given).
    assert [(h["action"], h["reason"]) for h in history][-1] == (
        "compensate",
        "saga-tui command line: refund by hand",
    )
    assert history[0]["reason"] == "saga-tui command line"
    shown = saga_tui("--db", db, "show", one).stdout
    assert "(saga-tui command line: refund by hand)" in shown


def test_a_reason_of_more_than_one_line_is_refused(db: str) -> None:
    for reason in ("two\nlines", "x" * 201):
        run = saga_tui("--db", db, "--app", RELIABLE, "recover", "--stale", "--reason", reason)
        assert run.returncode == 2 and "--reason" in run.stderr, run.stderr
        assert "one line of at most 200 characters" in run.stderr
