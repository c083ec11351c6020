"""Personal and team access tokens: JWTs whose ``jti`` is a row here, so revocation is immediate.

A team token acts as its team in the team's organization (CI pipelines, `terraform init` against
the registry), not as the person who made it; it is made, listed and revoked by the team's members
and by admins, and it is deleted with its team."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.access import Actor
from domain.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from domain.models import AccessToken, Team
from domain.models.types import utcnow
from domain.principal import PrincipalKind
from domain.services import Platform, reading, unit_of_work
from domain.validation import check_text

# Subjects of the platform's own principals live in their own namespace ("terrakube:"),
# and OIDC subjects in theirs ("oidc:"), so no identity-provider account can own them.
ADMIN_SUBJECT = "terrakube:admin"


@dataclass(frozen=True)
class NewToken:
    secret: str
    token: AccessToken


def _check_new_token(platform: Platform, actor: Actor, description: str, days: int) -> None:
    # A token cannot mint tokens that outlive or outreach it (a job or team token would become a
    # person's groups in every organization).
    if actor.principal.kind in (PrincipalKind.job, PrincipalKind.team_token):
        raise PermissionDenied(f"a {actor.principal.kind.value.replace('_', ' ')} cannot create access tokens")
    check_text(description, "description", max_length=1024)
    if not 1 <= days <= platform.access_token_max_days:
        raise ValidationFailed("days", f"days must be between 1 and {platform.access_token_max_days}")


async def create_access_token(platform: Platform, actor: Actor, description: str, days: int) -> NewToken:
    _check_new_token(platform, actor, description, days)
    return await issue_token(
        platform,
        owner=actor.principal.subject,
        name=actor.principal.name,
        email=actor.principal.email,
        groups=sorted(actor.principal.groups),
        description=description,
        days=days,
        kind="personal",
    )


async def issue_admin_token(platform: Platform, days: int = 3650) -> NewToken:
    """The first token of an installation (``terrakube up``), a member of the admin group."""
    return await issue_token(
        platform,
        owner=ADMIN_SUBJECT,
        name="admin",
        email=None,
        groups=[platform.admin_group],
        description="created by terrakube up",
        days=days,
        kind="admin",
    )


async def issue_token(
    platform: Platform,
    *,
    owner: str,
    email: str | None,
    name: str | None = None,
    groups: list[str],
    description: str,
    days: int,
    kind: str,
    team_id: uuid.UUID | None = None,
) -> NewToken:
    now = utcnow()
    row = AccessToken(
        kind=kind,
        description=description,
        owner=owner,
        name=name or owner,
        email=email,
        groups=groups,
        created_at=now,
        expires_at=now + timedelta(days=days),
        team_id=team_id,
    )
    async with unit_of_work(platform, "token id clash") as session:
        session.add(row)
    secret = platform.signer.sign(
        token_id=row.id, subject=owner, kind=kind, issued_at=now, expires_at=row.expires_at
    )
    return NewToken(secret=secret, token=row)


async def list_access_tokens(platform: Platform, actor: Actor) -> list[AccessToken]:
    """The caller's own tokens that are not revoked, newest first."""
    async with reading(platform) as session:
        rows = await session.exec(
            select(AccessToken)
            .where(AccessToken.owner == actor.principal.subject, AccessToken.revoked_at == None)  # noqa: E711
            .order_by(AccessToken.created_at.desc())  # type: ignore[attr-defined]
        )
        return list(rows.all())


async def revoke_access_token(platform: Platform, actor: Actor, token_id: uuid.UUID) -> AccessToken:
    async with unit_of_work(platform, "token changed concurrently") as session:
        row = await session.get(AccessToken, token_id, with_for_update=True)
        if row is None:
            raise NotFound("access token not found")
        team = await session.get(Team, row.team_id) if row.team_id is not None else None
        if team is not None:
            await _require_team_keeper(session, actor, team)
        elif row.owner != actor.principal.subject and not actor.is_admin:
            raise PermissionDenied("only the owner of a token or an admin may revoke it")
        if row.revoked_at is not None:
            raise Conflict("access token is already revoked")
        row.revoked_at = utcnow()
        session.add(row)
    return row


@dataclass(frozen=True)
class ActiveToken:
    row: AccessToken
    team: Team | None  # the team a team token acts as


async def find_active_token(platform: Platform, token_id: uuid.UUID) -> ActiveToken | None:
    async with reading(platform) as session:
        row = await session.get(AccessToken, token_id)
        if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
            return None
        if row.team_id is None:
            return ActiveToken(row, None)
        team = await session.get(Team, row.team_id)
    return ActiveToken(row, team) if team is not None else None


# -- team tokens ---------------------------------------------------------------------------------


async def _require_team_keeper(session: AsyncSession, actor: Actor, team: Team) -> None:
    """Team tokens are kept by the team's own members and by admins. Invisible teams are missing."""
    await actor.require_visible(session, team.organization_id, "team")
    person = actor.principal.kind in (PrincipalKind.user, PrincipalKind.personal_token)
    if not actor.is_admin and not (person and team.name in actor.principal.groups):
        raise PermissionDenied(f"only members of the team {team.name!r} or admins may manage its tokens")


async def _team(session: AsyncSession, actor: Actor, team_id: uuid.UUID) -> Team:
    team = await session.get(Team, team_id)
    if team is None:
        raise NotFound("team not found")
    await _require_team_keeper(session, actor, team)
    return team


async def create_team_token(
    platform: Platform, actor: Actor, team_id: uuid.UUID, description: str, days: int
) -> NewToken:
    _check_new_token(platform, actor, description, days)
    async with reading(platform) as session:
        team = await _team(session, actor, team_id)
    return await issue_token(
        platform,
        owner=f"terrakube:team:{team.id}",
        name=f"team {team.name}",
        email=None,
        groups=[team.name],
        description=description,
        days=days,
        kind="team",
        team_id=team.id,
    )


async def list_team_tokens(platform: Platform, actor: Actor, team_id: uuid.UUID) -> list[AccessToken]:
    """The team's tokens that are not revoked, newest first."""
    async with reading(platform) as session:
        await _team(session, actor, team_id)
        rows = await session.exec(
            select(AccessToken)
            .where(AccessToken.team_id == team_id, AccessToken.revoked_at == None)  # noqa: E711
            .order_by(AccessToken.created_at.desc())  # type: ignore[attr-defined]
        )
        return list(rows.all())
