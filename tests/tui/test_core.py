"""The core without Textual: columns that fit, ids, the clipboard's honesty, sorting, times."""

from __future__ import annotations

import datetime
import time
import typing
import uuid

import pytest

from engine.saga.storage.enums import SagaStatus
from engine.saga.storage.models import PageCursor, SagaOrder, SagaSummary
from saga_tui import clipboard, columns, textfmt
from saga_tui.ids import id_prefix
from saga_tui.live import BrowseState, count_before

SAGA_ID = "0503a01c-3b27-48c3-9d73-e9ac2fd8c849"


@pytest.mark.parametrize("width", [37, 57, 77, 97, 117, 157, 197])
def test_columns_fill_the_width_and_drop_by_priority(width: int) -> None:
    layout = columns.fit(width)
    assert columns.total_width(layout) == width
    kept = {key for key, _ in layout}
    by_priority = sorted((c for c in columns.COLUMNS if not c.extra), key=lambda c: c.priority)
    # A column is only shown when every column that outranks it is shown.
    shown = [c.key in kept for c in by_priority]
    assert shown == sorted(shown, reverse=True), (width, kept)


def test_error_outranks_took_and_tries_and_takes_a_wide_terminal() -> None:
    narrow = dict(columns.fit(77))
    assert "error" in narrow and "took" not in narrow and "tries" not in narrow
    wide = dict(columns.fit(197))
    assert wide["error"] >= 80 and all(c.key in wide for c in columns.COLUMNS)


def test_key_column_comes_in_once_the_error_is_comfortable_and_only_with_keys() -> None:
    # KEY never narrows ERROR: on 120 columns the error keeps its width and KEY is out.
    for width in (79, 119):
        layout = dict(columns.fit(width))
        assert {"status", "error", "saga"} <= set(layout) and "key" not in layout
        assert dict(columns.fit(width, keys=False)) == layout
    wide = columns.fit(159)
    assert [key for key, _ in wide][:4] == ["mark", "id", "saga", "key"]
    assert dict(wide)["key"] == columns.BY_KEY["key"].want
    assert dict(wide)["error"] >= columns.BY_KEY["error"].want
    # No saga on the page has a business key: no KEY column, its width goes elsewhere.
    unkeyed = columns.fit(159, keys=False)
    assert "key" not in dict(unkeyed) and columns.total_width(unkeyed) == 159
    assert "key" in dict(columns.fit(77, wide=True))
    assert "key" not in dict(columns.fit(77, wide=True, keys=False))


def test_wide_mode_keeps_every_column_and_the_whole_error() -> None:
    layout = dict(columns.fit(77, wide=True, error_width=300))
    assert set(layout) == {c.key for c in columns.COLUMNS}
    assert layout["error"] == 300


def test_a_header_click_sorts_and_a_second_click_reverses() -> None:
    assert columns.header_sort("status", "created", True) == ("status", True)
    assert columns.header_sort("status", "status", True) == ("status", False)
    assert columns.header_sort("saga", "created", True) == ("name", False)
    assert columns.header_sort("took", "created", True) is None  # no index serves it
    seen = [("created", True)]
    for _ in range(len(columns.SORT_CYCLE) - 1):
        seen.append(columns.next_sort(*seen[-1]))
    assert columns.next_sort(*seen[-1]) == ("created", True) and len(set(seen)) == len(seen)


@pytest.mark.parametrize(
    "spelling",
    [
        SAGA_ID,
        SAGA_ID.replace("-", ""),
        SAGA_ID.upper(),
        "{" + SAGA_ID + "}",
        "urn:uuid:" + SAGA_ID,
        " " + SAGA_ID.upper().replace("-", "") + " ",
    ],
)
def test_every_spelling_of_an_id_is_the_dashed_lower_case_id(spelling: str) -> None:
    assert id_prefix(spelling) == SAGA_ID


def test_prefixes_of_any_spelling_and_what_is_not_an_id() -> None:
    assert id_prefix("0503a01c3b27") == "0503a01c-3b27"
    assert id_prefix("0503A01C-3B") == "0503a01c-3b"
    assert id_prefix("0503") == "0503"
    for bad in ("", "xyz", "0503-a01c", SAGA_ID + "0", "12:04"):
        assert id_prefix(bad) is None, bad


class FakeRunner:
    """Commands the clipboard would run, with canned answers."""

    def __init__(self, answers: dict[str, tuple[int, str]]) -> None:
        self.answers = answers
        self.ran: list[tuple[list[str], str]] = []

    async def __call__(self, args: list[str], stdin: str) -> tuple[int, str]:
        self.ran.append((args, stdin))
        return self.answers.get(" ".join(args[:2]), (127, ""))


