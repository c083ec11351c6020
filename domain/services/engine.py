"""The scheduler's decisions: admit a job, pick its next step, start and finish steps, and
recover from lost workers. Each decision runs under the job's row lock in one transaction and
returns the queue effects to perform after commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, delete, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain import effects
from domain.errors import NotFound
from domain.jobs import ACTIVE, EXECUTED_TYPES, NEVER_RETRIED, TERMINAL, S, Status, move_job, move_step
from domain.models import Job, StateLock, Step, Workspace
from domain.models.types import utcnow
from domain.services import Platform, reading
from domain.services.jobs import next_jobs
from domain.tcl import parse_flow


@dataclass(frozen=True)
class StepOutcome:
    status: S  # completed | noChanges | failed | cancelled
    reason: str | None = None
    plan_changes: bool | None = None
    plan_key: str | None = None
    log_key: str | None = None
    commit_id: str | None = None


async def _locked_job(session: AsyncSession, job_id: uuid.UUID) -> Job | None:
    return (await session.exec(select(Job).where(Job.id == job_id).with_for_update())).first()


async def _step_and_locked_job(session: AsyncSession, step_id: uuid.UUID) -> tuple[Step, Job] | None:
    """The step and its job, the job's row locked and the step re-read under that lock (a step's
    status changes only while its job is locked)."""
    step = await session.get(Step, step_id)
    if step is None:
        return None
    job = await _locked_job(session, step.job_id)
    if job is None:
        return None
    await session.refresh(step)
    return step, job


async def _steps(session: AsyncSession, job_id: uuid.UUID) -> list[Step]:
    rows = await session.exec(select(Step).where(Step.job_id == job_id).order_by(Step.step_number))
    return list(rows.all())


async def _admissible(session: AsyncSession, job: Job) -> bool:
    """FIFO per workspace, one at a time; plan-only jobs only wait for older non-plan-only ones."""
    ws = await session.get(Workspace, job.workspace_id)
    if ws is None or ws.locked:
        return False
    older = and_(
        Job.workspace_id == job.workspace_id,
        col(Job.status).not_in([s.value for s in TERMINAL]),
        or_(Job.created_at < job.created_at, and_(Job.created_at == job.created_at, col(Job.id) < job.id)),
    )
    query = select(Job.id).where(older)
    if job.plan_only:
        query = query.where(Job.plan_only == False)  # noqa: E712
    else:
        # Newer plan-only jobs may already be running beside nothing; wait for them too.
        query = select(Job.id).where(
            Job.workspace_id == job.workspace_id,
            Job.id != job.id,
            or_(older, col(Job.status).in_([s.value for s in ACTIVE])),
        )
    return (await session.exec(query.limit(1))).first() is None


async def advance(platform: Platform, job_id: uuid.UUID) -> list[effects.Enqueue]:
    """Move the job as far as it can go without a worker; idempotent."""
    todo: list[effects.Enqueue] = []
    async with platform.db.transaction() as session:
        job = await _locked_job(session, job_id)
        if job is None or Status(job.status) in TERMINAL:
            return []
        if Status(job.status) is S.pending and not await _admissible(session, job):
            return []
        steps = await _steps(session, job.id)
        if any(s.status in (S.queue.value, S.running.value, S.waiting_approval.value) for s in steps):
            return []  # a step is under way; its end will advance the job
        flow = {entry.step: entry for entry in parse_flow(job.tcl).steps}
        for step in steps:
            if step.status != S.pending.value:
                continue
            if step.type in EXECUTED_TYPES:
                move_step(step, S.queue)
                if Status(job.status) is not S.queue:
                    move_job(job, S.queue)
                step.attempt += 1
                session.add_all([step, job])
                return [effects.run_step(step.id, step.attempt)]
            if step.type == "approval":
                if job.auto_apply:
                    move_step(step, S.completed, reason="auto-approved (autoApply)")
                    session.add(step)
                    continue
                move_step(step, S.waiting_approval)
                move_job(job, S.waiting_approval)
                session.add_all([step, job])
                return []
            if step.type == "disableWorkspace":
                ws = await session.get(Workspace, job.workspace_id, with_for_update=True)
                if ws is not None and not ws.locked:
                    ws.locked, ws.lock_reason, ws.locked_by, ws.locked_at = True, f"disabled by job {job.id}", "job", utcnow()
                    session.add(ws)
                move_step(step, S.completed)
                session.add(step)
                continue
            if step.type == "scheduleTemplates":
                from domain.services.schedules import schedule_templates

                try:
                    await schedule_templates(session, job, flow[step.step_number])
                except NotFound as exc:
                    move_step(step, S.failed, reason=exc.message)
                    move_job(job, S.failed, reason=f"step {step.step_number}: {exc.message}")
                    session.add_all([step, job])
                    break
                move_step(step, S.completed)
                session.add(step)
                continue
            move_step(step, S.failed, reason=f"step type {step.type!r} cannot run")
            move_job(job, S.failed, reason=f"step {step.step_number} has an unknown type")
            session.add_all([step, job])
            break
        else:
            move_job(job, S.completed)
            session.add(job)
        workspace_id = job.workspace_id
    todo += await next_jobs(platform, workspace_id)
    return todo


@dataclass(frozen=True)
class StartedStep:
    job: Job
    step: Step
    workspace: Workspace


async def start_step(platform: Platform, step_id: uuid.UUID, worker_id: str) -> StartedStep | None:
    """Claim a queued step for this worker; ``None`` when it is no longer this worker's to run."""
    async with platform.db.transaction() as session:
        found = await _step_and_locked_job(session, step_id)
        if found is None:
            return None
        step, job = found
        if step.status != S.queue.value or Status(job.status) in TERMINAL:
            return None
        ws = await session.get(Workspace, job.workspace_id)
        assert ws is not None
        move_step(step, S.running)
        step.worker_id = worker_id
        move_job(job, S.running)
        session.add_all([step, job])
        return StartedStep(job=job, step=step, workspace=ws)


