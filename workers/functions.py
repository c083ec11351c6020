"""Functions a worker runs. The job engine adds its own here; every one is registered by name."""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

WorkerFunction = Callable[..., Awaitable[Any]]


async def ping(ctx: dict[str, Any], nonce: str) -> dict[str, str]:
    """Proves a worker is consuming the queue: answers which process took the job."""
    return {"nonce": nonce, "worker": f"{socket.gethostname()}:{os.getpid()}"}


def _engine_functions() -> dict[str, WorkerFunction]:
    from workers import engine

    return {
        "advance_job": engine.advance_job,
        "run_step": engine.run_step,
        "run_hook": engine.run_hook,
        "sweep": engine.sweep,
        "refresh_module": engine.refresh_module,
    }


FUNCTIONS: dict[str, WorkerFunction] = {"ping": ping, **_engine_functions()}
# Apply and destroy must never run twice on their own: no function is retried blindly.
NEVER_RETRY = frozenset(FUNCTIONS)