async def test_under_tmux_external_the_id_goes_to_tmuxs_buffer_and_osc52_is_not_claimed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(clipboard.shutil, "which", lambda name: f"/usr/bin/{name}")
    run = FakeRunner({"tmux show-options": (0, "external"), "tmux load-buffer": (0, "")})
    copied = await clipboard.copy(SAGA_ID, {"TMUX": "/tmp/tmux-0/default,1,0"}, run)
    assert copied.confirmed and "tmux's paste buffer" in copied.message
    assert (["tmux", "load-buffer", "-w", "-"], SAGA_ID) in run.ran


async def test_with_nothing_that_confirms_the_message_says_so_and_shows_the_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(clipboard.shutil, "which", lambda name: None)
    copied = await clipboard.copy(SAGA_ID, {"TMUX": "x", "DISPLAY": ":0"}, FakeRunner({}))
    assert not copied.confirmed
    assert SAGA_ID in copied.message and not copied.message.startswith("copied")


async def test_a_local_clipboard_tool_that_succeeds_is_a_copy_one_that_fails_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(clipboard.shutil, "which", lambda name: f"/usr/bin/{name}")
    ok = await clipboard.copy(SAGA_ID, {"DISPLAY": ":0"}, FakeRunner({"xclip -selection": (0, "")}))
    assert ok.confirmed and "xclip" in ok.message
    failing = FakeRunner({"xclip -selection": (1, ""), "xsel --clipboard": (1, "")})
    no = await clipboard.copy(SAGA_ID, {"DISPLAY": ":0"}, failing)
    assert not no.confirmed and SAGA_ID in no.message


async def test_the_real_runner_reports_a_missing_command() -> None:
    assert (await clipboard.run_command(["no-such-command-for-saga-tui"], "x"))[0] == 127


def summary(created: datetime.datetime, name: str, status: SagaStatus) -> SagaSummary:
    return SagaSummary(uuid.uuid4(), name, status, created, created)


def test_count_before_counts_the_newer_sagas_above_an_anchor() -> None:
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    items = [
        summary(now - datetime.timedelta(seconds=i), "OrderSaga", SagaStatus.COMPLETED)
        for i in range(6)
    ]
    order = SagaOrder()
    assert count_before(items, order.cursor(items[3]), order) == 3
    assert count_before(items, order.cursor(items[0]), order) == 0
    gone = PageCursor(now - datetime.timedelta(seconds=2.5), uuid.uuid4())
    assert count_before(items, gone, order) == 3  # the anchor's saga vanished: by position


def test_browse_state_anchors_only_when_following_and_a_new_view_moves_the_cursor() -> None:
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    top = summary(now, "OrderSaga", SagaStatus.RUNNING)
    browse = BrowseState()
    assert browse.following and browse.request().cursor_to == "first"
    assert browse.anchor_at(top) and not browse.following
    assert browse.request().at == SagaOrder().cursor(top)
    assert not browse.anchor_at(top)  # already anchored
    browse.invalidate()  # a pause, say: no cursor move rides on it
    assert browse.request().cursor_to is None
    browse.set_order(SagaOrder("status"))
    assert browse.following and browse.request().cursor_to == "first"
    assert "by status" in browse.subtitle(3, more=False)
    assert "↑ 4 newer" in BrowseState().subtitle(5, more=False, above=4)


@pytest.fixture
def tokyo(monkeypatch: pytest.MonkeyPatch) -> typing.Iterator[None]:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_times_with_milliseconds_in_the_local_zone(tokyo: None) -> None:
    moment = datetime.datetime(2030, 1, 1, 5, 41, 41, 204000, tzinfo=datetime.UTC)
    assert textfmt.timestamp(moment, millis=True) == "2030-01-01 14:41:41.204"
    assert textfmt.clock(moment, millis=True) == "14:41:41.204"
    assert textfmt.zone(moment) == "JST" and textfmt.zone_offset(moment) == "UTC+09:00"
    assert textfmt.when(moment, moment) == "14:41:41"
    assert textfmt.when(moment, moment + datetime.timedelta(days=2)) == "01-01 14:41"


def test_ages_read_in_whole_seconds_then_minutes() -> None:
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    assert textfmt.age(now - datetime.timedelta(seconds=4.6), now) == "4s"
    assert textfmt.age(now - datetime.timedelta(seconds=185), now) == "3m"
    assert textfmt.age(now - datetime.timedelta(hours=2, minutes=4), now) == "2h04m"
