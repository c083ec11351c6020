from __future__ import annotations

import uuid

from domain.models import Job, Schedule, Step
from domain.pagination import Page, PageRequest
from domain.services import jobs as service
from domain.services import schedules
from graph.resolvers.context import Context, parse_id


async def job(ctx: Context, job_id: str) -> Job | None:
    return await service.get_job(ctx.platform, ctx.actor, parse_id(job_id))


async def page_for_workspace(ctx: Context, workspace_id: uuid.UUID, first: int, after: str | None) -> Page[Job]:
    return await service.list_jobs(ctx.platform, workspace_id, PageRequest(first, after))


async def last_status(ctx: Context, workspace_id: uuid.UUID) -> str | None:
    return await service.last_job_status(ctx.platform, workspace_id)


async def run(ctx: Context, data: service.JobCreate) -> Job:
    return await service.run_job(ctx.platform, ctx.actor, data)


async def approve(ctx: Context, job_id: str) -> Job:
    return await service.approve_job(ctx.platform, ctx.actor, parse_id(job_id))


async def reject(ctx: Context, job_id: str) -> Job:
    return await service.reject_job(ctx.platform, ctx.actor, parse_id(job_id))


async def cancel(ctx: Context, job_id: str) -> Job:
    return await service.cancel_job(ctx.platform, ctx.actor, parse_id(job_id))


async def step_log(ctx: Context, step: Step, offset: int, limit: int) -> tuple[int, int, str]:
    return await service.read_step_log(ctx.platform, step, offset, limit)


async def create_schedule(ctx: Context, data: schedules.ScheduleCreate) -> Schedule:
    return await schedules.create_schedule(ctx.platform, ctx.actor, data)


async def update_schedule(ctx: Context, schedule_id: str, data: schedules.ScheduleUpdate) -> Schedule:
    return await schedules.update_schedule(ctx.platform, ctx.actor, parse_id(schedule_id), data)


async def delete_schedule(ctx: Context, schedule_id: str) -> str:
    return str(await schedules.delete_schedule(ctx.platform, ctx.actor, parse_id(schedule_id)))
