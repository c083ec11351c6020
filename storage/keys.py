"""The one key layout of DESIGN.md "Storage keys", used by every backend.

Building keys only here means a backend switch or a cleanup sweep never has to guess where
an object lives.
"""

from __future__ import annotations

import uuid

from .base import InvalidKey, validate_key, validate_prefix

__all__ = [
    "config_key",
    "log_key",
    "module_archive_key",
    "module_prefix",
    "organization_prefixes",
    "plan_key",
    "provider_file_key",
    "provider_prefix",
    "state_key",
    "workspace_prefixes",
]

Part = str | uuid.UUID


def _segment(value: Part) -> str:
    # Each argument must stay one path segment: a '/' inside a name would silently move the
    # object into another folder of the layout (and out of reach of workspace_prefixes).
    text = str(value)
    if "/" in text:
        raise InvalidKey(f"key part must not contain '/': {text!r}")
    return text


def _key(*parts: Part) -> str:
    return validate_key("/".join(_segment(p) for p in parts))


def state_key(org: Part, workspace: Part, state_version_id: Part) -> str:
    return _key("state", org, workspace, f"{_segment(state_version_id)}.tfstate")


def plan_key(org: Part, workspace: Part, job: Part, step: Part) -> str:
    return _key("plans", org, workspace, job, f"{_segment(step)}.tfplan")


def log_key(org: Part, job: Part, step: Part) -> str:
    return _key("logs", org, job, f"{_segment(step)}.log")


def config_key(org: Part, workspace: Part, config_version_id: Part) -> str:
    return _key("config", org, workspace, f"{_segment(config_version_id)}.tar.gz")


def module_archive_key(org: Part, name: Part, provider: Part, version: Part) -> str:
    return _key("registry", org, "modules", name, provider, f"{_segment(version)}.tar.gz")


def provider_file_key(org: Part, name: Part, version: Part, filename: Part) -> str:
    return _key("registry", org, "providers", name, version, filename)


def workspace_prefixes(org: Part, workspace: Part) -> list[str]:
    """Prefixes holding a workspace's objects, e.g. to delete them with the workspace.

    Each ends with '/' so that workspace 'ws1' never matches objects of 'ws10'. Logs are
    keyed by job, not workspace, so they are removed with their jobs instead.
    """
    return [
        validate_prefix(_key(kind, org, workspace) + "/", allow_empty=False)
        for kind in ("state", "plans", "config")
    ]


def _prefix(*parts: Part) -> str:
    # The trailing '/' is what keeps 'acme' from matching the objects of 'acme-2'.
    return validate_prefix(_key(*parts) + "/", allow_empty=False)


def organization_prefixes(org: Part) -> list[str]:
    """Prefixes holding every object of an organization: its workspaces' state, plans and
    configurations, its jobs' logs and its registry archives and provider files."""
    return [_prefix(kind, org) for kind in ("state", "plans", "logs", "config", "registry")]


def job_log_prefix(org: Part, job: Part) -> str:
    """The prefix of one job's step logs."""
    return _prefix("logs", org, job)


def module_prefix(org: Part, name: Part, provider: Part) -> str:
    """The prefix of one module's archives (every version and build)."""
    return _prefix("registry", org, "modules", name, provider)


def provider_prefix(org: Part, name: Part) -> str:
    """The prefix of one provider's files (every version: zips, SHA256SUMS, signatures)."""
    return _prefix("registry", org, "providers", name)
