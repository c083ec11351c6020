"""Terraform state history: versions, their outputs, the http backend lock."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

if TYPE_CHECKING:
    from graph.schema.job import Job

from domain.models import StateLock as StateLockRow
from domain.models import StateOutput as StateOutputRow
from domain.models import StateVersion as StateVersionRow
from domain.services.state import lock_info, public_output_value
from graph.resolvers.context import Context

Info = strawberry.Info[Context, None]


@strawberry.type(description="A root-module output of a state version. `value` is null when sensitive.")
class StateOutput:
    name: str
    type: str | None = strawberry.field(description="The Terraform type, JSON-encoded (e.g. `\"string\"`).")
    value: str | None = strawberry.field(description="The value, JSON-encoded; null when sensitive.")
    sensitive: bool

    @classmethod
    def from_row(cls, row: StateOutputRow) -> StateOutput:
        return cls(
            name=row.name,
            type=None if row.type is None else json.dumps(row.type, separators=(",", ":")),
            value=public_output_value(row),
            sensitive=row.sensitive,
        )


@strawberry.type(description="An immutable Terraform state written to a workspace.")
class StateVersion:
    id: strawberry.ID
    serial: int
    lineage: str
    size: int
    sha256: str
    created_at: datetime
    created_by: str
    job_id: strawberry.ID | None
    row: strawberry.Private[StateVersionRow]

    @strawberry.field(description="The job whose run wrote this state (null for CLI users).")
    async def job(self, info: Info) -> Annotated[Job, strawberry.lazy("graph.schema.job")] | None:
        from graph.schema.job import Job as JobType

        row = await info.context.loaders.jobs.load(self.row.job_id) if self.row.job_id else None
        return JobType.from_row(row) if row else None

    @strawberry.field(description="Root-module outputs, by name.")
    async def outputs(self, info: Info) -> list[StateOutput]:
        return [StateOutput.from_row(r) for r in await info.context.loaders.state_outputs.load(self.row.id)]

    @strawberry.field(description="Where the state can be downloaded (needs manageState), relative to the API.")
    async def download_url(self, info: Info) -> str | None:
        path = await info.context.loaders.workspace_paths.load(self.row.workspace_id)
        if path is None:
            return None
        org, ws = path
        return f"/tfstate/{org}/{ws}/versions/{self.row.id}"

    @classmethod
    def from_row(cls, row: StateVersionRow) -> StateVersion:
        return cls(
            id=strawberry.ID(str(row.id)),
            serial=row.serial,
            lineage=row.lineage,
            size=row.size,
            sha256=row.sha256,
            created_at=row.created_at,
            created_by=row.created_by,
            job_id=strawberry.ID(str(row.job_id)) if row.job_id else None,
            row=row,
        )


@strawberry.type(description="The http backend lock of a workspace's state.")
class StateLock:
    id: str = strawberry.field(description="The lock ID terraform chose.")
    operation: str
    who: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: StateLockRow) -> StateLock:
        info = lock_info(row)
        return cls(id=row.lock_id, operation=info["Operation"], who=info["Who"], created_at=row.created_at)


@strawberry.type(description="One output's value in one state version.")
class OutputHistoryEntry:
    state_version_id: strawberry.ID
    serial: int
    created_at: datetime
    value: str | None = strawberry.field(description="JSON-encoded; null when sensitive.")
    sensitive: bool

    @classmethod
    def from_rows(cls, version: StateVersionRow, output: StateOutputRow) -> OutputHistoryEntry:
        return cls(
            state_version_id=strawberry.ID(str(version.id)),
            serial=version.serial,
            created_at=version.created_at,
            value=public_output_value(output),
            sensitive=output.sensitive,
        )


@strawberry.input
class RollbackStateInput:
    state_version_id: strawberry.ID
