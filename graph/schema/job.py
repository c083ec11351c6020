from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from domain.jobs import Status
from domain.models import Job as JobRow
from domain.models import Schedule as ScheduleRow
from domain.models import Step as StepRow
from graph.resolvers import jobs as job_resolvers
from graph.resolvers.context import Context

JobStatus = strawberry.enum(
    Enum("JobStatus", {s.name.upper(): s.value for s in Status}),  # type: ignore[misc]
    description="Terrakube's job and step statuses.",
)


@strawberry.type(description="A slice of a step's log: `text` starts at byte `offset`.")
class LogSlice:
    offset: int
    next_offset: int
    size: int
    text: str


@strawberry.type
class Step:
    id: strawberry.ID
    name: str
    step_number: int
    type: str
    status: JobStatus  # type: ignore[valid-type]
    team: str | None
    reason: str | None
    started_at: datetime | None
    finished_at: datetime | None
    row: strawberry.Private[StepRow]

    @strawberry.field(description="The step's stored log from byte `offset`, at most `limit` bytes.")
    async def log(self, info: strawberry.Info[Context, None], offset: int = 0, limit: int = 65536) -> LogSlice:
        start, size, text = await job_resolvers.step_log(info.context, self.row, offset, limit)
        return LogSlice(offset=start, next_offset=start + len(text.encode()), size=size, text=text)

    @classmethod
    def from_row(cls, row: StepRow) -> Step:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            step_number=row.step_number,
            type=row.type,
            status=JobStatus(row.status),
            team=row.team,
            reason=row.reason,
            started_at=row.started_at,
            finished_at=row.finished_at,
            row=row,
        )


@strawberry.type
class Job:
    id: strawberry.ID
    workspace_id: strawberry.ID
    status: JobStatus  # type: ignore[valid-type]
    via: str
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    commit_id: str | None
    plan_changes: bool | None
    override_branch: str | None
    targets: list[str]
    replaces: list[str]
    auto_apply: bool
    reason: str | None
    row: strawberry.Private[JobRow]

    @strawberry.field(description="The flow's steps in the order they run.")
    async def steps(self, info: strawberry.Info[Context, None]) -> list[Step]:
        return [Step.from_row(s) for s in await info.context.loaders.steps.load(self.row.id)]

    @classmethod
    def from_row(cls, row: JobRow) -> Job:
        return cls(
            id=strawberry.ID(str(row.id)),
            workspace_id=strawberry.ID(str(row.workspace_id)),
            status=JobStatus(row.status),
            via=row.via,
            created_by=row.created_by,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            commit_id=row.commit_id,
            plan_changes=row.plan_changes,
            override_branch=row.override_branch,
            targets=list(row.targets),
            replaces=list(row.replaces),
            auto_apply=row.auto_apply,
            reason=row.reason,
            row=row,
        )


@strawberry.type(description="Runs a template on the workspace on a cron expression (Quartz or 5-field).")
class Schedule:
    id: strawberry.ID
    cron: str
    template_id: strawberry.ID
    description: str
    enabled: bool
    next_run_at: datetime | None
    last_run_at: datetime | None

    @classmethod
    def from_row(cls, row: ScheduleRow) -> Schedule:
        return cls(
            id=strawberry.ID(str(row.id)),
            cron=row.cron,
            template_id=strawberry.ID(str(row.template_id)),
            description=row.description,
            enabled=row.enabled,
            next_run_at=row.next_run_at,
            last_run_at=row.last_run_at,
        )


@strawberry.input
class RunJobInput:
    workspace_id: strawberry.ID
    template_id: strawberry.ID | None = None
    template_name: str | None = None
    override_branch: str | None = None
    targets: list[str] = strawberry.field(default_factory=list)
    replaces: list[str] = strawberry.field(default_factory=list)
    auto_apply: bool = False


@strawberry.input
class CreateScheduleInput:
    workspace_id: strawberry.ID
    template_id: strawberry.ID
    cron: str
    description: str = ""
    enabled: bool = True


@strawberry.input
class UpdateScheduleInput:
    id: strawberry.ID
    template_id: strawberry.ID | None = None
    cron: str | None = None
    description: str | None = None
    enabled: bool | None = None
