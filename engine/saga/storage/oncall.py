"""What an operator on call reads: failure groups, the pulse of the last minutes, step timings.

Plain data, like ``models``; each storage fills them from one cheap query (see
``sqlalchemy/oncall.py`` and ``memory_oncall.py``). Time buckets are aligned to the epoch
so two readers agree on them, the newest one still filling.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import typing

from engine.saga.grouping import normalise_message
from engine.saga.storage.enums import SagaStatus

GROUP_STATUSES = (
    SagaStatus.FAILED,
    SagaStatus.COMPENSATED,
    SagaStatus.RUNNING,
    SagaStatus.COMPENSATING,
)
"""A failure group counts sagas that ended with a failure or still retry one."""
HOUR_BUCKETS = 12
HOUR_BUCKET_SECONDS = 300
"""A group's sparkline: the last hour in twelve five-minute buckets."""
PULSE_BUCKETS = 60
PULSE_BUCKET_SECONDS = 10
"""The header's pulse: the last ten minutes in ten-second buckets."""
PULSE_STATUSES = (SagaStatus.COMPLETED, SagaStatus.COMPENSATED, SagaStatus.FAILED)
RECENT_LOG_ROWS = 20_000
"""The Steps view reads this many of the newest log rows (bounded at any size)."""


def bucket_start(now: float, size: int, count: int) -> float:
    """The epoch second the first of ``count`` buckets of ``size`` seconds starts at.

    The last bucket is the one ``now`` falls in.
    """
    return (math.floor(now / size) - (count - 1)) * size


def bucket_index(moment: float, start: float, size: int, count: int) -> int | None:
    """Which bucket an epoch time falls in (None outside the window)."""
    index = math.floor((moment - start) / size)
    return index if 0 <= index < count else None


@dataclasses.dataclass(frozen=True, slots=True)
class FailureGroup:
    """Sagas that failed for one cause: saga type, step, error type, message pattern."""

    key: str
    saga_name: str
    step: str
    error_type: str
    example: str
    """One message of the group, as stored (the newest)."""
    count: int
    first_seen: datetime.datetime
    last_seen: datetime.datetime
    by_status: dict[SagaStatus, int]
    hour: tuple[int, ...]
    """Occurrences per five minutes over the last hour, oldest first (by last failure)."""

    @property
    def pattern(self) -> str:
        """The message with its numbers, ids and quoted values taken out."""
        return normalise_message(self.example)

    @property
    def retrying(self) -> int:
        """Sagas of the group still running (a retry or a fallback under way)."""
        return self.by_status.get(SagaStatus.RUNNING, 0) + self.by_status.get(
            SagaStatus.COMPENSATING, 0
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Pulse:
    """Sagas that ended per bucket over the last minutes, by how they ended."""

    start: datetime.datetime
    bucket_seconds: int
    series: dict[SagaStatus, tuple[int, ...]]
    """COMPLETED, COMPENSATED and FAILED: one count per bucket, oldest first."""

    def total(self, status: SagaStatus) -> int:
        """How many ended so in the whole window."""
        return sum(self.series.get(status, ()))


def empty_pulse(now: float) -> Pulse:
    """A pulse with nothing in it, for the window ending at ``now``."""
    start = bucket_start(now, PULSE_BUCKET_SECONDS, PULSE_BUCKETS)
    return Pulse(
        datetime.datetime.fromtimestamp(start, datetime.UTC),
        PULSE_BUCKET_SECONDS,
        {status: (0,) * PULSE_BUCKETS for status in PULSE_STATUSES},
    )


@dataclasses.dataclass(frozen=True, slots=True)
class StepStat:
    """Timings and failures of one step action of one saga type, from recent log rows."""

    saga_name: str
    step: str
    action: str
    runs: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None

    @property
    def failure_rate(self) -> float:
        """Failed runs out of all finished runs (0 when none finished)."""
        return self.failures / self.runs if self.runs else 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class StepStats:
    """Per-step figures of every saga type, and how much of the log they come from."""

    steps: list[StepStat]
    log_rows: int
    since: datetime.datetime | None


def percentile(sorted_values: typing.Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of already sorted values (None when there are none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


FinishedRow = tuple[str, str, str, bool, float | None]
"""(saga name, step, action, failed, duration ms) of one finished step attempt."""


def step_stats(
    rows: typing.Iterable[FinishedRow],
    log_rows: int,
    since: datetime.datetime | None,
) -> StepStats:
    """Fold finished attempts into one StepStat per (saga, step, action), in first-seen order."""
    durations: dict[tuple[str, str, str], list[float]] = {}
    failures: dict[tuple[str, str, str], int] = {}
    runs: dict[tuple[str, str, str], int] = {}
    for name, step, action, failed, took in rows:
        key = (name, step, action)
        runs[key] = runs.get(key, 0) + 1
        if failed:
            failures[key] = failures.get(key, 0) + 1
        elif took is not None:
            durations.setdefault(key, []).append(float(took))
    out = []
    for key, count in runs.items():
        values = sorted(durations.get(key, ()))
        out.append(
            StepStat(
                *key,
                runs=count,
                failures=failures.get(key, 0),
                p50_ms=percentile(values, 0.5),
                p95_ms=percentile(values, 0.95),
            )
        )
    return StepStats(out, log_rows, since)
