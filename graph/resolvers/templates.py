from __future__ import annotations

from domain.models import Template
from domain.services import templates as service
from graph.resolvers.context import Context, parse_id


async def create(ctx: Context, data: service.TemplateCreate) -> Template:
    return await service.create_template(ctx.platform, ctx.actor, data)


async def update(ctx: Context, template_id: str, data: service.TemplateUpdate) -> Template:
    return await service.update_template(ctx.platform, ctx.actor, parse_id(template_id), data)


async def delete(ctx: Context, template_id: str) -> str:
    return str(await service.delete_template(ctx.platform, ctx.actor, parse_id(template_id)))
