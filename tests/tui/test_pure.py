"""Pure helpers: the filter syntax and the safe rendering of database text."""

from __future__ import annotations

import dataclasses
import datetime
import uuid

import pytest

from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import SagaFilter, SagaSummary
from saga_tui.components.start_form import SagaChoice, validate
from saga_tui.filters import FilterError, format_filter, parse_filter
from saga_tui.render import progress_text, safe, summary_cells, summary_row
from saga_tui.textfmt import clean, duration, error_line, one_line, progress


def test_parse_filter_statuses_name_and_text() -> None:
    f = parse_filter("status:failed,running name:Order timeout gateway")
    assert f.statuses == (SagaStatus.FAILED, SagaStatus.RUNNING)
    assert f.name == "Order"
    assert f.text == "timeout gateway"


def test_parse_filter_prefix_and_case() -> None:
    assert parse_filter("STATUS:Fail").statuses == (SagaStatus.FAILED,)
    assert parse_filter("s:completed").statuses == (SagaStatus.COMPLETED,)
    assert parse_filter("") == SagaFilter()


def test_parse_filter_rejects_unknown_status_and_a_prefix_means_every_status_it_starts() -> None:
    with pytest.raises(FilterError, match="unknown status"):
        parse_filter("status:exploded")
    # status:comp used to be refused as ambiguous; it is the start of three names.
    assert set(parse_filter("status:comp").statuses) == {
        SagaStatus.COMPLETED,
        SagaStatus.COMPENSATING,
        SagaStatus.COMPENSATED,
    }


def test_format_round_trips() -> None:
    for text in ("status:failed name:Order", "abc 'two words'", "name:'Travel Saga' x"):
        f = parse_filter(text)
        assert parse_filter(format_filter(f)) == f


def test_unbalanced_quote_does_not_raise() -> None:
    assert parse_filter("it's broken").text == "it's broken"


def test_clean_makes_control_characters_visible() -> None:
    assert clean("\x1b]0;title\x07") == "\\x1b]0;title\\a"
    assert clean("\x1b[2J\r\n") == "\\x1b[2J\\r\\n"
    assert clean("a\nb", multiline=True) == "a\nb"
    assert clean("\x00\x9b") == "\\x00\\x9b"
    # bidi overrides and zero-width characters would hide or reorder what is stored
    assert clean("pay\u202egnp.exe\u200b") == "pay\\u202egnp.exe\\u200b"


def test_safe_never_parses_markup() -> None:
    text = safe("[bold]x[/bold] [@click=app.quit]q[/]")
    assert text.plain == "[bold]x[/bold] [@click=app.quit]q[/]"
    assert not text.spans


def test_summary_row_cells_are_literal_text() -> None:
    now = datetime.datetime.now(datetime.UTC)
    summary = SagaSummary(
        id=uuid.uuid4(),
        name="[bold]Evil\x1b[2J",
        status=SagaStatus.FAILED,
        created_at=now,
        updated_at=now,
        step_count=3,
        steps_done=2,
        current_step="[@click=app.quit]Step",
        error_type="Boom",
        error_message="\x1b]0;title\x07",
    )
    cells = summary_row(summary)
    plain = " ".join(c.plain for c in cells)
    assert "[bold]Evil\\x1b[2J" in plain
    assert "[@click=app.quit]Step" in plain
    assert "\x1b" not in plain and "\x07" not in plain


def test_progress_and_durations() -> None:
    now = datetime.datetime.now(datetime.UTC)
    running = SagaSummary(
        uuid.uuid4(),
        "S",
        SagaStatus.RUNNING,
        now,
        now,
        step_count=3,
        steps_done=2,
        current_step="Charge",
    )
    assert progress_text(running).plain == "■■□ Charge ▶"
    failed = SagaSummary(uuid.uuid4(), "S", SagaStatus.FAILED, now, now, step_count=3, steps_done=2)
    assert progress_text(failed).plain == "■■✗"
    assert duration(0.041) == "41 ms"
    assert duration(1.24) == "1.2s"
    assert duration(185) == "3m05s"


def test_start_form_validation() -> None:
    from sample_sagas.contexts import SubscriptionContext

    choice = SagaChoice("SubscriptionSaga", SubscriptionContext, {})
    good = '{"subscription_id": "s1", "customer": "ada", "plan": "pro", "amount": "9.90"}'
    request, error = validate(choice, good, "2")
    assert error is None and request is not None and len(request.contexts) == 2
    assert validate(choice, "{nope", "1")[1].startswith("invalid JSON")  # type: ignore[union-attr]
    assert "SubscriptionSaga context at customer: Field required" in (
        validate(choice, '{"subscription_id": "s"}', "1")[1] or ""
    )
    assert "count" in (validate(choice, good, "0")[1] or "")
    assert "JSON object" in (validate(choice, "[1]", "1")[1] or "")


def test_one_error_line_for_every_view() -> None:
    assert error_line("Boom", "gateway down") == "Boom: gateway down"
    assert error_line(None, "gateway down") == "Error: gateway down"
    assert error_line("Boom", None) == "Boom"
    assert error_line(None, None) == ""
    now = datetime.datetime.now(datetime.UTC)
    summary = SagaSummary(
        uuid.uuid4(), "S", SagaStatus.FAILED, now, now, error_type="Boom", error_message=None
    )
    assert summary_row(summary)[-1].plain == "Boom"


