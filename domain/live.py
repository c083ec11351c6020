"""Live job data: log chunks and status events, and the broker protocol that carries them
between processes (Redis in production, memory in `terrakube up`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from domain.db import EVENTS_KEY
from domain.models import Job, Step
from domain.models.types import utcnow


@dataclass(frozen=True)
class LogChunk:
    """``text`` starts at byte ``offset`` of the step's log. ``end`` marks the step's last chunk
    (``offset`` is then the log's final size and ``text`` is empty)."""

    step_id: str
    step_number: int
    offset: int
    text: str
    end: bool = False


@dataclass(frozen=True)
class JobEvent:
    job_id: str
    job_status: str
    workspace_id: str
    organization_id: str
    step_id: str | None = None
    step_status: str | None = None
    at: datetime = field(default_factory=utcnow)

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id, "job_status": self.job_status, "workspace_id": self.workspace_id,
            "organization_id": self.organization_id, "step_id": self.step_id, "step_status": self.step_status,
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobEvent:
        return cls(**{**data, "at": datetime.fromisoformat(data["at"])})


class LogGone(Exception):
    """The live stream no longer holds what the reader asked for (it fell too far behind)."""


class Broker(Protocol):
    async def append(self, job_id: str, chunks: Sequence[LogChunk]) -> None: ...

    def tail(self, job_id: str) -> AsyncIterator[LogChunk]:
        """Every chunk of the job's stream from its start, then new ones as they come."""
        ...

    async def publish(self, events: Sequence[JobEvent]) -> None: ...

    def events(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[JobEvent]]:
        """Events of ``job:{id}``, ``workspace:{id}`` or ``organization:{id}``: subscribed on
        entry, then every event published after it."""
        ...

    async def job_ended(self, job_id: str) -> None:
        """The job reached a terminal status: its stream may now expire."""
        ...

    async def access_changed(self) -> None:
        """Tell every other process that tokens, teams or organizations changed."""
        ...

    async def watch_access(self, on_live: Callable[[bool], None], on_change: Callable[[], None]) -> None:
        """Until cancelled: ``on_live(True)`` once changes can be heard (``False`` when they no
        longer can), ``on_change()`` for each change another process announces."""
        ...


def channels(e: JobEvent) -> list[str]:
    return [f"job:{e.job_id}", f"workspace:{e.workspace_id}", f"organization:{e.organization_id}"]


# -- collecting transitions as they are written ------------------------------------------------



@event.listens_for(Session, "before_flush")
def _collect(session: Session, _context: Any, _instances: Any) -> None:
    """Every job or step status write becomes an event, published after the commit."""
    found: list[JobEvent] = session.info.setdefault(EVENTS_KEY, [])
    jobs: dict[uuid.UUID, Job] = {o.id: o for o in list(session.new) + list(session.dirty) if isinstance(o, Job)}
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, Job | Step) or not inspect(obj).attrs.status.history.added:
            continue
        if isinstance(obj, Job):
            found.append(JobEvent(str(obj.id), obj.status, str(obj.workspace_id), str(obj.organization_id)))
            continue
        job = jobs.get(obj.job_id) or session.identity_map.get(session.identity_key(Job, obj.job_id))  # type: ignore[arg-type]
        if job is not None:
            found.append(JobEvent(str(job.id), job.status, str(job.workspace_id), str(job.organization_id),
                                  step_id=str(obj.id), step_status=obj.status))


def take_events(session: Session) -> list[JobEvent]:
    return session.info.pop(EVENTS_KEY, [])
