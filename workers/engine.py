"""Worker functions of the job engine: advance a job, run one step, run a hook, sweep."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from domain.effects import Enqueue
from domain.jobs import S
from domain.services import engine
from domain.services.engine import StepOutcome
from domain.services.modules import due_refreshes as due_module_refreshes
from domain.services.modules import refresh_module_by_worker
from domain.services.orphans import sweep_orphans
from domain.services.schedules import run_due_schedules
from storage.keys import log_key, plan_key
from workers.live_log import LogPublisher
from workers.runtime import Runtime
from workers.step_spec import build_spec, hook_spec

log = logging.getLogger("terrakube.engine")


def runtime(ctx: dict[str, Any]) -> Runtime:
    return ctx["runtime"]


async def advance_job(ctx: dict[str, Any], job_id: str) -> None:
    rt = runtime(ctx)
    await rt.dispatch(await engine.advance(rt.platform, uuid.UUID(job_id)))


async def run_step(ctx: dict[str, Any], step_id: str) -> None:
    """Run one executed step end to end; every outcome is written back, even a crash of ours."""
    rt = runtime(ctx)
    async with rt.step_slots:  # at most TERRAKUBE_WORKER_CONCURRENCY steps per worker
        await _run_step(rt, uuid.UUID(step_id))


async def _run_step(rt: Runtime, step_id: uuid.UUID) -> None:
    from workers.executor.logs import StepLog

    started = await engine.start_step(rt.platform, step_id, rt.worker_id)
    if started is None:
        return  # no longer queued: cancelled meanwhile, or another worker took it
    job, step, ws = started.job, started.step, started.workspace
    root = Path(tempfile.mkdtemp(prefix=f"step-{step.id}-", dir=_work_dir(rt)))
    step_log = StepLog(root / "step.log")
    publisher = None
    if rt.broker is not None:
        publisher = LogPublisher(rt.broker, str(job.id), str(step.id), step.step_number)
        step_log.add_listener(publisher.on_line)
        publisher.start()
    try:
        outcome, plan_file = await _execute(rt, started, root, step_log)
        step_log.close()
        if publisher is not None:
            await publisher.close(step_log.path.stat().st_size)
            publisher = None
        org_name = await _org_name(rt, job.organization_id)
        keys = {"log_key": log_key(org_name, job.id, step.id)}
        try:
            await rt.platform.blobs.put(keys["log_key"], _file_chunks(step_log.path))
            if plan_file is not None and plan_file.exists():
                keys["plan_key"] = plan_key(org_name, ws.name, job.id, step.id)
                await rt.platform.blobs.put(keys["plan_key"], _file_chunks(plan_file))
        except Exception:
            log.exception("step %s: storing its log or plan failed", step.id)
            if outcome.status is not S.cancelled:
                outcome = replace(outcome, status=S.failed, reason="storing the step's log or plan failed")
        outcome = replace(outcome, log_key=keys["log_key"], plan_key=keys.get("plan_key"))
    finally:
        step_log.close()
        if publisher is not None:
            await publisher.close(step_log.path.stat().st_size)
        await asyncio.to_thread(shutil.rmtree, root, ignore_errors=True)
    await rt.dispatch(await _advance_here(rt, job.id, await engine.finish_step(rt.platform, step.id, outcome)))


async def _advance_here(rt: Runtime, job_id: uuid.UUID, todo: list[Enqueue]) -> list[Enqueue]:
    """This worker moves its own job on at once instead of a round trip through the queue;
    if that fails, the queued way (and the sweep behind it) still happens."""
    own = [e for e in todo if e.function == "advance_job" and e.args == (str(job_id),)]
    if not own:
        return todo
    rest = [e for e in todo if e not in own]
    try:
        return rest + await engine.advance(rt.platform, job_id)
    except Exception:
        log.warning("advancing job %s in the worker failed; queueing it", job_id, exc_info=True)
        return todo


async def _execute(rt: Runtime, started: engine.StartedStep, root: Path, step_log: Any) -> tuple[StepOutcome, Path | None]:
    """Runs terraform/scripts for the step; any failure of ours still yields an outcome."""
    from workers.executor.process import Cancelled, TimedOut
    from workers.executor.runner import run_step as execute

    job, step, ws = started.job, started.step, started.workspace
    cancel = asyncio.Event()
    beat = asyncio.create_task(_heartbeat(rt, step.id, cancel))
    spec = None
    try:
        spec, _ = await build_spec(rt, job, step, ws, root / "step")
        step_log.add_sensitive(spec.sensitive_values)
        result = await execute(spec, step_log, cancel)
        outcome = StepOutcome(
            status=S(result.status), reason=result.reason, plan_changes=result.plan_changes, commit_id=result.commit_id
        )
        plan_file = result.plan_file
    except Cancelled:
        return StepOutcome(status=S.cancelled, reason="cancelled while running"), None
    except TimedOut:
        limit = rt.settings.step_timeout_seconds
        outcome, plan_file = StepOutcome(status=S.failed, reason=f"the step ran over its time limit ({limit} s)"), None
    except Exception as exc:  # our own failure must still end the step, never strand it
        log.exception("step %s failed in the executor", step.id)
        step_log.emit(f"terrakube: the executor failed: {type(exc).__name__}: {exc}")
        outcome, plan_file = StepOutcome(status=S.failed, reason=f"executor error: {type(exc).__name__}: {exc}"), None
    finally:
        beat.cancel()
    if outcome.status is S.failed and spec is not None:
        await _on_failure(rt, job, step, ws, root, step_log)
    return outcome, plan_file


async def run_hook(ctx: dict[str, Any], step_id: str, hook: str) -> None:
    """`onReject` (and later hooks): the step's hook commands, appended to the step's log."""
    from workers.executor.logs import StepLog
    from workers.executor.runner import run_step as execute

    rt = runtime(ctx)
    root = Path(tempfile.mkdtemp(prefix=f"hook-{step_id}-", dir=_work_dir(rt)))
    try:
        prepared = await hook_spec(rt, uuid.UUID(step_id), hook, root)
        if prepared is None:
            return
        spec, key = prepared
        step_log = StepLog(root / "hook.log", sensitive_values=spec.sensitive_values)
        try:
            existing = await rt.platform.blobs.read_bytes(key)
            step_log.emit(existing.decode(errors="replace").rstrip("\n"))
        except Exception:
            pass
        step_log.emit(f"--- {hook} ---")
        await execute(spec, step_log, asyncio.Event())
        step_log.close()
        await rt.platform.blobs.put(key, _file_chunks(step_log.path))
        await engine.set_log_key(rt.platform, uuid.UUID(step_id), key)
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _on_failure(rt: Runtime, job: Any, step: Any, ws: Any, root: Path, step_log: Any) -> None:
    """The step's ``onFailure`` commands run in the same log, after the failure."""
    from workers.executor.runner import run_step as execute
    from workers.step_spec import flow_entry

    commands = getattr(flow_entry(job, step), "on_failure", ())
    if not commands:
        return
    hook_root = root / "on-failure"
    hook_root.mkdir()
    try:
        spec, _ = await build_spec(rt, job, step, ws, hook_root)
        spec.step_type, spec.commands, spec.plan_file = "customScripts", list(commands), None
        step_log.emit("--- onFailure ---")
        await execute(spec, step_log, asyncio.Event())
    except Exception as exc:
        step_log.emit(f"terrakube: onFailure commands could not run: {type(exc).__name__}: {exc}")


