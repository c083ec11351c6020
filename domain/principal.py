"""Who is acting, and what a team grants in its organization."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class PrincipalKind(StrEnum):
    user = "user"  # an OIDC token
    personal_token = "personal_token"  # a platform access token
    job = "job"  # a short-lived job token (arrives with the job engine)
    team_token = "team_token"  # a platform access token of a team, valid in the team's organization


class Permission(StrEnum):
    manage_workspace = "manage_workspace"
    manage_state = "manage_state"
    manage_module = "manage_module"
    manage_provider = "manage_provider"
    manage_vcs = "manage_vcs"
    manage_template = "manage_template"
    plan_job = "plan_job"
    approve_job = "approve_job"


class Role(StrEnum):
    admin = "ADMIN"
    write = "WRITE"
    plan = "PLAN"
    read = "READ"
    custom = "CUSTOM"


ALL_PERMISSIONS = frozenset(Permission)

# A role other than CUSTOM is a preset; changing a preset changes every team that uses it.
ROLE_PRESETS: dict[Role, frozenset[Permission]] = {
    Role.admin: ALL_PERMISSIONS,
    Role.write: frozenset(
        {Permission.manage_workspace, Permission.manage_state, Permission.plan_job, Permission.approve_job}
    ),
    Role.plan: frozenset({Permission.plan_job}),
    Role.read: frozenset(),
}


@dataclass(frozen=True)
class JobScope:
    """What a job token may touch: its own job's workspace, nothing else."""

    organization_id: str
    workspace_id: str
    job_id: str


@dataclass(frozen=True)
class TeamScope:
    """A team token acts as its team, in the team's organization only: team names are per
    organization, so the same name elsewhere grants it nothing."""

    organization_id: str
    team_id: str


# A job token reads its organization (e.g. private modules) and writes its workspace's state.
JOB_PERMISSIONS = frozenset({Permission.manage_state})


@dataclass(frozen=True)
class Principal:
    name: str
    groups: frozenset[str]
    kind: PrincipalKind
    is_admin: bool = False
    email: str | None = None
    # Stable identity (owner of personal tokens); the display ``name`` may change.
    subject: str = ""
    token_id: str | None = None
    job: JobScope | None = None
    team: TeamScope | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class OrganizationAccess:
    """What a principal may do in one organization: visible at all, and which permissions."""

    visible: bool
    permissions: frozenset[Permission]

    def allows(self, permission: Permission) -> bool:
        return permission in self.permissions


SUPERUSER_ACCESS = OrganizationAccess(visible=True, permissions=ALL_PERMISSIONS)
NO_ACCESS = OrganizationAccess(visible=False, permissions=frozenset())
