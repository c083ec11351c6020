from __future__ import annotations

from domain.models import Organization
from domain.pagination import Page, PageRequest
from domain.services import organizations as service
from graph.resolvers.context import Context, parse_id


async def organizations(ctx: Context, first: int, after: str | None) -> Page[Organization]:
    return await service.list_organizations(ctx.platform, ctx.actor, PageRequest(first, after))


async def organization(ctx: Context, name: str) -> Organization | None:
    return await service.get_organization(ctx.platform, ctx.actor, name)


async def create(ctx: Context, data: service.OrganizationCreate) -> Organization:
    return await service.create_organization(ctx.platform, ctx.actor, data)


async def update(ctx: Context, org_id: str, data: service.OrganizationUpdate) -> Organization:
    return await service.update_organization(ctx.platform, ctx.actor, parse_id(org_id), data)


async def delete(ctx: Context, org_id: str) -> str:
    return str(await service.delete_organization(ctx.platform, ctx.actor, parse_id(org_id)))
