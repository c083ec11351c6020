"""Preparing a step's working directory: code checkout and the files the platform injects."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from domain.archive import UnsafeArchive, extract_tarball
from domain.errors import ValidationFailed
from domain.git import GitTimeout, check_git_source, redact, redact_url, run_git
from workers.executor.hcl import is_identifier, quote

__all__ = [
    "BACKEND_OVERRIDE_FILE",
    "VARIABLES_FILE",
    "CheckoutError",
    "TerraformVariable",
    "UnsafeArchive",
    "checkout_git",
    "extract_tarball",
    "redact_url",
    "resolve_folder",
    "write_backend_override",
    "write_cli_config",
    "write_variables",
]

# The `_override.tf` suffix makes terraform merge it over whatever backend the code declares;
# `zz_` sorts it last so it wins over other override files too.
BACKEND_OVERRIDE_FILE = "zz_terrakube_backend_override.tf"
VARIABLES_FILE = "zz_terrakube.auto.tfvars"

_SHA = re.compile(r"[0-9a-fA-F]{7,64}\Z")


class CheckoutError(Exception):
    """The code could not be fetched; the message is safe to show (credentials masked)."""


@dataclass(frozen=True)
class TerraformVariable:
    key: str
    value: str
    hcl: bool = False


async def _git(args: Sequence[str], cwd: Path | None, timeout: float | None) -> tuple[int, str]:
    """(exit code, stderr + stdout), for error messages."""
    try:
        code, out, err = await run_git(args, cwd, timeout)
    except GitTimeout as exc:
        raise CheckoutError(str(exc)) from None
    return code, err + out.decode("utf-8", "replace")


def resolve_folder(root: Path, folder: str) -> Path:
    """The workspace's folder inside the fetched code; "" and "/" mean the root."""
    relative = folder.strip().strip("/")
    base = root.resolve()
    if not relative:
        return base
    candidate = (base / relative).resolve()  # resolve() also follows symlinks out of the repo
    if candidate != base and base not in candidate.parents:
        raise CheckoutError(f"folder {folder!r} points outside the repository")
    if not candidate.is_dir():
        raise CheckoutError(f"folder {folder!r} does not exist in the repository")
    return candidate


async def checkout_git(
    source: str, ref: str, dest: Path, folder: str, *, allow_file: bool, timeout: float | None = 600.0
) -> tuple[Path, str]:
    """Clone ``source`` at ``ref`` (branch, tag or commit sha) into ``dest``.

    Returns the code directory (``folder`` inside the clone) and the commit id checked out.
    ``allow_file``: whether a ``file://`` source (a repository on this machine) may be read.
    """
    try:
        # Checked again here: the source may have been stored while the platform allowed it.
        check_git_source(source, allow_file=allow_file)
    except ValidationFailed as exc:
        raise CheckoutError(exc.message) from None
    if dest.exists() and any(dest.iterdir()):
        raise CheckoutError(f"checkout destination {dest} is not empty")
    ref = ref.strip()
    if ref.startswith("-"):
        raise CheckoutError(f"invalid ref {ref!r}")
    # A shallow clone of one branch or tag is the fast path for nearly every run.
    shallow = ["clone", "--quiet", "--depth", "1", *(["--branch", ref] if ref else []), "--", source, str(dest)]
    code, err = await _git(shallow, None, timeout)
    if code != 0:
        if not (ref and _SHA.match(ref)):
            raise CheckoutError(f"git clone failed: {redact(err.strip(), source)}")
        # `--branch` cannot name a commit: fall back to a full clone and a detached checkout.
        shutil.rmtree(dest, ignore_errors=True)
        code, err = await _git(["clone", "--quiet", "--no-checkout", "--", source, str(dest)], None, timeout)
        if code != 0:
            raise CheckoutError(f"git clone failed: {redact(err.strip(), source)}")
        code, err = await _git(["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", ref], dest, timeout)
        if code != 0:
            raise CheckoutError(f"git checkout {ref} failed: {redact(err.strip(), source)}")
    code, out, _ = await run_git(["rev-parse", "HEAD"], dest, timeout)
    if code != 0:
        raise CheckoutError("git rev-parse HEAD failed after the clone")
    return resolve_folder(dest, folder), out.decode().strip()


def _write_private(path: Path, text: str) -> None:
    """These files hold tokens: create them readable by the worker user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_backend_override(code_dir: Path, address: str, token: str | None) -> Path:
    """Point terraform's state at the platform's http backend, authenticated by the job token.

    With ``token=None`` the password is left out of the file and terraform takes it from
    ``TF_HTTP_PASSWORD``. The runner does that on purpose: terraform copies the backend config
    into a saved plan and, when applying that plan, authenticates with the copy, so a password
    in the file would make the apply step use the plan step's (maybe expired) token and would
    leave a credential inside every stored plan file.
    """
    lock = address.rstrip("/") + "/lock"
    settings = [
        ("address", quote(address)),
        ("lock_address", quote(lock)),
        ("unlock_address", quote(lock)),
        ("lock_method", quote("LOCK")),
        ("unlock_method", quote("UNLOCK")),
        ("username", quote("terrakube")),
    ]
    if token is not None:
        settings.append(("password", quote(token)))
    body = "\n".join(f"    {key} = {value}" for key, value in settings)
    path = code_dir / BACKEND_OVERRIDE_FILE
    _write_private(path, f'terraform {{\n  backend "http" {{\n{body}\n  }}\n}}\n')
    return path


def write_variables(code_dir: Path, variables: Sequence[TerraformVariable]) -> Path:
    """Terraform input variables, loaded automatically thanks to the ``.auto.tfvars`` name."""
    lines: list[str] = []
    for var in variables:
        if not is_identifier(var.key):
            raise ValueError(f"invalid terraform variable name {var.key!r}")
        # hcl=true values are expressions by contract (lists, maps, numbers, bools); the rest are
        # always strings, whatever they look like.
        lines.append(f"{var.key} = {var.value if var.hcl else quote(var.value)}")
    path = code_dir / VARIABLES_FILE
    _write_private(path, "\n".join(lines) + ("\n" if lines else ""))
    return path


def write_cli_config(path: Path, host: str | None, token: str | None) -> Path:
    """A terraform CLI config that knows only the token for the platform's private registry.

    Written even when empty so terraform never falls back to a user's ~/.terraformrc.
    """
    text = ""
    if host and token:
        text = f"credentials {quote(host)} {{\n  token = {quote(token)}\n}}\n"
    _write_private(path, text)
    return path
