"""One step of a job, start to finish: fetch code, prepare, scripts, terraform, outcome.

No database here: the scheduler hands over a ``StepSpec`` and persists the ``StepOutcome``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from workers.executor.logs import StepLog
from workers.executor.process import Cancelled, TimedOut
from workers.executor.scripts import Command, ScriptContext, run_commands
from workers.executor.terraform import (
    PLAN_FILE,
    Terraform,
    apply_args,
    destroy_args,
    inherited_environment,
    init_args,
    plan_args,
    terraform_environment,
)
from workers.executor.workdir import (
    CheckoutError,
    TerraformVariable,
    UnsafeArchive,
    checkout_git,
    extract_tarball,
    redact_url,
    resolve_folder,
    write_backend_override,
    write_cli_config,
    write_variables,
)

PLAN_STEPS = {"terraformPlan", "terraformPlanDestroy"}
STEP_TYPES = PLAN_STEPS | {"terraformApply", "terraformDestroy", "customScripts"}

T = TypeVar("T")


@dataclass(kw_only=True)
class StepSpec:
    step_type: str  # terraformPlan | terraformPlanDestroy | terraformApply | terraformDestroy | customScripts
    work_root: Path  # a fresh empty temp dir for this step (the caller creates and removes it)
    organization_id: str
    organization: str
    workspace_id: str
    workspace: str
    job_id: str
    step_id: str
    state_address: str
    api_url: str
    job_token: str
    source: str | None = None  # git URL; else config_tarball
    ref: str = ""  # branch, tag or commit sha; "" = the default branch
    folder: str = ""
    config_tarball: Path | None = None
    terraform_variables: list[TerraformVariable] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    sensitive_values: list[str] = field(default_factory=list)
    commands: Sequence[Command] = field(default_factory=list)
    registry_host: str | None = None
    targets: list[str] = field(default_factory=list)
    replaces: list[str] = field(default_factory=list)
    plan_file: Path | None = None  # terraformApply: apply exactly this plan; None = auto-approve
    ignore_error: bool = False
    timeout: float = 3600.0  # whole step, seconds; <= 0 = none
    terraform_bin: str = "terraform"
    plugin_cache_dir: Path | None = None  # shared TF_PLUGIN_CACHE_DIR, if the worker has one
    base_env: dict[str, str] | None = None  # the env to start from instead of os.environ
    # More of the worker's environment for terraform and scripts than the executor's allow-list:
    # names, or prefixes ending in `*` (TERRAKUBE_EXECUTOR_PASS_ENV).
    pass_env: list[str] = field(default_factory=list)
    # Whether a `file://` source (a repository on the worker's machine) may be checked out
    # (TERRAKUBE_ALLOW_FILE_SOURCES; the worker's runtime always sets it from its settings).
    allow_file_sources: bool = True
    max_config_bytes: int = 512 << 20
    grace: float = 5.0  # seconds between SIGINT and SIGKILL on cancel/timeout
    # `terraform output -json` after apply/destroy costs a process and a state read; only
    # `after` scripts (as $terraformOutput) use it.
    collect_outputs: bool = True


@dataclass
class StepOutcome:
    status: str  # "completed" | "failed" | "noChanges"
    plan_changes: bool | None = None
    plan_file: Path | None = None  # written by plan steps; the caller uploads it
    commit_id: str | None = None
    reason: str | None = None  # one line saying why it failed (or which failure was ignored)
    terraform_output: str | None = None  # JSON of `terraform output -json` after apply/destroy


async def _race(work: Awaitable[T], cancel: asyncio.Event) -> T:
    """Await ``work`` unless the cancel event fires first (then the work is cancelled)."""
    task: asyncio.Future[T] = asyncio.ensure_future(work)
    waiter: asyncio.Future[Any] = asyncio.create_task(cancel.wait())
    try:
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        raise Cancelled()
    finally:
        waiter.cancel()
        if not task.done():  # cancelled, or we are being cancelled: the work's cleanup must run
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class _Step:
    def __init__(self, spec: StepSpec, log: StepLog, cancel: asyncio.Event) -> None:
        self.spec, self.log, self.cancel = spec, log, cancel
        self.outcome = StepOutcome(status="failed")
        self.deadline = time.monotonic() + spec.timeout if spec.timeout > 0 else None

    def remaining(self) -> float | None:
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimedOut()
        return left

    def fail(self, reason: str) -> StepOutcome:
        if self.spec.ignore_error:
            self.log.emit(f"ignoreError is set, the step continues as completed: {reason}")
            self.outcome.status, self.outcome.reason = "completed", f"failure ignored: {reason}"
        else:
            self.log.emit(reason)
            self.outcome.status, self.outcome.reason = "failed", reason
        return self.outcome

    async def fetch(self) -> Path:
        spec, root = self.spec, self.spec.work_root / "code"
        if spec.source:
            self.log.emit(f"Checking out {redact_url(spec.source)} at {spec.ref or 'the default branch'}")
            checkout = checkout_git(
                spec.source, spec.ref, root, spec.folder, allow_file=spec.allow_file_sources, timeout=self.remaining()
            )
            code_dir, self.outcome.commit_id = await _race(checkout, self.cancel)
            self.log.emit(f"Commit {self.outcome.commit_id}")
            return code_dir
        if spec.config_tarball is not None:
            self.log.emit("Extracting the configuration archive")
            # Off the event loop: other steps' logs and heartbeats keep flowing meanwhile.
            await asyncio.to_thread(extract_tarball, spec.config_tarball, root, spec.max_config_bytes)
            return resolve_folder(root, spec.folder)
        raise CheckoutError("the workspace has neither a git source nor a configuration archive")

    async def run(self) -> StepOutcome:
        spec, log = self.spec, self.log
        if spec.step_type not in STEP_TYPES:  # a scheduler bug, not a user failure: never ignored
            self.outcome.reason = f"the executor cannot run a step of type {spec.step_type!r}"
            log.emit(self.outcome.reason)
            return self.outcome
        try:
            code_dir = await self.fetch()
        except (CheckoutError, UnsafeArchive) as exc:
            self.outcome.status, self.outcome.reason = "failed", f"could not fetch the code: {exc}"
            log.emit(self.outcome.reason)
            return self.outcome
        try:
            # The token travels in the env, not the file: see write_backend_override.
            write_backend_override(code_dir, spec.state_address, None)
            write_variables(code_dir, spec.terraform_variables)
        except ValueError as exc:
            return self.fail(str(exc))
        cli_config = write_cli_config(spec.work_root / "terraform.rc", spec.registry_host, spec.job_token)
        if spec.plugin_cache_dir is not None:
            spec.plugin_cache_dir.mkdir(parents=True, exist_ok=True)
        base = inherited_environment(spec.base_env, spec.pass_env)
        if os.sep in spec.terraform_bin:  # scripts calling `terraform` get the same binary
            bin_dir = str(Path(spec.terraform_bin).resolve().parent)
            base["PATH"] = bin_dir + os.pathsep + base.get("PATH", os.defpath)
        ctx = ScriptContext(
            working_directory=code_dir, scratch_dir=spec.work_root / "scratch",
            organization_id=spec.organization_id, workspace_id=spec.workspace_id, job_id=spec.job_id,
            step_id=spec.step_id, api_url=spec.api_url, token=spec.job_token,
            base_env=terraform_environment(base, cli_config, spec.env, {}, spec.plugin_cache_dir, spec.job_token),
            deadline=self.deadline, grace=spec.grace,
        )
        if spec.step_type == "customScripts":
            # Terrakube runs every command of a customScripts step, whatever its phase flags say.
            ok = await run_commands(spec.commands, "all", ctx, log, self.cancel)
            return self.fail("a script failed") if not ok else self._completed()
        tf = Terraform(
            spec.terraform_bin, code_dir, log, self.cancel,
            env=lambda: terraform_environment(
                base, cli_config, spec.env, ctx.extra_env, spec.plugin_cache_dir, spec.job_token
            ),
            deadline=self.deadline, grace=spec.grace,
        )
        if not await run_commands(spec.commands, "beforeInit", ctx, log, self.cancel):
            return self.fail("a beforeInit script failed")
        if code := await tf.run(init_args()):
            return self.fail(f"terraform init failed (exit code {code})")
        if not await run_commands(spec.commands, "before", ctx, log, self.cancel):
            return self.fail("a before script failed")
        failure = await self._terraform(tf, code_dir)
        if failure is not None:
            # The command did not do its job: after-scripts (notifications of success, policy
            # checks of a plan) would act on a result that does not exist.
            return self.fail(failure)
        ctx.terraform_output = self.outcome.terraform_output
        if not await run_commands(spec.commands, "after", ctx, log, self.cancel):
            return self.fail("an after script failed")
        return self.outcome

    def _completed(self) -> StepOutcome:
        self.outcome.status = "completed"
        return self.outcome

    async def _terraform(self, tf: Terraform, code_dir: Path) -> str | None:
        """Run the step's terraform command; returns why it failed, or None."""
        spec, outcome = self.spec, self.outcome
        if spec.step_type in PLAN_STEPS:
            code = await tf.run(plan_args(spec.step_type == "terraformPlanDestroy", spec.targets, spec.replaces))
            if code not in (0, 2):  # -detailed-exitcode: 0 = no changes, 2 = changes, 1 = error
                return f"terraform plan failed (exit code {code})"
            outcome.status = "completed" if code == 2 else "noChanges"
            outcome.plan_changes = code == 2
            outcome.plan_file = code_dir / PLAN_FILE
            return None
        if spec.step_type == "terraformApply":
            plan: str | None = None
            if spec.plan_file is not None:
                target = code_dir / PLAN_FILE
                if spec.plan_file.resolve() != target.resolve():
                    shutil.copyfile(spec.plan_file, target)
                plan = PLAN_FILE
            args = apply_args(plan, spec.targets, spec.replaces)
        else:
            args = destroy_args(spec.targets)
        if code := await tf.run(args):
            return f"terraform {args[0]} failed (exit code {code})"
        outcome.status = "completed"
        if spec.collect_outputs:
            outcome.terraform_output = await tf.output_json()
        return None


async def run_step(spec: StepSpec, log: StepLog, cancel: asyncio.Event) -> StepOutcome:
    """Run one step. Raises ``Cancelled`` when ``cancel`` is set (after the processes are gone);
    a timeout, like every other failure, comes back as a ``failed`` outcome with a reason."""
    log.add_sensitive([*spec.sensitive_values, spec.job_token])
    step = _Step(spec, log, cancel)
    try:
        return await step.run()
    except TimedOut:
        step.outcome.status, step.outcome.reason = "failed", f"the step timed out after {spec.timeout:g}s"
        step.outcome.plan_file = step.outcome.terraform_output = None
        step.outcome.plan_changes = None
        log.emit(step.outcome.reason)
        return step.outcome
    except Cancelled:
        log.emit("The step was cancelled")
        raise


__all__ = ["StepOutcome", "StepSpec", "run_step", "PLAN_STEPS", "STEP_TYPES"]
