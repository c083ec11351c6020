"""What a live reader sees: a job's log (stored backlog, then the live tail, with no gap and no
duplicate) and its status events. Access is checked once, when the reader starts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Generic, TypeVar

from sqlmodel import select

from domain.access import Actor
from domain.errors import NotFound, ValidationFailed
from domain.jobs import STEP_DONE, S, is_terminal
from domain.live import Broker, JobEvent, LogChunk, LogGone
from domain.models import Job, Organization, Step
from domain.services import Platform, reading

T = TypeVar("T")
PIECE = 16 * 1024
RECHECK_SECONDS = 2.0  # how often a silent live tail looks at the step's row (lost worker)


async def visible_job(platform: Platform, actor: Actor, job_id: uuid.UUID) -> Job:
    async with reading(platform) as session:
        job = await session.get(Job, job_id)
        if job is None:
            raise NotFound("job not found")
        await actor.require_visible(session, job.organization_id, "job")
        return job


async def visible_organization(platform: Platform, actor: Actor, name: str) -> Organization:
    async with reading(platform) as session:
        org = (await session.exec(select(Organization).where(Organization.name == name))).first()
        if org is None or not (await actor.access(session, org.id)).visible:
            raise NotFound(f"organization {name!r} not found")
        return org


async def _job_and_steps(platform: Platform, job_id: uuid.UUID) -> tuple[Job, list[Step]]:
    async with reading(platform) as session:
        job = await session.get(Job, job_id)
        steps = (await session.exec(select(Step).where(Step.job_id == job_id).order_by(Step.step_number))).all()
    assert job is not None
    return job, list(steps)


async def job_log(
    platform: Platform, broker: Broker, actor: Actor, job_id: uuid.UUID,
    step_id: uuid.UUID | None = None, from_offset: int = 0,
) -> AsyncIterator[LogChunk]:
    """Every step's log in step order; ``(step_id, from_offset)`` is where a reader resumes.
    Ends once the job has ended and every step's log has been read through."""
    if from_offset < 0:
        raise ValidationFailed("fromOffset", "fromOffset must not be negative")
    await visible_job(platform, actor, job_id)
    job, steps = await _job_and_steps(platform, job_id)
    start_at = None
    if step_id is not None:
        start_at = next((s.step_number for s in steps if s.id == step_id), None)
        if start_at is None:
            raise NotFound("step not found in this job")
    async with broker.events(f"job:{job_id}") as event_iterator:
        events = _Poll(event_iterator)
        try:
            async for chunk in _follow(platform, broker, job_id, start_at, from_offset, events):
                yield chunk
        finally:
            await events.aclose()


async def _follow(
    platform: Platform, broker: Broker, job_id: uuid.UUID, start_at: int | None, from_offset: int,
    events: _Poll[JobEvent],
) -> AsyncIterator[LogChunk]:
    finished: set[uuid.UUID] = set()
    first = True
    while True:
        job, steps = await _job_and_steps(platform, job_id)
        for step in steps:
            if step.id in finished or (start_at is not None and step.step_number < start_at):
                continue
            offset = from_offset if first else 0
            if step.log_key and step.status in STEP_DONE:
                async for chunk in _stored(platform, step, offset):
                    yield chunk
            elif step.status == S.running.value:
                async for chunk in _live(platform, broker, job_id, step, offset):
                    yield chunk
            elif step.status in STEP_DONE:
                pass  # never ran, or an approval: nothing was logged
            else:
                break  # not started yet: wait for the job to move
            first = False
            finished.add(step.id)
        else:
            if is_terminal(job.status):
                return
        await _next_event(events)


class _Poll(Generic[T]):
    """Reads an async iterator with a timeout without cancelling the read: cancelling
    ``anext()`` of an async generator would end the generator for good."""

    def __init__(self, it: AsyncIterator[T]) -> None:
        self.it = it
        self.pending: asyncio.Future[T] | None = None

    async def next(self, timeout: float) -> T:
        """Raises ``TimeoutError`` when nothing came in time; the read stays pending."""
        if self.pending is None:
            self.pending = asyncio.ensure_future(anext(self.it))
        done, _ = await asyncio.wait({self.pending}, timeout=timeout)
        if not done:
            raise TimeoutError
        task, self.pending = self.pending, None
        return task.result()

    async def aclose(self) -> None:
        if self.pending is not None:
            self.pending.cancel()
            await asyncio.gather(self.pending, return_exceptions=True)
        closer = getattr(self.it, "aclose", None)
        if closer is not None:
            await closer()


async def _next_event(events: _Poll[JobEvent]) -> None:
    try:
        await events.next(RECHECK_SECONDS)
    except TimeoutError:
        pass  # a safety net: re-read the rows even if an event went missing


async def _stored(platform: Platform, step: Step, offset: int) -> AsyncIterator[LogChunk]:
    assert step.log_key is not None
    data = await platform.blobs.read_bytes(step.log_key)
    for start in range(offset, len(data), PIECE):
        piece = data[start : start + PIECE]
        yield LogChunk(str(step.id), step.step_number, start, piece.decode("utf-8", errors="replace"))


async def _live(
    platform: Platform, broker: Broker, job_id: uuid.UUID, step: Step, offset: int
) -> AsyncIterator[LogChunk]:
    """The running step's chunks from ``offset`` until its end marker. If the worker went silent
    and the step ended without one, the rest comes from the stored log."""
    position = offset
    tail = _Poll(broker.tail(str(job_id)).__aiter__())
    try:
        while True:
            try:
                chunk = await tail.next(RECHECK_SECONDS)
            except TimeoutError:
                current = await _step(platform, step.id)
                if current.status in STEP_DONE:
                    if current.log_key:
                        async for rest in _stored(platform, current, position):
                            yield rest
                    return
                continue
            if chunk.step_id != str(step.id):
                continue
            if chunk.end:
                return
            data = chunk.text.encode("utf-8", errors="replace")
            if chunk.offset + len(data) <= position:
                continue  # already delivered (or before the resume point)
            if chunk.offset > position:
                raise LogGone(f"the live log of step {step.step_number} no longer holds offset {position}")
            piece = data[position - chunk.offset :]
            yield LogChunk(chunk.step_id, chunk.step_number, position, piece.decode("utf-8", errors="replace"))
            position = chunk.offset + len(data)
    finally:
        await tail.aclose()


async def _step(platform: Platform, step_id: uuid.UUID) -> Step:
    async with reading(platform) as session:
        step = await session.get(Step, step_id)
    assert step is not None
    return step


def job_events(broker: Broker, channel: str) -> AbstractAsyncContextManager[AsyncIterator[JobEvent]]:
    return broker.events(channel)
