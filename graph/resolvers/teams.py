from __future__ import annotations

from domain.models import Team
from domain.services import teams as service
from graph.resolvers.context import Context, parse_id


async def create(ctx: Context, data: service.TeamCreate) -> Team:
    return await service.create_team(ctx.platform, ctx.actor, data)


async def update(ctx: Context, team_id: str, data: service.TeamUpdate) -> Team:
    return await service.update_team(ctx.platform, ctx.actor, parse_id(team_id), data)


async def delete(ctx: Context, team_id: str) -> str:
    return str(await service.delete_team(ctx.platform, ctx.actor, parse_id(team_id)))
