"""Personal access tokens: JWTs whose ``jti`` is a row here, so revocation is immediate."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import select

from domain.access import Actor
from domain.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from domain.models import AccessToken
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


async def create_access_token(platform: Platform, actor: Actor, description: str, days: int) -> NewToken:
    if actor.principal.kind is PrincipalKind.job:
        raise PermissionDenied("a job token cannot create access tokens")
    check_text(description, "description", max_length=1024)
    if not 1 <= days <= platform.access_token_max_days:
        raise ValidationFailed("days", f"days must be between 1 and {platform.access_token_max_days}")
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
        if row.owner != actor.principal.subject and not actor.is_admin:
            raise PermissionDenied("only the owner of a token or an admin may revoke it")
        if row.revoked_at is not None:
            raise Conflict("access token is already revoked")
        row.revoked_at = utcnow()
        session.add(row)
    return row


async def find_active_token(platform: Platform, token_id: uuid.UUID) -> AccessToken | None:
    async with reading(platform) as session:
        row = await session.get(AccessToken, token_id)
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        return None
    return row
