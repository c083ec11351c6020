"""Subscriptions (graphql-transport-ws): live job logs and job status events."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry

from domain.jobs import is_terminal
from domain.live import JobEvent as JobEventData
from domain.live import LogChunk as LogChunkData
from graph.resolvers import live
from graph.resolvers.context import Context
from graph.schema.job import JobStatus

Info = strawberry.Info[Context, None]


@strawberry.type(description="A piece of a step's log: `text` starts at byte `offset` of that step's log.")
class LogChunk:
    step_id: strawberry.ID
    step_number: int
    offset: int
    text: str

    @classmethod
    def from_data(cls, chunk: LogChunkData) -> LogChunk:
        return cls(step_id=strawberry.ID(chunk.step_id), step_number=chunk.step_number, offset=chunk.offset,
                   text=chunk.text)


@strawberry.type(description="A job's id and status at the time of an event.")
class JobState:
    id: strawberry.ID
    status: JobStatus  # type: ignore[valid-type]


@strawberry.type(description="A step's id and status at the time of an event.")
class StepState:
    id: strawberry.ID
    status: JobStatus  # type: ignore[valid-type]


@strawberry.type(description="A job or step transition; `step` is null when the job itself moved.")
class JobEvent:
    job: JobState
    step: StepState | None
    at: datetime

    @classmethod
    def from_data(cls, e: JobEventData) -> JobEvent:
        step = StepState(id=strawberry.ID(e.step_id), status=JobStatus(e.step_status)) if e.step_id else None
        return cls(job=JobState(id=strawberry.ID(e.job_id), status=JobStatus(e.job_status)), step=step, at=e.at)


async def _relay(info: Info, channel: str, until_job_ends: str | None = None) -> AsyncGenerator[JobEvent, None]:
    async with live.events(info.context, channel) as events:
        async for event in events:
            yield JobEvent.from_data(event)
            if until_job_ends and event.step_id is None and is_terminal(event.job_status):
                return


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The job's log: the backlog from (stepId, fromOffset) — every step when stepId is "
        "omitted — then new lines as they are written, in order, once each. Completes when the job has "
        "ended. To resume, pass the stepId and offset + byte length of the last chunk received."
    )
    async def job_logs(
        self, info: Info, job_id: strawberry.ID, step_id: strawberry.ID | None = None, from_offset: int = 0
    ) -> AsyncGenerator[LogChunk, None]:
        async for chunk in live.job_log(info.context, job_id, step_id, from_offset):
            yield LogChunk.from_data(chunk)

    @strawberry.subscription(description="Every transition of the job and its steps; completes when it ends.")
    async def job_status_changed(self, info: Info, job_id: strawberry.ID) -> AsyncGenerator[JobEvent, None]:
        channel, status = await live.job_channel(info.context, job_id)
        if is_terminal(status):
            return
        async for event in _relay(info, channel, until_job_ends=channel):
            yield event

    @strawberry.subscription(description="Every job and step transition in the workspace.")
    async def workspace_jobs(self, info: Info, workspace_id: strawberry.ID) -> AsyncGenerator[JobEvent, None]:
        async for event in _relay(info, await live.workspace_channel(info.context, workspace_id)):
            yield event

    @strawberry.subscription(description="Every job and step transition in the organization.")
    async def organization_jobs(self, info: Info, organization: str) -> AsyncGenerator[JobEvent, None]:
        async for event in _relay(info, await live.organization_channel(info.context, organization)):
            yield event
