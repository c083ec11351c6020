"""Workspaces: Terraform code location, settings and the manual lock."""

from __future__ import annotations

import re
import uuid
from enum import StrEnum

from sqlalchemy import func
from sqlmodel import SQLModel, col, select

from domain.access import Actor
from domain.errors import Conflict, NotFound, ValidationFailed
from domain.git import check_git_source
from domain.models import ConfigurationVersion, Job, Organization, StateVersion, Step, Workspace
from domain.models.types import utcnow
from domain.pagination import Page, PageRequest, paginate_by_name
from domain.principal import Permission
from domain.services import Platform, reading, unit_of_work
from domain.services.lookups import ensure_name_free, organization_named
from domain.services.orphans import Owned, delete_unrecorded, keys_outside
from domain.validation import check_name, check_semver, check_text
from storage.keys import job_log_prefix, workspace_prefixes

DEFAULT_TERRAFORM_VERSION = "1.11.4"
BAD_REF_RE = re.compile(r"(\.\.|[\s~^:?*\[\\]|@\{|^/|/$|^-)")


class ExecutionMode(StrEnum):
    remote = "remote"
    local = "local"


class WorkspaceCreate(SQLModel):
    organization: str
    name: str
    description: str = ""
    source: str | None = None
    branch: str = "main"
    folder: str = "/"
    terraform_version: str = DEFAULT_TERRAFORM_VERSION
    execution_mode: ExecutionMode = ExecutionMode.remote


class WorkspaceUpdate(SQLModel):
    """``None`` leaves a field unchanged; an empty ``source`` removes the git source."""

    name: str | None = None
    description: str | None = None
    source: str | None = None
    branch: str | None = None
    folder: str | None = None
    terraform_version: str | None = None
    execution_mode: ExecutionMode | None = None


def _check(data: WorkspaceCreate | WorkspaceUpdate, allow_file_sources: bool) -> None:
    if data.name is not None:
        check_name(data.name, "name", "workspace name")
    if data.description is not None:
        check_text(data.description, "description", max_length=1024)
    if data.source:
        check_text(data.source, "source", max_length=2048)
        check_git_source(data.source, allow_file=allow_file_sources)
    if data.branch is not None:
        check_text(data.branch, "branch", max_length=255, required=True)
        if BAD_REF_RE.search(data.branch):
            raise ValidationFailed("branch", f"branch {data.branch[:100]!r} is not a valid git ref name")
    if data.folder is not None:
        check_text(data.folder, "folder", max_length=1024, required=True)
        if ".." in data.folder.split("/") or "\\" in data.folder:
            raise ValidationFailed("folder", "folder must stay inside the repository (no '..')")
    if data.terraform_version is not None:
        check_semver(data.terraform_version, "terraformVersion")


async def create_workspace(platform: Platform, actor: Actor, data: WorkspaceCreate) -> Workspace:
    _check(data, platform.allow_file_sources)
    conflict = f"a workspace named {data.name!r} already exists in {data.organization!r}"
    async with unit_of_work(platform, conflict) as session:
        org = await organization_named(session, data.organization)
        if org is None:
            raise NotFound(f"organization {data.organization!r} not found")
        await actor.require(session, org.id, Permission.manage_workspace, f"organization {data.organization!r}")
        await ensure_name_free(session, Workspace, org.id, data.name, None, conflict)
        workspace = Workspace(
            organization_id=org.id,
            name=data.name,
            description=data.description,
            source=data.source or None,
            branch=data.branch,
            folder=data.folder,
            terraform_version=data.terraform_version,
            execution_mode=data.execution_mode.value,
        )
        session.add(workspace)
    return workspace


async def update_workspace(
    platform: Platform, actor: Actor, workspace_id: uuid.UUID, data: WorkspaceUpdate
) -> Workspace:
    _check(data, platform.allow_file_sources)
    conflict = f"a workspace named {data.name!r} already exists in this organization"
    async with unit_of_work(platform, conflict) as session:
        ws = await _editable(session, actor, workspace_id)
        await ensure_name_free(session, Workspace, ws.organization_id, data.name, ws.name, conflict)
        changes = data.model_dump(exclude_none=True)
        if "source" in changes:
            changes["source"] = changes["source"] or None
        if "execution_mode" in changes:
            changes["execution_mode"] = ExecutionMode(changes["execution_mode"]).value
        for field, value in changes.items():
            setattr(ws, field, value)
        ws.updated_at = utcnow()
        session.add(ws)
    return ws


