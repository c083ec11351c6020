from __future__ import annotations

from datetime import datetime

import strawberry

from domain.models import Variable as VariableRow
from domain.models import Workspace as WorkspaceRow
from domain.services.variables import public_value
from graph.resolvers import jobs as job_resolvers
from graph.resolvers import state as state_resolvers
from graph.resolvers.context import NOT_LOADED, Context, loaded
from graph.schema.enums import ExecutionMode, VariableCategory
from graph.schema.job import Job, JobStatus, Schedule
from graph.schema.relay import Connection, connection
from graph.schema.state import OutputHistoryEntry, StateLock, StateVersion


@strawberry.type(description="A workspace variable. `value` is null when the variable is sensitive.")
class Variable:
    id: strawberry.ID
    key: str
    value: str | None
    category: VariableCategory
    sensitive: bool
    hcl: bool
    description: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: VariableRow) -> Variable:
        return cls(
            id=strawberry.ID(str(row.id)),
            key=row.key,
            value=public_value(row),
            category=VariableCategory(row.category),
            sensitive=row.sensitive,
            hcl=row.hcl,
            description=row.description,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.type
class Workspace:
    id: strawberry.ID
    organization_id: strawberry.ID
    name: str
    description: str
    source: str | None
    branch: str
    folder: str
    terraform_version: str
    execution_mode: ExecutionMode
    locked: bool
    lock_reason: str | None
    locked_by: str | None
    locked_at: datetime | None
    created_at: datetime
    updated_at: datetime
    row: strawberry.Private[WorkspaceRow]

    @strawberry.field(description="The workspace's variables, ordered by category then key.")
    def variables(self, info: strawberry.Info[Context, None]) -> list[Variable]:
        # Synchronous when a list resolver has loaded them already (a page of workspaces does): an
        # awaitable per workspace costs graphql-core a coroutine chain and a task. Else an awaitable,
        # which graphql-core awaits like an async resolver's.
        rows = loaded(info.context.loaders.variables, self.row.id)
        if rows is NOT_LOADED:
            return self._load_variables(info.context)  # type: ignore[return-value]
        return [Variable.from_row(r) for r in rows]

    async def _load_variables(self, context: Context) -> list[Variable]:
        return [Variable.from_row(r) for r in await context.loaders.variables.load(self.row.id)]

    @strawberry.field(description="State versions, newest (highest serial) first; at most 100 a page.")
    async def state_versions(
        self, info: strawberry.Info[Context, None], first: int = 20, after: str | None = None
    ) -> Connection[StateVersion]:
        page = await state_resolvers.page_for_workspace(info.context, self.row.id, first, after)
        return connection(page, StateVersion.from_row)

    @strawberry.field(description="The state terraform reads next; null before the first write.")
    async def current_state_version(self, info: strawberry.Info[Context, None]) -> StateVersion | None:
        row = await info.context.loaders.current_state_versions.load(self.row.id)
        return StateVersion.from_row(row) if row else None

    @strawberry.field(description="The http backend lock on the state; null when unlocked.")
    async def state_lock(self, info: strawberry.Info[Context, None]) -> StateLock | None:
        row = await info.context.loaders.state_locks.load(self.row.id)
        return StateLock.from_row(row) if row else None

    @strawberry.field(description="The output `name` in each state version that has it, newest first.")
    async def output_history(
        self, info: strawberry.Info[Context, None], name: str, first: int = 100
    ) -> list[OutputHistoryEntry]:
        rows = await state_resolvers.output_history(info.context, self.row.id, name, first)
        return [OutputHistoryEntry.from_rows(v, o) for v, o in rows]

    @strawberry.field(description="The workspace's jobs, newest first.")
    async def jobs(
        self, info: strawberry.Info[Context, None], first: int = 20, after: str | None = None
    ) -> Connection[Job]:
        page = await job_resolvers.page_for_workspace(info.context, self.row.id, first, after)
        return connection(page, Job.from_row)

    @strawberry.field(description="The status of the newest job, or null when none ran yet.")
    async def last_job_status(self, info: strawberry.Info[Context, None]) -> JobStatus | None:  # type: ignore[valid-type]
        status = await job_resolvers.last_status(info.context, self.row.id)
        return JobStatus(status) if status else None

    @strawberry.field
    async def schedules(self, info: strawberry.Info[Context, None]) -> list[Schedule]:
        return [Schedule.from_row(s) for s in await info.context.loaders.schedules.load(self.row.id)]

    @classmethod
    def from_row(cls, row: WorkspaceRow) -> Workspace:
        return cls(
            id=strawberry.ID(str(row.id)),
            organization_id=strawberry.ID(str(row.organization_id)),
            name=row.name,
            description=row.description,
            source=row.source,
            branch=row.branch,
            folder=row.folder,
            terraform_version=row.terraform_version,
            execution_mode=ExecutionMode(row.execution_mode),
            locked=row.locked,
            lock_reason=row.lock_reason,
            locked_by=row.locked_by,
            locked_at=row.locked_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
            row=row,
        )
