"""Running the git CLI safely: no prompts, no command-running transports, killed when late."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from domain.errors import ValidationFailed

# The git sources code may come from: remote transports, and `file://` for repositories on the
# platform's own machines (allowed or not by the platform's setting).
GIT_SOURCE_RE = re.compile(r"^(https?://|ssh://|git://|file://|[\w.-]+@[\w.-]+:).+")
FILE_SOURCES_OFF = (
    "file:// sources are turned off on this platform: they would read repositories on its own machines "
    "(an administrator can allow them with TERRAKUBE_ALLOW_FILE_SOURCES=true)"
)
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


class GitTimeout(Exception):
    pass


def redact_url(text: str) -> str:
    """Replace the user-info part of every URL in ``text`` (``https://user:token@host``)."""
    return _URL_USERINFO.sub(lambda m: m.group("scheme") + "***@", text)


def redact(text: str, source: str) -> str:
    """``text`` (e.g. git's stderr) without the credentials of ``source``, in every spelling
    git may echo them."""
    text = redact_url(text)
    secrets: set[str] = set()
    try:
        parts = urlsplit(source)
    except ValueError:
        return text
    for value in (parts.username, parts.password):
        if value:
            secrets |= {value, unquote(value)}
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def check_git_source(source: str, *, allow_file: bool) -> None:
    """A workspace's or module's ``source``: a git URL of an allowed kind (the length and the
    text rules are the caller's)."""
    if not GIT_SOURCE_RE.match(source) or any(c.isspace() for c in source):
        raise ValidationFailed("source", "source must be a git URL (https://, ssh://, git@host:path or file://)")
    if source.startswith("file://") and not allow_file:
        raise ValidationFailed("source", FILE_SOURCES_OFF)


def git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TERRAKUBE_")}
    env.update(
        GIT_TERMINAL_PROMPT="0",  # never wait for a password nobody can type
        GCM_INTERACTIVE="never",
        GIT_ASKPASS="true",  # an askpass that answers empty fails the auth instead of hanging
        SSH_ASKPASS="true",
        # `ext::` and other exotic transports can run commands; code only comes over these.
        GIT_ALLOW_PROTOCOL="file:git:http:https:ssh",
        GIT_CONFIG_NOSYSTEM="1",
    )
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    return env


async def run_git(args: Sequence[str], cwd: Path | None, timeout: float | None) -> tuple[int, bytes, str]:
    """(exit code, stdout, stderr). Raises ``GitTimeout``; git and its helpers are killed
    (their whole process group) when late or cancelled."""
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=cwd, env=git_env(), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        raise GitTimeout(f"git {args[0]} did not finish within {timeout:.0f} s") from None
    finally:
        if proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await proc.wait()
    return proc.returncode or 0, out or b"", (err or b"").decode("utf-8", "replace")