async def heartbeat(platform: Platform, step_id: uuid.UUID, touch: bool = True) -> bool:
    """``touch`` records that the step's worker is alive. ``False`` when the step should stop:
    its job was cancelled, or the step is no longer this worker's (the sweep failed it)."""
    if not touch:
        async with reading(platform) as session:
            row = (
                await session.exec(
                    select(Job.status, Step.status).join(Step, col(Step.job_id) == Job.id).where(Step.id == step_id)
                )
            ).first()
        return row is not None and row[0] != S.cancelled.value and row[1] == S.running.value
    async with platform.db.transaction() as session:
        step = await session.get(Step, step_id)
        if step is None:
            return False
        job = await session.get(Job, step.job_id)
        if step.status == S.running.value:
            step.heartbeat_at = utcnow()
            session.add(step)
        return job is not None and job.status != S.cancelled.value and step.status == S.running.value


async def set_log_key(platform: Platform, step_id: uuid.UUID, key: str) -> None:
    async with platform.db.transaction() as session:
        step = await session.get(Step, step_id)
        if step is not None:
            step.log_key = key
            session.add(step)


async def finish_step(platform: Platform, step_id: uuid.UUID, outcome: StepOutcome) -> list[effects.Enqueue]:
    async with platform.db.transaction() as session:
        found = await _step_and_locked_job(session, step_id)
        if found is None or found[0].status != S.running.value:
            return []
        step, job = found
        step.log_key = outcome.log_key or step.log_key
        step.plan_key = outcome.plan_key or step.plan_key
        if outcome.commit_id and not job.commit_id:
            job.commit_id = outcome.commit_id
        workspace_id = job.workspace_id
        if job.status == S.cancelled.value:
            move_step(step, S.cancelled, reason=outcome.reason or "cancelled")
            session.add(step)
            await _release_state_lock(session, job)
            ended = True
        else:
            ended = await _record_outcome(session, job, step, outcome)
            revision = job.revision
    # Outside the transaction: on SQLite a second connection inside it would wait on this one.
    if ended:
        return await next_jobs(platform, workspace_id)
    return [effects.advance_job(job.id, revision)]


