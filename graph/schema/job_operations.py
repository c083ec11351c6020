"""Job and schedule queries and mutations (merged into Query and Mutation in the assembly)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from domain.services.jobs import JobCreate
from domain.services.schedules import ScheduleCreate, ScheduleUpdate
from graph.resolvers import jobs
from graph.resolvers.context import Context, parse_id
from graph.schema import inputs as i
from graph.schema.errors import ConflictError, Deleted, NotFoundError, PermissionDeniedError, ValidationError, payload
from graph.schema.job import CreateScheduleInput, Job, RunJobInput, Schedule, UpdateScheduleInput

Errors = ValidationError | NotFoundError | PermissionDeniedError | ConflictError
JobPayload = Annotated[Job | Errors, strawberry.union("JobPayload")]
SchedulePayload = Annotated[Schedule | Errors, strawberry.union("SchedulePayload")]
DeleteSchedulePayload = Annotated[Deleted | Errors, strawberry.union("DeleteSchedulePayload")]
Info = strawberry.Info[Context, None]


def _job_create(input: RunJobInput) -> JobCreate:
    return JobCreate(
        workspace_id=parse_id(input.workspace_id, "workspaceId"),
        template_id=parse_id(input.template_id, "templateId") if input.template_id else None,
        template_name=input.template_name,
        override_branch=input.override_branch,
        targets=tuple(input.targets),
        replaces=tuple(input.replaces),
        auto_apply=input.auto_apply,
        via="API",
    )


@strawberry.type
class JobQuery:
    @strawberry.field(description="Null when it does not exist or the caller cannot see it.")
    async def job(self, info: Info, id: strawberry.ID) -> Job | None:
        row = await jobs.job(info.context, id)
        return Job.from_row(row) if row else None


@strawberry.type
class JobMutation:
    @strawberry.mutation(description="Starts the template's flow on the workspace (needs planJob).")
    async def run_job(self, info: Info, input: RunJobInput) -> JobPayload:
        return await payload(lambda: jobs.run(info.context, _job_create(input)), Job.from_row)

    @strawberry.mutation(description="Approves the approval step the job waits on.")
    async def approve_job(self, info: Info, input: i.IdInput) -> JobPayload:
        return await payload(lambda: jobs.approve(info.context, input.id), Job.from_row)

    @strawberry.mutation(description="Rejects the approval step the job waits on; runs its onReject commands.")
    async def reject_job(self, info: Info, input: i.IdInput) -> JobPayload:
        return await payload(lambda: jobs.reject(info.context, input.id), Job.from_row)

    @strawberry.mutation(description="Cancels the job in any status before it ends; stops a running terraform.")
    async def cancel_job(self, info: Info, input: i.IdInput) -> JobPayload:
        return await payload(lambda: jobs.cancel(info.context, input.id), Job.from_row)

    @strawberry.mutation
    async def create_schedule(self, info: Info, input: CreateScheduleInput) -> SchedulePayload:
        async def call():  # type: ignore[no-untyped-def]
            data = ScheduleCreate(
                workspace_id=parse_id(input.workspace_id, "workspaceId"),
                template_id=parse_id(input.template_id, "templateId"),
                cron=input.cron,
                description=input.description,
                enabled=input.enabled,
            )
            return await jobs.create_schedule(info.context, data)

        return await payload(call, Schedule.from_row)

    @strawberry.mutation
    async def update_schedule(self, info: Info, input: UpdateScheduleInput) -> SchedulePayload:
        async def call():  # type: ignore[no-untyped-def]
            data = ScheduleUpdate(
                cron=input.cron,
                template_id=parse_id(input.template_id, "templateId") if input.template_id else None,
                description=input.description,
                enabled=input.enabled,
            )
            return await jobs.update_schedule(info.context, input.id, data)

        return await payload(call, Schedule.from_row)

    @strawberry.mutation
    async def delete_schedule(self, info: Info, input: i.IdInput) -> DeleteSchedulePayload:
        return await payload(lambda: jobs.delete_schedule(info.context, input.id), lambda x: Deleted(id=strawberry.ID(x)))
