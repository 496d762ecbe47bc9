"""Derive what readers show from the raw log: step lanes, compensation plans."""

from __future__ import annotations

import typing

from engine.saga.storage.enums import SagaStepStatus
from engine.saga.storage.models import LaneView, SagaLogEntry, StepView


def build_step_views(
    logs: typing.Iterable[SagaLogEntry],
    declared: typing.Sequence[str] = (),
) -> list[StepView]:
    """Fold a log (ordered by id) into one view per step, in execution order.

    Steps named in ``declared`` that never ran are appended with empty lanes.
    """
    lanes: dict[str, dict[str, LaneView]] = {}
    order: list[str] = []
    for entry in logs:
        if entry.unreadable is not None:
            continue  # shown in the log with its reason; it says nothing sure of a lane
        if entry.step_name not in lanes:
            lanes[entry.step_name] = {"act": LaneView(), "compensate": LaneView()}
            order.append(entry.step_name)
        lane = lanes[entry.step_name][entry.action]
        if entry.status is SagaStepStatus.STARTED:
            lane = LaneView(
                status=SagaStepStatus.STARTED,
                attempts=lane.attempts + 1,
                started_at=entry.timestamp,
            )
        else:
            lane = LaneView(
                status=entry.status,
                attempts=max(lane.attempts, 1),
                duration_ms=entry.duration_ms,
                started_at=lane.started_at,
                error_type=entry.error_type,
                error_message=entry.error_message,
            )
        lanes[entry.step_name][entry.action] = lane
    for name in declared:
        if name not in lanes:
            lanes[name] = {"act": LaneView(), "compensate": LaneView()}
            order.append(name)
    return [StepView(n, lanes[n]["act"], lanes[n]["compensate"]) for n in order]


def last_status_by_step(
    logs: typing.Iterable[SagaLogEntry],
) -> tuple[dict[str, SagaStepStatus], dict[str, SagaStepStatus]]:
    """The latest act and compensate status of every step in the log."""
    act: dict[str, SagaStepStatus] = {}
    comp: dict[str, SagaStepStatus] = {}
    for entry in logs:
        if entry.unreadable is None:
            (act if entry.action == "act" else comp)[entry.step_name] = entry.status
    return act, comp


def steps_to_compensate(logs: typing.Iterable[SagaLogEntry]) -> list[str]:
    """Steps whose effect may exist and is not undone yet, in execution order.

    A step counts when its latest act entry is COMPLETED or STARTED (in flight: its
    effect is unknown) and its latest compensate entry is not COMPLETED. A step whose
    act FAILED left nothing behind and is skipped.
    """
    entries = list(logs)
    act, comp = last_status_by_step(entries)
    order: list[str] = []
    for entry in entries:
        if entry.action == "act" and entry.step_name not in order:
            order.append(entry.step_name)
    return [
        name
        for name in order
        if act.get(name) in (SagaStepStatus.COMPLETED, SagaStepStatus.STARTED)
        and comp.get(name) not in (SagaStepStatus.COMPLETED, SagaStepStatus.COMPENSATED)
    ]


def completed_act_steps(logs: typing.Iterable[SagaLogEntry]) -> set[str]:
    """Steps whose latest act entry is COMPLETED."""
    act, _ = last_status_by_step(logs)
    return {name for name, status in act.items() if status is SagaStepStatus.COMPLETED}


def most_tries(logs: typing.Iterable[SagaLogEntry]) -> int:
    """The most starts of one step action: the lanes' tries, and a saga's TRIES."""
    counts: dict[tuple[str, str], int] = {}
    for entry in logs:
        if entry.status is SagaStepStatus.STARTED:
            key = (entry.step_name, entry.action)
            counts[key] = counts.get(key, 0) + 1
    return max(counts.values(), default=0)


def error_traceback(
    logs: typing.Sequence[SagaLogEntry], error_type: str | None, error_message: str | None
) -> str | None:
    """The traceback of the saga's error, kept once: with the log entry that failed.

    The saga row carries the error's type and message only (the list shows and searches
    them); the newest log entry with that error holds its traceback.
    """
    if error_type is None and error_message is None:
        return None
    for entry in reversed(logs):
        if (
            entry.error_traceback
            and entry.error_type == error_type
            and entry.error_message == error_message
        ):
            return entry.error_traceback
    return None
