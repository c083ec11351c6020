"""Teams: an identity-provider group's role in one organization. Managed by the admin group."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlmodel import SQLModel

from domain.access import Actor, team_permissions
from domain.errors import NotFound, ValidationFailed
from domain.models import Team
from domain.models.types import utcnow
from domain.principal import Permission, Role
from domain.services import Platform, unit_of_work
from domain.services.lookups import (
    children_by_parent,
    ensure_name_free,
    organization_named,
)
from domain.validation import check_text

FLAG_FIELDS = tuple(p.value for p in Permission)


class TeamFlags(SQLModel):
    manage_workspace: bool | None = None
    manage_state: bool | None = None
    manage_module: bool | None = None
    manage_provider: bool | None = None
    manage_vcs: bool | None = None
    manage_template: bool | None = None
    plan_job: bool | None = None
    approve_job: bool | None = None

    def given(self) -> dict[str, bool]:
        return {f: v for f in FLAG_FIELDS if (v := getattr(self, f)) is not None}


class TeamCreate(TeamFlags):
    organization: str
    name: str
    role: Role


class TeamUpdate(TeamFlags):
    name: str | None = None
    role: Role | None = None


def _check_name(name: str) -> None:
    check_text(name, "name", max_length=255, required=True)
    if name != name.strip():
        raise ValidationFailed("name", "name must not start or end with whitespace")


def _apply_role(team: Team, role: Role, flags: dict[str, bool]) -> None:
    """A preset role fixes every flag; only CUSTOM takes flags from the caller."""
    if role is not Role.custom:
        if flags:
            raise ValidationFailed(
                "role", f"permission flags can only be set with role CUSTOM (role is {role.value})"
            )
        team.role = role.value
        granted = team_permissions(team)
        for flag in FLAG_FIELDS:
            setattr(team, flag, Permission(flag) in granted)
        return
    team.role = role.value
    for flag, value in flags.items():
        setattr(team, flag, value)


async def create_team(platform: Platform, actor: Actor, data: TeamCreate) -> Team:
    _check_name(data.name)
    conflict = f"a team named {data.name!r} already exists in {data.organization!r}"
    async with unit_of_work(platform, conflict) as session:
        org = await organization_named(session, data.organization)
        if org is None or not (await actor.access(session, org.id)).visible:
            raise NotFound(f"organization {data.organization!r} not found")
        actor.require_admin("manage teams")
        await ensure_name_free(session, Team, org.id, data.name, None, conflict)
        team = Team(organization_id=org.id, name=data.name, role=data.role.value)
        _apply_role(team, data.role, data.given())
        session.add(team)
    return team


async def update_team(platform: Platform, actor: Actor, team_id: uuid.UUID, data: TeamUpdate) -> Team:
    if data.name is not None:
        _check_name(data.name)
    conflict = f"a team named {data.name!r} already exists in this organization"
    async with unit_of_work(platform, conflict) as session:
        team = await _visible_team(session, actor, team_id, lock=True)
        actor.require_admin("manage teams")
        await ensure_name_free(session, Team, team.organization_id, data.name, team.name, conflict)
        if data.name is not None:
            team.name = data.name
        role = data.role or Role(team.role)
        flags = data.given()
        if data.role is not None or flags:
            if role is Role.custom and data.role is Role.custom and Role(team.role) is not Role.custom:
                # Switching to CUSTOM starts from the current preset's grants.
                flags = {**{f: getattr(team, f) for f in FLAG_FIELDS}, **flags}
            _apply_role(team, role, flags)
        team.updated_at = utcnow()
        session.add(team)
    return team


async def delete_team(platform: Platform, actor: Actor, team_id: uuid.UUID) -> uuid.UUID:
    async with unit_of_work(platform, "team is in use") as session:
        team = await _visible_team(session, actor, team_id)
        actor.require_admin("manage teams")
        await session.delete(team)
    return team_id


async def teams_by_organization(
    platform: Platform, org_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Team]]:
    """Batch load for already-authorized organizations (one statement for any number)."""
    return await children_by_parent(platform, Team, Team.organization_id, org_ids, Team.name)


async def _visible_team(session, actor: Actor, team_id: uuid.UUID, lock: bool = False) -> Team:  # type: ignore[no-untyped-def]
    team = await session.get(Team, team_id, with_for_update=lock)
    if team is None or not (await actor.access(session, team.organization_id)).visible:
        raise NotFound("team not found")
    return team

