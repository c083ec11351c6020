"""Lookups every service repeats: by name within an organization, and batch loads by parent."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.access import Actor
from domain.errors import Conflict, NotFound
from domain.models import Organization
from domain.services import Platform, reading

M = TypeVar("M")


async def organization_named(session: AsyncSession, name: str) -> Organization | None:
    return (await session.exec(select(Organization).where(Organization.name == name))).first()


async def named_in_organization(
    session: AsyncSession, model: type[M], organization_id: uuid.UUID, name: str
) -> M | None:
    query = select(model).where(
        model.organization_id == organization_id,  # type: ignore[attr-defined]
        model.name == name,  # type: ignore[attr-defined]
    )
    return (await session.exec(query)).first()


async def ensure_name_free(
    session: AsyncSession, model: type[Any], organization_id: uuid.UUID, name: str | None, current: str | None, conflict: str
) -> None:
    """Refuse a create or rename onto a name another row of the organization already has."""
    if name is None or name == current:
        return
    if await named_in_organization(session, model, organization_id, name) is not None:
        raise Conflict(conflict)


async def children_by_parent(
    platform: Platform, model: type[M], parent_column: Any, parent_ids: Sequence[uuid.UUID], *order_by: Any
) -> dict[uuid.UUID, list[M]]:
    """One statement for any number of parents (the DataLoaders' batch function).

    The rows are read-only snapshots with the model's attributes, not ORM instances: building
    hundreds of tracked instances was a large share of a big list query's time."""
    columns = model.__table__.columns  # type: ignore[attr-defined]
    query = sa_select(*columns).where(col(parent_column).in_(list(parent_ids))).order_by(*order_by)
    async with reading(platform) as session:
        rows = (await session.exec(query)).all()  # type: ignore[call-overload]
    grouped: dict[uuid.UUID, list[M]] = {i: [] for i in parent_ids}
    key = parent_column.key
    for row in rows:
        grouped[getattr(row, key)].append(row)
    return grouped


async def require_reader(platform: Platform, actor: Actor, organization_id: uuid.UUID, what: str) -> None:
    """Reading the registry needs only to see the organization (any team of it, or its job token).
    Invisible means not found, so names do not leak. No session is opened when the answer is known."""
    access = actor.known_access(organization_id)
    if access is None:
        async with reading(platform) as session:
            access = await actor.access(session, organization_id)
    if not access.visible:
        raise NotFound(f"{what} not found")
