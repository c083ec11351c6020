from __future__ import annotations

import uuid

from domain.models import Workspace
from domain.pagination import Page, PageRequest
from domain.services import workspaces as service
from graph.resolvers.context import Context, parse_id


async def workspace(ctx: Context, organization: str, name: str) -> Workspace | None:
    return await service.get_workspace(ctx.platform, ctx.actor, organization, name)


async def page_for_organization(
    ctx: Context, org_id: uuid.UUID, first: int, after: str | None, name_contains: str | None
) -> Page[Workspace]:
    return await service.list_workspaces(ctx.platform, org_id, PageRequest(first, after), name_contains)


async def create(ctx: Context, data: service.WorkspaceCreate) -> Workspace:
    return await service.create_workspace(ctx.platform, ctx.actor, data)


async def update(ctx: Context, workspace_id: str, data: service.WorkspaceUpdate) -> Workspace:
    return await service.update_workspace(ctx.platform, ctx.actor, parse_id(workspace_id), data)


async def delete(ctx: Context, workspace_id: str) -> str:
    return str(await service.delete_workspace(ctx.platform, ctx.actor, parse_id(workspace_id)))


async def lock(ctx: Context, workspace_id: str, reason: str) -> Workspace:
    return await service.lock_workspace(ctx.platform, ctx.actor, parse_id(workspace_id), reason)


async def unlock(ctx: Context, workspace_id: str, reason: str) -> Workspace:
    return await service.unlock_workspace(ctx.platform, ctx.actor, parse_id(workspace_id), reason)
