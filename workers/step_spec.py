"""Turns a job's step into the executor's ``StepSpec``: code location, variables, tokens."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from sqlmodel import col, select

from domain.models import ConfigurationVersion, Job, Organization, Step, Variable, Workspace
from domain.models.types import utcnow
from domain.tcl import parse_flow
from workers.runtime import Runtime


def flow_entry(job: Job, step: Step) -> Any:
    return next(e for e in parse_flow(job.tcl).steps if e.step == step.step_number)


async def _download(rt: Runtime, key: str, dest: Path) -> Path:
    with dest.open("wb") as fh:
        async for chunk in await rt.platform.blobs.get(key):
            fh.write(chunk)
    return dest


async def build_spec(rt: Runtime, job: Job, step: Step, ws: Workspace, root: Path) -> tuple[Any, str]:
    from workers.executor.runner import StepSpec
    from workers.executor.workdir import TerraformVariable

    root.mkdir(parents=True, exist_ok=True)
    box = rt.platform.box
    async with rt.platform.db.session() as session:
        org = await session.get(Organization, job.organization_id)
        assert org is not None
        variables = list((await session.exec(select(Variable).where(Variable.workspace_id == ws.id))).all())
        plan_step = None
        if step.type == "terraformApply":
            plan_step = (
                await session.exec(
                    select(Step)
                    .where(Step.job_id == job.id, col(Step.plan_key).is_not(None), Step.step_number < step.step_number)
                    .order_by(col(Step.step_number).desc())
                )
            ).first()
        config = None
        if not ws.source:
            config = (
                await session.exec(
                    select(ConfigurationVersion)
                    .where(ConfigurationVersion.workspace_id == ws.id)
                    .order_by(col(ConfigurationVersion.created_at).desc())
                )
            ).first()
    if not ws.source and config is None:
        raise RuntimeError("the workspace has no git source and no uploaded configuration")

    terraform_vars, env, sensitive = [], {}, []
    for var in variables:
        value = box.decrypt(var.value) if var.sensitive else var.value
        if var.sensitive:
            sensitive.append(value)
        if var.category == "TERRAFORM":
            terraform_vars.append(TerraformVariable(key=var.key, value=value, hcl=var.hcl))
        else:
            env[var.key] = value

    entry = flow_entry(job, step)
    commands = list(getattr(entry, "commands", ()) or ())
    imported = getattr(entry, "import_commands", None)
    if imported is not None:
        commands = await _imported_commands(imported, root / "imported-commands", rt.settings.file_sources_allowed)
    token = rt.platform.signer.sign_job(
        job_id=job.id,
        workspace_id=ws.id,
        organization_id=org.id,
        expires_at=utcnow() + timedelta(seconds=rt.settings.step_timeout_seconds + 3600),
    )
    sensitive.append(token)
    api = rt.api_url.rstrip("/")
    plan_file = await _download(rt, plan_step.plan_key, root / "input.tfplan") if plan_step and plan_step.plan_key else None
    tarball = await _download(rt, config.blob_key, root / "config.tar.gz") if config else None
    inputs_env = {str(k): str(v) for k, v in (getattr(entry, "inputs_env", None) or {}).items()}
    spec = StepSpec(
        step_type=step.type,
        work_root=root,
        organization_id=str(org.id),
        organization=org.name,
        workspace_id=str(ws.id),
        workspace=ws.name,
        job_id=str(job.id),
        step_id=str(step.id),
        source=ws.source,
        # Later steps check out the exact commit the first one recorded, not a branch that may
        # have moved while the job waited (e.g. for an approval).
        ref=job.commit_id or job.override_branch or ws.branch,
        folder=ws.folder,
        config_tarball=tarball,
        terraform_variables=terraform_vars,
        env={**env, **inputs_env},
        sensitive_values=sensitive,
        commands=commands,
        collect_outputs=any(getattr(c, "after", False) for c in commands),
        state_address=f"{api}/tfstate/{quote(org.name)}/{quote(ws.name)}",
        api_url=api,
        job_token=token,
        registry_host=_registry_host(api),
        targets=list(job.targets),
        replaces=list(job.replaces),
        plan_file=plan_file,
        ignore_error=bool(getattr(entry, "ignore_error", False)),
        timeout=float(rt.settings.step_timeout_seconds),
        terraform_bin=rt.settings.terraform_bin,
        pass_env=list(rt.settings.executor_pass_env),
        allow_file_sources=rt.settings.file_sources_allowed,
    )
    return spec, org.name


async def _imported_commands(imported: Any, dest: Path, allow_file: bool) -> list[Any]:
    """Terrakube's ``importCommands``: the step's commands come from ``{folder}/commands.yaml``
    of another git repository (they replace the step's own, as in Terrakube)."""
    from domain.tcl import parse_commands
    from workers.executor.workdir import checkout_git

    code_dir, _ = await checkout_git(
        imported.repository, imported.branch or "", dest, imported.folder, allow_file=allow_file
    )
    path = code_dir / "commands.yaml"
    if not path.is_file():
        raise RuntimeError(f"importCommands: {imported.repository} has no {imported.folder.strip('/')}/commands.yaml")
    return list(parse_commands(path.read_text()))


def _registry_host(api_url: str) -> str | None:
    """Terraform only uses registries over HTTPS; over plain HTTP no credentials are written."""
    parts = urlsplit(api_url)
    return parts.netloc if parts.scheme == "https" else None


async def hook_spec(rt: Runtime, step_id: uuid.UUID, hook: str, root: Path) -> tuple[Any, str] | None:
    """A customScripts spec running the step's ``onReject``/``onFailure`` commands."""
    from storage.keys import log_key

    async with rt.platform.db.session() as session:
        step = await session.get(Step, step_id)
        job = await session.get(Job, step.job_id) if step else None
        ws = await session.get(Workspace, job.workspace_id) if job else None
    if step is None or job is None or ws is None:
        return None
    entry = flow_entry(job, step)
    commands = getattr(entry, {"onReject": "on_reject", "onFailure": "on_failure"}[hook], None)
    if not commands or isinstance(commands, bool):
        return None
    spec, org_name = await build_spec(rt, job, step, ws, root)
    spec.step_type = "customScripts"
    spec.commands = list(commands)
    spec.plan_file = None
    return spec, step.log_key or log_key(org_name, job.id, step.id)
