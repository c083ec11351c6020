"""Every Redis key and queue name the platform uses, in one place."""

from __future__ import annotations


def queue_name(prefix: str) -> str:
    return f"{prefix}:queue"


def ping_job_id(nonce: str) -> str:
    return f"ping:{nonce}"
