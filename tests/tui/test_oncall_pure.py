"""The on-call pictures and words without a screen: sparklines, the pulse line, the step
timeline's segments, and the filter words for stranded sagas, business keys and groups."""

from __future__ import annotations

import datetime
import uuid

import pytest

from engine.saga.storage.enums import SagaStatus, SagaStepStatus
from engine.saga.storage.models import SagaFilter, SagaLogEntry
from engine.saga.storage.oncall import Pulse
from saga_tui.filters import FilterError, format_filter, parse_filter, status_hint
from saga_tui.pictures import segments, sparkline, squeeze

T0 = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.UTC)


def test_sparkline_scales_to_the_biggest_and_keeps_small_counts_visible() -> None:
    assert sparkline([0, 1, 2, 4]) == "·▂▄█"
    assert sparkline([0, 0]) == "··"
    assert sparkline([1, 100]) == "▁█"  # one is never drawn as nothing


def test_squeeze_sums_old_buckets_and_keeps_the_newest_whole() -> None:
    assert squeeze([1, 2, 3, 4, 5], 10) == [1, 2, 3, 4, 5]
    assert squeeze([1, 2, 3, 4, 5], 2) == [3, 12]  # 3 per bucket, aligned to the end
    assert squeeze(list(range(60)), 15) == [sum(range(i, i + 4)) for i in range(0, 60, 4)]


def test_pulse_line_has_one_sparkline_and_total_per_ending() -> None:
    from saga_tui.pictures import pulse_text

    series = {
        SagaStatus.COMPLETED: (0,) * 58 + (2, 4),
        SagaStatus.COMPENSATED: (1,) + (0,) * 59,
        SagaStatus.FAILED: (0,) * 60,
    }
    text = pulse_text(Pulse(T0, 10, series), 80).plain
    assert text.startswith("last 10m")
    assert " ✓ " in text and text.split(" ✓ ")[1].split(" ↺")[0].endswith("█ 6")
    assert text.split(" ✗ ")[1] == "·" * len(text.split(" ✗ ")[1][:-2]) + " 0"
    assert len(text) <= 80


def entry(step: str, action: str, status: SagaStepStatus, seconds: float, attempt: int = 1):
    return SagaLogEntry(
        uuid.UUID(int=1), step, action, status, T0 + datetime.timedelta(seconds=seconds),
        attempt=attempt,
    )  # fmt: skip


def test_segments_pair_each_start_with_its_outcome_retries_apart() -> None:
    logs = [
        entry("Charge", "act", SagaStepStatus.STARTED, 0),
        entry("Charge", "act", SagaStepStatus.FAILED, 1),
        entry("Charge", "act", SagaStepStatus.STARTED, 2, 2),
        entry("Charge", "act", SagaStepStatus.COMPLETED, 3, 2),
        entry("Ship", "act", SagaStepStatus.STARTED, 4),
    ]
    parts = segments(logs)
    assert [(p.step, p.status, p.attempt) for p in parts] == [
        ("Charge", SagaStepStatus.FAILED, 1),
        ("Charge", SagaStepStatus.COMPLETED, 2),
        ("Ship", None, 1),  # still running
    ]
    assert parts[1].start == T0 + datetime.timedelta(seconds=2) and parts[2].end is None


@pytest.mark.parametrize(
    ("text", "expected", "formatted"),
    [
        ("status:stranded", SagaFilter(stranded=True), "status:stranded"),
        ("is:stale", SagaFilter(stranded=True), "status:stranded"),
        (
            "status:running,stranded",
            SagaFilter(statuses=(SagaStatus.RUNNING,), stranded=True),
            "status:running,stranded",
        ),
        ("key:ord-9ca8", SagaFilter(key="ord-9ca8"), "key:ord-9ca8"),
        ("group:ABC123", SagaFilter(failure_key="abc123"), "group:abc123"),
    ],
)
def test_on_call_filter_words_parse_and_print_back(
    text: str, expected: SagaFilter, formatted: str
) -> None:
    assert parse_filter(text) == expected
    assert format_filter(expected) == formatted
    assert parse_filter(format_filter(expected)) == expected


@pytest.mark.parametrize(
    ("text", "meant"),
    [
        ("stranded", "status:stranded"),
        ("Stale", "status:stranded"),
        ("ord failed", "status:failed"),
        ("COMPENSATED", "status:compensated"),
        ("timeout", None),
        ("comp", None),  # a status's start is text to search for, and no whole name
    ],
)
def test_a_bare_status_word_is_text_and_the_empty_list_names_the_status(
    text: str, meant: str | None
) -> None:
    saga_filter = parse_filter(text)
    assert not saga_filter.statuses and not saga_filter.stranded
    assert status_hint(saga_filter) == meant
    said = parse_filter(f"status:failed,stranded {text}")
    assert status_hint(said) == (None if meant in ("status:stranded", "status:failed") else meant)


def test_is_takes_only_stranded() -> None:
    with pytest.raises(FilterError, match="is: takes stranded or stale"):
        parse_filter("is:done")
