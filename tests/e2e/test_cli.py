"""``saga-tui`` headless commands end to end: real subprocesses on a real database file."""

from __future__ import annotations

import json
import pathlib
import sqlite3
import subprocess
import sys
import typing

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
RELIABLE = "tests.e2e.apps:reliable"
DECLINING = "tests.e2e.apps:declining"


def saga_tui(
    *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "saga_tui", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        input=stdin if stdin is not None else "",
        timeout=timeout,
        check=False,
    )


def ok_json(*args: str) -> typing.Any:
    run = saga_tui(*args, "--json")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def usage_error(run: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A database with completed and FAILED sagas, built once and never written again."""
    path = tmp_path_factory.mktemp("cli") / "seeded.db"
    started = saga_tui("--db", str(path), "--app", RELIABLE, "start", "OrderSaga", "--count", "15")
    assert started.returncode == 0, started.stderr
    failed = saga_tui(
        "--db", str(path), "--app", DECLINING, "start", "SubscriptionSaga", "--count", "2"
    )
    assert failed.returncode == 1, failed.stderr
    return path


@pytest.fixture
def db(seeded: pathlib.Path, tmp_path: pathlib.Path) -> str:
    """This test's own copy of the seeded database (tests change it)."""
    path = tmp_path / "sagas.db"
    with sqlite3.connect(seeded) as source, sqlite3.connect(path) as target:
        source.backup(target)
    return str(path)


def ids_by_status(db: str, status: str) -> list[str]:
    return [s["id"] for s in ok_json("--db", db, "list", "--status", status)]


def test_list_prints_a_table_and_json_that_parses(db: str) -> None:
    table = saga_tui("--db", db, "list")
    assert table.returncode == 0, table.stderr
    # The sample sagas declare business keys: KEY comes after SAGA.
    assert table.stdout.splitlines()[0].split()[:4] == ["ID", "SAGA", "KEY", "STATUS"]
    rows = ok_json("--db", db, "list")
    assert len(rows) >= 7
    assert {r["status"] for r in rows} >= {"COMPLETED", "FAILED"}
    failed = ok_json("--db", db, "list", "--status", "failed", "--name", "Subscription")
    assert failed and all(
        r["status"] == "FAILED" and r["name"] == "SubscriptionSaga" for r in failed
    )
    assert len(ok_json("list", "--db", db, "--limit", "2")) == 2


def test_list_of_a_bare_status_word_finds_no_text_and_names_the_status_filter(db: str) -> None:
    bare = saga_tui("--db", db, "list", "--filter", "failed")
    assert bare.returncode == 0, bare.stderr
    assert bare.stdout.strip() == "no sagas (the status is --filter status:failed)"
    meant = saga_tui("--db", db, "list", "--filter", "status:failed")
    assert meant.returncode == 0 and "FAILED" in meant.stdout


def test_show_by_unique_prefix_in_text_and_json(db: str) -> None:
    saga_id = ids_by_status(db, "completed")[0]
    detail = ok_json("--db", db, "show", saga_id[:8])
    assert detail["id"] == saga_id and detail["status"] == "COMPLETED"
    assert [s["name"] for s in detail["steps"]] == [
        "ReserveInventory",
        "ChargePayment",
        "ShipOrder",
    ]
    assert detail["context"]["order_id"] == "ord-0001"
    text = saga_tui("--db", db, "show", saga_id.upper()[:13])
    assert text.returncode == 0, text.stderr
    assert saga_id in text.stdout and "ShipOrder" in text.stdout


def test_show_errors(db: str) -> None:
    usage_error(saga_tui("--db", db, "show", "00000000"), "no saga with this id")
    usage_error(saga_tui("--db", db, "show", "not-an-id!"), "not a saga id")
    # 17 ids over 16 hex digits: some one-character prefix matches two of them.
    ids = [r["id"] for r in ok_json("--db", db, "list")]
    first = [i[0] for i in ids]
    shared = next(c for c in first if first.count(c) > 1)
    usage_error(saga_tui("--db", db, "show", shared), "ambiguous id prefix")


def test_start_checks_the_name_and_the_context_before_running(db: str) -> None:
    usage_error(
        saga_tui("--db", db, "--app", RELIABLE, "start", "NoSuchSaga"), "unknown saga", "OrderSaga"
    )
    usage_error(
        saga_tui(
            "--db", db, "--app", RELIABLE, "start", "OrderSaga", "--context", '{"order_id": "a",'
        ),
        "invalid JSON at line 1 column",
    )
    usage_error(
        saga_tui("--db", db, "--app", RELIABLE, "start", "OrderSaga", "--context", "[1]"),
        "JSON object",
    )
    bad_field = json.dumps(
        {
            "order_id": "o",
            "customer": "c",
            "address": "a",
            "lines": [{"sku": "s", "quantity": "many", "unit_price": "1"}],
        }
    )
    usage_error(
        saga_tui("--db", db, "--app", RELIABLE, "start", "OrderSaga", "--context", bad_field),
        "lines.0.quantity",
    )


def test_start_with_a_context_and_a_count(db: str) -> None:
    context = json.dumps(
        {
            "order_id": "cli-1",
            "customer": "eve",
            "address": "x",
            "lines": [{"sku": "s", "quantity": 2, "unit_price": "3.50"}],
        }
    )
    results = ok_json(
        "--db", db, "--app", RELIABLE, "start", "OrderSaga", "--context", context, "--count", "3"
    )
    assert len(results) == 3 and all(r["status"] == "COMPLETED" and r["ok"] for r in results)
    detail = ok_json("--db", db, "show", results[0]["id"])
    assert detail["context"]["order_id"] == "cli-1" and detail["context"]["payment_id"]
    audit = [h["action"] for h in detail["history"]]
    assert audit == ["start"]


def test_compensate_asks_unless_yes_and_rolls_back(db: str) -> None:
    saga_id = ids_by_status(db, "completed")[-1]
    usage_error(saga_tui("--db", db, "--app", RELIABLE, "compensate", saga_id), "--yes")
    assert ok_json("--db", db, "show", saga_id)["status"] == "COMPLETED"
    results = ok_json("--db", db, "--app", RELIABLE, "compensate", saga_id[:10], "--yes")
    assert results == [
        {
            "id": saga_id,
            "action": "compensate",
            "status": "COMPENSATED",
            "requested": False,
            "error": None,
            "ok": True,
        }
    ]
    check = subprocess.run(
        [sys.executable, "-m", "sample_sagas", "check", "--db", db],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout


def test_recover_a_failed_saga_fails_again_then_succeeds(db: str) -> None:
    saga_id = ids_by_status(db, "failed")[0]
    again = saga_tui("--db", db, "--app", DECLINING, "recover", saga_id[:12])
    assert again.returncode == 1
    assert f"{saga_id}  recover  FAILED" in again.stdout
    done = ok_json("--db", db, "--app", RELIABLE, "recover", saga_id)
    assert done[0]["status"] == "COMPENSATED" and done[0]["ok"]
    history = ok_json("--db", db, "show", saga_id)["history"]
    assert [h["action"] for h in history][-2:] == ["recover", "recover"]


def test_recover_stale_with_nothing_to_do(db: str) -> None:
    run = saga_tui("--db", db, "--app", RELIABLE, "recover", "--stale")
    assert run.returncode == 0 and run.stdout.strip() == "no stale sagas"
    usage_error(saga_tui("--db", db, "recover"), "saga ids, --stale or --filter")


def test_missing_database_is_not_created(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nope.db"
    for args in (["list"], ["show", "abc"], ["recover", "--stale"], ["compensate", "abc", "--yes"]):
        usage_error(saga_tui("--db", str(missing), *args), "no such database file")
    assert not missing.exists()


def test_files_that_are_not_saga_databases(tmp_path: pathlib.Path) -> None:
    text = tmp_path / "notes.db"
    text.write_text("hello, not a database\n")
    usage_error(saga_tui("--db", str(text), "list"), "not a SQLite database")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    usage_error(saga_tui("--db", str(other), "list"), "another application")
    usage_error(saga_tui("--db", str(tmp_path), "list"), "directory")


def test_app_that_fails(db: str, tmp_path: pathlib.Path) -> None:
    fresh = tmp_path / "fresh.db"
    usage_error(
        saga_tui("--db", str(fresh), "--app", "no_such_module:f", "start", "OrderSaga"),
        "cannot import",
    )
    assert not fresh.exists()
    usage_error(
        saga_tui("--db", db, "--app", "sample_sagas", "start", "OrderSaga"), "module:factory"
    )
    usage_error(
        saga_tui("--db", db, "--app", "sample_sagas:nope", "start", "OrderSaga"), "no attribute"
    )
    usage_error(
        saga_tui("--db", db, "--app", "tests.e2e.apps:broken", "start", "OrderSaga"),
        "factory failed",
    )


def test_read_only_refuses_writes_and_bad_options_are_one_line(db: str) -> None:
    usage_error(saga_tui("--db", db, "--read-only", "recover", "--stale"), "--read-only")
    assert ok_json("--db", db, "--read-only", "list", "--limit", "1")
    usage_error(saga_tui("--db", db, "list", "--status", "sleeping"), "unknown status")
    usage_error(saga_tui("--db", db, "lst"), "invalid choice")
    usage_error(saga_tui("--db", db, "list", "--limit", "0"), "at least 1")


def test_stored_control_characters_are_escaped(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "esc.db")
    # The failing step puts the plan name into its error message, which is shown raw.
    context = json.dumps(
        {"subscription_id": "s", "customer": "bell\x07", "plan": "\x1b[31mpro", "amount": "1"}
    )
    started = saga_tui(
        "--db",
        path,
        "--app",
        DECLINING,
        "start",
        "SubscriptionSaga",
        "--context",
        context,
        "--json",
    )
    assert started.returncode == 1, started.stderr
    saga_id = json.loads(started.stdout)[0]["id"]
    for args in (["list"], ["show", saga_id]):
        run = saga_tui("--db", path, *args)
        assert run.returncode == 0, run.stderr
        assert "\x1b" not in run.stdout and "\x07" not in run.stdout
    assert "plan '\\x1b[31mpro' could not be provisioned" in run.stdout
    as_json = ok_json("--db", path, "show", saga_id)
    assert as_json["context"]["plan"] == "\x1b[31mpro"
    assert as_json["log"][-1]["error_message"] is None or "\x1b" not in json.dumps(as_json)


def test_status_words_are_read_as_the_dashboard_filter_reads_them(db: str) -> None:
    # ``--status`` used to refuse the prefixes the dashboard's filter accepts.
    failed = ok_json("--db", db, "list", "--status", "fail")
    assert failed and {r["status"] for r in failed} == {"FAILED"}
    both = ok_json("--db", db, "list", "--status", "FAILED,complet")
    assert {r["status"] for r in both} == {"FAILED", "COMPLETED"}
    # A word that starts several statuses means all of them (it used to be refused).
    every = ok_json("--db", db, "list", "--status", "comp")
    assert {r["status"] for r in every} == {"COMPLETED"}
    usage_error(saga_tui("--db", db, "list", "--status", "bogus"), "unknown status")


def test_start_without_context_runs_the_example_the_form_prefills(tmp_path: pathlib.Path) -> None:
    # ``start NAME`` used to find only an ``examples()`` function in the app's package,
    # and refused a saga whose context the start form pre-filled from ``example()``.
    from saga_tui.examples import example_for
    from tests.e2e.apps import GreetingContext

    path = str(tmp_path / "greet.db")
    results = ok_json("--db", path, "--app", "tests.e2e.apps:greeter", "start", "GreetingSaga")
    assert [r["status"] for r in results] == ["COMPLETED"]
    context = ok_json("--db", path, "show", results[0]["id"])["context"]
    prefilled = example_for("GreetingSaga", GreetingContext)
    assert prefilled == {"name": "example-reader", "greeted": False}
    assert context == {**prefilled, "greeted": True}


def test_compensate_skips_what_is_already_undone(db: str) -> None:
    saga_id = ids_by_status(db, "completed")[0]
    first = ok_json("--db", db, "--app", RELIABLE, "compensate", saga_id, "--yes")
    assert first[0]["status"] == "COMPENSATED" and first[0]["ok"]
    again = saga_tui("--db", db, "--app", RELIABLE, "compensate", saga_id, "--yes")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"{saga_id}  compensate  COMPENSATED"
