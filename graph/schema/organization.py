from __future__ import annotations

import contextlib
from datetime import datetime

import strawberry

from domain.models import Organization as OrganizationRow
from domain.models import Team as TeamRow
from graph.resolvers import registry as registry_resolvers
from graph.resolvers import tokens as token_resolvers
from graph.resolvers import workspaces as workspace_resolvers
from graph.resolvers.context import Context, selects
from graph.schema.enums import Role
from graph.schema.registry import Module, Provider, SigningKey
from graph.schema.relay import Connection, connection
from graph.schema.template import Template
from graph.schema.token import AccessToken
from graph.schema.workspace import Workspace


@strawberry.type(description="An identity-provider group's permissions in one organization.")
class Team:
    id: strawberry.ID
    name: str
    role: Role
    manage_workspace: bool
    manage_state: bool
    manage_module: bool
    manage_provider: bool
    manage_vcs: bool
    manage_template: bool
    plan_job: bool
    approve_job: bool
    created_at: datetime

    @strawberry.field(
        description="The team's tokens that are not revoked, newest first; null (with a PERMISSION_DENIED "
        "error) for callers who are neither its members nor admins."
    )
    async def tokens(self, info: strawberry.Info[Context, None]) -> list[AccessToken] | None:
        return [AccessToken.from_row(r) for r in await token_resolvers.team_tokens(info.context, self.id)]

    @classmethod
    def from_row(cls, row: TeamRow) -> Team:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            role=Role(row.role),
            manage_workspace=row.manage_workspace,
            manage_state=row.manage_state,
            manage_module=row.manage_module,
            manage_provider=row.manage_provider,
            manage_vcs=row.manage_vcs,
            manage_template=row.manage_template,
            plan_job=row.plan_job,
            approve_job=row.approve_job,
            created_at=row.created_at,
        )


@strawberry.input
class WorkspaceFilter:
    name_contains: str | None = None


@strawberry.type
class Organization:
    id: strawberry.ID
    name: str
    description: str
    created_at: datetime
    updated_at: datetime
    row: strawberry.Private[OrganizationRow]

    @strawberry.field
    async def teams(self, info: strawberry.Info[Context, None]) -> list[Team]:
        return [Team.from_row(t) for t in await info.context.loaders.teams.load(self.row.id)]

    @strawberry.field
    async def templates(self, info: strawberry.Info[Context, None]) -> list[Template]:
        return [Template.from_row(t) for t in await info.context.loaders.templates.load(self.row.id)]

    @strawberry.field(description="Workspaces ordered by name; at most 100 a page.")
    async def workspaces(
        self,
        info: strawberry.Info[Context, None],
        first: int = 20,
        after: str | None = None,
        filter: WorkspaceFilter | None = None,
    ) -> Connection[Workspace]:
        page = await workspace_resolvers.page_for_organization(
            info.context, self.row.id, first, after, filter.name_contains if filter else None
        )
        if page.items and any(selects(f.selections, "edges", "node", "variables") for f in info.selected_fields):
            # The same one statement the DataLoader would batch, issued now so that each workspace's
            # `variables` resolves synchronously. A failure stays in the loader and is raised there.
            with contextlib.suppress(Exception):
                await info.context.loaders.variables.load_many([w.id for w in page.items])
        return connection(page, Workspace.from_row)

    @strawberry.field(description="Private modules ordered by name; at most 100 a page.")
    async def modules(
        self, info: strawberry.Info[Context, None], first: int = 20, after: str | None = None
    ) -> Connection[Module]:
        return connection(await registry_resolvers.modules_page(info.context, self.row.id, first, after), Module.from_row)

    @strawberry.field(description="Private providers ordered by name; at most 100 a page.")
    async def providers(
        self, info: strawberry.Info[Context, None], first: int = 20, after: str | None = None
    ) -> Connection[Provider]:
        page = await registry_resolvers.providers_page(info.context, self.row.id, first, after)
        return connection(page, Provider.from_row)

    @strawberry.field(description="The public half of the key that signs the organization's providers.")
    async def signing_key(self, info: strawberry.Info[Context, None]) -> SigningKey | None:
        row = await info.context.loaders.signing_keys.load(self.row.id)
        return SigningKey.from_row(row) if row else None

    @classmethod
    def from_row(cls, row: OrganizationRow) -> Organization:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            description=row.description,
            created_at=row.created_at,
            updated_at=row.updated_at,
            row=row,
        )
