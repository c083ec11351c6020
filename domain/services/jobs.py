"""Jobs as users see them: start one, approve or reject its approval step, cancel it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain import effects
from domain.access import Actor
from domain.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from domain.jobs import TERMINAL, S, Status, move_job, move_step
from domain.models import Job, Step, Template, Workspace
from domain.pagination import Page, PageRequest, decode_cursor, encode_cursor
from domain.principal import Permission
from domain.services import Platform, reading, unit_of_work
from domain.services.lookups import children_by_parent
from domain.tcl import TclError, parse_flow
from domain.validation import check_text

MAX_TARGETS = 100


@dataclass(frozen=True)
class JobCreate:
    workspace_id: uuid.UUID
    template_id: uuid.UUID | None = None
    template_name: str | None = None
    override_branch: str | None = None
    targets: Sequence[str] = ()
    replaces: Sequence[str] = ()
    auto_apply: bool = False
    via: str = "API"


def _check(data: JobCreate) -> None:
    if (data.template_id is None) == (data.template_name is None):
        raise ValidationFailed("templateId", "give exactly one of templateId and templateName")
    if data.override_branch is not None:
        check_text(data.override_branch, "overrideBranch", max_length=255, required=True)
    for field, values in (("targets", data.targets), ("replaces", data.replaces)):
        if len(values) > MAX_TARGETS or any(not v.strip() or len(v) > 1024 for v in values):
            raise ValidationFailed(field, f"{field} must be at most {MAX_TARGETS} non-empty resource addresses")


async def run_job(platform: Platform, actor: Actor, data: JobCreate) -> Job:
    """Create the job and its steps from a snapshot of the template, then ask for it to run."""
    _check(data)
    async with unit_of_work(platform, "job changed concurrently") as session:
        ws = await session.get(Workspace, data.workspace_id)
        if ws is None:
            raise NotFound("workspace not found")
        await actor.require_in_workspace(session, ws.organization_id, ws.id, Permission.plan_job, "workspace")
        job = await _create(session, ws, data, actor.name)
    await platform.dispatch([effects.advance_job(job.id, job.revision)])
    return job


async def create_scheduled_job(session: AsyncSession, ws: Workspace, data: JobCreate) -> Job:
    """For the schedule runner, inside its transaction (no principal: the schedule acts)."""
    return await _create(session, ws, data, "schedule")


async def _create(session: AsyncSession, ws: Workspace, data: JobCreate, created_by: str) -> Job:
    template = await _template(session, ws.organization_id, data)
    job = Job(
        organization_id=ws.organization_id,
        workspace_id=ws.id,
        template_id=template.id,
        tcl=template.tcl,
        via=data.via,
        created_by=created_by,
        override_branch=data.override_branch,
        targets=list(data.targets),
        replaces=list(data.replaces),
        auto_apply=data.auto_apply,
    )
    session.add(job)
    await session.flush()
    _create_steps(session, job)
    return job


def _create_steps(session: AsyncSession, job: Job) -> None:
    """Steps come from the snapshot; a snapshot that cannot be parsed fails the job at once."""
    try:
        flow = parse_flow(job.tcl)
    except TclError as exc:
        session.add(Step(job_id=job.id, step_number=0, name="yamlError", type="yamlError",
                         status=S.failed.value, reason=str(exc)))
        move_job(job, S.failed, reason=f"the template cannot be parsed: {exc}")
        return
    job.plan_only = flow.is_plan_only
    for entry in flow.steps:
        session.add(Step(job_id=job.id, step_number=entry.step, name=entry.name, type=entry.type, team=entry.team))


async def _template(session: AsyncSession, org_id: uuid.UUID, data: JobCreate) -> Template:
    query = select(Template).where(Template.organization_id == org_id)
    if data.template_id is not None:
        query = query.where(Template.id == data.template_id)
    else:
        query = query.where(Template.name == data.template_name)
    template = (await session.exec(query)).first()
    if template is None:
        raise NotFound("template not found in the workspace's organization")
    return template


async def _locked_job(session: AsyncSession, job_id: uuid.UUID) -> Job:
    job = (await session.exec(select(Job).where(Job.id == job_id).with_for_update())).first()
    if job is None:
        raise NotFound("job not found")
    return job


async def _steps(session: AsyncSession, job_id: uuid.UUID) -> list[Step]:
    rows = await session.exec(select(Step).where(Step.job_id == job_id).order_by(Step.step_number))
    return list(rows.all())


async def _require_approver(session: AsyncSession, actor: Actor, job: Job, step: Step) -> None:
    """Members of the approval step's team, or holders of approveJob, may decide."""
    await actor.require_visible(session, job.organization_id, "job")
    if step.team and step.team in actor.principal.groups:
        return
    access = await actor.access(session, job.organization_id)
    if not access.allows(Permission.approve_job):
        raise PermissionDenied(f"only members of team {step.team!r} or holders of approveJob may decide")


async def _waiting_step(session: AsyncSession, job: Job) -> Step:
    if Status(job.status) is not S.waiting_approval:
        raise Conflict(f"the job is {job.status}, not waiting for approval")
    step = next((s for s in await _steps(session, job.id) if s.status == S.waiting_approval.value), None)
    if step is None:
        raise Conflict("the job has no step waiting for approval")
    return step


