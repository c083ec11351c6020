"""Every Redis key and queue name the platform uses, in one place."""

from __future__ import annotations


def queue_name(prefix: str) -> str:
    return f"{prefix}:queue"


def ping_job_id(nonce: str) -> str:
    return f"ping:{nonce}"


def log_stream(prefix: str, job_id: str) -> str:
    """Stream of a job's log chunks (replay), trimmed to a bounded length, expiring after the job."""
    return f"{prefix}:logs:{job_id}"


def log_wake(prefix: str, job_id: str) -> str:
    """Pub/sub channel saying "the job's log stream grew" (``*`` for a pattern)."""
    return f"{prefix}:logs-wake:{job_id}"


def event_channel(prefix: str, channel: str) -> str:
    """Pub/sub channel of job events: ``job:{id}``, ``workspace:{id}``, ``organization:{id}``."""
    return f"{prefix}:events:{channel}"


def access_channel(prefix: str) -> str:
    """Pub/sub channel saying "a token, team or organization changed": drop remembered access."""
    return f"{prefix}:access-changed"
