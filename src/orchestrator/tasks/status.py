"""The task state machine: statuses and the transitions allowed between them."""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    RETRY = "RETRY"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TERMINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})

# to-status -> the statuses it may be entered from: the state machine that the statements of
# tasks/transitions.py implement, each one checked against it by tests/integration/test_transitions.py.
ALLOWED_FROM: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.PROCESSING: frozenset({TaskStatus.PENDING, TaskStatus.RETRY}),
    TaskStatus.COMPLETED: frozenset({TaskStatus.PROCESSING}),
    TaskStatus.RETRY: frozenset({TaskStatus.PROCESSING}),
    TaskStatus.FAILED: frozenset({TaskStatus.PROCESSING}),
    TaskStatus.CANCELLED: frozenset({TaskStatus.PENDING, TaskStatus.RETRY, TaskStatus.PROCESSING}),
    # FAILED | CANCELLED: a manual retry. PROCESSING: a worker shutting down hands its task back.
    TaskStatus.PENDING: frozenset({TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.PROCESSING}),
}
