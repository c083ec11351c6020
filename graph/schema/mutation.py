"""Mutations: one `input:` argument each, a union of the object and the typed errors back."""

from __future__ import annotations

from typing import Annotated

import strawberry

from domain.services.organizations import OrganizationCreate, OrganizationUpdate
from domain.services.teams import TeamCreate, TeamUpdate
from domain.services.templates import TemplateCreate, TemplateUpdate
from domain.services.variables import VariableCreate, VariableUpdate
from domain.services.workspaces import (
    DEFAULT_TERRAFORM_VERSION,
    WorkspaceCreate,
    WorkspaceUpdate,
)
from graph.resolvers import (
    organizations,
    state,
    teams,
    templates,
    tokens,
    variables,
    workspaces,
)
from graph.resolvers.context import Context, parse_id
from graph.schema import inputs as i
from graph.schema.errors import (
    ConflictError,
    Deleted,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
    payload,
)
from graph.schema.organization import Organization, Team
from graph.schema.state import RollbackStateInput, StateVersion
from graph.schema.template import Template
from graph.schema.token import AccessToken, NewAccessToken
from graph.schema.workspace import Variable, Workspace

Errors = ValidationError | NotFoundError | PermissionDeniedError | ConflictError
OrganizationPayload = Annotated[Organization | Errors, strawberry.union("OrganizationPayload")]
TeamPayload = Annotated[Team | Errors, strawberry.union("TeamPayload")]
WorkspacePayload = Annotated[Workspace | Errors, strawberry.union("WorkspacePayload")]
VariablePayload = Annotated[Variable | Errors, strawberry.union("VariablePayload")]
TemplatePayload = Annotated[Template | Errors, strawberry.union("TemplatePayload")]
NewAccessTokenPayload = Annotated[NewAccessToken | Errors, strawberry.union("NewAccessTokenPayload")]
AccessTokenPayload = Annotated[AccessToken | Errors, strawberry.union("AccessTokenPayload")]
DeletePayload = Annotated[Deleted | Errors, strawberry.union("DeletePayload")]
StateVersionPayload = Annotated[StateVersion | Errors, strawberry.union("StateVersionPayload")]

Info = strawberry.Info[Context, None]


def _deleted(object_id: str) -> Deleted:
    return Deleted(id=strawberry.ID(object_id))


def _flags(data: i.TeamFlagsInput) -> dict[str, bool | None]:
    names = ("manage_workspace", "manage_state", "manage_module", "manage_provider", "manage_vcs",
             "manage_template", "plan_job", "approve_job")
    return {n: getattr(data, n) for n in names}


