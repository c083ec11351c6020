from __future__ import annotations

from datetime import datetime

import strawberry

from domain.models import Variable as VariableRow
from domain.models import Workspace as WorkspaceRow
from domain.services.variables import public_value
from graph.resolvers.context import Context
from graph.schema.enums import ExecutionMode, VariableCategory


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
    async def variables(self, info: strawberry.Info[Context, None]) -> list[Variable]:
        rows = await info.context.loaders.variables.load(self.row.id)
        return [Variable.from_row(r) for r in rows]

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
