"""TCL commands: BASH and PYTHON scripts run around terraform, with Terrakube's env contract."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from workers.executor.logs import StepLog
from workers.executor.process import run_process

Phase = Literal["beforeInit", "before", "after", "all"]

ENV_FILE_NAME = "terrakube.env"
_ENV_LINE = re.compile(r"\s*(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=(?P<value>.*)\Z")


class Command(Protocol):
    """One entry of a TCL step's ``commands``; any object with these attributes will do."""

    runtime: str
    priority: int
    before_init: bool
    before: bool
    after: bool
    script: str
    verbose: bool


@dataclass
class ScriptContext:
    """What scripts of one step share: identity, env, and the env they add for later ones."""

    working_directory: Path
    scratch_dir: Path  # outside the code dir: script files and the terrakubeEnv file live here
    organization_id: str
    workspace_id: str
    job_id: str
    step_id: str
    api_url: str
    token: str
    base_env: dict[str, str]  # the env scripts start from (the runner passes terraform's)
    terraform_output: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)  # KEY=VALUE lines scripts appended
    deadline: float | None = None  # time.monotonic() value; None = no deadline
    grace: float = 5.0

    @property
    def env_file(self) -> Path:
        return self.scratch_dir / ENV_FILE_NAME

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def environment(self) -> dict[str, str]:
        env = {**self.base_env, **self.extra_env}
        # The contract wins over anything a script appended: later scripts rely on it.
        env.update(
            workingDirectory=str(self.working_directory),
            organizationId=self.organization_id,
            workspaceId=self.workspace_id,
            jobId=self.job_id,
            stepId=self.step_id,
            terrakubeApi=self.api_url,
            terrakubeToken=self.token,
            terrakubeEnv=str(self.env_file),
            PYTHONUNBUFFERED="1",  # so PYTHON scripts' output streams live instead of at exit
        )
        if self.terraform_output is not None:
            env["terraformOutput"] = self.terraform_output
        return env


def parse_env_file(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines (optional ``export``, optional matching quotes); others are skipped."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        match = _ENV_LINE.match(raw.rstrip("\r"))
        if match is None:
            continue
        value = match.group("value").strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[match.group("key")] = value
    return values


def _name(value: object) -> str:
    # Runtimes may arrive as plain strings or as str-valued enums.
    return str(getattr(value, "value", value)).upper()


def _selected(commands: Iterable[Command], phase: Phase) -> list[Command]:
    def wanted(command: Command) -> bool:
        if phase == "all":
            return True
        flag = {"beforeInit": "before_init", "before": "before", "after": "after"}[phase]
        return bool(getattr(command, flag, False))

    # sorted() is stable: commands sharing a priority keep their template order.
    return sorted((c for c in commands if wanted(c)), key=lambda c: int(getattr(c, "priority", 0) or 0))


async def _run_one(command: Command, name: str, ctx: ScriptContext, log: StepLog, cancel: asyncio.Event) -> bool:
    runtime = _name(command.runtime)
    priority = int(getattr(command, "priority", 0) or 0)
    suffix = {"BASH": ".sh", "PYTHON": ".py"}.get(runtime)
    if suffix is None:
        log.emit(f"Command with priority {priority}: runtime {runtime} is not supported (use BASH or PYTHON)")
        return False
    if command.verbose:
        log.emit("***************************************")
        log.emit(f"Command Priority {priority}")
        log.emit(f"Running {runtime}")
        log.emit("Script Information:")
        log.emit(command.script)
        log.emit("***************************************")
        log.emit("Begin Execution:")
    script_dir = ctx.scratch_dir / "scripts"
    script_dir.mkdir(parents=True, exist_ok=True)
    path = script_dir / f"{name}{suffix}"
    path.write_text(command.script, encoding="utf-8")
    argv = ["bash", str(path)] if runtime == "BASH" else [sys.executable, "-u", str(path)]
    code = await run_process(argv, ctx.working_directory, ctx.environment(), log, cancel, ctx.remaining(), ctx.grace)
    if command.verbose:
        log.emit("End Execution...")
    if code != 0:
        log.emit(f"{runtime} command with priority {priority} failed: exit code {code}")
        return False
    return True


async def run_commands(
    commands: Iterable[Command], phase: Phase, ctx: ScriptContext, log: StepLog, cancel: asyncio.Event
) -> bool:
    """Run the commands of ``phase`` ("all" = every command) in ascending priority.

    Stops at the first failure and returns False. After every script the ``$terrakubeEnv`` file
    is read back into ``ctx.extra_env`` so later scripts and terraform see what it appended.
    Raises ``Cancelled``/``TimedOut`` from the running script.
    """
    ctx.env_file.parent.mkdir(parents=True, exist_ok=True)
    ctx.env_file.touch(exist_ok=True)
    for index, command in enumerate(_selected(commands, phase)):
        try:
            ok = await _run_one(command, f"{phase}-{index:03d}", ctx, log, cancel)
        finally:
            ctx.extra_env.update(read_env_file(ctx.env_file))
        if not ok:
            return False
    return True


def read_env_file(path: Path) -> Mapping[str, str]:
    try:
        return parse_env_file(path.read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:  # a script may delete it; what it had appended before is kept
        return {}
