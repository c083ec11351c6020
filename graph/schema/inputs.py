"""Mutation inputs; each mutation takes exactly one `input:` argument."""

from __future__ import annotations

import strawberry

from graph.schema.enums import ExecutionMode, Role, VariableCategory


@strawberry.input
class IdInput:
    id: strawberry.ID


@strawberry.input
class CreateOrganizationInput:
    name: str
    description: str = ""


@strawberry.input
class UpdateOrganizationInput:
    id: strawberry.ID
    name: str | None = None
    description: str | None = None


@strawberry.input(description="Flags are honoured with role CUSTOM only; other roles are presets.")
class TeamFlagsInput:
    manage_workspace: bool | None = None
    manage_state: bool | None = None
    manage_module: bool | None = None
    manage_provider: bool | None = None
    manage_vcs: bool | None = None
    manage_template: bool | None = None
    plan_job: bool | None = None
    approve_job: bool | None = None


@strawberry.input(description="`name` is the identity-provider group whose members form the team.")
class CreateTeamInput(TeamFlagsInput):
    organization: str
    name: str
    role: Role


@strawberry.input
class UpdateTeamInput(TeamFlagsInput):
    id: strawberry.ID
    name: str | None = None
    role: Role | None = None


@strawberry.input
class CreateWorkspaceInput:
    organization: str
    name: str
    description: str = ""
    source: str | None = None
    branch: str = "main"
    folder: str = "/"
    terraform_version: str | None = None
    execution_mode: ExecutionMode = ExecutionMode.REMOTE


@strawberry.input(description="Omitted fields stay as they are; an empty `source` removes it.")
class UpdateWorkspaceInput:
    id: strawberry.ID
    name: str | None = None
    description: str | None = None
    source: str | None = None
    branch: str | None = None
    folder: str | None = None
    terraform_version: str | None = None
    execution_mode: ExecutionMode | None = None


@strawberry.input
class LockWorkspaceInput:
    id: strawberry.ID
    reason: str = ""


@strawberry.input
class CreateVariableInput:
    workspace_id: strawberry.ID
    key: str
    category: VariableCategory
    value: str = ""
    sensitive: bool = False
    hcl: bool = False
    description: str = ""


@strawberry.input(description="A sensitive variable keeps its value when `value` is omitted.")
class UpdateVariableInput:
    id: strawberry.ID
    key: str | None = None
    value: str | None = None
    sensitive: bool | None = None
    hcl: bool | None = None
    description: str | None = None


@strawberry.input
class CreateTemplateInput:
    organization: str
    name: str
    tcl: str
    description: str = ""


@strawberry.input
class UpdateTemplateInput:
    id: strawberry.ID
    name: str | None = None
    description: str | None = None
    tcl: str | None = None


@strawberry.input
class CreateAccessTokenInput:
    description: str
    days: int = 30


@strawberry.input(description="A token that acts as the team, in the team's organization only.")
class CreateTeamTokenInput:
    team_id: strawberry.ID
    description: str
    days: int = 30