async def approve_job(platform: Platform, actor: Actor, job_id: uuid.UUID) -> Job:
    async with unit_of_work(platform, "job changed concurrently") as session:
        job = await _locked_job(session, job_id)
        await actor.require_visible(session, job.organization_id, "job")
        step = await _waiting_step(session, job)
        await _require_approver(session, actor, job, step)
        move_step(step, S.approved, reason=f"approved by {actor.name}")
        move_job(job, S.approved)
        session.add_all([step, job])
    await platform.dispatch([effects.advance_job(job.id, job.revision)])
    return job


async def reject_job(platform: Platform, actor: Actor, job_id: uuid.UUID) -> Job:
    async with unit_of_work(platform, "job changed concurrently") as session:
        job = await _locked_job(session, job_id)
        await actor.require_visible(session, job.organization_id, "job")
        step = await _waiting_step(session, job)
        await _require_approver(session, actor, job, step)
        move_step(step, S.rejected, reason=f"rejected by {actor.name}")
        _skip_remaining(await _steps(session, job.id))
        move_job(job, S.rejected, reason=f"rejected by {actor.name}")
        session.add(job)
    await platform.dispatch([effects.run_hook(step.id, "onReject"), *await next_jobs(platform, job.workspace_id)])
    return job


async def cancel_job(platform: Platform, actor: Actor, job_id: uuid.UUID) -> Job:
    """A running step keeps its status until its worker has stopped terraform (it polls)."""
    async with unit_of_work(platform, "job changed concurrently") as session:
        job = await _locked_job(session, job_id)
        await actor.require_in_workspace(
            session, job.organization_id, job.workspace_id, Permission.plan_job, "job"
        )
        if Status(job.status) in TERMINAL:
            raise Conflict(f"the job has already ended ({job.status})")
        for step in await _steps(session, job.id):
            if step.status in (S.queue.value, S.waiting_approval.value):
                move_step(step, S.cancelled, reason=f"cancelled by {actor.name}")
            elif step.status == S.pending.value:
                move_step(step, S.not_executed)
            session.add(step)
        move_job(job, S.cancelled, reason=f"cancelled by {actor.name}")
        session.add(job)
    await platform.dispatch(await next_jobs(platform, job.workspace_id))
    return job


def _skip_remaining(steps: Sequence[Step]) -> None:
    for step in steps:
        if step.status == S.pending.value:
            move_step(step, S.not_executed)


async def next_jobs(platform: Platform, workspace_id: uuid.UUID, limit: int = 5) -> list[effects.Enqueue]:
    """After a job ends, the oldest waiting jobs of its workspace get a chance to start."""
    async with reading(platform) as session:
        rows = await session.exec(
            select(Job)
            .where(Job.workspace_id == workspace_id, Job.status == S.pending.value)
            .order_by(Job.created_at, Job.id)
            .limit(limit)
        )
        return [effects.advance_job(j.id, j.revision) for j in rows.all()]


# -- reading ------------------------------------------------------------------------------


async def get_job(platform: Platform, actor: Actor, job_id: uuid.UUID) -> Job | None:
    async with reading(platform) as session:
        job = await session.get(Job, job_id)
        if job is None or not (await actor.access(session, job.organization_id)).visible:
            return None
        return job


async def list_jobs(platform: Platform, workspace_id: uuid.UUID, page: PageRequest) -> Page[Job]:
    """Newest first, for a workspace the caller was already allowed to see."""
    query = select(Job).where(Job.workspace_id == workspace_id)
    if page.after is not None:
        created, row_id = decode_cursor(page.after)
        try:
            at = datetime.fromisoformat(str(created))
        except ValueError:
            raise ValidationFailed("after", "after is not a cursor this API returned") from None
        query = query.where(or_(Job.created_at < at, and_(Job.created_at == at, col(Job.id) < row_id)))
    query = query.order_by(col(Job.created_at).desc(), col(Job.id).desc()).limit(page.first + 1)
    async with reading(platform) as session:
        rows = list((await session.exec(query)).all())
    has_next = len(rows) > page.first
    rows = rows[: page.first]
    cursors = [encode_cursor(j.created_at.isoformat(), j.id) for j in rows]
    return Page(rows, cursors, has_next_page=has_next, has_previous_page=page.after is not None)


async def steps_by_job(platform: Platform, job_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Step]]:
    return await children_by_parent(platform, Step, Step.job_id, job_ids, Step.step_number)


async def last_job_status(platform: Platform, workspace_id: uuid.UUID) -> str | None:
    async with reading(platform) as session:
        row = (
            await session.exec(
                select(Job.status)
                .where(Job.workspace_id == workspace_id)
                .order_by(col(Job.created_at).desc(), col(Job.id).desc())
                .limit(1)
            )
        ).first()
    return row


async def read_step_log(platform: Platform, step: Step, offset: int, limit: int) -> tuple[int, int, str]:
    """(offset, total size, text) of a stored step log; empty until the step has ended."""
    if offset < 0:
        raise ValidationFailed("offset", "offset must not be negative")
    if not 1 <= limit <= 1024 * 1024:
        raise ValidationFailed("limit", "limit must be between 1 and 1048576 bytes")
    if not step.log_key:
        return offset, 0, ""
    from storage import BlobNotFound

    try:
        data = await platform.blobs.read_bytes(step.log_key)
    except BlobNotFound:
        return offset, 0, ""
    piece = data[offset : offset + limit]
    return offset, len(data), piece.decode("utf-8", errors="replace")


async def jobs_by_id(platform: Platform, job_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Job | None]:
    async with reading(platform) as session:
        rows = (await session.exec(select(Job).where(col(Job.id).in_(list(job_ids))))).all()
    found: dict[uuid.UUID, Job | None] = {i: None for i in job_ids}
    found.update({row.id: row for row in rows})
    return found
