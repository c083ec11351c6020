from __future__ import annotations

import uuid

from domain.models import StateOutput, StateVersion, Workspace
from domain.pagination import Page, PageRequest
from domain.services import state as service
from graph.resolvers.context import Context, parse_id


async def page_for_workspace(ctx: Context, workspace_id: uuid.UUID, first: int, after: str | None) -> Page[StateVersion]:
    return await service.list_state_versions(ctx.platform, workspace_id, PageRequest(first, after))


async def output_history(
    ctx: Context, workspace_id: uuid.UUID, name: str, first: int
) -> list[tuple[StateVersion, StateOutput]]:
    return await service.output_history(ctx.platform, workspace_id, name, first)


async def force_unlock(ctx: Context, workspace_id: str) -> Workspace:
    return await service.force_unlock_state(ctx.platform, ctx.actor, parse_id(workspace_id))


async def rollback(ctx: Context, state_version_id: str) -> StateVersion:
    return await service.rollback_state(ctx.platform, ctx.actor, parse_id(state_version_id, "stateVersionId"))
