"""Templates: an organization's named flows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlmodel import SQLModel

from domain.access import Actor
from domain.errors import NotFound
from domain.models import Template
from domain.models.types import utcnow
from domain.principal import Permission
from domain.services import Platform, unit_of_work
from domain.services.lookups import (
    children_by_parent,
    ensure_name_free,
    organization_named,
)
from domain.tcl import check_tcl
from domain.validation import check_text


class TemplateCreate(SQLModel):
    organization: str
    name: str
    description: str = ""
    tcl: str


class TemplateUpdate(SQLModel):
    name: str | None = None
    description: str | None = None
    tcl: str | None = None


def _check(data: TemplateCreate | TemplateUpdate) -> None:
    if data.name is not None:
        check_text(data.name, "name", max_length=128, required=True)
    if data.description is not None:
        check_text(data.description, "description", max_length=1024)
    if data.tcl is not None:
        check_tcl(data.tcl)


async def create_template(platform: Platform, actor: Actor, data: TemplateCreate) -> Template:
    _check(data)
    conflict = f"a template named {data.name!r} already exists in {data.organization!r}"
    async with unit_of_work(platform, conflict) as session:
        org = await organization_named(session, data.organization)
        if org is None:
            raise NotFound(f"organization {data.organization!r} not found")
        await actor.require(session, org.id, Permission.manage_template, f"organization {data.organization!r}")
        await ensure_name_free(session, Template, org.id, data.name, None, conflict)
        template = Template(organization_id=org.id, name=data.name, description=data.description, tcl=data.tcl)
        session.add(template)
    return template


async def update_template(
    platform: Platform, actor: Actor, template_id: uuid.UUID, data: TemplateUpdate
) -> Template:
    _check(data)
    conflict = f"a template named {data.name!r} already exists in this organization"
    async with unit_of_work(platform, conflict) as session:
        template = await _editable(session, actor, template_id)
        await ensure_name_free(session, Template, template.organization_id, data.name, template.name, conflict)
        for field, value in data.model_dump(exclude_none=True).items():
            setattr(template, field, value)
        template.updated_at = utcnow()
        session.add(template)
    return template


async def delete_template(platform: Platform, actor: Actor, template_id: uuid.UUID) -> uuid.UUID:
    async with unit_of_work(platform, "template is in use") as session:
        template = await _editable(session, actor, template_id)
        await session.delete(template)
    return template_id


async def templates_by_organization(
    platform: Platform, org_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Template]]:
    return await children_by_parent(platform, Template, Template.organization_id, org_ids, Template.name)


async def _editable(session, actor: Actor, template_id: uuid.UUID) -> Template:  # type: ignore[no-untyped-def]
    template = await session.get(Template, template_id, with_for_update=True)
    if template is None:
        raise NotFound("template not found")
    await actor.require(session, template.organization_id, Permission.manage_template, "template")
    return template