async def sweep(ctx: dict[str, Any]) -> None:
    rt = runtime(ctx)
    s = rt.settings
    todo = await engine.sweep(
        rt.platform,
        heartbeat_ttl=timedelta(seconds=s.heartbeat_ttl_seconds),
        stale_after=timedelta(seconds=max(s.sweep_seconds, 5.0)),
    )
    todo += await run_due_schedules(rt.platform)
    todo += await due_module_refreshes(rt.platform, timedelta(seconds=s.module_refresh_seconds))
    await rt.dispatch(todo)
    await sweep_orphans(rt.platform, older_than=timedelta(minutes=s.storage_orphan_minutes),
                        every=timedelta(minutes=s.storage_orphan_sweep_minutes))


async def refresh_module(ctx: dict[str, Any], module_id: str) -> int:
    """The periodic look for new version tags of one module (claimed by the sweep)."""
    rt = runtime(ctx)
    return await refresh_module_by_worker(rt.platform, uuid.UUID(module_id), rt.settings.module_git_timeout_seconds)


async def _heartbeat(rt: Runtime, step_id: uuid.UUID, cancel: asyncio.Event) -> None:
    """Looks for a cancel every second (so it reaches terraform well within 10 s) and records
    the worker's heartbeat every ``heartbeat_seconds``."""
    loop = asyncio.get_running_loop()
    next_touch = loop.time()
    while True:
        touch = loop.time() >= next_touch
        try:
            if not await engine.heartbeat(rt.platform, step_id, touch=touch):
                cancel.set()
            if touch:
                next_touch = loop.time() + rt.settings.heartbeat_seconds
        except Exception:
            log.warning("heartbeat of step %s failed", step_id, exc_info=True)
        await asyncio.sleep(1.0)


def _work_dir(rt: Runtime) -> Path:
    path = rt.settings.effective_work_dir
    path.mkdir(parents=True, exist_ok=True)
    return path


async def _org_name(rt: Runtime, org_id: uuid.UUID) -> str:
    from domain.models import Organization

    async with rt.platform.db.session() as session:
        org = await session.get(Organization, org_id)
    return org.name if org else str(org_id)


async def _file_chunks(path: Path, size: int = 1 << 20):  # type: ignore[no-untyped-def]
    with path.open("rb") as fh:
        while chunk := await asyncio.to_thread(fh.read, size):
            yield chunk