def test_one_line_of_an_exception() -> None:
    assert one_line(ValueError("bad\nmore")) == "bad"
    assert one_line(ValueError("bad\x1b[2J")) == "bad\\x1b[2J"
    assert one_line(ValueError("")) == "ValueError"
    assert one_line(TimeoutError("gateway"), with_type=True) == "TimeoutError: gateway"


def test_plain_progress_hides_the_step_of_a_finished_saga() -> None:
    now = datetime.datetime.now(datetime.UTC)
    done = SagaSummary(uuid.uuid4(), "S", SagaStatus.COMPLETED, now, now, 3, 3, current_step="Ship")
    running = SagaSummary(uuid.uuid4(), "S", SagaStatus.RUNNING, now, now, 3, 1, "Charge")
    assert progress(done) == "3/3"
    assert progress(running) == "1/3 Charge"
    assert progress_text(done).plain == "■■■"


def test_the_command_line_table_words_rows_as_the_dashboard() -> None:
    from saga_tui import textout

    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=3)
    running = SagaSummary(
        uuid.uuid4(), "S", SagaStatus.RUNNING, start, start, 3, 1, "Charge",
        error_type="Boom", error_message=None,
    )  # fmt: skip
    _, row = textout.table([running])
    cells = summary_row(running)
    took = summary_cells(running)["took"].plain
    assert took == "3h00m"
    assert row.split()[5] == took  # TOOK: so far, not up to the last update
    assert row.split()[-1] == cells[-1].plain == "Boom"


def test_the_command_line_table_has_a_key_column_only_when_a_saga_has_a_key() -> None:
    from saga_tui import textout

    now = datetime.datetime.now(datetime.UTC)
    keyed = SagaSummary(
        uuid.uuid4(), "OrderSaga", SagaStatus.COMPLETED, now, now, 3, 3,
        search_key="ord-9ca8\x1b[2J",
    )  # fmt: skip
    plain = SagaSummary(uuid.uuid4(), "S", SagaStatus.COMPLETED, now, now, 3, 3)
    head, row, other = textout.table([keyed, plain])
    assert head.split()[:4] == ["ID", "SAGA", "KEY", "STATUS"]
    assert row.split()[2] == "ord-9ca8\\x1b[2J"  # escaped, never sent raw
    assert other.split()[2] == "COMPLETED"  # no key: the cell is blank
    assert textout.table([plain])[0].split()[:3] == ["ID", "SAGA", "STATUS"]
    assert summary_cells(keyed)["key"].plain == "ord-9ca8\\x1b[2J"


def running_order(now: datetime.datetime, owner: str, expires: float) -> SagaSummary:
    """A RUNNING 3-step OrderSaga at its first step, leased by ``owner`` until ``expires``."""
    return SagaSummary(
        uuid.uuid4(),
        "OrderSaga",
        SagaStatus.RUNNING,
        now,
        now,
        3,
        1,
        lease_owner=owner,
        lease_expires=expires,
    )


def test_show_gives_the_lease_expiry_as_a_time_not_epoch_seconds() -> None:
    from engine.saga.storage.models import SagaDetail
    from saga_tui.textout import detail_text

    now = datetime.datetime(2026, 11, 28, 4, 16, 49, tzinfo=datetime.UTC)
    summary = running_order(now, "vm:15596:4590005", now.timestamp() + 15)
    lines = detail_text(SagaDetail(summary, {}, "{}", None, [], [], []))
    assert "owner vm:15596:4590005  lease until 2026-11-28T04:17:04+00:00" in lines


def test_show_calls_a_saga_nobody_runs_stranded_as_list_does() -> None:
    from engine.saga.storage.models import SagaDetail
    from saga_tui.textout import detail_text, table

    now = datetime.datetime.now(datetime.UTC)
    expired = running_order(now, "otherhost:1:1", now.timestamp() - 60)
    lines = detail_text(SagaDetail(expired, {}, "{}", None, [], [], []))
    assert lines[0].endswith("  STRANDED")
    hint = (
        "stranded: stored as RUNNING, nobody runs it: owner gone for 1m; "
        f"`saga-tui recover {expired.id}` resumes it"
    )
    assert hint in lines
    assert table([expired])[1].split()[2] == "STRANDED"
    held = dataclasses.replace(expired, lease_expires=now.timestamp() + 60)
    assert detail_text(SagaDetail(held, {}, "{}", None, [], [], []))[0].endswith("  RUNNING")


def test_recover_takes_yes_as_compensate_does_and_both_take_json_and_no_wait() -> None:
    from saga_tui.cli import build_parser

    parser = build_parser()
    recover = parser.parse_args(["recover", "--stale", "--yes", "--json", "--no-wait"])
    assert (recover.stale, recover.yes, recover.json, recover.no_wait) == (True, True, True, True)
    compensate = parser.parse_args(["compensate", "abc", "-y", "--json"])
    assert (compensate.yes, compensate.json, compensate.no_wait) == (True, True, False)
    start = parser.parse_args(["start", "OrderSaga", "--no-wait"])
    assert (start.json, start.no_wait) == (False, True)
