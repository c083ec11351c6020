"""The job state machine: every job and step status write goes through this module.

Statuses keep Terrakube's vocabulary. Allowed moves are explicit tables; a move outside them
is a bug (``InvalidTransition``), never a silent write. Callers hold the job's row lock.
"""

from __future__ import annotations

from enum import StrEnum

from domain.models import Job, Step
from domain.models.types import utcnow


class Status(StrEnum):
    pending = "pending"
    waiting_approval = "waitingApproval"
    approved = "approved"
    queue = "queue"
    running = "running"
    completed = "completed"
    no_changes = "noChanges"
    not_executed = "notExecuted"
    rejected = "rejected"
    cancelled = "cancelled"
    failed = "failed"


S = Status
TERMINAL = frozenset({S.completed, S.no_changes, S.not_executed, S.rejected, S.cancelled, S.failed})
# A job is "active" on its workspace from admission until it ends.
ACTIVE = frozenset({S.queue, S.running, S.waiting_approval, S.approved})

JOB_TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.pending: frozenset({S.queue, S.waiting_approval, S.completed, S.failed, S.cancelled}),
    S.queue: frozenset({S.running, S.queue, S.waiting_approval, S.completed, S.failed, S.cancelled}),
    S.running: frozenset({S.queue, S.waiting_approval, S.completed, S.failed, S.cancelled}),
    S.waiting_approval: frozenset({S.approved, S.rejected, S.cancelled}),
    S.approved: frozenset({S.queue, S.waiting_approval, S.completed, S.failed, S.cancelled}),
}

STEP_TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.pending: frozenset({S.queue, S.waiting_approval, S.completed, S.not_executed, S.cancelled, S.failed}),
    S.queue: frozenset({S.running, S.not_executed, S.cancelled, S.failed}),
    S.running: frozenset({S.completed, S.no_changes, S.failed, S.cancelled}),
    S.waiting_approval: frozenset({S.approved, S.rejected, S.cancelled}),
}

STEP_DONE = frozenset({S.completed, S.no_changes, S.approved, S.not_executed, S.rejected, S.cancelled, S.failed})

# Step types whose work runs on a worker; the others are decided by the scheduler itself.
EXECUTED_TYPES = frozenset(
    {"terraformPlan", "terraformPlanDestroy", "terraformApply", "terraformDestroy", "customScripts"}
)
# Never retried automatically: running them twice could change infrastructure twice.
NEVER_RETRIED = frozenset({"terraformApply", "terraformDestroy"})


class InvalidTransition(Exception):
    pass


def move_job(job: Job, to: Status, reason: str | None = None) -> None:
    current = Status(job.status)
    if to not in JOB_TRANSITIONS.get(current, frozenset()):
        raise InvalidTransition(f"job {job.id}: {current.value} -> {to.value} is not allowed")
    now = utcnow()
    job.status = to.value
    job.revision += 1
    job.updated_at = now
    if to is S.running and job.started_at is None:
        job.started_at = now
    if to in TERMINAL:
        job.finished_at = now
        if reason:
            job.reason = reason


def move_step(step: Step, to: Status, reason: str | None = None) -> None:
    current = Status(step.status)
    if to not in STEP_TRANSITIONS.get(current, frozenset()):
        raise InvalidTransition(f"step {step.id}: {current.value} -> {to.value} is not allowed")
    now = utcnow()
    step.status = to.value
    if to is S.running:
        step.started_at = now
        step.heartbeat_at = now
    if to in STEP_DONE:
        step.finished_at = now
    if reason:
        step.reason = reason


def is_terminal(status: str) -> bool:
    return Status(status) in TERMINAL
