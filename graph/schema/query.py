from __future__ import annotations

import strawberry

from graph.resolvers import organizations, tokens, workspaces
from graph.resolvers.context import Context
from graph.schema.organization import Organization
from graph.schema.relay import Connection, connection
from graph.schema.token import AccessToken, Me
from graph.schema.workspace import Workspace

Info = strawberry.Info[Context, None]


@strawberry.type
class Query:
    @strawberry.field(description="The caller.")
    def me(self, info: Info) -> Me:
        return Me.from_principal(info.context.actor.principal)

    @strawberry.field(description="Organizations the caller can see, ordered by name.")
    async def organizations(self, info: Info, first: int = 20, after: str | None = None) -> Connection[Organization]:
        return connection(await organizations.organizations(info.context, first, after), Organization.from_row)

    @strawberry.field(description="Null when it does not exist or the caller cannot see it.")
    async def organization(self, info: Info, name: str) -> Organization | None:
        row = await organizations.organization(info.context, name)
        return Organization.from_row(row) if row else None

    @strawberry.field(description="Null when it does not exist or the caller cannot see it.")
    async def workspace(self, info: Info, organization: str, name: str) -> Workspace | None:
        row = await workspaces.workspace(info.context, organization, name)
        return Workspace.from_row(row) if row else None

    @strawberry.field(description="The caller's access tokens that are not revoked, newest first.")
    async def access_tokens(self, info: Info) -> list[AccessToken]:
        return [AccessToken.from_row(r) for r in await tokens.access_tokens(info.context)]