# Where a workspace's objects are named: (key column, tables leading to the workspace, its column).
WORKSPACE_KEYS = (
    Owned(StateVersion.blob_key, (), StateVersion.workspace_id),
    Owned(ConfigurationVersion.blob_key, (), ConfigurationVersion.workspace_id),
    Owned(Step.log_key, (Job,), Job.workspace_id),
    Owned(Step.plan_key, (Job,), Job.workspace_id),
)


async def delete_workspace(platform: Platform, actor: Actor, workspace_id: uuid.UUID) -> uuid.UUID:
    async with unit_of_work(platform, "workspace is in use") as session:
        ws = await _editable(session, actor, workspace_id)
        org = await session.get(Organization, ws.organization_id)
        prefixes: list[str] = []
        if org is not None:
            job_ids = (await session.exec(select(Job.id).where(Job.workspace_id == ws.id))).all()
            prefixes = workspace_prefixes(org.name, ws.name) + [job_log_prefix(org.name, j) for j in job_ids]
        renamed = await keys_outside(session, WORKSPACE_KEYS, ws.id, prefixes)
        await session.delete(ws)
    # Objects go after their rows: a failure here leaves orphans (removed by the orphan sweep),
    # never a row pointing at nothing. Objects another row still names stay: after a rename,
    # a new workspace with the old name shares these prefixes with the renamed one's objects.
    successor = None
    if org is not None:
        successor = (select(Workspace.id).join(Organization, col(Organization.id) == col(Workspace.organization_id))
                     .where(Organization.name == org.name, Workspace.name == ws.name))
    await delete_unrecorded(platform, prefixes, renamed, successor)
    return workspace_id


async def lock_workspace(platform: Platform, actor: Actor, workspace_id: uuid.UUID, reason: str) -> Workspace:
    check_text(reason, "reason", max_length=1024)
    async with unit_of_work(platform, "workspace changed concurrently") as session:
        ws = await _editable(session, actor, workspace_id)
        if ws.locked:
            raise Conflict(f"workspace is already locked by {ws.locked_by}: {ws.lock_reason or 'no reason given'}")
        ws.locked, ws.lock_reason, ws.locked_by, ws.locked_at = True, reason, actor.name, utcnow()
        session.add(ws)
    return ws


async def unlock_workspace(platform: Platform, actor: Actor, workspace_id: uuid.UUID, reason: str) -> Workspace:
    check_text(reason, "reason", max_length=1024)
    async with unit_of_work(platform, "workspace changed concurrently") as session:
        ws = await _editable(session, actor, workspace_id)
        if not ws.locked:
            raise Conflict("workspace is not locked")
        ws.locked, ws.lock_reason, ws.locked_by, ws.locked_at = False, None, None, None
        ws.updated_at = utcnow()
        session.add(ws)
    # Jobs that waited for the lock to go start now rather than at the next sweep.
    from domain.services.jobs import next_jobs

    await platform.dispatch(await next_jobs(platform, ws.id))
    return ws


async def get_workspace(platform: Platform, actor: Actor, organization: str, name: str) -> Workspace | None:
    async with reading(platform) as session:
        row = (
            await session.exec(
                select(Workspace)
                .join(Organization, Organization.id == Workspace.organization_id)  # type: ignore[arg-type]
                .where(Organization.name == organization, Workspace.name == name)
            )
        ).first()
        if row is None or not (await actor.access(session, row.organization_id)).visible:
            return None
        return row


async def get_workspace_by_id(platform: Platform, actor: Actor, workspace_id: uuid.UUID) -> Workspace:
    async with reading(platform) as session:
        ws = await session.get(Workspace, workspace_id)
        if ws is None:
            raise NotFound("workspace not found")
        await actor.require_visible(session, ws.organization_id, "workspace")
        return ws


async def list_workspaces(
    platform: Platform, org_id: uuid.UUID, page: PageRequest, name_contains: str | None = None
) -> Page[Workspace]:
    """For an organization the caller was already allowed to see."""
    query = select(Workspace).where(Workspace.organization_id == org_id)
    if name_contains:
        query = query.where(func.lower(Workspace.name).contains(name_contains.lower(), autoescape=True))
    async with reading(platform) as session:
        return await paginate_by_name(session, query, Workspace.name, Workspace.id, page)


async def _editable(session, actor: Actor, workspace_id: uuid.UUID) -> Workspace:  # type: ignore[no-untyped-def]
    ws = await session.get(Workspace, workspace_id, with_for_update=True)
    if ws is None:
        raise NotFound("workspace not found")
    await actor.require(session, ws.organization_id, Permission.manage_workspace, "workspace")
    return ws