async def _record_outcome(session: AsyncSession, job: Job, step: Step, outcome: StepOutcome) -> bool:
    """Writes the step's end; True when it also ended the job."""
    move_step(step, outcome.status, reason=outcome.reason)
    if outcome.plan_changes is not None:
        job.plan_changes = outcome.plan_changes
    steps = await _steps(session, job.id)
    if outcome.status in (S.failed, S.cancelled, S.no_changes):
        for other in steps:
            if other.status == S.pending.value:
                move_step(other, S.not_executed)
                session.add(other)
        if outcome.status is S.no_changes:
            move_job(job, S.completed)
        else:
            move_job(job, outcome.status, reason=outcome.reason)
        await _release_state_lock(session, job)
        session.add_all([step, job])
        return True
    session.add(step)
    return False


async def _release_state_lock(session: AsyncSession, job: Job) -> None:
    """A job that ends never leaves its workspace's state locked (its terraform may be gone)."""
    await session.exec(  # type: ignore[call-overload]
        delete(StateLock).where(
            StateLock.workspace_id == job.workspace_id, col(StateLock.holder) == f"job {job.id}"
        )
    )


async def sweep(platform: Platform, heartbeat_ttl: timedelta, stale_after: timedelta) -> list[effects.Enqueue]:
    """The safety net: fail steps whose worker went silent, re-enqueue jobs nobody moved."""
    todo: list[effects.Enqueue] = []
    now = utcnow()
    async with reading(platform) as session:
        lost = (
            await session.exec(
                select(Step.id).where(Step.status == S.running.value, col(Step.heartbeat_at) < now - heartbeat_ttl)
            )
        ).all()
        forgotten = (
            await session.exec(
                select(Job).where(
                    col(Job.status).in_([S.pending.value, S.queue.value, S.approved.value]),
                    Job.updated_at < now - stale_after,
                )
            )
        ).all()
    for step_id in lost:
        todo += await fail_lost_step(platform, step_id)
    for job in forgotten:
        todo.append(effects.advance_job(job.id, job.revision))
        if job.status == S.queue.value:
            todo += await _requeue_lost(platform, job.id)
    return todo


async def fail_lost_step(platform: Platform, step_id: uuid.UUID) -> list[effects.Enqueue]:
    async with platform.db.transaction() as session:
        found = await _step_and_locked_job(session, step_id)
        if found is None or found[0].status != S.running.value:
            return []
        step, job = found
        reason = "the worker running this step stopped responding (heartbeat expired)"
        if step.type in NEVER_RETRIED:
            reason += "; apply and destroy steps are never retried automatically"
        move_step(step, S.failed, reason=reason)
        for other in await _steps(session, job.id):
            if other.status == S.pending.value:
                move_step(other, S.not_executed)
                session.add(other)
        if Status(job.status) not in TERMINAL:
            move_job(job, S.failed, reason=f"step {step.step_number} ({step.name}): {reason}")
        await _release_state_lock(session, job)
        session.add_all([step, job])
        workspace_id = job.workspace_id
    return await next_jobs(platform, workspace_id)


async def _requeue_lost(platform: Platform, job_id: uuid.UUID) -> list[effects.Enqueue]:
    """A queued step whose queue entry was lost (e.g. Redis restarted) is queued again."""
    async with reading(platform) as session:
        step = (
            await session.exec(select(Step).where(Step.job_id == job_id, Step.status == S.queue.value))
        ).first()
    return [effects.run_step(step.id, step.attempt)] if step is not None else []
