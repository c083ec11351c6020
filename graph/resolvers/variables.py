from __future__ import annotations

from domain.models import Variable
from domain.services import variables as service
from graph.resolvers.context import Context, parse_id


async def create(ctx: Context, data: service.VariableCreate) -> Variable:
    return await service.create_variable(ctx.platform, ctx.actor, data)


async def update(ctx: Context, variable_id: str, data: service.VariableUpdate) -> Variable:
    return await service.update_variable(ctx.platform, ctx.actor, parse_id(variable_id), data)


async def delete(ctx: Context, variable_id: str) -> str:
    return str(await service.delete_variable(ctx.platform, ctx.actor, parse_id(variable_id)))
