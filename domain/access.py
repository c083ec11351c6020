"""Authorization: every service asks the acting ``Actor`` before it reads or writes."""

from __future__ import annotations

import uuid

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.access_cache import ACCESS_KEY, AccessCache
from domain.errors import NotFound, PermissionDenied
from domain.models import Team
from domain.principal import (
    JOB_PERMISSIONS,
    NO_ACCESS,
    ROLE_PRESETS,
    SUPERUSER_ACCESS,
    OrganizationAccess,
    Permission,
    Principal,
    Role,
)


def team_permissions(team: Team) -> frozenset[Permission]:
    role = Role(team.role)
    if role is not Role.custom:
        return ROLE_PRESETS[role]
    return frozenset(p for p in Permission if getattr(team, p.value))


class Actor:
    """The principal of one request plus a per-request cache of its organization access
    (and the process's ``shared`` one, which outlives the request)."""

    def __init__(self, principal: Principal, shared: AccessCache | None = None) -> None:
        self.principal = principal
        self.shared = shared
        self._access: dict[uuid.UUID, OrganizationAccess] = {}

    @property
    def is_admin(self) -> bool:
        return self.principal.is_admin

    @property
    def name(self) -> str:
        return self.principal.name

    def known_access(self, organization_id: uuid.UUID) -> OrganizationAccess | None:
        """The access when it needs no database read; None when it does."""
        if self.principal.is_admin:
            return SUPERUSER_ACCESS
        if self.principal.job is not None:
            own = str(organization_id) == self.principal.job.organization_id
            return OrganizationAccess(visible=own, permissions=JOB_PERMISSIONS if own else frozenset())
        if not self.principal.groups:
            return NO_ACCESS
        if self.principal.team is not None and str(organization_id) != self.principal.team.organization_id:
            return NO_ACCESS
        known = self._access.get(organization_id)
        if known is None and self.shared is not None:
            known = self.shared.access(self.principal.groups, organization_id)
        return known

    async def access(self, session: AsyncSession, organization_id: uuid.UUID) -> OrganizationAccess:
        known = self.known_access(organization_id)
        if known is not None:
            return known
        generation = self.shared.generation if self.shared is not None else 0
        teams = (
            await session.exec(
                select(Team).where(Team.organization_id == organization_id, col(Team.name).in_(self.principal.groups))
            )
        ).all()
        access = NO_ACCESS
        if teams:
            granted: frozenset[Permission] = frozenset().union(*(team_permissions(t) for t in teams))
            access = OrganizationAccess(visible=True, permissions=granted)
        self._access[organization_id] = access
        # Not shared when this very transaction changed access: it may still roll back.
        if self.shared is not None and not session.sync_session.info.get(ACCESS_KEY):
            self.shared.keep_access(self.principal.groups, organization_id, access, generation)
        return access

    async def require_visible(
        self, session: AsyncSession, organization_id: uuid.UUID, what: str
    ) -> OrganizationAccess:
        """Invisible things are reported as missing, so their existence does not leak."""
        access = await self.access(session, organization_id)
        if not access.visible:
            raise NotFound(f"{what} not found")
        return access

    async def require(
        self, session: AsyncSession, organization_id: uuid.UUID, permission: Permission, what: str
    ) -> None:
        access = await self.require_visible(session, organization_id, what)
        if not access.allows(permission):
            raise PermissionDenied(f"the permission {permission_label(permission)} is required")

    async def require_in_workspace(
        self,
        session: AsyncSession,
        organization_id: uuid.UUID,
        workspace_id: uuid.UUID,
        permission: Permission,
        what: str,
    ) -> None:
        """Like ``require``; a job token is further held to its own job's workspace."""
        await self.require(session, organization_id, permission, what)
        if self.principal.job is not None and str(workspace_id) != self.principal.job.workspace_id:
            raise PermissionDenied("a job token may only act on its own workspace")

    def require_admin(self, action: str) -> None:
        if not self.principal.is_admin:
            raise PermissionDenied(f"only members of the admin group may {action}")


def permission_label(permission: Permission) -> str:
    head, *rest = permission.value.split("_")
    return head + "".join(part.capitalize() for part in rest)
