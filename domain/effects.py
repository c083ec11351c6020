"""Side effects a domain decision asks for; performed only after its transaction commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class Enqueue:
    """Run worker function ``function(*args)``; ``job_id`` makes a double enqueue a no-op."""

    function: str
    args: tuple[str, ...]
    job_id: str


def advance_job(job_id: uuid.UUID, revision: int) -> Enqueue:
    # One id per (job, revision): the same decision enqueued twice runs once, and every
    # new transition gets a fresh id, so no event is swallowed by an earlier run.
    return Enqueue("advance_job", (str(job_id),), f"advance:{job_id}:{revision}")


def run_step(step_id: uuid.UUID, attempt: int) -> Enqueue:
    return Enqueue("run_step", (str(step_id),), f"step:{step_id}:{attempt}")


def run_hook(step_id: uuid.UUID, hook: str) -> Enqueue:
    return Enqueue("run_hook", (str(step_id), hook), f"hook:{step_id}:{hook}")
