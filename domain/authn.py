"""Authentication: a bearer token becomes a ``Principal`` or ``Unauthenticated``.

Two kinds of token are accepted, told apart by their issuer, and each is verified only with
its own algorithms, so one kind's key can never be used to forge the other (an HS256 token
signed with the OIDC public key is refused because OIDC accepts RS256/ES256 only).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from jose import jwt
from jose.exceptions import JOSEError
from sqlmodel import select

from domain.access_cache import token_digest
from domain.errors import Unauthenticated
from domain.jobs import is_terminal
from domain.models import Job, Step
from domain.principal import JobScope, Principal, PrincipalKind, TeamScope
from domain.services import Platform
from domain.services.access_tokens import find_active_token
from domain.tokens import JOB_TOKEN_TYPE, PLATFORM_ISSUER, InvalidPlatformToken

OIDC_ALGORITHMS = frozenset({"RS256", "ES256"})



class KeySource(Protocol):
    """Finds the issuer's public key (a JWK dict) for a key id, refreshing when it is unknown."""

    async def key_for(self, kid: str | None, alg: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    audience: str
    groups_claim: str = "groups"


class Authenticator:
    def __init__(self, platform: Platform, oidc: OidcConfig | None = None, keys: KeySource | None = None) -> None:
        self.platform = platform
        self.oidc = oidc
        self.keys = keys

    async def authenticate(self, token: str) -> Principal:
        """The token's principal; answered from the process's access cache when it knows it."""
        cache = self.platform.access_cache
        if cache is None or not cache.enabled:
            return (await self._verify(token))[0]
        digest = token_digest(token)
        known = cache.principal(digest)
        if known is not None:
            return known
        generation = cache.generation
        principal, expires_at = await self._verify(token)
        if expires_at is not None:
            cache.keep_principal(digest, principal, expires_at, generation)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float | None]:
        """The principal and until when it may be remembered (epoch seconds; None = never)."""
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.get_unverified_claims(token)
        except JOSEError:
            raise Unauthenticated("the bearer token is not a JWT") from None
        issuer = claims.get("iss")
        if issuer == PLATFORM_ISSUER:
            return await self._platform_token(token)
        if self.oidc is not None and issuer == self.oidc.issuer:
            return await self._oidc_token(token, header)
        raise Unauthenticated("the token's issuer is not trusted")

    async def _platform_token(self, token: str) -> tuple[Principal, float | None]:
        try:
            claims = self.platform.signer.verify(token)
            token_id = uuid.UUID(claims["jti"])
        except (InvalidPlatformToken, ValueError, KeyError):
            raise Unauthenticated("the access token is invalid or expired") from None
        if claims.get("typ") == JOB_TOKEN_TYPE:
            # Never remembered: a job token dies with its job's last step, which no cache hears.
            return await self._job_token(token_id, claims), None
        active = await find_active_token(self.platform, token_id)
        if active is None:
            raise Unauthenticated("the access token is revoked or expired")
        row = active.row
        if active.team is not None:
            team = active.team
            return Principal(
                name=f"team {team.name}",
                subject=row.owner,
                groups=frozenset({team.name}),  # the team's current name: renames apply at once
                kind=PrincipalKind.team_token,
                is_admin=False,  # whatever the team is called
                token_id=str(row.id),
                team=TeamScope(organization_id=str(team.organization_id), team_id=str(team.id)),
            ), row.expires_at.timestamp()
        groups = frozenset(row.groups)
        return Principal(
            name=row.name or row.owner,
            subject=row.owner,
            email=row.email,
            groups=groups,
            kind=PrincipalKind.personal_token,
            is_admin=self.platform.admin_group in groups,
            token_id=str(row.id),
        ), row.expires_at.timestamp()

    async def _job_token(self, job_id: uuid.UUID, claims: dict[str, Any]) -> Principal:
        """Valid while its job has not ended, so a leaked job token dies with the job."""
        async with self.platform.db.session() as session:
            job = await session.get(Job, job_id)
            # A cancelled job's terraform may still be saving its state after SIGINT: the
            # token lives until its last step has stopped, so no state write is ever lost.
            still_running = job is not None and is_terminal(job.status) and (
                await session.exec(select(Step.id).where(Step.job_id == job.id, Step.status == "running"))
            ).first() is not None
        if job is None or str(job.workspace_id) != claims.get("ws"):
            raise Unauthenticated("the job token is no longer valid")
        if is_terminal(job.status) and not still_running:
            raise Unauthenticated("the job token is no longer valid")
        return Principal(
            name=f"job {job_id}",
            subject=f"job:{job_id}",
            groups=frozenset(),
            kind=PrincipalKind.job,
            job=JobScope(
                organization_id=str(job.organization_id), workspace_id=str(job.workspace_id), job_id=str(job_id)
            ),
        )

    async def _oidc_token(self, token: str, header: dict[str, Any]) -> tuple[Principal, float | None]:
        assert self.oidc is not None
        alg = header.get("alg")
        if alg not in OIDC_ALGORITHMS:
            raise Unauthenticated(f"tokens signed with {alg!r} are not accepted")
        if self.keys is None:
            raise Unauthenticated("no signing keys are configured for the issuer")
        key = await self.keys.key_for(header.get("kid"), alg)
        if key is None:
            raise Unauthenticated("the token's signing key is not published by the issuer")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.oidc.audience,
                issuer=self.oidc.issuer,
                options={"require_exp": True, "require_iat": False, "leeway": 30},
            )
        except JOSEError as exc:
            raise Unauthenticated(f"the token was refused: {exc}") from None
        principal = principal_from_claims(claims, self.oidc.groups_claim, self.platform.admin_group)
        return principal, float(claims["exp"])


def principal_from_claims(claims: dict[str, Any], groups_claim: str, admin_group: str) -> Principal:
    raw_groups = claims.get(groups_claim) or []
    if isinstance(raw_groups, str):
        raw_groups = [raw_groups]
    groups = frozenset(str(g) for g in raw_groups)
    # `sub` is the issuer's stable id for the account; an email can be reassigned.
    sub = str(claims.get("sub") or "")
    if not sub:
        raise Unauthenticated("the token names no subject")
    subject = f"oidc:{sub}"
    return Principal(
        name=str(claims.get("name") or claims.get("preferred_username") or claims.get("email") or sub),
        subject=subject,
        email=claims.get("email"),
        groups=groups,
        kind=PrincipalKind.user,
        is_admin=admin_group in groups,
    )
