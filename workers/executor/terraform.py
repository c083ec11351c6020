"""The terraform CLI: its environment and the exact command lines of each step type."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from workers.executor.logs import StepLog
from workers.executor.process import capture_process, run_process

PLAN_FILE = "plan.tfplan"

# Applied last, over the user's ENV variables: without them terraform may phone home, wait for
# input nobody can give, or read a CLI config that is not ours.
_ENFORCED = {"TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "TF_INPUT": "0"}

# What terraform, providers and scripts start from: only what a process needs to run on this
# machine, never what authenticates anything. The worker's environment also holds the platform's
# own credentials (its blob storage's AWS_*/AZURE_*/GOOGLE_* variables, PGPASSWORD, REDIS_URL...)
# and a user's script can print its environment into the job log, so anything else must be asked
# for by name (TERRAKUBE_EXECUTOR_PASS_ENV). Kept on purpose:
#   PATH                  - finding terraform, bash, python, git and the tools scripts call
#   HOME, USER, LOGNAME   - who runs: git, ssh and many CLIs refuse to start without them
#   SHELL, TERM           - what scripts and the tools they call expect of their session
#   LANG, LANGUAGE, LC_*  - the locale: output encoding of terraform and scripts
#   TZ, TMPDIR            - the machine's time zone and the place for temporary files
#   [http|https|no|all]_proxy, both cases - the machine's way out (libcurl, Go and Python read
#                           either case); a proxy URL may hold the proxy's password, but without
#                           it no provider or module download gets out
#   SSL_CERT_FILE, SSL_CERT_DIR - the machine's CAs (and `up --self-signed`'s certificate), so
#                           terraform trusts the platform's own state backend and registry
# TF_* (TF_LOG, TF_DATA_DIR, TF_CLI_CONFIG_FILE...) configure the worker's own terraform and are
# dropped like the rest; terraform_environment sets the ones a run needs.
_PROXY_NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")
BASE_NAMES = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LANGUAGE", "TZ", "TMPDIR",
     "SSL_CERT_FILE", "SSL_CERT_DIR"}
    | set(_PROXY_NAMES)
    | {name.lower() for name in _PROXY_NAMES}
)
BASE_PREFIXES = ("LC_",)
# The worker's own settings (database URL, secret key): never passed, whatever the pass-list says.
# Upper-cased before the test because pydantic-settings reads them in any case.
NEVER_PASSED_PREFIX = "TERRAKUBE_"


def _passed(name: str, pass_env: Sequence[str]) -> bool:
    """Whether ``name`` is on the operator's pass-list: an exact name, or ``PREFIX*``."""
    for pattern in pass_env:
        if pattern.endswith("*"):
            if name.startswith(pattern[:-1]):
                return True
        elif name == pattern:
            return True
    return False


def inherited(name: str, pass_env: Sequence[str] = ()) -> bool:
    """Whether the worker's variable ``name`` may reach terraform and scripts."""
    if name.upper().startswith(NEVER_PASSED_PREFIX):
        return False
    return name in BASE_NAMES or name.startswith(BASE_PREFIXES) or _passed(name, pass_env)


def inherited_environment(source: Mapping[str, str] | None = None, pass_env: Sequence[str] = ()) -> dict[str, str]:
    """The part of the worker's environment terraform and scripts may see: the allow-list above
    plus the operator's ``pass_env`` (names, or prefixes ending in ``*``)."""
    env = os.environ if source is None else source
    return {key: value for key, value in env.items() if inherited(key, pass_env)}


def terraform_environment(
    base: Mapping[str, str],
    cli_config: Path,
    user_env: Mapping[str, str],
    extra_env: Mapping[str, str],
    plugin_cache_dir: Path | None = None,
    backend_token: str | None = None,
) -> dict[str, str]:
    """Env of one terraform run: base, then ENV variables, then what scripts appended, then ours.

    ``backend_token`` becomes the http backend's password (see ``write_backend_override``).
    """
    env = dict(base)
    if plugin_cache_dir is not None:
        env["TF_PLUGIN_CACHE_DIR"] = str(plugin_cache_dir)
    env.update(user_env)
    env.update(extra_env)
    env.update(_ENFORCED)
    env["TF_CLI_CONFIG_FILE"] = str(cli_config)
    if backend_token is not None:
        env["TF_HTTP_USERNAME"] = "terrakube"
        env["TF_HTTP_PASSWORD"] = backend_token
    return env


def _selectors(targets: Sequence[str], replaces: Sequence[str]) -> list[str]:
    # One argv element each: a target can never smuggle in another flag.
    return [f"-target={t}" for t in targets] + [f"-replace={r}" for r in replaces]


def init_args() -> list[str]:
    return ["init", "-input=false", "-no-color"]


def plan_args(destroy: bool, targets: Sequence[str], replaces: Sequence[str]) -> list[str]:
    args = ["plan", "-input=false", "-no-color", "-detailed-exitcode", f"-out={PLAN_FILE}"]
    if destroy:
        args.append("-destroy")
    return args + _selectors(targets, replaces)


def apply_args(plan_file: str | None, targets: Sequence[str], replaces: Sequence[str]) -> list[str]:
    args = ["apply", "-input=false", "-no-color", "-auto-approve"]
    if plan_file is not None:
        # A saved plan already fixes targets and replacements; terraform refuses them here.
        return [*args, plan_file]
    return args + _selectors(targets, replaces)


def destroy_args(targets: Sequence[str]) -> list[str]:
    return ["destroy", "-input=false", "-no-color", "-auto-approve", *_selectors(targets, [])]


@dataclass
class Terraform:
    """Runs terraform in one code directory under the step's log, cancel event and deadline."""

    binary: str
    code_dir: Path
    log: StepLog
    cancel: asyncio.Event
    env: Callable[[], dict[str, str]]  # re-evaluated per run: scripts may have added env since
    deadline: float | None = None  # time.monotonic() value
    grace: float = 5.0

    def _remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    async def run(self, args: Sequence[str]) -> int:
        self.log.emit(f"$ terraform {' '.join(args)}")
        argv = [self.binary, *args]
        return await run_process(argv, self.code_dir, self.env(), self.log, self.cancel, self._remaining(), self.grace)

    async def output_json(self) -> str | None:
        """``terraform output -json``, kept out of the log: it holds sensitive outputs in clear."""
        argv = [self.binary, "output", "-json", "-no-color"]
        code, out = await capture_process(
            argv, self.code_dir, self.env(), self.log, self.cancel, self._remaining(), self.grace
        )
        if code != 0:
            self.log.emit(f"terraform output -json failed with exit code {code}; no outputs recorded")
            return None
        text = out.decode("utf-8", errors="replace").strip()
        try:
            json.loads(text)
        except ValueError:
            self.log.emit("terraform output -json did not print JSON; no outputs recorded")
            return None
        return text
