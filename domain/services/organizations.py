"""Organizations: created, renamed and deleted by the admin group; seen by their teams."""

from __future__ import annotations

import uuid

from sqlmodel import SQLModel, col, select

from domain.access import Actor
from domain.default_templates import DEFAULT_TEMPLATES
from domain.errors import Conflict, NotFound
from domain.models import (
    ConfigurationVersion,
    Job,
    Module,
    ModuleVersion,
    Organization,
    Provider,
    ProviderPlatform,
    ProviderVersion,
    StateVersion,
    Step,
    Team,
    Template,
    Workspace,
)
from domain.models.types import utcnow
from domain.pagination import Page, PageRequest, paginate_by_name
from domain.services import Platform, reading, unit_of_work
from domain.services.lookups import organization_named
from domain.services.orphans import Owned, delete_unrecorded, keys_outside
from domain.validation import check_name, check_text
from storage.keys import organization_prefixes


class OrganizationCreate(SQLModel):
    name: str
    description: str = ""


class OrganizationUpdate(SQLModel):
    name: str | None = None
    description: str | None = None


def _check(name: str | None, description: str | None) -> None:
    if name is not None:
        check_name(name, "name", "organization name")
    if description is not None:
        check_text(description, "description", max_length=1024)


async def create_organization(platform: Platform, actor: Actor, data: OrganizationCreate) -> Organization:
    actor.require_admin("create organizations")
    _check(data.name, data.description)
    conflict = f"an organization named {data.name!r} already exists"
    async with unit_of_work(platform, conflict) as session:
        if await organization_named(session, data.name) is not None:
            raise Conflict(conflict)
        org = Organization(name=data.name, description=data.description)
        session.add(org)
        await session.flush()
        # Like Terrakube, every organization starts with the standard flows (the CLI ones included).
        session.add_all(
            Template(organization_id=org.id, name=name, description=description, tcl=tcl)
            for name, description, tcl in DEFAULT_TEMPLATES
        )
    return org


async def update_organization(
    platform: Platform, actor: Actor, org_id: uuid.UUID, data: OrganizationUpdate
) -> Organization:
    actor.require_admin("change organizations")
    _check(data.name, data.description)
    conflict = f"an organization named {data.name!r} already exists"
    async with unit_of_work(platform, conflict) as session:
        org = await session.get(Organization, org_id, with_for_update=True)
        if org is None:
            raise NotFound("organization not found")
        if data.name is not None and data.name != org.name:
            if await organization_named(session, data.name) is not None:
                raise Conflict(conflict)
            org.name = data.name
        if data.description is not None:
            org.description = data.description
        org.updated_at = utcnow()
        session.add(org)
    return org


async def delete_organization(platform: Platform, actor: Actor, org_id: uuid.UUID) -> uuid.UUID:
    actor.require_admin("delete organizations")
    async with unit_of_work(platform, "organization is in use") as session:
        org = await session.get(Organization, org_id)
        if org is None:
            raise NotFound("organization not found")
        prefixes = organization_prefixes(org.name)
        renamed = await keys_outside(session, ORGANIZATION_KEYS, org.id, prefixes)
        await session.delete(org)
    # Objects go after their rows: a failure here leaves orphans (removed by the orphan sweep),
    # never a row pointing at nothing; it is logged, and the deletion stands.
    successor = select(Organization.id).where(Organization.name == org.name)
    await delete_unrecorded(platform, prefixes, renamed, successor)
    return org_id


# Where an organization's objects are named: (key column, tables leading to the organization, its column).
ORGANIZATION_KEYS = (
    Owned(StateVersion.blob_key, (Workspace,), Workspace.organization_id),
    Owned(ConfigurationVersion.blob_key, (Workspace,), Workspace.organization_id),
    Owned(Step.log_key, (Job,), Job.organization_id),
    Owned(Step.plan_key, (Job,), Job.organization_id),
    Owned(ModuleVersion.archive_key, (Module,), Module.organization_id),
    Owned(ProviderVersion.shasums_key, (Provider,), Provider.organization_id),
    Owned(ProviderVersion.signature_key, (Provider,), Provider.organization_id),
    Owned(ProviderPlatform.blob_key, (ProviderVersion, Provider), Provider.organization_id),
)


async def get_organization(platform: Platform, actor: Actor, name: str) -> Organization | None:
    """``None`` both when it does not exist and when the caller may not see it."""
    async with reading(platform) as session:
        org = await organization_named(session, name)
        if org is None or not (await actor.access(session, org.id)).visible:
            return None
        return org


async def get_organization_by_id(platform: Platform, actor: Actor, org_id: uuid.UUID) -> Organization:
    async with reading(platform) as session:
        org = await session.get(Organization, org_id)
        if org is None:
            raise NotFound("organization not found")
        await actor.require_visible(session, org.id, "organization")
        return org


async def list_organizations(platform: Platform, actor: Actor, page: PageRequest) -> Page[Organization]:
    query = select(Organization)
    if not actor.is_admin:
        visible = select(Team.organization_id).where(col(Team.name).in_(list(actor.principal.groups)))
        query = query.where(col(Organization.id).in_(visible))
    async with reading(platform) as session:
        return await paginate_by_name(session, query, Organization.name, Organization.id, page)

