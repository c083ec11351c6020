"""Schedules: run a template on a workspace on a cron expression (Quartz or 5-field)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from croniter import croniter
from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain import effects
from domain.access import Actor
from domain.errors import NotFound, ValidationFailed
from domain.models import Job, Schedule, Template, Workspace
from domain.models.types import utcnow
from domain.principal import Permission
from domain.services import Platform, reading, unit_of_work
from domain.services.lookups import children_by_parent
from domain.tcl import TclError, to_croniter
from domain.validation import check_text


def next_run(cron: str, after: datetime) -> datetime:
    return croniter(to_croniter(cron), after).get_next(datetime)


def _check_cron(cron: str) -> None:
    try:
        to_croniter(cron)
    except (TclError, ValueError) as exc:
        raise ValidationFailed("cron", f"cron is not a valid cron expression: {exc}") from None


@dataclass(frozen=True)
class ScheduleCreate:
    workspace_id: uuid.UUID
    template_id: uuid.UUID
    cron: str
    description: str = ""
    enabled: bool = True


@dataclass(frozen=True)
class ScheduleUpdate:
    cron: str | None = None
    template_id: uuid.UUID | None = None
    description: str | None = None
    enabled: bool | None = None


async def _editable_workspace(session: AsyncSession, actor: Actor, workspace_id: uuid.UUID) -> Workspace:
    ws = await session.get(Workspace, workspace_id)
    if ws is None:
        raise NotFound("workspace not found")
    await actor.require(session, ws.organization_id, Permission.manage_workspace, "workspace")
    return ws


async def _template_in(session: AsyncSession, org_id: uuid.UUID, template_id: uuid.UUID) -> Template:
    template = await session.get(Template, template_id)
    if template is None or template.organization_id != org_id:
        raise NotFound("template not found in the workspace's organization")
    return template


async def create_schedule(platform: Platform, actor: Actor, data: ScheduleCreate) -> Schedule:
    _check_cron(data.cron)
    check_text(data.description, "description", max_length=1024)
    async with unit_of_work(platform, "schedule changed concurrently") as session:
        ws = await _editable_workspace(session, actor, data.workspace_id)
        await _template_in(session, ws.organization_id, data.template_id)
        schedule = Schedule(
            workspace_id=ws.id,
            template_id=data.template_id,
            cron=data.cron,
            description=data.description,
            enabled=data.enabled,
            next_run_at=next_run(data.cron, utcnow()) if data.enabled else None,
        )
        session.add(schedule)
    return schedule


async def update_schedule(platform: Platform, actor: Actor, schedule_id: uuid.UUID, data: ScheduleUpdate) -> Schedule:
    if data.cron is not None:
        _check_cron(data.cron)
    if data.description is not None:
        check_text(data.description, "description", max_length=1024)
    async with unit_of_work(platform, "schedule changed concurrently") as session:
        schedule = await session.get(Schedule, schedule_id, with_for_update=True)
        if schedule is None:
            raise NotFound("schedule not found")
        ws = await _editable_workspace(session, actor, schedule.workspace_id)
        if data.template_id is not None:
            await _template_in(session, ws.organization_id, data.template_id)
            schedule.template_id = data.template_id
        if data.cron is not None:
            schedule.cron = data.cron
        if data.description is not None:
            schedule.description = data.description
        if data.enabled is not None:
            schedule.enabled = data.enabled
        schedule.next_run_at = next_run(schedule.cron, utcnow()) if schedule.enabled else None
        session.add(schedule)
    return schedule


async def delete_schedule(platform: Platform, actor: Actor, schedule_id: uuid.UUID) -> uuid.UUID:
    async with unit_of_work(platform, "schedule changed concurrently") as session:
        schedule = await session.get(Schedule, schedule_id)
        if schedule is None:
            raise NotFound("schedule not found")
        await _editable_workspace(session, actor, schedule.workspace_id)
        await session.delete(schedule)
    return schedule_id


async def schedules_by_workspace(platform: Platform, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Schedule]]:
    return await children_by_parent(platform, Schedule, Schedule.workspace_id, ids, Schedule.created_at)


async def schedule_templates(session: AsyncSession, job: Job, entry: Any) -> None:
    """The `scheduleTemplates` step: (re)create the workspace's schedules for the named templates.
    Every name is resolved before anything is written, so a missing template changes no schedule."""
    resolved: list[tuple[Any, Template]] = []
    for item in entry.templates:
        template = (
            await session.exec(
                select(Template).where(Template.organization_id == job.organization_id, Template.name == item.name)
            )
        ).first()
        if template is None:
            raise NotFound(f"scheduleTemplates: template {item.name!r} not found")
        resolved.append((item, template))
    for item, template in resolved:
        existing = (
            await session.exec(
                select(Schedule).where(Schedule.workspace_id == job.workspace_id, Schedule.template_id == template.id)
            )
        ).first()
        schedule = existing or Schedule(workspace_id=job.workspace_id, template_id=template.id, cron=item.schedule)
        schedule.cron, schedule.enabled = item.schedule, True
        schedule.description = f"created by job {job.id}"
        schedule.next_run_at = next_run(item.schedule, utcnow())
        session.add(schedule)


async def run_due_schedules(platform: Platform) -> list[effects.Enqueue]:
    """Start a job for every due schedule. Claiming a due time is an UPDATE guarded by the old
    ``next_run_at``: of two workers racing, exactly one changes the row and starts the job."""
    from domain.services.jobs import JobCreate, create_scheduled_job

    now = utcnow()
    async with reading(platform) as session:
        due = (
            await session.exec(
                select(Schedule).where(Schedule.enabled == True, col(Schedule.next_run_at) <= now)  # noqa: E712
            )
        ).all()
    todo: list[effects.Enqueue] = []
    for schedule in due:
        async with platform.db.transaction() as session:
            ws = await session.get(Workspace, schedule.workspace_id)
            claimed = await session.exec(  # type: ignore[call-overload]
                update(Schedule)
                .where(col(Schedule.id) == schedule.id, col(Schedule.next_run_at) == schedule.next_run_at)
                .values(next_run_at=next_run(schedule.cron, now), last_run_at=now)
            )
            if claimed.rowcount != 1 or ws is None or ws.locked:
                continue  # another worker took it, or the workspace is locked (skip this due time)
            job = await create_scheduled_job(
                session, ws, JobCreate(workspace_id=ws.id, template_id=schedule.template_id, via="SCHEDULE")
            )
            todo.append(effects.advance_job(job.id, job.revision))
    return todo