@strawberry.type
class Mutation:
    # -- organizations (admin group only) ----------------------------------------------
    @strawberry.mutation
    async def create_organization(self, info: Info, input: i.CreateOrganizationInput) -> OrganizationPayload:
        data = OrganizationCreate(name=input.name, description=input.description)
        return await payload(lambda: organizations.create(info.context, data), Organization.from_row)

    @strawberry.mutation
    async def update_organization(self, info: Info, input: i.UpdateOrganizationInput) -> OrganizationPayload:
        data = OrganizationUpdate(name=input.name, description=input.description)
        return await payload(lambda: organizations.update(info.context, input.id, data), Organization.from_row)

    @strawberry.mutation
    async def delete_organization(self, info: Info, input: i.IdInput) -> DeletePayload:
        return await payload(lambda: organizations.delete(info.context, input.id), _deleted)

    # -- teams -------------------------------------------------------------------------
    @strawberry.mutation
    async def create_team(self, info: Info, input: i.CreateTeamInput) -> TeamPayload:
        data = TeamCreate(
            organization=input.organization, name=input.name, role=input.role.to_domain(), **_flags(input)
        )
        return await payload(lambda: teams.create(info.context, data), Team.from_row)

    @strawberry.mutation
    async def update_team(self, info: Info, input: i.UpdateTeamInput) -> TeamPayload:
        role = input.role.to_domain() if input.role else None
        data = TeamUpdate(name=input.name, role=role, **_flags(input))
        return await payload(lambda: teams.update(info.context, input.id, data), Team.from_row)

    @strawberry.mutation
    async def delete_team(self, info: Info, input: i.IdInput) -> DeletePayload:
        return await payload(lambda: teams.delete(info.context, input.id), _deleted)

    # -- workspaces --------------------------------------------------------------------
    @strawberry.mutation
    async def create_workspace(self, info: Info, input: i.CreateWorkspaceInput) -> WorkspacePayload:
        data = WorkspaceCreate(
            organization=input.organization,
            name=input.name,
            description=input.description,
            source=input.source,
            branch=input.branch,
            folder=input.folder,
            terraform_version=input.terraform_version or DEFAULT_TERRAFORM_VERSION,
            execution_mode=input.execution_mode.to_domain(),
        )
        return await payload(lambda: workspaces.create(info.context, data), Workspace.from_row)

    @strawberry.mutation
    async def update_workspace(self, info: Info, input: i.UpdateWorkspaceInput) -> WorkspacePayload:
        data = WorkspaceUpdate(
            name=input.name,
            description=input.description,
            source=input.source,
            branch=input.branch,
            folder=input.folder,
            terraform_version=input.terraform_version,
            execution_mode=input.execution_mode.to_domain() if input.execution_mode else None,
        )
        return await payload(lambda: workspaces.update(info.context, input.id, data), Workspace.from_row)

    @strawberry.mutation
    async def delete_workspace(self, info: Info, input: i.IdInput) -> DeletePayload:
        return await payload(lambda: workspaces.delete(info.context, input.id), _deleted)

    @strawberry.mutation(description="Stops new runs on the workspace until it is unlocked.")
    async def lock_workspace(self, info: Info, input: i.LockWorkspaceInput) -> WorkspacePayload:
        return await payload(lambda: workspaces.lock(info.context, input.id, input.reason), Workspace.from_row)

    @strawberry.mutation
    async def unlock_workspace(self, info: Info, input: i.LockWorkspaceInput) -> WorkspacePayload:
        return await payload(lambda: workspaces.unlock(info.context, input.id, input.reason), Workspace.from_row)

    # -- variables ---------------------------------------------------------------------
    @strawberry.mutation
    async def create_variable(self, info: Info, input: i.CreateVariableInput) -> VariablePayload:
        async def call():  # type: ignore[no-untyped-def]
            data = VariableCreate(
                workspace_id=parse_id(input.workspace_id, "workspaceId"),
                key=input.key,
                value=input.value,
                category=input.category.to_domain(),
                sensitive=input.sensitive,
                hcl=input.hcl,
                description=input.description,
            )
            return await variables.create(info.context, data)

        return await payload(call, Variable.from_row)

    @strawberry.mutation
    async def update_variable(self, info: Info, input: i.UpdateVariableInput) -> VariablePayload:
        data = VariableUpdate(
            key=input.key, value=input.value, sensitive=input.sensitive, hcl=input.hcl,
            description=input.description,
        )
        return await payload(lambda: variables.update(info.context, input.id, data), Variable.from_row)

    @strawberry.mutation
    async def delete_variable(self, info: Info, input: i.IdInput) -> DeletePayload:
        return await payload(lambda: variables.delete(info.context, input.id), _deleted)

    # -- templates ---------------------------------------------------------------------
    @strawberry.mutation
    async def create_template(self, info: Info, input: i.CreateTemplateInput) -> TemplatePayload:
        data = TemplateCreate(
            organization=input.organization, name=input.name, description=input.description, tcl=input.tcl
        )
        return await payload(lambda: templates.create(info.context, data), Template.from_row)

    @strawberry.mutation
    async def update_template(self, info: Info, input: i.UpdateTemplateInput) -> TemplatePayload:
        data = TemplateUpdate(name=input.name, description=input.description, tcl=input.tcl)
        return await payload(lambda: templates.update(info.context, input.id, data), Template.from_row)

    @strawberry.mutation
    async def delete_template(self, info: Info, input: i.IdInput) -> DeletePayload:
        return await payload(lambda: templates.delete(info.context, input.id), _deleted)

    # -- access tokens -----------------------------------------------------------------
    @strawberry.mutation(description="The secret is in `token`, returned only by this call.")
    async def create_access_token(self, info: Info, input: i.CreateAccessTokenInput) -> NewAccessTokenPayload:
        return await payload(
            lambda: tokens.create(info.context, input.description, input.days),
            lambda new: NewAccessToken(token=new.secret, access_token=AccessToken.from_row(new.token)),
        )

    @strawberry.mutation(description="Members of the team and admins; the secret is returned only by this call.")
    async def create_team_token(self, info: Info, input: i.CreateTeamTokenInput) -> NewAccessTokenPayload:
        return await payload(
            lambda: tokens.create_for_team(info.context, input.team_id, input.description, input.days),
            lambda new: NewAccessToken(token=new.secret, access_token=AccessToken.from_row(new.token)),
        )

    @strawberry.mutation(description="Your own tokens; team tokens by the team's members; any token by admins.")
    async def revoke_access_token(self, info: Info, input: i.IdInput) -> AccessTokenPayload:
        return await payload(lambda: tokens.revoke(info.context, input.id), AccessToken.from_row)

    # -- state -------------------------------------------------------------------------
    @strawberry.mutation(description="Releases the workspace's state lock, whoever holds it; needs manageState.")
    async def force_unlock_workspace_state(self, info: Info, input: i.IdInput) -> WorkspacePayload:
        return await payload(lambda: state.force_unlock(info.context, input.id), Workspace.from_row)

    @strawberry.mutation(description="A new current state version with the content of an older one.")
    async def rollback_state(self, info: Info, input: RollbackStateInput) -> StateVersionPayload:
        return await payload(lambda: state.rollback(info.context, input.state_version_id), StateVersion.from_row)
