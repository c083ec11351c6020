from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

from domain.live import Broker, JobEvent, LogChunk
from domain.services import live, workspaces
from graph.resolvers.context import Context, parse_id


def broker(ctx: Context) -> Broker:
    if ctx.broker is None:
        raise RuntimeError("live updates are not available in this process")
    return ctx.broker


def job_log(ctx: Context, job_id: str, step_id: str | None, from_offset: int) -> AsyncIterator[LogChunk]:
    return live.job_log(
        ctx.platform, broker(ctx), ctx.actor, parse_id(job_id, "jobId"),
        parse_id(step_id, "stepId") if step_id else None, from_offset,
    )


async def job_channel(ctx: Context, job_id: str) -> tuple[str, str]:
    """(channel, current status) of a job the caller may see."""
    job = await live.visible_job(ctx.platform, ctx.actor, parse_id(job_id, "jobId"))
    return f"job:{job.id}", job.status


async def workspace_channel(ctx: Context, workspace_id: str) -> str:
    ws = await workspaces.get_workspace_by_id(ctx.platform, ctx.actor, parse_id(workspace_id, "workspaceId"))
    return f"workspace:{ws.id}"


async def organization_channel(ctx: Context, organization: str) -> str:
    org = await live.visible_organization(ctx.platform, ctx.actor, organization)
    return f"organization:{org.id}"


def events(ctx: Context, channel: str) -> AbstractAsyncContextManager[AsyncIterator[JobEvent]]:
    return live.job_events(broker(ctx), channel)
