from __future__ import annotations

from domain.models import AccessToken
from domain.services import access_tokens as service
from graph.resolvers.context import Context, parse_id


async def access_tokens(ctx: Context) -> list[AccessToken]:
    return await service.list_access_tokens(ctx.platform, ctx.actor)


async def create(ctx: Context, description: str, days: int) -> service.NewToken:
    return await service.create_access_token(ctx.platform, ctx.actor, description, days)


async def revoke(ctx: Context, token_id: str) -> AccessToken:
    return await service.revoke_access_token(ctx.platform, ctx.actor, parse_id(token_id))


async def create_for_team(ctx: Context, team_id: str, description: str, days: int) -> service.NewToken:
    return await service.create_team_token(ctx.platform, ctx.actor, parse_id(team_id), description, days)


async def team_tokens(ctx: Context, team_id: str) -> list[AccessToken]:
    return await service.list_team_tokens(ctx.platform, ctx.actor, parse_id(team_id))
